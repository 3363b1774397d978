// EventBus: typed events from engines and from the library, delivered to subscribers that chose
// them by type and filter; Reactor: rules that act on them ("when a container dies with a
// non-zero status, keep its last log lines"; "when it is gone, release its devices"; "when the
// OOM killer struck, mark the run failed").
#pragma once

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

}  // namespace bitfusion
