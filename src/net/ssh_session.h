// SSH to one host through the system `ssh` client, started with posix_spawn. The user's
// ~/.ssh/config, keys and known_hosts apply as they would on the command line; BatchMode=yes
// makes anything that would prompt (a password, an unknown host key under strict checking) an
// error instead of a hang. Commands share one multiplexed master connection (ControlMaster)
// whose socket lives in a private 0700 directory this session makes and removes, so a command
// costs a channel on an open connection rather than a TCP and key exchange of its own.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "bitfusion/status.h"

namespace bitfusion {

/// Where to log in. Empty fields are left to ssh (and so to ~/.ssh/config).
struct SshTarget {
  std::string host;                ///< IP or name, as ssh takes it (a config Host alias works)
  int port = 0;                    ///< 0 = ssh's choice (22 or the config's Port)
  std::string user;                ///< empty = ssh's choice
  std::filesystem::path identity;  ///< private key; empty = ssh's choice

  /// "bench@10.0.0.5:22" for messages.
  std::string ToString() const;
};

struct SshSessionOptions {
  std::string ssh_program = "ssh";  ///< found on PATH unless it holds a '/'
  /// `-F FILE`; empty = ssh's default (~/.ssh/config). Tests pass their own.
  std::filesystem::path config_file;
  /// Extra `-o KEY=VALUE` options, after ours (ssh takes the first value it sees for a key, so
  /// these cannot override BatchMode or the control settings).
  std::vector<std::string> options;
  std::chrono::seconds connect_timeout{10};  ///< ConnectTimeout, and the bound on Connect()
  /// How long the master outlives its last use (ControlPersist); Close() ends it sooner.
  std::chrono::seconds control_persist{600};
  /// Parent of the private control directory; empty = $XDG_RUNTIME_DIR (/tmp where that is
  /// unset or too long). At most 75 characters, so that ssh's control socket fits a unix socket
  /// address (108 bytes): CheckRuntimeDir.
  std::filesystem::path runtime_dir;
  /// Run single-line commands through one long-lived remote shell (the command channel): a
  /// command then costs a fork on the remote host instead of an ssh client and a session. Off,
  /// every command is its own `ssh` over the master.
  bool command_channel = true;
};

/// The longest name that may be bound in a session's control directory
/// (control_path().parent_path()): ssh's own temporary "m.<16 random characters>". A socket
/// another part of bitfusion binds there (the Docker tunnel's forward) must be no longer.
inline constexpr std::size_t kMaxControlDirName = 18;

/// Refuses a runtime_dir too long for ssh's control socket in it: over 75 characters (trailing
/// '/' not counted), since ssh binds "DIR/bfssh-<6 random>/m.<16 random>" and a unix socket path
/// has 107. Every URI that takes runtime_dir= checks it when read; Connect checks it again.
Status CheckRuntimeDir(const std::filesystem::path& dir);

/// What a remote command did.
struct SshResult {
  int exit_status = -1;  ///< the remote command's status; 255 = ssh itself failed
  std::string out;
  std::string err;
  bool timed_out = false;
};

/// A remote command started by SshSession::Spawn: the local ssh client and this side of the
/// command's stdin, stdout and stderr. The caller owns all four: it reads and closes the
/// descriptors and reaps `pid` (waitpid).
struct SshChild {
  int pid = -1;
  /// A socket, so that writing to a channel that has gone is EPIPE (send with MSG_NOSIGNAL)
  /// rather than SIGPIPE; closing it is end of input for the remote command.
  int stdin_fd = -1;
  int stdout_fd = -1;
  int stderr_fd = -1;
};

/// Whether an SSH server answers on host:port (a TCP connection and the "SSH-" banner) within
/// `timeout` for each step: how provisioners tell that a new machine is reachable, without
/// logging in. False for a name that does not resolve.
bool SshBannerAnswers(const std::string& host, int port, std::chrono::milliseconds timeout);

/// One host. Thread-safe: commands run concurrently over the one master.
class SshSession {
 public:
  SshSession(SshTarget target, SshSessionOptions options);
  ~SshSession();  ///< Close()

  /// The session this process already holds for `target` with the same `options`, or a new one:
  /// one master connection (one login) per host and way in, whoever in the process uses it, so
  /// that a plan's machine, its runner, its setup shell and every run's host+ssh:// probe share
  /// one. The master ends when the last holder lets go (the destructor); a shared session's
  /// users never Close() it.
  static std::shared_ptr<SshSession> Shared(const SshTarget& target,
                                            const SshSessionOptions& options);
  SshSession(const SshSession&) = delete;
  SshSession& operator=(const SshSession&) = delete;

  /// Starts the master connection if it is not running (idempotent). Unavailable naming the
  /// host and ssh's own message when the host cannot be reached or refuses the login.
  Status Connect();

  /// Runs argv on the remote host, each argument quoted (no shell injection). A single-line
  /// command goes through the command channel when it is free: a remote `sh` started once
  /// through the login shell (so ~/.bashrc's environment applies, read once), which runs each
  /// command with `sh -c`, stdin /dev/null, and sends back its exit status, stdout and stderr
  /// apart. Otherwise (a newline in the command, the channel busy with another thread's
  /// command, or broken) it is an `ssh` of its own over the master (reconnecting once if it
  /// died). A command still running after `timeout` is abandoned (timed_out; the channel is
  /// closed and made anew next time): on the command channel it is stopped there too (its
  /// process group gets SIGTERM, then SIGKILL a second later; where the host has no `setsid`,
  /// the command's shell alone), while one over an ssh of its own runs on until it writes to
  /// its closed output. An error Status only when ssh could not be started; a remote failure is
  /// an exit_status.
  Result<SshResult> Run(const std::vector<std::string>& argv, std::chrono::milliseconds timeout);

  /// Runs `script` with the remote login shell as written (the caller is responsible for its
  /// quoting).
  Result<SshResult> RunScript(const std::string& script, std::chrono::milliseconds timeout);

  /// Starts `script` with the remote login shell, as RunScript does, over the master, and
  /// returns at once with pipes to it: for commands whose output is read as it comes, or that
  /// are fed input. No pseudo-terminal; the command's stdin stays open until the caller closes
  /// stdin_fd (or dies). Killing the local client ends the channel, not the remote command.
  Result<SshChild> Spawn(const std::string& script);

  /// Runs argv with a fresh connection of its own (no master): what each command costs
  /// without multiplexing. For comparison and benchmarks.
  Result<SshResult> RunUnmultiplexed(const std::vector<std::string>& argv,
                                     std::chrono::milliseconds timeout);

  /// Ends the master (`ssh -O exit`) and removes the control directory.
  void Close();

  /// Forwards connections to the unix socket `local` on this host through the master to the
  /// unix socket `remote` on the host (`ssh -O forward -L LOCAL:REMOTE`, OpenSSH stream-local
  /// forwarding, which sshd allows by default). Needs Connect() first; the forward ends with the
  /// master. A stale `local` is replaced only when `options` say StreamLocalBindUnlink=yes.
  Status ForwardUnixSocket(const std::filesystem::path& local, const std::string& remote);
  /// The other way (`ssh -O forward -R REMOTE:LOCAL`): sshd listens on the unix socket `remote`
  /// on the host (mode 0600 under sshd's default StreamLocalBindMask, owned by the login user; its
  /// directory must exist and `remote` must not) and each connection to it reaches `local` here.
  /// Needs Connect() first; ends with the master or CancelRemoteForward.
  Status ForwardRemoteUnixSocket(const std::string& remote, const std::filesystem::path& local);
  /// Ends a ForwardRemoteUnixSocket (`ssh -O cancel -R REMOTE:LOCAL`); sshd leaves the socket file.
  Status CancelRemoteForward(const std::string& remote, const std::filesystem::path& local);

  const SshTarget& target() const { return target_; }
  /// The master's socket; empty before Connect().
  std::filesystem::path control_path() const;

 private:
  std::vector<std::string> BaseArgs(bool multiplexed) const;
  Result<SshResult> Exec(std::vector<std::string> args, std::chrono::milliseconds timeout) const;
  Result<SshResult> RunRemote(const std::string& command, std::chrono::milliseconds timeout);
  Result<SshResult> RunOnChannel(const std::string& command, std::chrono::milliseconds timeout);
  void CloseChannel(bool wait);
  Status EnsureControlDir();
  // `ssh -O OP DIRECTION LISTEN:CONNECT` on the master; `what` starts its errors.
  Status Forward(const char* op, const char* direction, const std::string& listen,
                 const std::string& connect, const std::string& what);

  const SshTarget target_;
  const SshSessionOptions options_;
  mutable std::mutex mu_;
  std::filesystem::path control_dir_;  // guarded by mu_
  bool master_up_ = false;             // guarded by mu_

  // The command channel: one command at a time, under channel_mu_.
  struct Channel {
    int pid = -1;
    int in = -1;         // the remote shell's stdin
    int out = -1;        // its stdout
    std::string buffer;  // read past the last answer
  };
  std::mutex channel_mu_;
  Channel channel_;  // guarded by channel_mu_
};

}  // namespace bitfusion
