// Events from engines and from the library itself, delivered to programs that react to them.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "bitfusion/export.h"
#include "bitfusion/sample.h"

namespace bitfusion {

enum class EventType : int {
  kOther = 0,
  kContainerCreated,
  kContainerStarted,
  kContainerDied,
  kContainerDestroyed,
  kContainerOom,
  kMachineUp,
  kMachineDown,
  kDeviceLeased,
  kDeviceReleased,
  kSinkDegraded,
  kSinkRecovered,
  kRunStarted,
  kRunFinished,
  /// A metric source stopped for good (its process or container is gone); subject is the
  /// source's URI, attribute "reason" says why.
  kMetricSourceEnded,
};

/// "container.died", "sink.degraded", ...
BITFUSION_EXPORT const char* EventTypeName(EventType type);
/// The type EventTypeName calls `name`; false for a name it never returns.
BITFUSION_EXPORT bool EventTypeFromName(std::string_view name, EventType& type);

struct Event {
  EventType type = EventType::kOther;
  std::string source;        ///< URI of what emitted it ("docker:///run/docker.sock")
  std::string subject;       ///< id of the container, machine, device, sink or run
  std::string action;        ///< the engine's own word ("die", "oom"), when there is one
  Labels attributes;         ///< exitCode, image, name, reason, ...
  std::int64_t time_ns = 0;  ///< wall clock
};

/// Receives events; called on a delivery thread, never concurrently for one subscription.
using EventCallback = std::function<void(const Event& event)>;

}  // namespace bitfusion
