// A docker:// container handle: start, wait, stop, kill, exec, copy in and out, stats. Each
// started handle follows its container's output (demultiplexed into lines) and its exit, and
// each Stats() subscription reads the engine's stats stream, on the HTTP client's stream pump
// (net/http_client.h: one thread for every stream of the process), with no thread of its own;
// stats readings and a timeout run on the library's event loop (core/event_loop.h).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "bitfusion/container_runner.h"
#include "runners/docker_api.h"

namespace bitfusion {

/// The label that records the name a container was created under. Reap takes only containers
/// still under that name (or under it with kDockerKeptSuffix, see Keep()): a container made
/// from an image committed from one of ours inherits its labels, never its name.
inline constexpr const char* kDockerNameLabel = "bitfusion.name";
/// Docker labels cannot change after creation, so Keep() marks a container by renaming it to
/// its name + this suffix; Reap then judges it by run id and expiry only, as a machine handed
/// over to its run.
inline constexpr const char* kDockerKeptSuffix = "-kept";
/// The label that records the tag an image was built or imported under; an image derived from
/// it (FROM, or committed) inherits the label under other tags and is not ours to remove.
inline constexpr const char* kDockerImageLabel = "bitfusion.image";

/// A handle on container `id` named `name`, just created through `api` and not yet started.
/// Destroying it removes the container unless Keep() was called. `timeout_ns` > 0: killed
/// (SIGKILL) that long after Start, and its ExitStatus says timed_out.
std::unique_ptr<Container> NewDockerContainer(std::shared_ptr<DockerApi> api, std::string id,
                                              std::string name, std::int64_t timeout_ns);

/// A handle on container `id` made elsewhere (ContainerRunner::OpenContainer): never removed, and
/// its output and exit are only followed once someone waits or subscribes to its logs.
std::unique_ptr<Container> AttachDockerContainer(std::shared_ptr<DockerApi> api, std::string id);

namespace internal {
/// One reading of GET /containers/ID/stats. The network and block I/O sums stop at INT64_MAX
/// (or INT64_MIN) instead of overflowing.
ContainerStats ParseDockerStats(const boost::json::value& v);
}  // namespace internal

}  // namespace bitfusion
