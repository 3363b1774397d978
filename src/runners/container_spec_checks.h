// What means the same for a ContainerSpec whichever runner runs it (process://, docker://,
// slurm://): the checks, kept once so that all refuse the same mistakes with the same words, and
// the ownership labels put on what a spec makes.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "bitfusion/container.h"
#include "bitfusion/status.h"

namespace bitfusion::internal {

/// InvalidArgument naming the first variable whose name is empty or holds '=' or a NUL byte.
Status CheckEnvironmentNames(const std::map<std::string, std::string>& env);

/// For runners of host commands without an engine (process://, process+ssh://; `scheme` names
/// it in messages): the command line (entrypoint, then command), or InvalidArgument for a spec
/// that needs an engine -- an image, mounts, device requests, CDI devices, cgroup rules, a user,
/// CPU/memory/shm limits, a health check, a network other than the host's, a device mapped to
/// another path -- or that has no command.
Result<std::vector<std::string>> HostCommandArgv(const ContainerSpec& spec,
                                                 const std::string& scheme);

/// InvalidArgument when ContainerSpec::timeout_ns is negative.
Status CheckTimeout(std::int64_t timeout_ns);

/// The spec's labels plus the ownership labels (OwnerLabels) for what it makes: its run id is the
/// spec's "run_id" label, else `default_run_id`; it expires `ttl` from now, or ten minutes after
/// the spec's timeout when that is later (what runs with a timeout is over by then).
Labels SpecOwnerLabels(const ContainerSpec& spec, const std::string& default_run_id,
                       std::chrono::nanoseconds ttl);

}  // namespace bitfusion::internal
