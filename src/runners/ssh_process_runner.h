// process+ssh://USER@HOST[:PORT] — process://'s semantics on another host: a ContainerSpec's
// command runs as a plain process there, over one multiplexed SSH connection (net/ssh_session.h:
// the system `ssh`, BatchMode, a ControlMaster in a private directory). Each command is a
// channel of its own whose stdout and stderr are read line by line as they arrive, on the
// library's event loop (ssh_process_channel.h): no thread per command or Stats subscription.
//
// On the remote host a small POSIX sh wrapper starts the command under `setsid` (its own
// session and process group, so Stop, Kill and the timeout reach everything it starts) with
// `env -i`: the command sees the remote login's PATH, HOME, USER, LOGNAME and SHELL and the
// spec's env (sent on the channel's stdin, never on a command line), and nothing of
// bitfusion's environment. The wrapper reads signal names from the channel's stdin and sends
// them to the group; end of input (the handle destroyed, or bitfusion or its ssh client killed)
// sends SIGKILL to the group, so no command outlives its connection. The exit status comes back
// as the shell's `wait` reports it: 128+N for a death by signal N, reported as signal N (a
// command that exits 128+N itself reads the same). The timeout and the ExitStatus times count
// from the command's start on the remote host, not from the login before it. See
// docs/runners.md.
//
// Exec runs a sibling command with the same environment and directory; CopyIn/CopyOut move tar
// streams (the remote `tar`); Stats reads the remote /proc/PID; lifecycle events are emitted by
// the runner. Fields that need an engine (images, mounts, limits, other users) are rejected at
// Create, as process:// rejects them.
#pragma once

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "bitfusion/container_runner.h"
#include "bitfusion/uri.h"

namespace bitfusion {

struct SshProcessRunnerOptions {
  std::string host;  ///< name or address, as ssh takes it (an ~/.ssh/config Host alias works)
  int port = 0;      ///< 0 = ssh's choice (22, or the config's Port)
  std::string user;  ///< empty = ssh's choice
  std::filesystem::path identity;    ///< private key (`-i`); empty = ssh's choice (agent, config)
  std::filesystem::path ssh_config;  ///< `-F FILE`; empty = ~/.ssh/config
  std::vector<std::string> ssh_options;      ///< extra `-o KEY=VALUE`
  std::chrono::seconds connect_timeout{10};  ///< ssh's ConnectTimeout; bounds the first login
  std::filesystem::path runtime_dir;         ///< parent of the control socket's directory
  /// Output lines longer than this many bytes are delivered in pieces of this size.
  std::size_t max_line_bytes = 64 * 1024;
  /// Output kept per command for late Logs() subscribers and TailLogs (oldest dropped first).
  std::size_t log_buffer_bytes = 1 << 20;
  /// After the command exits, how long to keep reading what its descendants still write.
  std::chrono::nanoseconds drain_timeout = std::chrono::seconds(1);

  /// process+ssh://USER@HOST[:PORT]?identity=KEY&ssh_config=FILE&ssh_option=KEY=VALUE
  ///   &connect_timeout=10&runtime_dir=DIR&max_line_bytes=65536&log_buffer_bytes=1048576
  ///   &drain_timeout=1s
  static Result<SshProcessRunnerOptions> FromUri(const Uri& uri);
};

struct SshProcessRunnerHub;

class SshProcessRunner final : public ContainerRunner {
 public:
  /// Logs in (one master connection); Unavailable naming the host and ssh's message when it
  /// cannot.
  static Result<std::shared_ptr<SshProcessRunner>> Make(const SshProcessRunnerOptions& options);

  Result<RunnerCapabilities> Capabilities() override;
  /// Only the empty image is valid: process+ssh:// runs host commands.
  Status EnsureImage(const std::string& image, Deadline deadline) override;
  /// Checks the spec here and, on the remote host, that the working directory exists and
  /// command[0] is found (in the spec's PATH when it sets one, else the login's), so that a bad
  /// spec fails here and not as an exit status.
  Result<std::unique_ptr<Container>> Create(const ContainerSpec& spec) override;
  /// Commands whose handles are alive.
  Result<std::vector<ContainerInfo>> ListContainers(const Labels& labels) override;
  Result<std::vector<LogLine>> TailLogs(const std::string& container_id,
                                        std::size_t lines) override;
  /// create, start, die (with "exitCode" as Docker reports it), destroy.
  Result<Subscription> Events(EventCallback callback) override;
  /// Nothing to reap: a command's group ends when its connection does. An empty report.
  Result<ReapReport> Reap(const ReapPolicy& policy) override;

  ~SshProcessRunner() override;

 private:
  explicit SshProcessRunner(std::shared_ptr<SshProcessRunnerHub> hub);
  std::shared_ptr<SshProcessRunnerHub> hub_;
};

}  // namespace bitfusion
