// What a ContainerSpec becomes as a Slurm job, as pure functions (unit-tested without a
// cluster): the checks of what Slurm cannot honour, the batch script, the GRES, the body of
// slurmrestd's job submission, and the exit status a finished job's state and wait status say.
// The runner (slurm_runner.h) submits and follows the job.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "bitfusion/container.h"
#include "bitfusion/status.h"
#include "runners/slurm_runner.h"

namespace bitfusion::internal {

/// The batch script that runs `argv`: "#!/bin/sh\nexec 'a' 'b'\n".
std::string SlurmBatchScript(const std::vector<std::string>& argv);

/// The GRES a spec asks for ("gpu:2"), from its device_requests; `fallback` when it has none.
Result<std::string> SlurmGresFor(const ContainerSpec& spec, const std::string& fallback);

/// How a job that ended in `state` with Slurm's `exit_code` (a wait status) ended, given the
/// signal this handle last sent (0 = none): see the state mapping in slurm_runner.h.
/// Unavailable for NODE_FAIL, BOOT_FAIL, PREEMPTED and DEADLINE.
Result<ExitStatus> SlurmExitStatus(std::string_view state, std::int64_t exit_code, int sent_signal,
                                   std::string_view reason);

/// A job ready to submit: POST /job/submit's body, its GRES ("" for none), and the files its
/// stdout and stderr go to (under the runner's output_dir).
struct SlurmSubmission {
  std::string body;
  std::string gres;
  std::filesystem::path out, err;
};

/// Job `id` for `spec` on a runner with options `o`, carrying `labels` in its comment.
/// InvalidArgument, naming the field and what to use instead, for what Slurm cannot honour
/// (an image, mounts, device nodes, CDI names, a user, a cpuset, ...), an empty command, bad
/// environment names, a bad timeout, negative cpus or memory, or a device request Slurm has no
/// GRES for.
Result<SlurmSubmission> SlurmSubmissionFor(const ContainerSpec& spec, const SlurmRunnerOptions& o,
                                           const std::string& id, const Labels& labels);

}  // namespace bitfusion::internal
