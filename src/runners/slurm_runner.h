// slurm:// — runs a ContainerSpec's command as a Slurm batch job through slurmrestd (OpenAPI
// v0.0.38, the one Slurm 22.05 serves). Slurm runs host commands, not images: a spec with an
// image, mounts, a user, device nodes or CDI names is refused at Create, saying what to use.
//
// Start submits the job (POST /slurm/vX/job/submit): the argv becomes a batch script that
// `exec`s it (each argument single-quoted), the spec's env becomes the job's environment
// (slurmrestd requires one; PATH defaults to /usr/local/bin:/usr/bin:/bin and nothing of
// bitfusion's own environment is passed), stdout and stderr go to two files under
// `output_dir` that the runner follows while the job runs (Logs). With more than one node
// that directory must be on a filesystem the compute nodes and this host share. GPUs are
// asked for as GRES "gpu:N" (from the spec's device_requests, else the URI's `gres`).
//
// One watcher thread per runner (started with its first job, joined when the runner and its
// last job handle are gone) follows all of its submitted jobs: every 100 ms it reads each job's
// output files and enforces timeouts, and when any job's poll is due it makes one GET /jobs for
// all of them, each job polled at its own pace (100 ms, backing off to `poll_max` while its state
// does not change). A job missing from a good list is asked about alone (GET /job/{id}, to tell
// a purged job from one not listed yet). It emits the same lifecycle events as the other runners
// (create, start, die with Docker's "exitCode", destroy), on the watcher's thread, as it hands
// log lines to Logs() subscribers: a subscriber that blocks holds up every job of the runner. Slurm
// reports the exit as a wait status: a job that exits N gives exit_code N; one killed by signal N
// gives signal N. States map as: COMPLETED/FAILED -> the exit status; CANCELLED -> the signal this
// handle sent, else the one Slurm reports (its cancel sends SIGTERM, then SIGKILL after KillWait),
// else SIGKILL; TIMEOUT -> timed_out; OUT_OF_MEMORY -> oom_killed; NODE_FAIL, BOOT_FAIL, PREEMPTED
// and DEADLINE -> Wait fails with Unavailable naming the state and Slurm's reason, as it does for a
// job that slurmctld purged (MinJobAge) before its end was seen.
//
// The spec's timeout is enforced here to the poll (the job is cancelled with SIGKILL and
// reported timed_out) and given to Slurm as time_limit (whole minutes, rounded up), so that a
// job outlives a crashed bitfusion by at most that. Stop = DELETE ?signal=TERM, then KILL
// after the grace; Kill(sig) = DELETE ?signal=sig. A job still pending is cancelled instead
// (Slurm takes no other signal for it: it has no process) and reported as ended by the signal
// asked for.
//
// Ownership: the bitfusion labels (creator, run id, expiry, host, pid...) and the spec's labels
// are written into the job's `comment` as "bitfusion:" + a JSON object; ListContainers and Reap
// read them back from GET /jobs. Reap cancels only jobs with that comment.
//
// Auth: over a unix socket, slurmrestd's rest_auth/local (the caller must be root or
// slurmrestd's own user; jobs run as slurmrestd's user, which is why output_dir is made
// world-writable with the sticky bit, like /tmp). Over TCP, rest_auth/jwt: the user name and the
// token from $SLURM_JWT (`scontrol token`) go in X-SLURM-USER-NAME / X-SLURM-USER-TOKEN. The
// token is never taken from the URI and never appears in messages.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "bitfusion/container_runner.h"
#include "bitfusion/uri.h"

namespace bitfusion {

struct SlurmRunnerOptions {
  /// slurmrestd's unix socket (rest_auth/local); empty when `host` is set.
  std::string socket_path;
  /// slurmrestd over TCP (rest_auth/jwt); empty = the unix socket.
  std::string host;
  std::uint16_t port = 6820;
  /// X-SLURM-USER-NAME over TCP; default $USER.
  std::string user;
  /// X-SLURM-USER-TOKEN over TCP, from $SLURM_JWT; never logged or printed.
  std::string token;
  /// Partition jobs go to; empty = the cluster's default partition.
  std::string partition;
  /// GRES asked for when the spec has no device_requests ("gpu:1"); empty = none.
  std::string gres;
  /// Nodes the jobs must run on (Slurm's --nodelist: "node1" or "node[1-3]"); empty = the
  /// scheduler's choice. A plan's Slurm machine is one node, named here.
  std::string nodelist;
  /// Where jobs' stdout/stderr files go (created 01777 when missing). Must be shared with the
  /// compute nodes on a multi-node cluster. Default /tmp/bitfusion-slurm.
  std::filesystem::path output_dir = "/tmp/bitfusion-slurm";
  /// Pin the API version ("v0.0.38"); empty = the newest both sides speak (GET /openapi/v3).
  std::string api_version;
  /// Longest wait between two polls of a job's state while it does not change.
  std::chrono::milliseconds poll_max{1'000};
  /// Expiry written on jobs: now + ttl, or now + max(ttl, timeout + 10 min) with a timeout.
  std::chrono::nanoseconds ttl = std::chrono::hours(24);
  /// Written as the bitfusion.run_id label when the spec's labels have no "run_id"; empty = a
  /// fresh id per runner.
  std::string run_id;
  /// Deadline of each slurmrestd call.
  std::chrono::milliseconds api_timeout{30'000};
  std::size_t max_line_bytes = 64 * 1024;
  std::size_t log_buffer_bytes = 1 << 20;

  /// slurm:///run/slurmrestd.sock?partition=debug (unix socket, rest_auth/local) or
  /// slurm://USER@HOST:PORT?partition=debug (TCP, JWT from $SLURM_JWT; USER defaults to $USER).
  /// Options: partition, gres=gpu:1, nodelist=NODES, output_dir=/shared/bf-out, api=v0.0.38,
  /// poll_max=1s, ttl=24h, run_id=ID, api_timeout=30s, max_line_bytes, log_buffer_bytes. A
  /// `token` option is refused: the token comes from the environment only.
  static Result<SlurmRunnerOptions> FromUri(const Uri& uri);

  /// "unix:/run/slurmrestd.sock" or "http://HOST:PORT", for messages.
  std::string Endpoint() const;
};

struct SlurmRunnerHub;

class SlurmRunner final : public ContainerRunner {
 public:
  /// Connects lazily: the first call that needs slurmrestd negotiates the API version.
  static Result<std::shared_ptr<SlurmRunner>> Make(const SlurmRunnerOptions& options);
  ~SlurmRunner() override;

  /// engine "slurm", Slurm's release, the negotiated API version; events and reap.
  Result<RunnerCapabilities> Capabilities() override;
  /// Only the empty image is valid: Slurm runs host commands.
  Status EnsureImage(const std::string& image, Deadline deadline) override;
  /// Checks the spec and builds the job description; nothing is sent until Start.
  Result<std::unique_ptr<Container>> Create(const ContainerSpec& spec) override;
  /// Handles not yet submitted, and this cluster's jobs whose comment carries bitfusion's labels.
  Result<std::vector<ContainerInfo>> ListContainers(const Labels& labels) override;
  /// From the output live handles keep.
  Result<std::vector<LogLine>> TailLogs(const std::string& container_id,
                                        std::size_t lines) override;
  Result<Subscription> Events(EventCallback callback) override;
  /// Cancels (SIGKILL) unfinished jobs with bitfusion's labels that `policy` says to reap.
  Result<ReapReport> Reap(const ReapPolicy& policy) override;

 private:
  explicit SlurmRunner(std::shared_ptr<SlurmRunnerHub> hub);
  std::shared_ptr<SlurmRunnerHub> hub_;
};

}  // namespace bitfusion
