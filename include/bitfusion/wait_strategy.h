// Wait strategies: what "ready" means for a started container (a log line, its exit, a healthy
// health check, a listening port, a file), composable with AllOf/AnyOf, each with its own
// deadline. Container::WaitFor evaluates them.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "bitfusion/export.h"

namespace bitfusion {

/// A readiness condition. Plain value: copy, store and combine freely.
class BITFUSION_EXPORT WaitStrategy {
 public:
  enum class Kind : int {
    kLogMatches,
    kExited,
    kHealthy,
    kPortListening,
    kFilePresent,
    kAllOf,
    kAnyOf
  };

  /// A line on stdout or stderr matches `regex` (RE2 syntax: Perl's without backreferences or
  /// lookaround; searched within the line, in time linear in its length) at least `times`
  /// times, counting lines printed before the wait began.
  static WaitStrategy LogMatches(std::string regex, int times = 1);
  /// The container has exited (with any status).
  static WaitStrategy Exited();
  /// The engine reports the container's health check as healthy (ContainerSpec::health_check).
  static WaitStrategy Healthy();
  /// Something listens on TCP `port` inside the container (its /proc/net/tcp and tcp6, read
  /// with Exec; for process:// the host's).
  static WaitStrategy PortListening(std::uint16_t port);
  /// `path` exists inside the container.
  static WaitStrategy FilePresent(std::string path);
  /// Every one of `all` holds.
  static WaitStrategy AllOf(std::vector<WaitStrategy> all);
  /// At least one of `any` holds; fails only when all of them have failed.
  static WaitStrategy AnyOf(std::vector<WaitStrategy> any);

  /// This condition fails once `timeout` has passed since the wait began (the call's deadline
  /// still applies on top). Default: none of its own.
  WaitStrategy WithTimeout(std::chrono::nanoseconds timeout) const;
  /// How often conditions that are polled (exit, health, port, file) are checked. Default 50 ms.
  WaitStrategy WithPollInterval(std::chrono::nanoseconds interval) const;

  Kind kind() const { return kind_; }
  const std::string& text() const { return text_; }  ///< regex or path
  int times() const { return times_; }
  std::uint16_t port() const { return port_; }
  const std::vector<WaitStrategy>& children() const { return children_; }
  std::chrono::nanoseconds timeout() const { return timeout_; }  ///< 0 = none
  std::chrono::nanoseconds poll_interval() const { return poll_interval_; }

  /// "log line matching /ready/ (1x)", "all of (port 8080 listening, file /tmp/ok present)".
  std::string Describe() const;

 private:
  WaitStrategy(Kind kind) : kind_(kind) {}
  Kind kind_;
  std::string text_;
  int times_ = 1;
  std::uint16_t port_ = 0;
  std::vector<WaitStrategy> children_;
  std::chrono::nanoseconds timeout_{0};
  std::chrono::nanoseconds poll_interval_ = std::chrono::milliseconds(50);
};

}  // namespace bitfusion
