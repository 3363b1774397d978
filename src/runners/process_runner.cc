#include "runners/process_runner.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cerrno>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>

#include "bitfusion/log.h"
#include "bitfusion/registry.h"
#include "bitfusion/version.h"
#include "core/ascii.h"
#include "core/cpu_list.h"
#include "core/spawn.h"
#include "runners/container_spec_checks.h"
#include "runners/handle_table.h"
#include "runners/host_exec.h"
#include "runners/log_fanout.h"
#include "runners/process_child.h"
#include "runners/process_ledger.h"
#include "runners/runner_event_hub.h"

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
  const std::string upper = internal::AsciiUpper(name);
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

}  // namespace

// What the runner knows of the containers it made (their logs and Inspect by id), and who
// listens to lifecycle events.
struct ProcessRunnerHub {
  internal::HandleTable handles{"process://"};

  const std::shared_ptr<internal::RunnerEventHub> events =
      std::make_shared<internal::RunnerEventHub>("process://");
};

namespace {

Result<std::unique_ptr<Container>> MakeProcess(const ProcessRunnerOptions& options,
                                               const std::shared_ptr<ProcessRunnerHub>& hub,
                                               const ContainerSpec& spec, bool quiet);

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
    if (!quiet_) hub_->handles.Add(id_, logs_, [this] { return InspectNow(); });
    if (!quiet_) hub_->events->Emit(EventType::kContainerCreated, "create", id_, labels_);
  }

  ~ProcessContainer() override {
    if (!quiet_) {
      // Unlisted first: Inspect through the hub must not reach a handle being destroyed.
      hub_->handles.Unlist(id_);
    }
    Teardown();
    if (!quiet_) {
      hub_->handles.Forget(id_);
      hub_->events->Emit(EventType::kContainerDestroyed, "destroy", id_, labels_);
    }
  }

  void Teardown() {
    if (!started_) return;
    if (!kept_) {
      // Ends the command and anything it left behind in its process group.
      ::kill(-pid_, SIGKILL);
    }
    // Kept: its output is no longer read (its later writes to stdout/stderr fail) and it runs on.
    child_->Close(/*keep_running=*/kept_);
    if (kept_) {
      internal::ProcessLedger::Keep(ledger_);
    } else {
      internal::ProcessLedger::Remove(ledger_);
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
    internal::ProcessChildOptions watch;
    watch.id = id_;
    watch.max_line_bytes = options_.max_line_bytes;
    watch.drain_timeout = options_.drain_timeout;
    watch.timeout_ns = timeout_ns_;
    watch.start_ns = WallNowNs();
    watch.start_mono_ns = MonoNowNs();
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
    // Followed on the event loop once "start" is out (so that "die" comes after it); `this`
    // outlives the following there (Teardown waits for its end).
    child_ = internal::ProcessChild::Make(
        pid_, out[0], err[0], watch,
        [logs = logs_](LogStream s, std::string_view line) { logs->Deliver(s, line); },
        [this](const ExitStatus& ended) { ReportDeath(ended); });
    started_ = true;
    if (!quiet_) hub_->events->Emit(EventType::kContainerStarted, "start", id_, labels_);
    child_->Follow();
    return Status::OK();
  }

  Result<ExitStatus> Wait(Deadline deadline) override {
    if (!started_) return FailedPreconditionError("process " + id_ + " was not started");
    if (!child_->WaitFinished(deadline)) {
      return DeadlineExceededError("process " + id_ + " (pid " + std::to_string(pid_) +
                                   ") still running at the wait deadline");
    }
    return child_->exit_status();
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
    std::map<std::string, std::string> env;
    for (const auto& kv : env_) {
      const auto eq = kv.find('=');
      env[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
    BITFUSION_ASSIGN_OR_RETURN(
        auto c,
        MakeProcess(options_, hub_, internal::HostExecSpec(spec, std::move(env), working_dir_),
                    /*quiet=*/true));
    return internal::RunHostExec(*c, deadline, id_);
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
    return child_->Stats(std::move(callback), interval);
  }

  ContainerInfo InspectNow() {
    ContainerInfo info;
    info.id = id_;
    info.name = id_;
    info.labels = labels_;
    info.created_ns = created_ns_;
    if (!started_) {
      info.state = "created";
      return info;
    }
    const ExitStatus exit = child_->exit_status();
    const bool exited = child_->exited();
    info.state = exited ? "exited" : "running";
    info.pid = exited ? 0 : pid_;
    info.started_ns = exit.start_ns;
    if (exited) {
      info.exit_code = exit.signal != 0 ? 128 + exit.signal : exit.exit_code;
      info.finished_ns = exit.end_ns;
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

  bool Finished() { return started_ && child_->finished(); }

  // On the loop, once the child has exited and its output is read.
  void ReportDeath(const ExitStatus& ended) {
    if (!quiet_ && !kept_) {
      // Docker's convention, so reactors read both engines alike: 128+N for signal N.
      const int code = ended.signal != 0 ? 128 + ended.signal : ended.exit_code;
      hub_->events->Emit(EventType::kContainerDied, "die", id_, labels_,
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
  pid_t pid_ = -1;
  std::shared_ptr<internal::ProcessChild> child_;  // set before started_
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
  BITFUSION_ASSIGN_OR_RETURN(std::vector<std::string> argv,
                             internal::HostCommandArgv(spec, "process://"));
  for (const auto& d : spec.devices) {
    if (!std::filesystem::exists(d.path_on_host)) {
      return NotFoundError("device " + d.path_on_host + " does not exist on this host");
    }
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

}  // namespace

Result<std::unique_ptr<Container>> ProcessRunner::Create(const ContainerSpec& spec) {
  return MakeProcess(options_, hub_, spec, /*quiet=*/false);
}

Result<std::vector<ContainerInfo>> ProcessRunner::ListContainers(const Labels& labels) {
  return hub_->handles.List(labels);
}

Result<std::vector<LogLine>> ProcessRunner::TailLogs(const std::string& container_id,
                                                     std::size_t lines) {
  return hub_->handles.Tail(container_id, lines);
}

Result<Subscription> ProcessRunner::Events(EventCallback callback) {
  return hub_->events->Subscribe(std::move(callback));
}

Result<ReapReport> ProcessRunner::Reap(const ReapPolicy& policy) {
  return internal::ProcessLedger::Reap(policy);
}

BITFUSION_REGISTER(ContainerRunner, "process", ProcessRunnerOptions, ProcessRunner);

}  // namespace bitfusion
