#include "runners/process_runner.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cerrno>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

#include "bitfusion/log.h"
#include "bitfusion/registry.h"
#include "bitfusion/version.h"
#include "core/spawn.h"
#include "runners/container_spec_checks.h"
#include "runners/line_splitter.h"
#include "runners/log_fanout.h"
#include "runners/process_ledger.h"

extern char** environ;

namespace bitfusion {
namespace {

// "0-3,6,8-9" as a CPU set; InvalidArgument names the spec field.
Result<cpu_set_t> ParseCpuset(const std::string& text) {
  BITFUSION_ASSIGN_OR_RETURN(auto ranges, internal::ParseCpuList(text));
  cpu_set_t set;
  CPU_ZERO(&set);
  for (const auto& range : ranges) {
    if (range.last >= CPU_SETSIZE) {
      return InvalidArgumentError("cpuset \"" + text + "\" is not a CPU list like \"0-3,6\"");
    }
    for (unsigned cpu = range.first; cpu <= range.last; ++cpu) CPU_SET(cpu, &set);
  }
  return set;
}

// Whether an environment variable's name says it holds a credential.
bool IsCredentialName(std::string_view name) {
  std::string upper(name);
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  for (std::string_view part : {"PASSWORD", "PASSWD", "SECRET", "TOKEN", "CREDENTIAL", "PRIVATE"}) {
    if (upper.find(part) != std::string::npos) return true;
  }
  return upper.ends_with("KEY") || upper == "SSH_AUTH_SOCK";
}

bool IsMinimalName(std::string_view name) {
  for (std::string_view keep :
       {"PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "TZ", "TERM", "TMPDIR"}) {
    if (name == keep) return true;
  }
  return name.starts_with("LC_");
}

// This process's environment as the policy lets a command have it; credentials withheld are
// named (never their values) once per process at info level.
std::map<std::string, std::string> InheritedEnvironment(ProcessRunnerOptions::Env policy) {
  std::map<std::string, std::string> env;
  std::string withheld;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view kv(*e);
    const auto eq = kv.find('=');
    if (eq == std::string_view::npos) continue;
    const std::string_view name = kv.substr(0, eq);
    if (policy == ProcessRunnerOptions::Env::kMinimal && !IsMinimalName(name)) continue;
    if (policy == ProcessRunnerOptions::Env::kHost && IsCredentialName(name)) {
      withheld += (withheld.empty() ? "" : ", ") + std::string(name);
      continue;
    }
    env[std::string(name)] = kv.substr(eq + 1);
  }
  if (!withheld.empty()) {
    LogOnceAt(LogLevel::kInfo, "process-env-credentials",
              "process://: credentials in bitfusion's environment are not passed to commands (",
              withheld, "); set them in the spec's env, or use process://?env=all");
  }
  return env;
}

std::int64_t TimevalNs(const timeval& tv) {
  return static_cast<std::int64_t>(tv.tv_sec) * 1'000'000'000 + tv.tv_usec * 1000;
}

}  // namespace

// What the runner knows of the containers it made: their logs and labels by id, and who
// listens to lifecycle events.
struct ProcessRunnerHub {
  std::string source = "process://";

  std::mutex mu;
  std::map<std::string, std::weak_ptr<internal::LogFanout>> logs;
  std::map<std::string, std::function<ContainerInfo()>> live;  // id -> Inspect of a live handle

  std::mutex events_mu;  // held while callbacks run, so a cancelled one is not running
  int next_subscriber = 0;
  std::map<int, EventCallback> subscribers;

  void Emit(EventType type, const std::string& action, const std::string& id, const Labels& labels,
            Labels extra = {}) {
    Event e;
    e.type = type;
    e.source = source;
    e.subject = id;
    e.action = action;
    e.attributes = labels;
    e.attributes["name"] = id;
    for (auto& [k, v] : extra) e.attributes[k] = std::move(v);
    e.time_ns = WallNowNs();
    std::lock_guard lock(events_mu);
    for (auto& [key, callback] : subscribers) callback(e);
  }
};

namespace {

Result<std::unique_ptr<Container>> MakeProcess(const ProcessRunnerOptions& options,
                                               const std::shared_ptr<ProcessRunnerHub>& hub,
                                               const ContainerSpec& spec, bool quiet);

// One Stats() subscription: a thread reading procfs until told to stop.
struct StatsLoop {
  std::mutex mu;
  std::condition_variable cv;
  bool stop = false;
  std::thread thread;
  std::once_flag joined;

  void End() {
    {
      std::lock_guard lock(mu);
      stop = true;
    }
    cv.notify_all();
    std::call_once(joined, [this] {
      if (thread.joinable()) {
        if (thread.get_id() == std::this_thread::get_id()) {
          thread.detach();
        } else {
          thread.join();
        }
      }
    });
  }
};

// /proc/PID counters of one process (its reaped children's CPU time included).
std::optional<ContainerStats> ReadProcStats(pid_t pid) {
  ContainerStats st;
  st.time_ns = WallNowNs();
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), {});
  const auto paren = text.rfind(')');
  if (paren == std::string::npos) return std::nullopt;
  std::istringstream fields(text.substr(paren + 2));
  std::vector<std::string> f;
  for (std::string x; fields >> x;) f.push_back(x);
  // f[0] is field 3 (state): utime=14, stime=15, cutime=16, cstime=17, threads=20, rss=24.
  if (f.size() < 22) return std::nullopt;
  const double tick_ns = 1e9 / static_cast<double>(::sysconf(_SC_CLK_TCK));
  const auto field = [&](int n) { return std::strtoll(f[n - 3].c_str(), nullptr, 10); };
  st.cpu_ns = static_cast<std::int64_t>(
      static_cast<double>(field(14) + field(15) + field(16) + field(17)) * tick_ns);
  st.pids = field(20);
  st.memory_bytes = field(24) * ::sysconf(_SC_PAGESIZE);
  st.memory_limit_bytes =
      static_cast<std::int64_t>(::sysconf(_SC_PHYS_PAGES)) * ::sysconf(_SC_PAGESIZE);
  cpu_set_t cpus;
  if (::sched_getaffinity(pid, sizeof cpus, &cpus) == 0) st.online_cpus = CPU_COUNT(&cpus);
  std::ifstream io("/proc/" + std::to_string(pid) + "/io");
  for (std::string key, value; io >> key >> value;) {
    if (key == "read_bytes:") st.read_bytes = std::strtoll(value.c_str(), nullptr, 10);
    if (key == "write_bytes:") st.write_bytes = std::strtoll(value.c_str(), nullptr, 10);
  }
  return st;
}

class ProcessContainer final : public Container {
 public:
  ProcessContainer(std::string id, const ProcessRunnerOptions& options,
                   std::shared_ptr<ProcessRunnerHub> hub, std::filesystem::path executable,
                   std::vector<std::string> args, std::vector<std::string> env,
                   std::string working_dir, std::optional<cpu_set_t> cpus, std::int64_t timeout_ns,
                   Labels labels, bool quiet)
      : id_(std::move(id)),
        options_(options),
        hub_(std::move(hub)),
        executable_(std::move(executable)),
        args_(std::move(args)),
        env_(std::move(env)),
        working_dir_(std::move(working_dir)),
        cpus_(cpus),
        timeout_ns_(timeout_ns),
        labels_(std::move(labels)),
        quiet_(quiet) {
    created_ns_ = WallNowNs();
    if (!quiet_) {
      std::lock_guard lock(hub_->mu);
      hub_->logs[id_] = logs_;
      hub_->live[id_] = [this] { return InspectNow(); };
    }
    if (!quiet_) hub_->Emit(EventType::kContainerCreated, "create", id_, labels_);
  }

  ~ProcessContainer() override {
    if (!quiet_) {
      // Unlisted first: Inspect through the hub must not reach a handle being destroyed.
      std::lock_guard lock(hub_->mu);
      hub_->live.erase(id_);
    }
    Teardown();
    if (!quiet_) {
      {
        std::lock_guard lock(hub_->mu);
        hub_->logs.erase(id_);
      }
      hub_->Emit(EventType::kContainerDestroyed, "destroy", id_, labels_);
    }
  }

  void Teardown() {
    std::vector<std::shared_ptr<StatsLoop>> loops;
    {
      std::lock_guard lock(mu_);
      loops.swap(stats_loops_);
    }
    for (auto& loop : loops) loop->End();
    if (started_ && !kept_) {
      // Ends the command and anything it left behind in its process group.
      ::kill(-pid_, SIGKILL);
    } else if (started_) {
      // Kept: stop reading (its later writes to stdout/stderr fail) and leave it running.
      stop_reader_.store(true);
      std::uint64_t one = 1;
      [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof one);
    }
    if (reader_.joinable()) reader_.join();
    if (started_ && Exited()) {
      // The group has been signalled (or the process kept): only now may its pid be freed.
      while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
      }
    }
    if (kept_) {
      internal::ProcessLedger::Keep(ledger_);
    } else {
      internal::ProcessLedger::Remove(ledger_);
    }
    for (int fd : {out_fd_, err_fd_, pidfd_, wake_fd_}) {
      if (fd >= 0) ::close(fd);
    }
  }

  const std::string& id() const override { return id_; }

  Status Start() override {
    if (started_) return FailedPreconditionError("process " + id_ + " was already started");
    int out[2] = {-1, -1};
    int err[2] = {-1, -1};
    if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) {
      Status s = ErrnoError(errno, "creating output pipes for " + id_);
      for (int fd : {out[0], out[1], err[0], err[1]}) {
        if (fd >= 0) ::close(fd);
      }
      return s;
    }
    wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    exit_.start_ns = WallNowNs();
    start_mono_ns_ = MonoNowNs();
    // posix_spawn (core/spawn.h): the cost does not grow with the host's memory, and the
    // command gets default signals and no stray descriptor. Its own process group, so a
    // timeout or Stop() reaches everything it starts.
    internal::SpawnSpec spawn;
    spawn.program = executable_;
    spawn.argv.push_back(executable_.string());
    spawn.argv.insert(spawn.argv.end(), args_.begin(), args_.end());
    spawn.env = env_;
    spawn.stdout_fd = out[1];
    spawn.stderr_fd = err[1];
    spawn.working_dir = working_dir_;
    spawn.new_process_group = true;
    spawn.cpus = cpus_;
    auto spawned = internal::Spawn(spawn);
    ::close(out[1]);
    ::close(err[1]);
    if (!spawned) {
      ::close(out[0]);
      ::close(err[0]);
      return spawned.error();
    }
    pid_ = *spawned;
    // Recorded at once, so that even a SIGKILLed bitfusion leaves the group to the reaper.
    ledger_ =
        internal::ProcessLedger::Record(pid_, labels_, id_ + " " + executable_.filename().string());
    pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
    out_fd_ = out[0];
    err_fd_ = err[0];
    started_ = true;
    if (!quiet_) hub_->Emit(EventType::kContainerStarted, "start", id_, labels_);
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
      return DeadlineExceededError("process " + id_ + " (pid " + std::to_string(pid_) +
                                   ") still running at the wait deadline");
    }
    return exit_;
  }

  Status Stop(std::chrono::nanoseconds grace) override {
    if (!started_ || Finished()) return Status::OK();
    ::kill(-pid_, SIGTERM);
    if (Wait(DeadlineAfter(grace)).ok()) return Status::OK();
    ::kill(-pid_, SIGKILL);
    auto waited = Wait(DeadlineAfter(std::chrono::seconds(10)));
    if (!waited.ok()) {
      return InternalError("process " + id_ + " (pid " + std::to_string(pid_) +
                           ") survived SIGKILL for 10 s; it may be stuck in the kernel");
    }
    return Status::OK();
  }

  Status Kill(int signal) override {
    if (!started_ || Finished()) return Status::OK();
    if (::kill(-pid_, signal) != 0 && errno != ESRCH) {
      return ErrnoError(errno, "signalling process group " + std::to_string(pid_));
    }
    return Status::OK();
  }

  Subscription Logs(LogCallback callback) override { return logs_->Subscribe(std::move(callback)); }

  void Keep() override { kept_ = true; }

  // The "container" of a process is the host: Exec runs a sibling process with this one's
  // environment and directory.
  Result<ExecResult> Exec(const ExecSpec& spec, Deadline deadline) override {
    if (!started_ || Finished()) {
      return FailedPreconditionError("process " + id_ + " is not running; Exec needs it running");
    }
    if (!spec.user.empty()) {
      return InvalidArgumentError("process:// cannot run Exec as another user (\"" + spec.user +
                                  "\"); use docker://");
    }
    ContainerSpec child;
    child.command = spec.command;
    for (const auto& kv : env_) {
      const auto eq = kv.find('=');
      child.env[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
    for (const auto& [k, v] : spec.env) child.env[k] = v;
    child.working_dir = spec.working_dir.empty() ? working_dir_ : spec.working_dir;
    BITFUSION_ASSIGN_OR_RETURN(auto c, MakeProcess(options_, hub_, child, /*quiet=*/true));
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
    return CopyInto(host_path, container_dir);
  }

  Status CopyOut(const std::string& container_path,
                 const std::filesystem::path& host_dir) override {
    return CopyInto(container_path, host_dir);
  }

  Result<bool> PathExists(const std::string& path) override {
    std::error_code ec;
    const bool exists = std::filesystem::exists(Resolve(path), ec);
    if (ec) return ErrnoError(ec.value(), "checking " + path);
    return exists;
  }

  Result<ContainerInfo> Inspect() override { return InspectNow(); }

  Result<Subscription> Stats(StatsCallback callback, std::chrono::nanoseconds interval) override {
    if (!started_) return FailedPreconditionError("process " + id_ + " was not started");
    if (interval.count() <= 0) return InvalidArgumentError("stats interval must be positive");
    auto loop = std::make_shared<StatsLoop>();
    const pid_t pid = pid_;
    loop->thread = std::thread([this, loop, pid, interval, callback = std::move(callback)] {
      std::unique_lock lock(loop->mu);
      while (!loop->stop && !Exited()) {
        lock.unlock();
        if (auto st = ReadProcStats(pid)) callback(*st);
        lock.lock();
        loop->cv.wait_for(lock, interval, [&] { return loop->stop; });
      }
      if (!loop->stop) {
        // It exited: the stream ends, and says so (see Container::Stats).
        lock.unlock();
        ContainerStats last;
        last.time_ns = WallNowNs();
        last.running = false;
        callback(last);
      }
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
    info.pid = started_ && !exited_ ? pid_ : 0;
    info.started_ns = exit_.start_ns;
    if (exited_) {
      info.exit_code = exit_.signal != 0 ? 128 + exit_.signal : exit_.exit_code;
      info.finished_ns = exit_.end_ns;
    }
    return info;
  }

 private:
  // Paths inside the "container" are host paths; relative ones start at its working directory.
  std::filesystem::path Resolve(const std::filesystem::path& p) const {
    if (p.is_absolute() || working_dir_.empty()) return p;
    return std::filesystem::path(working_dir_) / p;
  }

  Status CopyInto(const std::filesystem::path& from, const std::filesystem::path& dir) {
    namespace fs = std::filesystem;
    const fs::path source = Resolve(from);
    const fs::path target_dir = Resolve(dir);
    std::error_code ec;
    if (!fs::exists(source, ec)) return NotFoundError(source.string() + " does not exist");
    if (!fs::is_directory(target_dir, ec)) {
      return NotFoundError("directory " + target_dir.string() + " does not exist");
    }
    fs::copy(source, target_dir / source.filename(),
             fs::copy_options::recursive | fs::copy_options::overwrite_existing |
                 fs::copy_options::copy_symlinks,
             ec);
    if (ec) {
      return ErrnoError(ec.value(), "copying " + source.string() + " into " + target_dir.string());
    }
    return Status::OK();
  }

  struct Stream {
    LogStream kind;
    int* fd;
    LineSplitter lines;
  };

  bool Finished() {
    std::lock_guard lock(mu_);
    return finished_;
  }

  void Deliver(LogStream stream, std::string_view line) { logs_->Deliver(stream, line); }

  // Splits what was read into lines; returns false at end of stream.
  bool Drain(Stream& s) {
    char buf[65536];
    const ssize_t n = ::read(*s.fd, buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return true;
    if (n <= 0) {
      s.lines.Finish([&](std::string_view line) { Deliver(s.kind, line); });
      ::close(*s.fd);
      *s.fd = -1;
      return false;
    }
    s.lines.Feed(std::string_view(buf, static_cast<std::size_t>(n)),
                 [&](std::string_view line) { Deliver(s.kind, line); });
    return true;
  }

  // Collects the exit status and rusage of the exited child without reaping it: waitid with
  // WNOWAIT (the raw syscall's fifth argument is the same rusage wait4 gives). The zombie keeps
  // its pid, and with it the process group id, from being reused until Teardown has signalled
  // the group and reaped it; after a reap, kill(-pid) could reach a stranger's new group.
  void CollectExit() {
    siginfo_t info{};
    rusage usage{};
    if (::syscall(SYS_waitid, P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT,
                  &usage) != 0 ||
        info.si_pid != pid_) {
      return;
    }
    const std::int64_t end_mono = MonoNowNs();
    std::lock_guard lock(mu_);
    if (exited_) return;
    exited_ = true;
    exit_.end_ns = WallNowNs();
    exit_.wall_time_ns = end_mono - start_mono_ns_;
    if (info.si_code == CLD_EXITED) {
      exit_.exit_code = info.si_status;
    } else if (info.si_code == CLD_KILLED || info.si_code == CLD_DUMPED) {
      exit_.exit_code = -1;
      exit_.signal = info.si_status;
    }
    auto& u = exit_.usage;
    u.user_cpu_ns = TimevalNs(usage.ru_utime);
    u.system_cpu_ns = TimevalNs(usage.ru_stime);
    u.max_rss_bytes = static_cast<std::int64_t>(usage.ru_maxrss) * 1024;
    u.minor_faults = usage.ru_minflt;
    u.major_faults = usage.ru_majflt;
    u.voluntary_switches = usage.ru_nvcsw;
    u.involuntary_switches = usage.ru_nivcsw;
    u.read_bytes = static_cast<std::int64_t>(usage.ru_inblock) * 512;
    u.write_bytes = static_cast<std::int64_t>(usage.ru_oublock) * 512;
  }

  bool Exited() {
    std::lock_guard lock(mu_);
    return exited_;
  }

  // The one thread per process: reads output, enforces the timeout, collects the exit.
  void ReadUntilExit() {
    Stream streams[2] = {{LogStream::kStdout, &out_fd_, LineSplitter(options_.max_line_bytes)},
                         {LogStream::kStderr, &err_fd_, LineSplitter(options_.max_line_bytes)}};
    const std::int64_t timeout_at = timeout_ns_ > 0 ? start_mono_ns_ + timeout_ns_ : 0;
    std::int64_t drain_until = 0;
    bool timeout_fired = false;
    while (!stop_reader_.load()) {
      const bool exited = Exited();
      if (exited && out_fd_ < 0 && err_fd_ < 0) break;
      const std::int64_t now = MonoNowNs();
      if (exited && drain_until == 0) drain_until = now + options_.drain_timeout.count();
      if (exited && now >= drain_until) {
        // What is already in the pipes was written before the deadline (this thread may simply
        // not have run for a while on a loaded machine): take it, bounded, then stop reading.
        for (auto& s : streams) {
          for (int reads = 0; *s.fd >= 0 && reads < 16; ++reads) {
            pollfd p{*s.fd, POLLIN, 0};
            if (::poll(&p, 1, 0) <= 0 || !Drain(s)) break;
          }
        }
        if (out_fd_ >= 0 || err_fd_ >= 0) {
          LogAt(LogLevel::kInfo, "process ", id_,
                " exited but something it started still holds "
                "its output open; no longer reading it");
        }
        break;
      }
      if (!exited && !timeout_fired && timeout_at != 0 && now >= timeout_at) {
        ::kill(-pid_, SIGKILL);
        timeout_fired = true;
        std::lock_guard lock(mu_);
        exit_.timed_out = true;
      }
      pollfd fds[4];
      nfds_t n = 0;
      int stream_slot[2] = {-1, -1};
      for (int i = 0; i < 2; ++i) {
        if (*streams[i].fd >= 0) {
          stream_slot[i] = static_cast<int>(n);
          fds[n++] = {*streams[i].fd, POLLIN, 0};
        }
      }
      const int pid_slot = (!exited && pidfd_ >= 0) ? static_cast<int>(n) : -1;
      if (pid_slot >= 0) fds[n++] = {pidfd_, POLLIN, 0};
      fds[n++] = {wake_fd_, POLLIN, 0};
      // Without a pidfd (old kernels) fall back to checking for exit every 10 ms.
      std::int64_t wait_ns = (pidfd_ < 0 && !exited) ? 10'000'000 : -1;
      const std::int64_t until = exited ? drain_until : (timeout_fired ? 0 : timeout_at);
      if (until != 0) {
        const std::int64_t left = std::max<std::int64_t>(until - now, 0);
        wait_ns = wait_ns < 0 ? left : std::min(wait_ns, left);
      }
      const int timeout_ms =
          wait_ns < 0 ? -1
                      : static_cast<int>(std::min<std::int64_t>(wait_ns / 1'000'000 + 1, 60'000));
      const int ready = ::poll(fds, n, timeout_ms);
      if (ready < 0 && errno != EINTR) {
        LogAt(LogLevel::kError, "poll on process ", id_, ": ", std::strerror(errno));
        break;
      }
      for (int i = 0; i < 2; ++i) {
        if (stream_slot[i] >= 0 && (fds[stream_slot[i]].revents & (POLLIN | POLLHUP | POLLERR))) {
          Drain(streams[i]);
        }
      }
      if (!exited && (pidfd_ < 0 || (pid_slot >= 0 && fds[pid_slot].revents))) CollectExit();
    }
    for (auto& s : streams) {
      s.lines.Finish([&](std::string_view line) { Deliver(s.kind, line); });
    }
    if (!kept_ && !Exited()) {
      // Reading stopped early (poll failed): still wait for the child and collect its status.
      siginfo_t info{};
      while (::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOWAIT) < 0 &&
             errno == EINTR) {
      }
      CollectExit();
    }
    ExitStatus ended;
    {
      std::lock_guard lock(mu_);
      finished_ = true;
      ended = exit_;
      cv_.notify_all();
    }
    if (!quiet_ && !kept_) {
      // Docker's convention, so reactors read both engines alike: 128+N for signal N.
      const int code = ended.signal != 0 ? 128 + ended.signal : ended.exit_code;
      hub_->Emit(EventType::kContainerDied, "die", id_, labels_,
                 {{"exitCode", std::to_string(code)}});
    }
  }

  const std::string id_;
  const ProcessRunnerOptions options_;
  const std::shared_ptr<ProcessRunnerHub> hub_;
  const std::filesystem::path executable_;
  const std::vector<std::string> args_;
  const std::vector<std::string> env_;
  const std::string working_dir_;
  const std::optional<cpu_set_t> cpus_;
  const std::int64_t timeout_ns_;
  const Labels labels_;
  const bool quiet_;  // an Exec helper: no events, not listed
  std::int64_t created_ns_ = 0;
  const std::shared_ptr<internal::LogFanout> logs_ =
      std::make_shared<internal::LogFanout>(options_.log_buffer_bytes);

  std::atomic<bool> started_{false};
  std::atomic<bool> kept_{false};
  std::filesystem::path ledger_;  // this group's entry in the process ledger
  std::atomic<bool> stop_reader_{false};
  pid_t pid_ = -1;
  int pidfd_ = -1;
  int out_fd_ = -1;
  int err_fd_ = -1;
  int wake_fd_ = -1;
  std::int64_t start_mono_ns_ = 0;
  std::thread reader_;

  std::mutex mu_;
  std::condition_variable cv_;
  bool exited_ = false;    // exited; a zombie until Teardown reaps it
  bool finished_ = false;  // exited and output drained: Wait may return
  ExitStatus exit_;

  std::vector<std::shared_ptr<StatsLoop>> stats_loops_;  // under mu_
};

std::string NextId() {
  static std::atomic<int> counter{0};
  return "process-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
}

}  // namespace

Result<ProcessRunnerOptions> ProcessRunnerOptions::FromUri(const Uri& uri) {
  BITFUSION_RETURN_IF_ERROR(
      uri.CheckQueryKeys({"max_line_bytes", "log_buffer_bytes", "drain_timeout", "env"}));
  if (!uri.host.empty() || !uri.path.empty()) {
    return InvalidArgumentError("process:// takes no host or path, got \"" + uri.ToString() +
                                "\"; write process://");
  }
  ProcessRunnerOptions o;
  BITFUSION_ASSIGN_OR_RETURN(auto line, uri.QueryInt("max_line_bytes", 64 * 1024));
  BITFUSION_ASSIGN_OR_RETURN(auto buffer, uri.QueryInt("log_buffer_bytes", 1 << 20));
  BITFUSION_ASSIGN_OR_RETURN(o.drain_timeout, uri.QueryDuration("drain_timeout", o.drain_timeout));
  if (line < 1 || buffer < 0) {
    return InvalidArgumentError("max_line_bytes must be >= 1 and log_buffer_bytes >= 0 in " +
                                uri.ToString());
  }
  o.max_line_bytes = static_cast<std::size_t>(line);
  o.log_buffer_bytes = static_cast<std::size_t>(buffer);
  const std::string env = uri.Query("env").value_or("host");
  if (env == "host") {
    o.env = ProcessRunnerOptions::Env::kHost;
  } else if (env == "all") {
    o.env = ProcessRunnerOptions::Env::kAll;
  } else if (env == "minimal") {
    o.env = ProcessRunnerOptions::Env::kMinimal;
  } else {
    return InvalidArgumentError("process://?env=" + env +
                                ": expected host (the environment without credentials, the "
                                "default), all or minimal");
  }
  return o;
}

Result<std::shared_ptr<ProcessRunner>> ProcessRunner::Make(const ProcessRunnerOptions& options) {
  return std::shared_ptr<ProcessRunner>(new ProcessRunner(options));
}

ProcessRunner::ProcessRunner(const ProcessRunnerOptions& options)
    : options_(options), hub_(std::make_shared<ProcessRunnerHub>()) {}
ProcessRunner::~ProcessRunner() = default;

Result<RunnerCapabilities> ProcessRunner::Capabilities() {
  RunnerCapabilities caps;
  caps.engine = "process";
  caps.version = Version();
  caps.exec = true;
  caps.copy = true;
  caps.stats = true;
  caps.events = true;
  caps.reap = true;  // through the process ledger
  return caps;
}

Status ProcessRunner::EnsureImage(const std::string& image, Deadline) {
  if (image.empty()) return Status::OK();
  return InvalidArgumentError("process:// runs host commands and has no images (asked for \"" +
                              image + "\"); use a docker:// runner for images");
}

namespace {

Result<std::unique_ptr<Container>> MakeProcess(const ProcessRunnerOptions& options,
                                               const std::shared_ptr<ProcessRunnerHub>& hub,
                                               const ContainerSpec& spec, bool quiet) {
  if (!spec.image.empty()) {
    return InvalidArgumentError("process:// runs host commands and has no images (asked for \"" +
                                spec.image + "\"); use a docker:// runner for images");
  }
  std::vector<std::string> unsupported;
  if (!spec.mounts.empty()) unsupported.push_back("mounts");
  if (!spec.device_requests.empty()) unsupported.push_back("device_requests");
  if (!spec.cdi_devices.empty()) unsupported.push_back("cdi_devices");
  if (!spec.device_cgroup_rules.empty()) unsupported.push_back("device_cgroup_rules");
  if (!spec.user.empty()) unsupported.push_back("user");
  if (spec.cpus != 0) unsupported.push_back("cpus");
  if (spec.memory_bytes != 0) unsupported.push_back("memory_bytes");
  if (spec.shm_bytes != 0) unsupported.push_back("shm_bytes");
  if (!spec.health_check.command.empty()) unsupported.push_back("health_check");
  if (!spec.network_mode.empty() && spec.network_mode != "host") {
    unsupported.push_back("network_mode");
  }
  if (!unsupported.empty()) {
    std::string list;
    for (const auto& f : unsupported) list += (list.empty() ? "" : ", ") + f;
    return InvalidArgumentError("process:// cannot honour " + list +
                                " (they need a container engine); drop them or use docker://");
  }
  // A host process already sees host devices; only identity mappings make sense.
  for (const auto& d : spec.devices) {
    if (!d.path_in_container.empty() && d.path_in_container != d.path_on_host) {
      return InvalidArgumentError("process:// cannot remap device " + d.path_on_host + " to " +
                                  d.path_in_container);
    }
    if (!std::filesystem::exists(d.path_on_host)) {
      return NotFoundError("device " + d.path_on_host + " does not exist on this host");
    }
  }
  std::vector<std::string> argv = spec.entrypoint;
  argv.insert(argv.end(), spec.command.begin(), spec.command.end());
  if (argv.empty() || argv[0].empty()) {
    return InvalidArgumentError("container spec has no command; set command (argv) to run");
  }

  std::map<std::string, std::string> env_map = InheritedEnvironment(options.env);
  BITFUSION_RETURN_IF_ERROR(internal::CheckEnvironmentNames(spec.env));
  for (const auto& [key, value] : spec.env) env_map[key] = value;
  std::vector<std::string> env;
  env.reserve(env_map.size());
  for (const auto& [key, value] : env_map) env.push_back(key + "=" + value);

  std::filesystem::path executable;
  if (argv[0].find('/') != std::string::npos) {
    executable = argv[0];
    if (executable.is_relative() && !spec.working_dir.empty()) {
      executable = std::filesystem::path(spec.working_dir) / executable;
    }
    if (::access(executable.c_str(), X_OK) != 0) {
      return ErrnoError(errno, "command " + executable.string() + " cannot be executed");
    }
  } else {
    const std::string path = env_map.count("PATH") ? env_map["PATH"] : "/usr/bin:/bin";
    std::string_view dirs(path);
    while (executable.empty()) {
      const auto colon = dirs.find(':');
      std::filesystem::path candidate =
          std::filesystem::path(std::string(dirs.substr(0, colon))) / argv[0];
      if (::access(candidate.c_str(), X_OK) == 0 && !std::filesystem::is_directory(candidate)) {
        executable = candidate;
      }
      if (colon == std::string_view::npos) break;
      dirs.remove_prefix(colon + 1);
    }
    if (executable.empty()) {
      return NotFoundError("command \"" + argv[0] + "\" not found in PATH (" + path +
                           "); give a full path or install it");
    }
  }
  if (!spec.working_dir.empty() && !std::filesystem::is_directory(spec.working_dir)) {
    return NotFoundError("working directory " + spec.working_dir + " does not exist");
  }
  std::optional<cpu_set_t> cpus;
  if (!spec.cpuset.empty()) {
    BITFUSION_ASSIGN_OR_RETURN(cpus, ParseCpuset(spec.cpuset));
  }
  BITFUSION_RETURN_IF_ERROR(internal::CheckTimeout(spec.timeout_ns));
  std::vector<std::string> args(argv.begin() + 1, argv.end());
  return std::unique_ptr<Container>(new ProcessContainer(
      spec.name.empty() ? NextId() : spec.name, options, hub, executable, std::move(args),
      std::move(env), spec.working_dir, cpus, spec.timeout_ns, spec.labels, quiet));
}

bool HasLabels(const Labels& have, const Labels& want) {
  for (const auto& [k, v] : want) {
    auto it = have.find(k);
    if (it == have.end() || it->second != v) return false;
  }
  return true;
}

}  // namespace

Result<std::unique_ptr<Container>> ProcessRunner::Create(const ContainerSpec& spec) {
  return MakeProcess(options_, hub_, spec, /*quiet=*/false);
}

Result<std::vector<ContainerInfo>> ProcessRunner::ListContainers(const Labels& labels) {
  std::vector<ContainerInfo> out;
  std::lock_guard lock(hub_->mu);
  for (const auto& [id, inspect] : hub_->live) {
    ContainerInfo info = inspect();
    if (HasLabels(info.labels, labels)) out.push_back(std::move(info));
  }
  return out;
}

Result<std::vector<LogLine>> ProcessRunner::TailLogs(const std::string& container_id,
                                                     std::size_t lines) {
  std::shared_ptr<internal::LogFanout> logs;
  {
    std::lock_guard lock(hub_->mu);
    auto it = hub_->logs.find(container_id);
    if (it != hub_->logs.end()) logs = it->second.lock();
  }
  if (!logs) {
    return NotFoundError("no process " + container_id +
                         " in this process:// runner (its handle may be gone)");
  }
  return logs->Tail(lines);
}

Result<Subscription> ProcessRunner::Events(EventCallback callback) {
  std::lock_guard lock(hub_->events_mu);
  const int key = hub_->next_subscriber++;
  hub_->subscribers.emplace(key, std::move(callback));
  std::weak_ptr<ProcessRunnerHub> weak = hub_;
  return Subscription([weak, key] {
    if (auto hub = weak.lock()) {
      std::lock_guard inner(hub->events_mu);
      hub->subscribers.erase(key);
    }
  });
}

Result<ReapReport> ProcessRunner::Reap(const ReapPolicy& policy) {
  return internal::ProcessLedger::Reap(policy);
}

BITFUSION_REGISTER(ContainerRunner, "process", ProcessRunnerOptions, ProcessRunner);

}  // namespace bitfusion
