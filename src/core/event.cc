#include "bitfusion/event.h"

namespace bitfusion {

const char* EventTypeName(EventType type) {
  switch (type) {
    case EventType::kOther: return "other";
    case EventType::kContainerCreated: return "container.created";
    case EventType::kContainerStarted: return "container.started";
    case EventType::kContainerDied: return "container.died";
    case EventType::kContainerDestroyed: return "container.destroyed";
    case EventType::kContainerOom: return "container.oom";
    case EventType::kMachineUp: return "machine.up";
    case EventType::kMachineDown: return "machine.down";
    case EventType::kDeviceLeased: return "device.leased";
    case EventType::kDeviceReleased: return "device.released";
    case EventType::kSinkDegraded: return "sink.degraded";
    case EventType::kSinkRecovered: return "sink.recovered";
    case EventType::kRunStarted: return "run.started";
    case EventType::kRunFinished: return "run.finished";
    case EventType::kMetricSourceEnded: return "metric_source.ended";
  }
  return "other";
}

bool EventTypeFromName(std::string_view name, EventType& type) {
  for (int i = 0; i <= static_cast<int>(EventType::kMetricSourceEnded); ++i) {
    if (name == EventTypeName(static_cast<EventType>(i))) {
      type = static_cast<EventType>(i);
      return true;
    }
  }
  return false;
}

}  // namespace bitfusion
