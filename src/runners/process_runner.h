// process:// — runs a ContainerSpec's command as a plain child process of this one: the runner
// used where no container engine is reachable. Output is captured line by line, the exit
// status comes with the child's rusage, and a timeout or Stop() ends the child's whole process
// group. Exec runs a sibling process with the same environment, CopyIn/CopyOut copy host files
// (the "container" is the host), Stats reads /proc/PID, and lifecycle events are emitted by the
// runner itself. Fields that need an engine (images, mounts, memory/CPU limits, other users) are
// rejected at Create with a message saying which, rather than silently ignored.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>

#include "bitfusion/container_runner.h"
#include "bitfusion/uri.h"

namespace bitfusion {

struct ProcessRunnerOptions {
  /// Output lines longer than this many bytes are delivered in pieces of this size.
  std::size_t max_line_bytes = 64 * 1024;
  /// Output kept per process and replayed to a Logs() subscriber that comes late (oldest lines
  /// are dropped beyond this many bytes).
  std::size_t log_buffer_bytes = 1 << 20;
  /// After the child exits, how long to keep reading output that its descendants still write
  /// to the inherited stdout/stderr before giving up on them.
  std::chrono::nanoseconds drain_timeout = std::chrono::seconds(1);
  /// What the command inherits of this process's environment, before the spec's own env:
  /// kHost everything but credentials (names with PASSWORD, PASSWD, SECRET, TOKEN, CREDENTIAL,
  /// PRIVATE, ending in KEY, and SSH_AUTH_SOCK: cloud keys, PGPASSWORD, OS_PASSWORD... stay
  /// with bitfusion), kAll everything, kMinimal only PATH, HOME, USER, LOGNAME, SHELL, LANG,
  /// LC_*, TZ, TERM and TMPDIR. A variable the spec sets is always passed.
  enum class Env { kHost, kAll, kMinimal };
  Env env = Env::kHost;

  /// process://?max_line_bytes=65536&log_buffer_bytes=1048576&drain_timeout=1s&env=host|all|minimal
  static Result<ProcessRunnerOptions> FromUri(const Uri& uri);
};

struct ProcessRunnerHub;

class ProcessRunner final : public ContainerRunner {
 public:
  static Result<std::shared_ptr<ProcessRunner>> Make(const ProcessRunnerOptions& options);

  Result<RunnerCapabilities> Capabilities() override;
  /// Only the empty image is valid: process:// runs host commands.
  Status EnsureImage(const std::string& image, Deadline deadline) override;
  /// Resolves command[0] in PATH (the spec's own PATH when it sets one) and checks the working
  /// directory and cpuset, so a bad spec fails here and not in the child.
  Result<std::unique_ptr<Container>> Create(const ContainerSpec& spec) override;

  /// Processes whose handles are alive.
  Result<std::vector<ContainerInfo>> ListContainers(const Labels& labels) override;
  /// From the output each live handle keeps (log_buffer_bytes).
  Result<std::vector<LogLine>> TailLogs(const std::string& container_id,
                                        std::size_t lines) override;
  /// Lifecycle events of this runner's processes (create, start, die with "exitCode" as
  /// Docker reports it, destroy when the handle goes), delivered on the thread that caused them.
  Result<Subscription> Events(EventCallback callback) override;
  /// Unimplemented: nothing outlives its handle in an engine.
  Result<ReapReport> Reap(const ReapPolicy& policy) override;

  ~ProcessRunner() override;

 private:
  explicit ProcessRunner(const ProcessRunnerOptions& options);
  ProcessRunnerOptions options_;
  std::shared_ptr<ProcessRunnerHub> hub_;
};

}  // namespace bitfusion
