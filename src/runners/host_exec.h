// Exec for the runners of host commands (process://, process+ssh://), whose "container" is the
// host: the command runs as a sibling process with the process's environment and directory,
// to its end, its output collected.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "bitfusion/container_runner.h"

namespace bitfusion::internal {

/// The sibling's spec: `exec`'s command with `env` and exec's env on top, in exec's working
/// directory, else `working_dir`.
ContainerSpec HostExecSpec(const ExecSpec& exec, std::map<std::string, std::string> env,
                           const std::string& working_dir);

/// Starts `sibling` (made from HostExecSpec, not started) and runs it to its end; at `deadline`
/// it is killed and the error says so. `id` names the process Exec was asked of, for errors.
/// The exit code is the shell's: 128+N for a death by signal N.
Result<ExecResult> RunHostExec(Container& sibling, Deadline deadline, const std::string& id);

}  // namespace bitfusion::internal
