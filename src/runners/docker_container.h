// A docker:// container handle: start, wait, stop, kill, exec, copy in and out, stats. Each
// started handle follows its container's output (demultiplexed into lines) and its exit on a
// thread of its own; each Stats() subscription reads the engine's stats stream on another; a
// timeout is a timer on the library's event loop (core/event_loop.h).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "bitfusion/container_runner.h"
#include "runners/docker_api.h"

namespace bitfusion {

/// A handle on container `id`, just created through `api` and not yet started. Destroying it
/// removes the container unless Keep() was called. `timeout_ns` > 0: killed (SIGKILL) that long
/// after Start, and its ExitStatus says timed_out.
std::unique_ptr<Container> NewDockerContainer(std::shared_ptr<DockerApi> api, std::string id,
                                              std::int64_t timeout_ns);

/// A handle on container `id` made elsewhere (ContainerRunner::OpenContainer): never removed, and
/// its output and exit are only followed once someone waits or subscribes to its logs.
std::unique_ptr<Container> AttachDockerContainer(std::shared_ptr<DockerApi> api, std::string id);

}  // namespace bitfusion
