// EventBus: typed events from engines and from the library, delivered to subscribers that chose
// them by type and filter; Reactor: rules that act on them ("when a container dies with a
// non-zero status, keep its last log lines"; "when it is gone, release its devices"; "when the
// OOM killer struck, mark the run failed").
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "bitfusion/clock.h"
#include "bitfusion/container_runner.h"
#include "bitfusion/device_allocator.h"
#include "bitfusion/event.h"
#include "bitfusion/export.h"
#include "bitfusion/status.h"
#include "bitfusion/subscription.h"

namespace bitfusion {

/// Chooses events beyond their type; null accepts every event.
using EventFilter = std::function<bool(const Event& event)>;

struct EventBusOptions {
  /// Events waiting for delivery; beyond this the oldest is dropped (and counted) so that a
  /// slow subscriber never blocks an engine's event stream.
  std::size_t queue_capacity = 65536;
};

/// Counters of one bus.
struct EventBusCounters {
  std::uint64_t published = 0;
  std::uint64_t delivered = 0;  ///< callback invocations
  std::uint64_t dropped = 0;    ///< lost to a full queue
};

/// Fans events out to subscribers on one delivery thread of its own, in publication order.
///
/// Concurrency: every method may be called from any thread, callbacks included (a callback may
/// publish or subscribe; it must not Flush). A subscription's callback never runs concurrently
/// with itself.
class BITFUSION_EXPORT EventBus {
 public:
  explicit EventBus(const EventBusOptions& options = {});
  ~EventBus();
  EventBus(const EventBus&) = delete;
  EventBus& operator=(const EventBus&) = delete;

  /// Queues `event` for delivery; never blocks on subscribers.
  void Publish(Event event);

  /// `callback` receives events whose type is in `types` (all types when empty) and that pass
  /// `filter`, until the subscription ends.
  Subscription Subscribe(std::vector<EventType> types, EventFilter filter, EventCallback callback);

  /// Waits until every event published before the call has been delivered.
  Status Flush(Deadline deadline);

  EventBusCounters counters() const;

  /// A callback that publishes onto this bus, for ContainerRunner::Events and the like.
  EventCallback Publisher();

 private:
  class Impl;
  std::shared_ptr<Impl> impl_;
};

/// One rule: on events of `types` that pass `filter`, run `action`.
struct ReactorRule {
  std::string name;  ///< for counters and logs
  std::vector<EventType> types;
  EventFilter filter;
  EventCallback action;
};

/// Holds rules on a bus; each rule stays subscribed for as long as the Reactor lives.
///
/// Concurrency: Add and fired may be called from any thread.
class BITFUSION_EXPORT Reactor {
 public:
  explicit Reactor(EventBus& bus);
  ~Reactor();
  Reactor(const Reactor&) = delete;
  Reactor& operator=(const Reactor&) = delete;

  void Add(ReactorRule rule);
  /// How many times rule `name` has acted.
  std::uint64_t fired(std::string_view name) const;

 private:
  EventBus& bus_;
  mutable std::mutex mu_;
  std::map<std::string, std::uint64_t, std::less<>> fired_;
  std::vector<Subscription> subscriptions_;
};

/// Device leases held on behalf of containers, released when their container dies or is
/// removed (see ReleaseLeasesOnExit).
///
/// Concurrency: thread-safe.
class BITFUSION_EXPORT LeaseTable {
 public:
  /// Keeps `lease` until container `container_id` exits.
  void Hold(const std::string& container_id, std::unique_ptr<DeviceLease> lease);
  /// Releases (destroys) the leases held for `container_id`; returns how many there were.
  std::size_t Release(const std::string& container_id);
  std::size_t held() const;

 private:
  mutable std::mutex mu_;
  std::multimap<std::string, std::unique_ptr<DeviceLease>> leases_;
};

/// An event attribute, or "" when absent.
BITFUSION_EXPORT std::string EventAttribute(const Event& event, std::string_view key);

/// On kContainerDied with a non-zero "exitCode": fetches the container's last `lines` log lines
/// from `runner` and hands them to `attach` (e.g. to put them into the run record).
BITFUSION_EXPORT ReactorRule
AttachLogTailOnFailure(std::shared_ptr<ContainerRunner> runner, std::size_t lines,
                       std::function<void(const Event& event, std::vector<LogLine> tail)> attach);

/// On kContainerDied and kContainerDestroyed: releases the leases `table` holds for the
/// container.
BITFUSION_EXPORT ReactorRule ReleaseLeasesOnExit(std::shared_ptr<LeaseTable> table);

/// On kContainerOom: calls `mark` (e.g. to mark the container's run failed).
BITFUSION_EXPORT ReactorRule MarkFailedOnOom(std::function<void(const Event& event)> mark);

/// Where ForwardToWebhook sends events.
struct WebhookOptions {
  /// http:// or https://; a token in the query or user:password in it is never shown.
  std::string url;
  /// Forwarded types; empty = every type.
  std::vector<EventType> types;
  /// Events waiting to be sent; beyond this the oldest is dropped (and counted), so a webhook
  /// that is down never holds up the bus or the work it reports on.
  std::size_t queue_capacity = 1024;
  std::chrono::milliseconds timeout{5000};  ///< per POST
  int max_attempts = 3;                     ///< per event, with backoff; then it is dropped
  /// How long the last events may take to send when the rule ends (its Reactor goes).
  std::chrono::milliseconds drain{5000};
};

/// What a webhook rule did so far.
struct WebhookCounters {
  std::uint64_t sent = 0;     ///< answered 2xx
  std::uint64_t failed = 0;   ///< given up after max_attempts (or at the end's drain)
  std::uint64_t dropped = 0;  ///< pushed out of a full queue
};

/// Forwards chosen events to a webhook as they happen, so other systems hear them: each one a
/// POST of a JSON object {"type": "container.died", "source", "subject", "action",
/// "attributes", "time_ns"}. Sent from a thread of its own, in order; the rule only queues, so a
/// slow or dead webhook never holds up the bus.
///
/// Concurrency: thread-safe.
class BITFUSION_EXPORT Webhook {
 public:
  /// InvalidArgument for a URL that is not http(s) (the message shows it redacted).
  static Result<std::shared_ptr<Webhook>> Make(const WebhookOptions& options);
  /// Sends what is queued for up to `drain`, then gives the rest up (counted as failed).
  ~Webhook();
  Webhook(const Webhook&) = delete;
  Webhook& operator=(const Webhook&) = delete;

  /// A rule for a Reactor ("webhook"): queues the events of the chosen types. It holds the
  /// webhook, which lives as long as the rule or this handle.
  ReactorRule Rule();
  /// Waits until every queued event was sent or given up; DeadlineExceeded otherwise.
  Status Flush(Deadline deadline);
  WebhookCounters counters() const;

  class Impl;

 private:
  explicit Webhook(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace bitfusion
