// The engine's /events stream as typed container events for docker://: read on the HTTP
// client's stream pump (no thread of its own), and resumed with `since` after a dropped connection
// (an engine restart) so that no event is lost or delivered twice.
#pragma once

#include <memory>
#include <string>

#include "bitfusion/container_runner.h"
#include "runners/docker_api.h"

namespace bitfusion {

namespace internal {
/// One /events message as an Event (without the stream's de-duplication): Action (or the old
/// `status`), Actor.ID (or `id`), the actor's attributes, timeNano (or `time` in seconds; a
/// time that does not fit reads as 0), and the container event type.
Event DockerEventFromJson(const boost::json::value& v, const std::string& source);
}  // namespace internal

/// Delivers the container events of the engine behind `api` to `callback` (on the stream
/// pump's thread: it must be quick), each with Event::source = `source`, from now until the
/// subscription ends.
Subscription FollowDockerEvents(std::shared_ptr<DockerApi> api, std::string source,
                                EventCallback callback);

}  // namespace bitfusion
