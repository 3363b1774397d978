#include "runners/ssh_process_runner.h"

#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>  // strerror, sigabbrev_np
#include <map>
#include <mutex>
#include <thread>

#include "bitfusion/log.h"
#include "bitfusion/registry.h"
#include "bitfusion/version.h"
#include "net/ssh_session.h"
#include "net/ssh_uri.h"
#include "runners/container_spec_checks.h"
#include "runners/handle_table.h"
#include "runners/line_splitter.h"
#include "runners/log_fanout.h"
#include "runners/runner_event_hub.h"
#include "runners/ssh_process_wire.h"
#include "runners/tar_archive.h"

namespace bitfusion {
namespace {

using namespace internal::sshwire;

constexpr const char* kScheme = "process+ssh://";

std::string NextId() {
  static std::atomic<int> counter{0};
  return "sshproc-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
}

std::string Quoted(const std::vector<std::string>& argv) {
  std::string s;
  for (const auto& a : argv) s += (s.empty() ? "" : " ") + ShellQuote(a);
  return s;
}

}  // namespace

// What the runner knows: its connection, and the live handles' logs and Inspect by id.
struct SshProcessRunnerHub {
  SshProcessRunnerOptions options;
  std::shared_ptr<SshSession> session;
  std::string where;  // "root@10.0.0.5:22", for messages
  std::shared_ptr<internal::RunnerEventHub> events;

  internal::HandleTable handles{"process+ssh://"};
};

namespace {

Result<std::unique_ptr<Container>> MakeSshProcess(const std::shared_ptr<SshProcessRunnerHub>& hub,
                                                  const ContainerSpec& spec, bool quiet);

// One Stats() subscription: a remote reading loop and the thread that parses it.
struct StatsLoop {
  std::atomic<bool> stop{false};
  int wake_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  std::thread thread;
  std::once_flag joined;

  ~StatsLoop() { CloseFd(wake_fd); }
  void End() {
    stop = true;
    std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wake_fd, &one, sizeof one);
    std::call_once(joined, [this] {
      if (!thread.joinable()) return;
      if (thread.get_id() == std::this_thread::get_id()) {
        thread.detach();
      } else {
        thread.join();
      }
    });
  }
};

class SshProcess final : public Container {
 public:
  SshProcess(std::string id, std::shared_ptr<SshProcessRunnerHub> hub,
             std::vector<std::string> argv, std::map<std::string, std::string> env,
             std::string working_dir, std::string cpuset, std::int64_t timeout_ns, Labels labels,
             bool quiet)
      : id_(std::move(id)),
        hub_(std::move(hub)),
        argv_(std::move(argv)),
        env_(std::move(env)),
        working_dir_(std::move(working_dir)),
        cpuset_(std::move(cpuset)),
        timeout_ns_(timeout_ns),
        labels_(std::move(labels)),
        quiet_(quiet),
        nonce_(Nonce()),
        logs_(std::make_shared<internal::LogFanout>(hub_->options.log_buffer_bytes)) {
    created_ns_ = WallNowNs();
    if (!quiet_) {
      hub_->handles.Add(id_, logs_, [this] { return InspectNow(); });
      hub_->events->Emit(EventType::kContainerCreated, "create", id_, labels_);
    }
  }

  ~SshProcess() override {
    if (!quiet_) {
      hub_->handles.Unlist(id_);
    }
    Teardown();
    if (!quiet_) {
      hub_->handles.Forget(id_);
      hub_->events->Emit(EventType::kContainerDestroyed, "destroy", id_, labels_);
    }
  }

  const std::string& id() const override { return id_; }

  Status Start() override {
    if (started_) return FailedPreconditionError("process " + id_ + " was already started");
    // The leader's text is the wrapper's $0, which it hands on.
    const std::string script = "exec sh -c " + ShellQuote(kWrapper) + " " + ShellQuote(kLeader) +
                               " " + Quoted({nonce_, working_dir_, cpuset_});
    std::string command;
    for (const auto& [k, v] : env_) command += OperandLine('=', k + "=" + v);
    for (const auto& a : argv_) command += OperandLine(':', a);
    command += ".\n";
    wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    exit_.start_ns = WallNowNs();
    start_mono_ns_ = MonoNowNs();
    auto child = hub_->session->Spawn(script);
    if (!child) return child.error().WithContext("starting process " + id_ + " on " + hub_->where);
    client_pid_ = child->pid;
    stdin_fd_ = child->stdin_fd;
    out_fd_ = child->stdout_fd;
    err_fd_ = child->stderr_fd;
    pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, client_pid_, 0));
    started_ = true;
    // A channel that fails here fails the run too: the reader reports how.
    (void)Control(command);
    if (!quiet_) hub_->events->Emit(EventType::kContainerStarted, "start", id_, labels_);
    reader_ = std::thread([this] { ReadUntilExit(); });
    return Status::OK();
  }

  Result<ExitStatus> Wait(Deadline deadline) override {
    if (!started_) return FailedPreconditionError("process " + id_ + " was not started");
    std::unique_lock lock(mu_);
    auto done = [&] { return finished_; };
    if (deadline == kNoDeadline) {
      cv_.wait(lock, done);
    } else if (!cv_.wait_until(lock, deadline, done)) {
      return DeadlineExceededError("process " + id_ + " on " + hub_->where +
                                   " still running at the wait deadline");
    }
    if (!lost_.empty()) {
      return UnavailableError("the SSH connection to " + hub_->where + " carrying process " + id_ +
                              " ended before its exit status arrived: " + lost_);
    }
    return exit_;
  }

  Status Stop(std::chrono::nanoseconds grace) override {
    if (!started_ || Finished()) return Status::OK();
    if (Status s = Signal("TERM"); !s.ok()) return Finished() ? Status::OK() : s;
    if (Wait(DeadlineAfter(grace)).ok()) return Status::OK();
    if (Status s = Signal("KILL"); !s.ok()) return Finished() ? Status::OK() : s;
    if (!Wait(DeadlineAfter(std::chrono::seconds(30))).ok() && !Finished()) {
      return UnavailableError("process " + id_ + " on " + hub_->where +
                              " did not report its end within 30 s of SIGKILL");
    }
    return Status::OK();
  }

  Status Kill(int signal) override {
    if (!started_ || Finished()) return Status::OK();
    const char* name = ::sigabbrev_np(signal);
    if (name == nullptr) return InvalidArgumentError("no signal " + std::to_string(signal));
    Status s = Signal(name);
    return Finished() ? Status::OK() : s;
  }

  Subscription Logs(LogCallback callback) override { return logs_->Subscribe(std::move(callback)); }

  void Keep() override { kept_ = true; }

  Result<ExecResult> Exec(const ExecSpec& spec, Deadline deadline) override {
    if (!started_ || Finished()) {
      return FailedPreconditionError("process " + id_ + " is not running; Exec needs it running");
    }
    if (!spec.user.empty()) {
      return InvalidArgumentError("process+ssh:// cannot run Exec as another user (\"" + spec.user +
                                  "\"); log in as that user with another runner");
    }
    ContainerSpec child;
    child.command = spec.command;
    child.env = env_;
    for (const auto& [k, v] : spec.env) child.env[k] = v;
    child.working_dir = spec.working_dir.empty() ? working_dir_ : spec.working_dir;
    BITFUSION_ASSIGN_OR_RETURN(auto c, MakeSshProcess(hub_, child, /*quiet=*/true));
    ExecResult result;
    std::mutex mu;
    auto sub = c->Logs([&](LogStream s, std::string_view line) {
      std::lock_guard lock(mu);
      (s == LogStream::kStdout ? result.output : result.errors).append(line).append("\n");
    });
    BITFUSION_RETURN_IF_ERROR(c->Start());
    auto exit = c->Wait(deadline);
    if (!exit) {
      (void)c->Kill(SIGKILL);
      return exit.error().WithContext("exec in process " + id_);
    }
    sub.Cancel();
    result.exit_code = exit->signal != 0 ? 128 + exit->signal : exit->exit_code;
    return result;
  }

  Status CopyIn(const std::filesystem::path& host_path, const std::string& container_dir) override {
    std::error_code ec;
    if (!std::filesystem::exists(std::filesystem::symlink_status(host_path, ec))) {
      return NotFoundError(host_path.string() + " does not exist");
    }
    internal::TarWriter tar;
    BITFUSION_RETURN_IF_ERROR(tar.AddPath(host_path, host_path.filename().string()));
    const std::string archive = tar.Finish();
    const std::string script =
        "sh -c " +
        ShellQuote(
            "[ -z \"$1\" ] || cd -- \"$1\" 2>/dev/null; [ -d \"$2\" ] || exit 2; "
            "cd -- \"$2\" && exec tar -x -o -f -") +
        " bf-copy " + Quoted({working_dir_, container_dir});
    BITFUSION_ASSIGN_OR_RETURN(auto end, RunRemote(*hub_->session, script, archive,
                                                   [](std::string_view) { return Status::OK(); }));
    return CopyStatus(end, "directory " + container_dir,
                      "copying " + host_path.string() + " into " + container_dir);
  }

  Status CopyOut(const std::string& container_path,
                 const std::filesystem::path& host_dir) override {
    std::error_code ec;
    if (!std::filesystem::is_directory(host_dir, ec)) {
      return NotFoundError("directory " + host_dir.string() + " does not exist");
    }
    BITFUSION_ASSIGN_OR_RETURN(auto extractor, internal::TarExtractor::Make(host_dir));
    const std::string script =
        "sh -c " +
        ShellQuote(
            "[ -z \"$1\" ] || cd -- \"$1\" 2>/dev/null; [ -e \"$2\" ] || [ -L \"$2\" ] || "
            "exit 2; cd -- \"$(dirname -- \"$2\")\" && "
            "exec tar -c -f - -- \"$(basename -- \"$2\")\"") +
        " bf-copy " + Quoted({working_dir_, container_path});
    BITFUSION_ASSIGN_OR_RETURN(
        auto end, RunRemote(*hub_->session, script, {},
                            [&](std::string_view chunk) { return extractor->Write(chunk); }));
    BITFUSION_RETURN_IF_ERROR(CopyStatus(end, container_path, "copying " + container_path));
    return extractor->Finish();
  }

  Result<bool> PathExists(const std::string& path) override {
    auto r =
        hub_->session->Run({"sh", "-c", "[ -z \"$1\" ] || cd -- \"$1\" 2>/dev/null; [ -e \"$2\" ]",
                            "bf-test", working_dir_, path},
                           std::chrono::seconds(30) + hub_->options.connect_timeout);
    if (!r) return r.error();
    if (r->exit_status == 0 || r->exit_status == 1) return r->exit_status == 0;
    return UnavailableError("checking " + path + " on " + hub_->where + ": " + LastLine(r->err));
  }

  Result<ContainerInfo> Inspect() override { return InspectNow(); }

  Result<Subscription> Stats(StatsCallback callback, std::chrono::nanoseconds interval) override {
    if (!started_) return FailedPreconditionError("process " + id_ + " was not started");
    if (interval.count() <= 0) return InvalidArgumentError("stats interval must be positive");
    auto loop = std::make_shared<StatsLoop>();
    loop->thread = std::thread([this, loop, interval, callback = std::move(callback)] {
      ReadStats(*loop, interval, callback);
    });
    {
      std::lock_guard lock(mu_);
      stats_loops_.push_back(loop);
    }
    return Subscription([loop] { loop->End(); });
  }

  ContainerInfo InspectNow() {
    ContainerInfo info;
    info.id = id_;
    info.name = id_;
    info.labels = labels_;
    info.created_ns = created_ns_;
    std::lock_guard lock(mu_);
    info.state = !started_ ? "created" : exited_ ? "exited" : "running";
    info.pid = started_ && !exited_ ? remote_pid_ : 0;
    info.started_ns = exit_.start_ns;
    if (exited_) {
      info.exit_code = exit_.signal != 0 ? 128 + exit_.signal : exit_.exit_code;
      info.finished_ns = exit_.end_ns;
    }
    return info;
  }

 private:
  struct Stream {
    LogStream kind;
    int* fd;
    LineSplitter lines;
  };

  bool Finished() {
    std::lock_guard lock(mu_);
    return finished_;
  }
  bool Exited() {
    std::lock_guard lock(mu_);
    return exited_;
  }

  // A line for the remote wrapper's control reader: a signal name, or KEEP.
  Status Signal(const std::string& what) {
    Status s = Control(what + "\n");
    return s.ok() ? s : s.WithContext("sending SIG" + what);
  }

  // Bytes for the wrapper's stdin, whole.
  Status Control(const std::string& line) {
    std::lock_guard lock(ctl_mu_);
    if (stdin_fd_ < 0) return FailedPreconditionError("process " + id_ + " is being removed");
    for (std::size_t sent = 0; sent < line.size();) {
      const ssize_t n = ::send(stdin_fd_, line.data() + sent, line.size() - sent, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        return UnavailableError("the SSH channel to " + hub_->where + " carrying process " + id_ +
                                " has closed");
      }
      sent += static_cast<std::size_t>(n);
    }
    return Status::OK();
  }

  Status CopyStatus(const RemoteEnd& end, const std::string& missing, const std::string& what) {
    if (end.exit_status == 0) return Status::OK();
    if (end.exit_status == 2) return NotFoundError(missing + " does not exist on " + hub_->where);
    if (end.exit_status == 255) {
      return UnavailableError(what + " over SSH to " + hub_->where + ": " + LastLine(end.err));
    }
    return IOError(what + " on " + hub_->where + ": tar exited with " +
                   std::to_string(end.exit_status) + ": " + LastLine(end.err));
  }

  void Deliver(LogStream stream, std::string_view line) { logs_->Deliver(stream, line); }

  // "pid N" and "exit STATUS" from the wrapper.
  void Record(std::string_view rec) {
    const auto space = rec.rfind(' ');
    const int value = std::atoi(std::string(rec.substr(space + 1)).c_str());
    std::lock_guard lock(mu_);
    if (rec.starts_with(" pid ")) {
      // The command starts now: its clock, and its timeout's, begin here and not with the login
      // (which runs the remote shell's startup files first).
      remote_pid_ = value;
      exit_.start_ns = WallNowNs();
      start_mono_ns_ = MonoNowNs();
      command_started_ = true;
    } else if (rec.starts_with(" exit ") && !exited_) {
      exited_ = true;
      exit_.end_ns = WallNowNs();
      exit_.wall_time_ns = MonoNowNs() - start_mono_ns_;
      // The shell's wait says 128+N for a death by signal N.
      if (value > 128 && value < 128 + 65) {
        exit_.exit_code = -1;
        exit_.signal = value - 128;
      } else {
        exit_.exit_code = value;
      }
    }
    cv_.notify_all();
  }

  // Returns false at end of stream.
  bool Drain(Stream& s, RecordFilter* records) {
    char buf[65536];
    const ssize_t n = ::read(*s.fd, buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return true;
    auto line = [&](std::string_view l) { Deliver(s.kind, l); };
    auto text = [&](std::string_view t) { s.lines.Feed(t, line); };
    if (n <= 0) {
      if (records != nullptr) records->Finish(text);
      s.lines.Finish(line);
      CloseFd(*s.fd);
      return false;
    }
    const std::string_view got(buf, static_cast<std::size_t>(n));
    if (records != nullptr) {
      records->Feed(got, text, [&](std::string_view r) { Record(r); });
    } else {
      if (stderr_tail_.size() > 4096) stderr_tail_.erase(0, stderr_tail_.size() - 1024);
      stderr_tail_.append(got);
      text(got);
    }
    return true;
  }

  void ClientExited() {
    if (client_reaped_) return;
    int status = 0;
    if (::waitpid(client_pid_, &status, WNOHANG) != client_pid_) return;
    client_reaped_ = true;
    client_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 255;
  }

  // The one thread per command: reads output and the wrapper's records, enforces the timeout.
  void ReadUntilExit() {
    RecordFilter records(nonce_);
    const std::size_t max_line = hub_->options.max_line_bytes;
    Stream streams[2] = {{LogStream::kStdout, &out_fd_, LineSplitter(max_line)},
                         {LogStream::kStderr, &err_fd_, LineSplitter(max_line)}};
    std::int64_t drain_until = 0;
    bool timeout_fired = false;
    while (!stop_reader_.load()) {
      const bool ended = Exited() || client_reaped_;
      if (out_fd_ < 0 && err_fd_ < 0 && (ended || client_reaped_)) break;
      const std::int64_t now = MonoNowNs();
      std::int64_t timeout_at = 0;
      if (timeout_ns_ > 0) {
        std::lock_guard lock(mu_);
        if (command_started_) timeout_at = start_mono_ns_ + timeout_ns_;
      }
      if (ended && drain_until == 0) drain_until = now + hub_->options.drain_timeout.count();
      if (ended && now >= drain_until) {
        for (int i = 0; i < 2; ++i) {
          for (int reads = 0; *streams[i].fd >= 0 && reads < 16; ++reads) {
            pollfd p{*streams[i].fd, POLLIN, 0};
            if (::poll(&p, 1, 0) <= 0 || !Drain(streams[i], i == 0 ? &records : nullptr)) break;
          }
        }
        if (out_fd_ >= 0 || err_fd_ >= 0) {
          LogAt(LogLevel::kInfo, "process ", id_, " on ", hub_->where,
                " exited but something it started still holds its output open; no longer "
                "reading it");
        }
        break;
      }
      if (!ended && !timeout_fired && timeout_at != 0 && now >= timeout_at) {
        timeout_fired = true;
        (void)Signal("KILL");
        std::lock_guard lock(mu_);
        exit_.timed_out = true;
      }
      pollfd fds[4];
      nfds_t n = 0;
      int slot[2] = {-1, -1};
      for (int i = 0; i < 2; ++i) {
        if (*streams[i].fd >= 0) {
          slot[i] = static_cast<int>(n);
          fds[n++] = {*streams[i].fd, POLLIN, 0};
        }
      }
      const int pid_slot = (!client_reaped_ && pidfd_ >= 0) ? static_cast<int>(n) : -1;
      if (pid_slot >= 0) fds[n++] = {pidfd_, POLLIN, 0};
      fds[n++] = {wake_fd_, POLLIN, 0};
      std::int64_t wait_ns = (pidfd_ < 0 && !client_reaped_) ? 10'000'000 : -1;
      const std::int64_t until = ended ? drain_until : (timeout_fired ? 0 : timeout_at);
      if (until != 0) {
        const std::int64_t left = std::max<std::int64_t>(until - now, 0);
        wait_ns = wait_ns < 0 ? left : std::min(wait_ns, left);
      }
      const int timeout_ms =
          wait_ns < 0 ? -1
                      : static_cast<int>(std::min<std::int64_t>(wait_ns / 1'000'000 + 1, 60'000));
      if (::poll(fds, n, timeout_ms) < 0 && errno != EINTR) {
        LogAt(LogLevel::kError, "poll on process ", id_, ": ", std::strerror(errno));
        break;
      }
      for (int i = 0; i < 2; ++i) {
        if (slot[i] >= 0 && (fds[slot[i]].revents & (POLLIN | POLLHUP | POLLERR))) {
          Drain(streams[i], i == 0 ? &records : nullptr);
        }
      }
      if (pidfd_ < 0 || (pid_slot >= 0 && fds[pid_slot].revents)) ClientExited();
    }
    records.Finish([&](std::string_view t) {
      streams[0].lines.Feed(t, [&](std::string_view l) { Deliver(LogStream::kStdout, l); });
    });
    for (auto& s : streams) s.lines.Finish([&](std::string_view l) { Deliver(s.kind, l); });
    ExitStatus ended;
    {
      std::lock_guard lock(mu_);
      if (!exited_) {
        exited_ = true;
        exit_.end_ns = WallNowNs();
        exit_.wall_time_ns = MonoNowNs() - start_mono_ns_;
        if (client_reaped_ && client_status_ != 255) {
          // The wrapper ended before the command ran (a directory that went away).
          exit_.exit_code = client_status_;
        } else {
          lost_ = stop_reader_.load() ? "the handle was removed" : LastLine(stderr_tail_);
        }
      }
      finished_ = true;
      ended = exit_;
      cv_.notify_all();
    }
    if (!quiet_ && !kept_) {
      const int code = ended.signal != 0 ? 128 + ended.signal : ended.exit_code;
      hub_->events->Emit(EventType::kContainerDied, "die", id_, labels_,
                         {{"exitCode", std::to_string(lost_.empty() ? code : 255)}});
    }
  }

  void ReadStats(StatsLoop& loop, std::chrono::nanoseconds interval,
                 const StatsCallback& callback) {
    int pid = 0;
    {
      std::unique_lock lock(mu_);
      while (remote_pid_ == 0 && !exited_ && !loop.stop) {
        cv_.wait_for(lock, std::chrono::milliseconds(50));
      }
      pid = exited_ ? 0 : remote_pid_;
    }
    if (loop.stop) return;
    char secs[32];
    std::snprintf(secs, sizeof secs, "%.3f", static_cast<double>(interval.count()) / 1e9);
    SshChild child;
    if (pid > 0) {
      auto spawned = hub_->session->Spawn("exec sh -c " + ShellQuote(kStats) + " bf-stats " +
                                          Quoted({std::to_string(pid), secs}));
      if (spawned) {
        child = *spawned;
        CloseFd(child.stdin_fd);
        CloseFd(child.stderr_fd);
      } else {
        LogAt(LogLevel::kWarning, "stats of process ", id_, ": ", spawned.error().message());
      }
    }
    StatsParser parser;
    std::string buffer;
    char buf[16384];
    while (!loop.stop && !Exited() && child.stdout_fd >= 0) {
      pollfd fds[2] = {{child.stdout_fd, POLLIN, 0}, {loop.wake_fd, POLLIN, 0}};
      // The exit is noticed by the reader thread; look again at least every interval.
      const int ms =
          static_cast<int>(std::clamp<std::int64_t>(interval.count() / 1'000'000, 10, 1000));
      if (::poll(fds, 2, ms) < 0 && errno != EINTR) break;
      if (!(fds[0].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      const ssize_t n = ::read(child.stdout_fd, buf, sizeof buf);
      if (n <= 0) break;
      buffer.append(buf, static_cast<std::size_t>(n));
      for (auto eol = buffer.find('\n'); eol != std::string::npos; eol = buffer.find('\n')) {
        const std::string line = buffer.substr(0, eol);
        buffer.erase(0, eol + 1);
        if (auto st = parser.Line(line)) callback(*st);
      }
    }
    if (child.pid > 0) {
      ::kill(child.pid, SIGTERM);
      CloseFd(child.stdout_fd);
      ReapClient(child.pid, std::chrono::seconds(2));
    }
    if (!loop.stop) {
      // It exited: the stream ends, and says so (see Container::Stats).
      ContainerStats last;
      last.time_ns = WallNowNs();
      last.running = false;
      callback(last);
    }
  }

  void Teardown() {
    std::vector<std::shared_ptr<StatsLoop>> loops;
    {
      std::lock_guard lock(mu_);
      loops.swap(stats_loops_);
    }
    for (auto& loop : loops) loop->End();
    if (started_) {
      // End of input: the wrapper ends the group with SIGKILL (KEEP first leaves it running).
      if (kept_) (void)Signal("KEEP");
      {
        std::lock_guard lock(ctl_mu_);
        CloseFd(stdin_fd_);
      }
      if (!kept_) {
        std::unique_lock lock(mu_);
        cv_.wait_for(lock, std::chrono::seconds(10) + hub_->options.drain_timeout,
                     [&] { return finished_; });
      }
      stop_reader_ = true;
      std::uint64_t one = 1;
      [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof one);
    }
    if (reader_.joinable()) reader_.join();
    if (started_ && !client_reaped_) {
      // Kept: the client goes now (the command's later output has nowhere to go). Otherwise it
      // ends with the channel once the wrapper is done.
      if (kept_) ::kill(client_pid_, SIGTERM);
      ReapClient(client_pid_, std::chrono::seconds(5));
    }
    for (int* fd : {&out_fd_, &err_fd_, &pidfd_, &wake_fd_}) CloseFd(*fd);
  }

  const std::string id_;
  const std::shared_ptr<SshProcessRunnerHub> hub_;
  const std::vector<std::string> argv_;
  const std::map<std::string, std::string> env_;
  const std::string working_dir_;
  const std::string cpuset_;
  const std::int64_t timeout_ns_;
  const Labels labels_;
  const bool quiet_;  // an Exec helper: no events, not listed
  const std::string nonce_;
  const std::shared_ptr<internal::LogFanout> logs_;
  std::int64_t created_ns_ = 0;

  std::atomic<bool> started_{false};
  std::atomic<bool> kept_{false};
  std::atomic<bool> stop_reader_{false};
  int client_pid_ = -1;         // the local ssh client
  bool client_reaped_ = false;  // reader thread, then Teardown after the join
  int client_status_ = 255;
  std::mutex ctl_mu_;  // guards stdin_fd_: control lines go out whole
  int stdin_fd_ = -1;
  int out_fd_ = -1;
  int err_fd_ = -1;
  int pidfd_ = -1;
  int wake_fd_ = -1;
  std::int64_t start_mono_ns_ = 0;  // under mu_ once started
  bool command_started_ = false;    // under mu_: the wrapper's pid record came
  std::string stderr_tail_;         // reader thread: ssh's own complaints come last
  std::thread reader_;

  std::mutex mu_;
  std::condition_variable cv_;
  int remote_pid_ = 0;     // the remote group's id, once the wrapper says
  bool exited_ = false;    // the exit record arrived (or the connection ended)
  bool finished_ = false;  // and the output was read: Wait may return
  std::string lost_;       // why no exit status came
  ExitStatus exit_;
  std::vector<std::shared_ptr<StatsLoop>> stats_loops_;
};

Result<std::unique_ptr<Container>> MakeSshProcess(const std::shared_ptr<SshProcessRunnerHub>& hub,
                                                  const ContainerSpec& spec, bool quiet) {
  BITFUSION_ASSIGN_OR_RETURN(std::vector<std::string> argv,
                             internal::HostCommandArgv(spec, "process+ssh://"));
  std::vector<std::string> devices;
  for (const auto& d : spec.devices) devices.push_back(d.path_on_host);
  BITFUSION_RETURN_IF_ERROR(internal::CheckEnvironmentNames(spec.env));
  for (const auto& [name, value] : spec.env) {
    // The remote sh exports them: only names it can hold.
    const bool ok = (std::isalpha(static_cast<unsigned char>(name[0])) || name[0] == '_') &&
                    std::all_of(name.begin(), name.end(),
                                [](unsigned char ch) { return std::isalnum(ch) || ch == '_'; });
    if (!ok) {
      return InvalidArgumentError("environment variable name \"" + name +
                                  "\" is not a shell name ([A-Za-z_][A-Za-z0-9_]*); "
                                  "process+ssh:// sets variables through the remote sh");
    }
  }
  BITFUSION_RETURN_IF_ERROR(internal::CheckTimeout(spec.timeout_ns));
  if (!spec.cpuset.empty()) {
    if (auto cpus = internal::ParseCpuList(spec.cpuset); !cpus) return cpus.error();
  }
  const auto path = spec.env.find("PATH");
  const std::string spec_path = path == spec.env.end() ? "" : path->second;
  std::vector<std::string> check = {"sh",      "-c",    kCheck,     "bf-check", spec.working_dir,
                                    spec_path, argv[0], spec.cpuset};
  check.insert(check.end(), devices.begin(), devices.end());
  auto checked = hub->session->Run(check, std::chrono::seconds(30) + hub->options.connect_timeout);
  if (!checked) return checked.error();
  const std::string& where = hub->where;
  switch (checked->exit_status) {
    case 0: break;
    case 2:
      return NotFoundError("working directory " + spec.working_dir + " does not exist on " + where);
    case 3:
      return NotFoundError("command " + argv[0] + " cannot be executed on " + where +
                           " (no such file, or not executable)");
    case 4:
      return NotFoundError("command \"" + argv[0] + "\" not found in PATH (" +
                           (spec_path.empty() ? "the login's" : spec_path) + ") on " + where +
                           "; give a full path or install it there");
    case 5:
      return NotFoundError("device " + LastLine(checked->out) + " does not exist on " + where);
    case 6:
      return FailedPreconditionError("cpuset needs `taskset` on " + where +
                                     " (Debian: util-linux); install it or drop the cpuset");
    default:
      return UnavailableError("checking the command on " + where +
                              " over SSH: " + LastLine(checked->err));
  }
  return std::unique_ptr<Container>(
      new SshProcess(spec.name.empty() ? NextId() : spec.name, hub, std::move(argv), spec.env,
                     spec.working_dir, spec.cpuset, spec.timeout_ns, spec.labels, quiet));
}

}  // namespace

Result<SshProcessRunnerOptions> SshProcessRunnerOptions::FromUri(const Uri& uri) {
  std::vector<std::string_view> keys = internal::kSshUriKeys;
  keys.insert(keys.end(), {"max_line_bytes", "log_buffer_bytes", "drain_timeout"});
  BITFUSION_RETURN_IF_ERROR(uri.CheckQueryKeys(keys));
  BITFUSION_ASSIGN_OR_RETURN(const internal::SshLogin login,
                             internal::SshLoginFromUri(uri, "process+ssh"));
  SshProcessRunnerOptions o;
  o.host = login.target.host;
  o.port = login.target.port;
  o.user = login.target.user;
  o.identity = login.target.identity;
  o.ssh_config = login.session.config_file;
  o.ssh_options = login.session.options;
  o.connect_timeout = login.session.connect_timeout;
  o.runtime_dir = login.session.runtime_dir;
  BITFUSION_ASSIGN_OR_RETURN(auto line, uri.QueryInt("max_line_bytes", 64 * 1024));
  BITFUSION_ASSIGN_OR_RETURN(auto buffer, uri.QueryInt("log_buffer_bytes", 1 << 20));
  BITFUSION_ASSIGN_OR_RETURN(o.drain_timeout, uri.QueryDuration("drain_timeout", o.drain_timeout));
  if (line < 1 || buffer < 0 || o.drain_timeout.count() < 0) {
    return InvalidArgumentError(
        "process+ssh:// options max_line_bytes must be >= 1, log_buffer_bytes >= 0 and "
        "drain_timeout >= 0 in " +
        uri.ToString());
  }
  o.max_line_bytes = static_cast<std::size_t>(line);
  o.log_buffer_bytes = static_cast<std::size_t>(buffer);
  return o;
}

Result<std::shared_ptr<SshProcessRunner>> SshProcessRunner::Make(
    const SshProcessRunnerOptions& options) {
  SshSessionOptions so;
  so.config_file = options.ssh_config;
  so.options = options.ssh_options;
  so.connect_timeout = options.connect_timeout;
  so.runtime_dir = options.runtime_dir;
  auto hub = std::make_shared<SshProcessRunnerHub>();
  hub->options = options;
  hub->session =
      SshSession::Shared(SshTarget{options.host, options.port, options.user, options.identity}, so);
  hub->where = hub->session->target().ToString();
  hub->events = std::make_shared<internal::RunnerEventHub>(kScheme + hub->where);
  BITFUSION_RETURN_IF_ERROR(hub->session->Connect());
  return std::shared_ptr<SshProcessRunner>(new SshProcessRunner(std::move(hub)));
}

SshProcessRunner::SshProcessRunner(std::shared_ptr<SshProcessRunnerHub> hub)
    : hub_(std::move(hub)) {}
SshProcessRunner::~SshProcessRunner() = default;

Result<RunnerCapabilities> SshProcessRunner::Capabilities() {
  // Whether the host answers is part of it (as docker://'s /_ping): plans ask after a failed run.
  BITFUSION_RETURN_IF_ERROR(hub_->session->Connect());
  RunnerCapabilities caps;
  caps.engine = "process+ssh";
  caps.version = Version();
  caps.exec = caps.copy = caps.stats = caps.events = true;
  return caps;
}

Status SshProcessRunner::EnsureImage(const std::string& image, Deadline) {
  if (image.empty()) return Status::OK();
  return InvalidArgumentError("process+ssh:// runs host commands and has no images (asked for \"" +
                              image + "\"); use a docker:// runner for images");
}

Result<std::unique_ptr<Container>> SshProcessRunner::Create(const ContainerSpec& spec) {
  return MakeSshProcess(hub_, spec, /*quiet=*/false);
}

Result<std::vector<ContainerInfo>> SshProcessRunner::ListContainers(const Labels& labels) {
  return hub_->handles.List(labels);
}

Result<std::vector<LogLine>> SshProcessRunner::TailLogs(const std::string& container_id,
                                                        std::size_t lines) {
  return hub_->handles.Tail(container_id, lines);
}

Result<Subscription> SshProcessRunner::Events(EventCallback callback) {
  return hub_->events->Subscribe(std::move(callback));
}

Result<ReapReport> SshProcessRunner::Reap(const ReapPolicy&) { return ReapReport{}; }

BITFUSION_REGISTER(ContainerRunner, "process+ssh", SshProcessRunnerOptions, SshProcessRunner);

}  // namespace bitfusion
