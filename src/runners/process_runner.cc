#include "runners/process_runner.h"

// Boost.Process v2, header-only (its std::filesystem mode does not compile in 1.81, so its
// paths are boost::filesystem ones).
#include <boost/asio/io_context.hpp>
#include <boost/process/v2/environment.hpp>
// 1.81 forgets this one in header-only mode (process_environment::on_setup lives there).
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <boost/process/v2/impl/environment.ipp>
#include <boost/process/v2/process.hpp>
#include <boost/process/v2/start_dir.hpp>
#include <boost/process/v2/stdio.hpp>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

#include "bitfusion/log.h"
#include "bitfusion/registry.h"
#include "bitfusion/version.h"

extern char** environ;

namespace bitfusion {
namespace {

namespace bp = boost::process::v2;

// Parses "0-3,6,8-9" into a CPU set; InvalidArgument names the spec field.
Result<cpu_set_t> ParseCpuset(const std::string& text) {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::string_view rest(text);
  auto bad = [&] {
    return InvalidArgumentError("cpuset \"" + text + "\" is not a CPU list like \"0-3,6\"");
  };
  while (!rest.empty()) {
    const auto comma = rest.find(',');
    std::string_view item = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    if (comma != std::string_view::npos && rest.empty()) return bad();
    const auto dash = item.find('-');
    unsigned lo = 0, hi = 0;
    std::string_view a = item.substr(0, dash);
    std::string_view b = dash == std::string_view::npos ? a : item.substr(dash + 1);
    auto r1 = std::from_chars(a.data(), a.data() + a.size(), lo);
    auto r2 = std::from_chars(b.data(), b.data() + b.size(), hi);
    if (a.empty() || b.empty() || r1.ec != std::errc() || r2.ec != std::errc() ||
        r1.ptr != a.data() + a.size() || r2.ptr != b.data() + b.size() || lo > hi ||
        hi >= CPU_SETSIZE) {
      return bad();
    }
    for (unsigned cpu = lo; cpu <= hi; ++cpu) CPU_SET(cpu, &set);
  }
  if (CPU_COUNT(&set) == 0) return bad();
  return set;
}

// Runs in the child between fork and exec: only async-signal-safe calls.
struct ChildSetup {
  bool pin = false;
  cpu_set_t cpus{};

  template <class Launcher>
  boost::system::error_code on_exec_setup(Launcher&, const bp::filesystem::path&,
                                          const char* const*&) {
    // Own process group, so a timeout or Stop() reaches everything the command started.
    if (::setpgid(0, 0) != 0) return {errno, boost::system::system_category()};
    if (pin && ::sched_setaffinity(0, sizeof cpus, &cpus) != 0) {
      return {errno, boost::system::system_category()};
    }
    return {};
  }
};

std::int64_t TimevalNs(const timeval& tv) {
  return static_cast<std::int64_t>(tv.tv_sec) * 1'000'000'000 + tv.tv_usec * 1000;
}

class ProcessContainer final : public Container {
 public:
  ProcessContainer(std::string id, const ProcessRunnerOptions& options,
                   std::filesystem::path executable, std::vector<std::string> args,
                   std::vector<std::string> env, std::string working_dir,
                   std::optional<cpu_set_t> cpus, std::int64_t timeout_ns)
      : id_(std::move(id)),
        options_(options),
        executable_(std::move(executable)),
        args_(std::move(args)),
        env_(std::move(env)),
        working_dir_(std::move(working_dir)),
        cpus_(cpus),
        timeout_ns_(timeout_ns) {}

  ~ProcessContainer() override {
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
    ChildSetup setup;
    if (cpus_) {
      setup.pin = true;
      setup.cpus = *cpus_;
    }
    boost::asio::io_context context;
    boost::system::error_code ec;
    exit_.start_ns = WallNowNs();
    start_mono_ns_ = MonoNowNs();
    auto child = bp::default_process_launcher()(
        context.get_executor(), ec, bp::filesystem::path(executable_.string()), args_,
        bp::process_stdio{nullptr, out[1], err[1]}, bp::process_environment(env_),
        bp::process_start_dir(bp::filesystem::path(
            working_dir_.empty() ? std::filesystem::current_path().string() : working_dir_)),
        setup);
    ::close(out[1]);
    ::close(err[1]);
    if (ec) {
      ::close(out[0]);
      ::close(err[0]);
      return ErrnoError(ec.value(), "starting " + executable_.string());
    }
    pid_ = child.id();
    // We reap the child ourselves (wait4 for its rusage); the handle must not.
    child.detach();
    pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
    out_fd_ = out[0];
    err_fd_ = err[0];
    started_ = true;
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

  Subscription Logs(LogCallback callback) override {
    std::lock_guard lock(log_mu_);
    for (const auto& [stream, line] : retained_) callback(stream, line);
    const int key = next_subscriber_++;
    subscribers_.emplace(key, std::move(callback));
    return Subscription([this, key] {
      std::lock_guard inner(log_mu_);
      subscribers_.erase(key);
    });
  }

  void Keep() override { kept_ = true; }

 private:
  struct Stream {
    LogStream kind;
    int* fd;
    std::string partial;
  };

  bool Finished() {
    std::lock_guard lock(mu_);
    return finished_;
  }

  void Deliver(LogStream stream, std::string_view line) {
    std::lock_guard lock(log_mu_);
    retained_.emplace_back(stream, std::string(line));
    retained_bytes_ += line.size();
    while (retained_bytes_ > options_.log_buffer_bytes && !retained_.empty()) {
      retained_bytes_ -= retained_.front().second.size();
      retained_.pop_front();
    }
    for (auto& [key, callback] : subscribers_) callback(stream, line);
  }

  // Splits what was read into lines; returns false at end of stream.
  bool Drain(Stream& s) {
    char buf[65536];
    const ssize_t n = ::read(*s.fd, buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return true;
    if (n <= 0) {
      if (!s.partial.empty()) Deliver(s.kind, s.partial);
      s.partial.clear();
      ::close(*s.fd);
      *s.fd = -1;
      return false;
    }
    std::string_view data(buf, static_cast<std::size_t>(n));
    while (!data.empty()) {
      const auto nl = data.find('\n');
      if (nl == std::string_view::npos) {
        s.partial.append(data);
        data = {};
      } else {
        s.partial.append(data.substr(0, nl));
        data.remove_prefix(nl + 1);
        Deliver(s.kind, s.partial);
        s.partial.clear();
      }
      while (s.partial.size() >= options_.max_line_bytes) {
        Deliver(s.kind, std::string_view(s.partial).substr(0, options_.max_line_bytes));
        s.partial.erase(0, options_.max_line_bytes);
      }
    }
    return true;
  }

  void Reap() {
    int status = 0;
    rusage usage{};
    const pid_t r = ::wait4(pid_, &status, WNOHANG, &usage);
    if (r != pid_) return;
    const std::int64_t end_mono = MonoNowNs();
    std::lock_guard lock(mu_);
    exited_ = true;
    exit_.end_ns = WallNowNs();
    exit_.wall_time_ns = end_mono - start_mono_ns_;
    if (WIFEXITED(status)) {
      exit_.exit_code = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
      exit_.exit_code = -1;
      exit_.signal = WTERMSIG(status);
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

  // The one thread per process: reads output, enforces the timeout, reaps the child.
  void ReadUntilExit() {
    Stream streams[2] = {{LogStream::kStdout, &out_fd_, {}}, {LogStream::kStderr, &err_fd_, {}}};
    const std::int64_t timeout_at = timeout_ns_ > 0 ? start_mono_ns_ + timeout_ns_ : 0;
    std::int64_t drain_until = 0;
    bool timeout_fired = false;
    while (!stop_reader_.load()) {
      const bool exited = Exited();
      if (exited && out_fd_ < 0 && err_fd_ < 0) break;
      const std::int64_t now = MonoNowNs();
      if (exited && drain_until == 0) drain_until = now + options_.drain_timeout.count();
      if (exited && now >= drain_until) {
        LogAt(LogLevel::kInfo, "process ", id_,
              " exited but something it started still holds "
              "its output open; no longer reading it");
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
      if (!exited && (pidfd_ < 0 || (pid_slot >= 0 && fds[pid_slot].revents))) Reap();
    }
    for (auto& s : streams) {
      if (!s.partial.empty()) Deliver(s.kind, s.partial);
    }
    if (!kept_ && !Exited()) {
      // Reading stopped early (poll failed): still wait for the child and collect its status.
      siginfo_t info{};
      while (::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOWAIT) < 0 &&
             errno == EINTR) {
      }
      Reap();
    }
    std::lock_guard lock(mu_);
    finished_ = true;
    cv_.notify_all();
  }

  const std::string id_;
  const ProcessRunnerOptions options_;
  const std::filesystem::path executable_;
  const std::vector<std::string> args_;
  const std::vector<std::string> env_;
  const std::string working_dir_;
  const std::optional<cpu_set_t> cpus_;
  const std::int64_t timeout_ns_;

  bool started_ = false;
  std::atomic<bool> kept_{false};
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
  bool exited_ = false;    // reaped
  bool finished_ = false;  // reaped and output drained: Wait may return
  ExitStatus exit_;

  std::mutex log_mu_;  // held while callbacks run, so Cancel() waits for a running one
  std::deque<std::pair<LogStream, std::string>> retained_;
  std::size_t retained_bytes_ = 0;
  int next_subscriber_ = 0;
  std::map<int, LogCallback> subscribers_;
};

std::string NextId() {
  static std::atomic<int> counter{0};
  return "process-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
}

}  // namespace

Result<ProcessRunnerOptions> ProcessRunnerOptions::FromUri(const Uri& uri) {
  BITFUSION_RETURN_IF_ERROR(
      uri.CheckQueryKeys({"max_line_bytes", "log_buffer_bytes", "drain_timeout"}));
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
  return o;
}

Result<std::shared_ptr<ProcessRunner>> ProcessRunner::Make(const ProcessRunnerOptions& options) {
  return std::shared_ptr<ProcessRunner>(new ProcessRunner(options));
}

Result<RunnerCapabilities> ProcessRunner::Capabilities() {
  RunnerCapabilities caps;
  caps.engine = "process";
  caps.version = Version();
  return caps;
}

Status ProcessRunner::EnsureImage(const std::string& image, Deadline) {
  if (image.empty()) return Status::OK();
  return InvalidArgumentError("process:// runs host commands and has no images (asked for \"" +
                              image + "\"); use a docker:// runner for images");
}

Result<std::unique_ptr<Container>> ProcessRunner::Create(const ContainerSpec& spec) {
  BITFUSION_RETURN_IF_ERROR(EnsureImage(spec.image, kNoDeadline));
  std::vector<std::string> unsupported;
  if (!spec.mounts.empty()) unsupported.push_back("mounts");
  if (!spec.device_requests.empty()) unsupported.push_back("device_requests");
  if (!spec.cdi_devices.empty()) unsupported.push_back("cdi_devices");
  if (!spec.device_cgroup_rules.empty()) unsupported.push_back("device_cgroup_rules");
  if (!spec.user.empty()) unsupported.push_back("user");
  if (spec.cpus != 0) unsupported.push_back("cpus");
  if (spec.memory_bytes != 0) unsupported.push_back("memory_bytes");
  if (spec.shm_bytes != 0) unsupported.push_back("shm_bytes");
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

  std::map<std::string, std::string> env_map;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view kv(*e);
    const auto eq = kv.find('=');
    if (eq != std::string_view::npos) env_map[std::string(kv.substr(0, eq))] = kv.substr(eq + 1);
  }
  for (const auto& [key, value] : spec.env) {
    if (key.empty() || key.find('=') != std::string::npos) {
      return InvalidArgumentError("environment variable name \"" + key + "\" is invalid");
    }
    env_map[key] = value;
  }
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
  if (spec.timeout_ns < 0) return InvalidArgumentError("timeout must not be negative");
  std::vector<std::string> args(argv.begin() + 1, argv.end());
  return std::unique_ptr<Container>(new ProcessContainer(
      spec.name.empty() ? NextId() : spec.name, options_, executable, std::move(args),
      std::move(env), spec.working_dir, cpus, spec.timeout_ns));
}

BITFUSION_REGISTER(ContainerRunner, "process", ProcessRunnerOptions, ProcessRunner);

}  // namespace bitfusion
