// The engine's /events stream as typed container events for docker://: read on a thread of its
// own, and resumed with `since` after a dropped connection (an engine restart) so that no event
// is lost or delivered twice.
#pragma once

#include <memory>
#include <string>

#include "bitfusion/container_runner.h"
#include "runners/docker_api.h"

namespace bitfusion {

/// Delivers the container events of the engine behind `api` to `callback` (on the stream's
/// thread), each with Event::source = `source`, from now until the subscription ends.
Subscription FollowDockerEvents(std::shared_ptr<DockerApi> api, std::string source,
                                EventCallback callback);

}  // namespace bitfusion
