#include "net/ssh_session.h"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/readable_pipe.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/process/v2/environment.hpp>
#include <boost/process/v2/process.hpp>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string_view>

#include "bitfusion/log.h"
#include "core/shell_quote.h"
#include "core/spawn.h"

namespace bitfusion {
namespace {

namespace bp = boost::process::v2;
namespace asio = boost::asio;

// mkdtemp's template for the private control directory, and the control socket's name in it.
constexpr std::string_view kControlDirTemplate = "bfssh-XXXXXX";
constexpr std::string_view kControlSocket = "m";
// OpenSSH binds the control socket at "<ControlPath>.<16 random characters>" first and then
// renames it into place (mux.c): that is the longest name bound in the control directory.
constexpr std::size_t kSshTemporarySuffix = 1 + 16;
static_assert(kControlSocket.size() + kSshTemporarySuffix == kMaxControlDirName);
// "<runtime dir>/<control dir>/<name>" with its NUL must fit sockaddr_un.sun_path (108 bytes on
// Linux).
constexpr std::size_t kMaxRuntimeDir =
    sizeof(sockaddr_un::sun_path) - 1 - (1 + kControlDirTemplate.size() + 1 + kMaxControlDirName);
static_assert(kMaxRuntimeDir == 75, "the docs (docs/runners.md, ssh_session.h) say 75");

// "/run/x/" as ssh will write it below: "/run/x/bfssh-…" (the path operator adds no second '/').
std::filesystem::path WithoutTrailingSlashes(std::filesystem::path dir) {
  std::string text = dir.string();
  while (text.size() > 1 && text.back() == '/') text.pop_back();
  return text;
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

// ssh's last meaningful stderr line(s), for error messages.
std::string SshMessage(const std::string& err) {
  std::string msg = Trim(err);
  if (msg.size() > 400) msg = "..." + msg.substr(msg.size() - 400);
  return msg.empty() ? "ssh printed nothing" : msg;
}

Result<bp::filesystem::path> FindSsh(const std::string& program) {
  if (program.find('/') != std::string::npos) return bp::filesystem::path(program);
  auto found = bp::environment::find_executable(program);
  if (found.empty()) {
    return NotFoundError("no \"" + program +
                         "\" on PATH; install the OpenSSH client (Debian: apt-get install "
                         "openssh-client) or name its path");
  }
  return found;
}

// The ssh client, started with posix_spawn (core/spawn.h): a command's cost does not grow with
// the host application's memory, as a fork's would.
Result<pid_t> SpawnSsh(const bp::filesystem::path& exe, const std::vector<std::string>& args,
                       int stdout_fd, int stderr_fd, int stdin_fd = -1) {
  internal::SpawnSpec spawn;
  spawn.program = exe.string();
  spawn.argv.push_back(exe.string());
  spawn.argv.insert(spawn.argv.end(), args.begin(), args.end());
  spawn.stdin_fd = stdin_fd;
  spawn.stdout_fd = stdout_fd;
  spawn.stderr_fd = stderr_fd;
  return internal::Spawn(spawn);
}

// The remote end of the command channel, run by `sh -c` under the login shell: one command a
// line on stdin, each answered with "STATUS OUT_BYTES ERR_BYTES\n", its stdout, its stderr.
// Each command runs in the background, in a session of its own (setsid, where the host has it;
// else it alone is signalled), while the driver waits on its stdin: the next line comes only
// after the answer, so end of input while a command runs means the client gave up on it (its
// timeout) or went away, and the command's whole process group gets SIGTERM, then SIGKILL a
// second later. The directory goes also when the session ends under the driver (SIGPIPE, a
// hang-up or kill), as a shell killed by a signal it does not trap skips its EXIT trap.
constexpr const char* kChannelDriver = R"sh(d=$(mktemp -d) || exit 1
s= g=
if command -v setsid >/dev/null 2>&1; then s=setsid g=-; fi
k() {
  p=$(cat "$d/p" 2>/dev/null) && [ -n "$p" ] || return 0
  kill -TERM "$p" 2>/dev/null || return 0
  sleep 1
  kill -KILL "$p" 2>/dev/null
}
trap 'k; rm -rf "$d"' EXIT
trap 'exit 129' HUP
trap 'exit 141' PIPE
trap 'exit 143' TERM
trap 'exit 130' INT
IFS= read -r c || exit 0
while :; do
  (
    $s sh -c 'echo "$2$$" >"$0/p"; exec sh -c "$1"' "$d" "$c" "$g" </dev/null >"$d/o" 2>"$d/e"
    r=$?
    rm -f "$d/p"
    set -- $(wc -c "$d/o" "$d/e")
    printf '%s %s %s\n' "$r" "$1" "$3"
    cat "$d/o" "$d/e"
  ) 2>/dev/null &
  j=$!
  IFS= read -r c || exit 0
  wait "$j"
done)sh";

// Reads from `fd` into `buffer` until it holds `want` bytes ("\n" when want == npos: a line).
// false at end of file, on an error, or at `until` (then `timed_out` is set).
bool ReadUntil(int fd, std::string& buffer, std::size_t want,
               std::chrono::steady_clock::time_point until, bool& timed_out) {
  char chunk[65536];
  for (;;) {
    if (want == std::string::npos ? buffer.find('\n') != std::string::npos
                                  : buffer.size() >= want) {
      return true;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        until - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      return false;
    }
    pollfd p{fd, POLLIN, 0};
    const int r = ::poll(&p, 1, static_cast<int>(std::min<std::int64_t>(left.count() + 1, 60000)));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return false;
    if (r == 0) continue;
    const ssize_t n = ::read(fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    buffer.append(chunk, static_cast<std::size_t>(n));
  }
}

}  // namespace

Status CheckRuntimeDir(const std::filesystem::path& dir) {
  const std::string text = WithoutTrailingSlashes(dir).string();
  if (text.size() <= kMaxRuntimeDir) return Status::OK();
  return InvalidArgumentError(
      "runtime_dir " + text + " has " + std::to_string(text.size()) +
      " characters; SSH's control socket in it would pass the " +
      std::to_string(sizeof(sockaddr_un::sun_path) - 1) +
      "-character limit of a unix socket path: give a directory of at most " +
      std::to_string(kMaxRuntimeDir) + " characters, or none for $XDG_RUNTIME_DIR or /tmp");
}

std::string SshTarget::ToString() const {
  std::string s = user.empty() ? host : user + "@" + host;
  if (port != 0) s += ":" + std::to_string(port);
  return s;
}

SshSession::SshSession(SshTarget target, SshSessionOptions options)
    : target_(std::move(target)), options_(std::move(options)) {}

SshSession::~SshSession() { Close(); }

std::shared_ptr<SshSession> SshSession::Shared(const SshTarget& target,
                                               const SshSessionOptions& options) {
  // Everything that makes two sessions' ssh command lines differ, '\0'-separated.
  std::string key = target.host + '\0' + std::to_string(target.port) + '\0' + target.user + '\0' +
                    target.identity.string() + '\0' + options.ssh_program + '\0' +
                    options.config_file.string() + '\0' +
                    std::to_string(options.connect_timeout.count()) + '\0' +
                    std::to_string(options.control_persist.count()) + '\0' +
                    options.runtime_dir.string() + '\0' + (options.command_channel ? "1" : "0");
  for (const auto& o : options.options) key += '\0' + o;
  // Never destroyed: a session may outlive main's return in a static of its user.
  static std::mutex* mu = new std::mutex;
  static auto* sessions = new std::map<std::string, std::weak_ptr<SshSession>>;
  std::lock_guard lock(*mu);
  std::erase_if(*sessions, [](const auto& entry) { return entry.second.expired(); });
  if (auto held = (*sessions)[key].lock()) return held;
  auto made = std::make_shared<SshSession>(target, options);
  (*sessions)[key] = made;
  return made;
}

std::filesystem::path SshSession::control_path() const {
  std::lock_guard lock(mu_);
  return control_dir_.empty() ? std::filesystem::path() : control_dir_ / kControlSocket;
}

Status SshSession::EnsureControlDir() {
  if (!control_dir_.empty()) return Status::OK();
  BITFUSION_RETURN_IF_ERROR(CheckRuntimeDir(options_.runtime_dir));
  std::filesystem::path parent = WithoutTrailingSlashes(options_.runtime_dir);
  if (parent.empty()) {
    const char* xdg = std::getenv("XDG_RUNTIME_DIR");
    parent = (xdg != nullptr && *xdg != '\0') ? xdg : "/tmp";
    if (parent.string().size() > kMaxRuntimeDir) parent = "/tmp";
  }
  std::string templ = (parent / kControlDirTemplate).string();
  // mkdtemp makes it 0700: only this user can reach the master through it.
  if (::mkdtemp(templ.data()) == nullptr) {
    return ErrnoError(errno, "creating a private SSH control directory under " + parent.string() +
                                 " (set runtime_dir to a writable directory)");
  }
  control_dir_ = templ;
  return Status::OK();
}

std::vector<std::string> SshSession::BaseArgs(bool multiplexed) const {
  std::vector<std::string> a;
  if (!options_.config_file.empty()) {
    a.push_back("-F");
    a.push_back(options_.config_file.string());
  }
  auto opt = [&](const std::string& kv) {
    a.push_back("-o");
    a.push_back(kv);
  };
  opt("BatchMode=yes");
  opt("ConnectTimeout=" + std::to_string(options_.connect_timeout.count()));
  if (multiplexed && !control_dir_.empty()) {
    opt("ControlPath=" + (control_dir_ / kControlSocket).string());
  } else {
    opt("ControlMaster=no");
    opt("ControlPath=none");
  }
  if (!target_.identity.empty()) {
    a.push_back("-i");
    a.push_back(target_.identity.string());
    opt("IdentitiesOnly=yes");
  }
  if (target_.port != 0) {
    a.push_back("-p");
    a.push_back(std::to_string(target_.port));
  }
  if (!target_.user.empty()) {
    a.push_back("-l");
    a.push_back(target_.user);
  }
  for (const auto& o : options_.options) opt(o);
  return a;
}

Result<SshResult> SshSession::Exec(std::vector<std::string> args,
                                   std::chrono::milliseconds timeout) const {
  BITFUSION_ASSIGN_OR_RETURN(bp::filesystem::path exe, FindSsh(options_.ssh_program));
  asio::io_context context;
  asio::readable_pipe out(context), err(context);
  int out_fds[2] = {-1, -1}, err_fds[2] = {-1, -1};
  if (::pipe2(out_fds, O_CLOEXEC) != 0 || ::pipe2(err_fds, O_CLOEXEC) != 0) {
    Status s = ErrnoError(errno, "creating pipes for ssh");
    for (int fd : {out_fds[0], out_fds[1], err_fds[0], err_fds[1]}) {
      if (fd >= 0) ::close(fd);
    }
    return s;
  }
  out.assign(out_fds[0]);
  err.assign(err_fds[0]);
  auto pid = SpawnSsh(exe, args, out_fds[1], err_fds[1]);
  ::close(out_fds[1]);
  ::close(err_fds[1]);
  if (!pid) return pid.error();
  bp::process proc(context.get_executor(), *pid);
  SshResult result;
  std::string out_buf, err_buf;
  asio::async_read(out, asio::dynamic_buffer(out_buf), [](auto, auto) {});
  asio::async_read(err, asio::dynamic_buffer(err_buf), [](auto, auto) {});
  asio::steady_timer timer(context, timeout);
  timer.async_wait([&](const boost::system::error_code& e) {
    if (e) return;  // cancelled: the command finished
    result.timed_out = true;
    boost::system::error_code ignored;
    proc.terminate(ignored);  // SIGKILL
    // A multiplexed client hands its descriptors to the master, which keeps them until the
    // remote command ends: stop reading rather than wait for end-of-file.
    out.close(ignored);
    err.close(ignored);
  });
  proc.async_wait([&](const boost::system::error_code& e, int status) {
    timer.cancel();
    result.exit_status = e ? 255 : status;
  });
  context.run();
  result.out = std::move(out_buf);
  result.err = std::move(err_buf);
  return result;
}

Status SshSession::Connect() {
  if (target_.host.empty() || target_.host[0] == '-') {
    return InvalidArgumentError("SSH host \"" + target_.host +
                                "\" is not a host name or address; fix the inventory entry");
  }
  std::lock_guard lock(mu_);
  if (master_up_) {
    // Still there? `ssh -O check` answers from the socket without touching the network.
    auto args = BaseArgs(true);
    args.insert(args.end(), {"-O", "check", "--", target_.host});
    auto checked = Exec(args, options_.connect_timeout + std::chrono::seconds(5));
    if (checked.ok() && checked->exit_status == 0) return Status::OK();
    master_up_ = false;
  }
  BITFUSION_RETURN_IF_ERROR(EnsureControlDir());
  // A master that died (killed, its connection dropped) leaves its socket behind, and a new
  // master does not replace it: it would run without multiplexing.
  std::error_code stale;
  std::filesystem::remove(control_dir_ / kControlSocket, stale);
  // The master forks into the background (-f) once logged in and keeps whatever stdout and
  // stderr it was given: a file, so that nothing waiting for end-of-file on a pipe hangs.
  const std::filesystem::path log = control_dir_ / "master.log";
  auto args = BaseArgs(true);
  args.insert(args.end(), {"-o", "ControlMaster=yes", "-o",
                           "ControlPersist=" + std::to_string(options_.control_persist.count()),
                           "-N", "-f", "--", target_.host});
  BITFUSION_ASSIGN_OR_RETURN(bp::filesystem::path exe, FindSsh(options_.ssh_program));
  const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoError(errno, "creating " + log.string());
  int status = 255;
  bool timed_out = false;
  {
    asio::io_context context;
    auto pid = SpawnSsh(exe, args, fd, fd);
    ::close(fd);
    if (!pid) return pid.error();
    bp::process proc(context.get_executor(), *pid);
    asio::steady_timer timer(context, options_.connect_timeout + std::chrono::seconds(5));
    timer.async_wait([&](const boost::system::error_code& e) {
      if (e) return;
      timed_out = true;
      boost::system::error_code ignored;
      proc.terminate(ignored);
    });
    proc.async_wait([&](const boost::system::error_code& e, int s) {
      timer.cancel();
      status = e ? 255 : s;
    });
    context.run();
  }
  std::ifstream in(log);
  std::stringstream text;
  text << in.rdbuf();
  if (timed_out || status != 0) {
    return UnavailableError(
        "cannot reach " + target_.ToString() + " over SSH: " +
        (timed_out
             ? "no answer within " + std::to_string(options_.connect_timeout.count() + 5) + " s"
             : SshMessage(text.str())) +
        "; check that the host is up, that sshd listens on that port, and that `ssh -o "
        "BatchMode=yes` logs in there with this user and key without a prompt (known_hosts)");
  }
  master_up_ = true;
  return Status::OK();
}

Result<SshResult> SshSession::RunOnChannel(const std::string& command,
                                           std::chrono::milliseconds timeout) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  if (channel_.pid < 0) {
    std::vector<std::string> args;
    {
      std::lock_guard lock(mu_);
      args = BaseArgs(master_up_);
    }
    args.insert(args.end(), {"-o", "ControlMaster=no", "--", target_.host,
                             "exec sh -c " + ShellQuote(kChannelDriver)});
    BITFUSION_ASSIGN_OR_RETURN(bp::filesystem::path exe, FindSsh(options_.ssh_program));
    // stdin is a socket, so that writing to a channel that died is EPIPE (MSG_NOSIGNAL), not a
    // SIGPIPE that would end the host application.
    int in[2] = {-1, -1}, out[2] = {-1, -1};
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in) != 0 ||
        ::pipe2(out, O_CLOEXEC) != 0) {
      for (int fd : {in[0], in[1], out[0], out[1]}) {
        if (fd >= 0) ::close(fd);
      }
      return UnavailableError("command channel: " + std::string(std::strerror(errno)));
    }
    auto pid = SpawnSsh(exe, args, out[1], -1, in[0]);
    ::close(in[0]);
    ::close(out[1]);
    if (!pid) {
      ::close(in[1]);
      ::close(out[0]);
      return UnavailableError("command channel: " + pid.error().message());
    }
    channel_.pid = *pid;
    channel_.in = in[1];
    channel_.out = out[0];
    channel_.buffer.clear();
  }
  const std::string line = command + "\n";
  for (std::size_t sent = 0; sent < line.size();) {
    const ssize_t n = ::send(channel_.in, line.data() + sent, line.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      CloseChannel(/*wait=*/false);
      return UnavailableError("command channel: the remote shell went away");
    }
    sent += static_cast<std::size_t>(n);
  }
  bool timed_out = false;
  auto broken = [&](const char* what) -> Result<SshResult> {
    CloseChannel(/*wait=*/!timed_out);
    if (timed_out) {
      SshResult result;
      result.exit_status = 255;
      result.timed_out = true;
      return result;
    }
    return UnavailableError(std::string("command channel: ") + what);
  };
  std::string& buffer = channel_.buffer;
  if (!ReadUntil(channel_.out, buffer, std::string::npos, until, timed_out)) {
    return broken("no answer");
  }
  const std::size_t eol = buffer.find('\n');
  int status = -1;
  long long out_bytes = -1, err_bytes = -1;
  if (std::sscanf(buffer.substr(0, eol).c_str(), "%d %lld %lld", &status, &out_bytes, &err_bytes) !=
          3 ||
      out_bytes < 0 || err_bytes < 0) {
    return broken("an answer it could not read");
  }
  buffer.erase(0, eol + 1);
  const auto total = static_cast<std::size_t>(out_bytes + err_bytes);
  if (!ReadUntil(channel_.out, buffer, total, until, timed_out)) {
    return broken("an answer cut short");
  }
  SshResult result;
  result.exit_status = status;
  result.out = buffer.substr(0, static_cast<std::size_t>(out_bytes));
  result.err =
      buffer.substr(static_cast<std::size_t>(out_bytes), static_cast<std::size_t>(err_bytes));
  buffer.erase(0, total);
  return result;
}

void SshSession::CloseChannel(bool wait) {
  if (channel_.pid < 0) return;
  // End of input ends the remote loop (its trap stops a command still running there and
  // removes its directory); a channel that does not end promptly, or one abandoned (a command
  // still running after its timeout), has its client killed, which ends the remote input too.
  ::close(channel_.in);
  ::close(channel_.out);
  (void)internal::ReapWithin(channel_.pid,
                             wait ? std::chrono::seconds(2) : std::chrono::seconds(0));
  channel_ = Channel{};
}

Result<SshResult> SshSession::RunRemote(const std::string& command,
                                        std::chrono::milliseconds timeout) {
  std::vector<std::string> args;
  {
    std::lock_guard lock(mu_);
    args = BaseArgs(master_up_);
  }
  // A client whose master has gone connects on its own: slower, still correct.
  args.insert(args.end(), {"-o", "ControlMaster=no", "--", target_.host, command});
  return Exec(std::move(args), timeout);
}

Result<SshResult> SshSession::Run(const std::vector<std::string>& argv,
                                  std::chrono::milliseconds timeout) {
  if (argv.empty()) return InvalidArgumentError("SshSession::Run needs a command");
  std::string command;
  for (const auto& a : argv) command += (command.empty() ? "" : " ") + ShellQuote(a);
  if (options_.command_channel && command.find_first_of("\r\n") == std::string::npos) {
    std::unique_lock lock(channel_mu_, std::try_to_lock);
    if (lock.owns_lock()) {
      auto result = RunOnChannel(command, timeout);
      if (result.ok() || result.error().code() != StatusCode::kUnavailable) return result;
      LogAt(LogLevel::kInfo, "ssh ", target_.ToString(), ": ", result.error().message(),
            "; running the command over its own channel");
    }
  }
  return RunRemote(command, timeout);
}

Result<SshResult> SshSession::RunScript(const std::string& script,
                                        std::chrono::milliseconds timeout) {
  return RunRemote(script, timeout);
}

Result<SshChild> SshSession::Spawn(const std::string& script) {
  std::vector<std::string> args;
  {
    std::lock_guard lock(mu_);
    args = BaseArgs(master_up_);
  }
  args.insert(args.end(), {"-T", "-o", "ControlMaster=no", "--", target_.host, script});
  BITFUSION_ASSIGN_OR_RETURN(bp::filesystem::path exe, FindSsh(options_.ssh_program));
  int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in) != 0 ||
      ::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) {
    Status s = ErrnoError(errno, "creating pipes for ssh to " + target_.ToString());
    for (int fd : {in[0], in[1], out[0], out[1], err[0], err[1]}) {
      if (fd >= 0) ::close(fd);
    }
    return s;
  }
  auto pid = SpawnSsh(exe, args, out[1], err[1], in[0]);
  for (int fd : {in[0], out[1], err[1]}) ::close(fd);
  if (!pid) {
    for (int fd : {in[1], out[0], err[0]}) ::close(fd);
    return pid.error();
  }
  return SshChild{*pid, in[1], out[0], err[0]};
}

Result<SshResult> SshSession::RunUnmultiplexed(const std::vector<std::string>& argv,
                                               std::chrono::milliseconds timeout) {
  if (argv.empty()) return InvalidArgumentError("SshSession::Run needs a command");
  std::string command;
  for (const auto& a : argv) command += (command.empty() ? "" : " ") + ShellQuote(a);
  auto args = BaseArgs(false);
  args.insert(args.end(), {"--", target_.host, command});
  return Exec(std::move(args), timeout);
}

Status SshSession::ForwardUnixSocket(const std::filesystem::path& local,
                                     const std::string& remote) {
  return Forward("forward", "-L", local.string(), remote,
                 "forwarding " + local.string() + " to " + remote + " on " + target_.ToString());
}

Status SshSession::ForwardRemoteUnixSocket(const std::string& remote,
                                           const std::filesystem::path& local) {
  return Forward("forward", "-R", remote, local.string(),
                 "forwarding " + remote + " on " + target_.ToString() + " to " + local.string());
}

Status SshSession::CancelRemoteForward(const std::string& remote,
                                       const std::filesystem::path& local) {
  return Forward("cancel", "-R", remote, local.string(),
                 "cancelling the forward of " + remote + " on " + target_.ToString());
}

Status SshSession::Forward(const char* op, const char* direction, const std::string& listen,
                           const std::string& connect, const std::string& what) {
  // ssh splits a forward at ':' and has no quoting for it.
  for (const std::string* path : {&listen, &connect}) {
    if (path->empty() || (*path)[0] != '/' || path->find(':') != std::string::npos) {
      return InvalidArgumentError(what + ": both ends must be absolute socket paths without ':'");
    }
  }
  std::vector<std::string> args;
  {
    std::lock_guard lock(mu_);
    if (!master_up_) {
      return FailedPreconditionError(what + " needs the master connection: Connect() first");
    }
    args = BaseArgs(true);
  }
  args.insert(args.end(), {"-O", op, direction, listen + ":" + connect, "--", target_.host});
  BITFUSION_ASSIGN_OR_RETURN(
      auto r, Exec(std::move(args), options_.connect_timeout + std::chrono::seconds(5)));
  if (r.exit_status != 0) {
    return UnavailableError(what + " over SSH failed: " +
                            (r.timed_out ? "no answer from the master" : SshMessage(r.err)));
  }
  return Status::OK();
}

void SshSession::Close() {
  {
    std::lock_guard channel_lock(channel_mu_);
    CloseChannel(/*wait=*/true);
  }
  std::lock_guard lock(mu_);
  if (master_up_) {
    auto args = BaseArgs(true);
    args.insert(args.end(), {"-O", "exit", "--", target_.host});
    (void)Exec(args, std::chrono::seconds(10));
    master_up_ = false;
  }
  if (!control_dir_.empty()) {
    // The master unlinks its socket as it exits, which can be after `-O exit` has returned:
    // remove_all stops at an entry that vanishes under it (ENOENT) and would leave the
    // directory and master.log behind, so it goes again.
    for (int attempt = 0; attempt < 3; ++attempt) {
      std::error_code ec;
      std::filesystem::remove_all(control_dir_, ec);
      if (!ec) break;
    }
    control_dir_.clear();
  }
}

bool SshBannerAnswers(const std::string& host, int port, std::chrono::milliseconds timeout) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res) != 0) return false;
  bool ok = false;
  for (addrinfo* a = res; a != nullptr && !ok; a = a->ai_next) {
    const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) continue;
    if (::connect(fd, a->ai_addr, a->ai_addrlen) == 0 || errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      int err = 0;
      socklen_t len = sizeof err;
      if (::poll(&p, 1, static_cast<int>(timeout.count())) == 1 &&
          ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0) {
        p.events = POLLIN;
        char banner[4] = {};
        ok = ::poll(&p, 1, static_cast<int>(timeout.count())) == 1 &&
             ::recv(fd, banner, sizeof banner, 0) == 4 && std::string(banner, 4) == "SSH-";
      }
    }
    ::close(fd);
  }
  ::freeaddrinfo(res);
  return ok;
}

}  // namespace bitfusion
