// Before any run lands on a machine of a plan's groups: the group's setup steps, run once there,
// then a preflight that records what the machine is (kernel, engine version, storage driver, free
// inodes and space on the engine's data root, accelerator drivers) and judges it against the
// group's limits. Both go through a process runner on that machine (process:// on this host,
// process+ssh:// elsewhere): the experiment layer sees only interfaces.
#pragma once

#include <atomic>
#include <string>
#include <string_view>

#include "bitfusion/container_runner.h"
#include "bitfusion/experiment.h"

namespace bitfusion::internal {

/// Runs `group`'s setup steps, in order, on the machine behind `shell` (before its engine is
/// reached: a step may install it). The result's `error` says why the machine must not be used
/// (the step that failed, how, and its last lines of output); `cancel` stops a running step.
MachinePreflight SetUpMachine(const MachineGroupSpec& group, const std::string& machine,
                              ContainerRunner& shell, const std::atomic<bool>* cancel);

/// The preflight on the machine behind `shell`, where the plan's runner reported `engine`:
/// fills `found` and sets its `error` when the machine misses a limit (saying what to do).
void CheckMachine(const MachineGroupSpec& group, ContainerRunner& shell,
                  const RunnerCapabilities& engine, const std::atomic<bool>* cancel,
                  MachinePreflight& found);

/// The preflight script's output ("kernel 6.1.0", "root /var/lib/docker", "fs FREE_INODES
/// FREE_BLOCKS BLOCK_SIZE", "driver nvidia 550.54.14") read into `out`. InvalidArgument names a
/// line it does not understand or a field that is missing.
Status ParsePreflightOutput(std::string_view text, MachinePreflight& out);

/// What `found` misses of `group`'s limits (and of its accelerators: a group that asks for GPUs
/// needs a GPU driver loaded); empty when it passes.
std::string JudgePreflight(const MachineGroupSpec& group, const MachinePreflight& found);

/// Dotted versions compared number by number ("20.10.24+dfsg1" > "20.10.9"): <0, 0, >0.
int CompareVersions(std::string_view a, std::string_view b);

}  // namespace bitfusion::internal
