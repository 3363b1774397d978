#include "runners/ssh_process_runner.h"

#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>  // sigabbrev_np
#include <map>
#include <mutex>

#include "bitfusion/log.h"
#include "bitfusion/registry.h"
#include "bitfusion/version.h"
#include "core/cpu_list.h"
#include "core/shell_quote.h"
#include "core/spawn.h"
#include "net/ssh_session.h"
#include "net/ssh_uri.h"
#include "runners/container_spec_checks.h"
#include "runners/handle_table.h"
#include "runners/host_exec.h"
#include "runners/log_fanout.h"
#include "runners/runner_event_hub.h"
#include "runners/ssh_process_channel.h"
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
    internal::SshProcessChannelOptions o;
    o.id = id_;
    o.where = hub_->where;
    o.nonce = nonce_;
    o.max_line_bytes = hub_->options.max_line_bytes;
    o.drain_timeout = hub_->options.drain_timeout;
    o.timeout_ns = timeout_ns_;
    o.start_ns = WallNowNs();
    o.start_mono_ns = MonoNowNs();
    auto child = hub_->session->Spawn(script);
    if (!child) return child.error().WithContext("starting process " + id_ + " on " + hub_->where);
    client_pid_ = child->pid;
    stdin_fd_ = child->stdin_fd;
    channel_ = internal::SshProcessChannel::Make(
        *child, o, [logs = logs_](LogStream s, std::string_view line) { logs->Deliver(s, line); },
        [this] { (void)Signal("KILL"); },
        [this](const ExitStatus& exit, const std::string& lost) { Ended(exit, lost); });
    started_ = true;
    // A channel that fails here fails the run too: the channel's end says how.
    (void)Control(command);
    if (!quiet_) hub_->events->Emit(EventType::kContainerStarted, "start", id_, labels_);
    channel_->Follow();
    return Status::OK();
  }

  Result<ExitStatus> Wait(Deadline deadline) override {
    if (!started_) return FailedPreconditionError("process " + id_ + " was not started");
    if (!channel_->WaitFinished(deadline)) {
      return DeadlineExceededError("process " + id_ + " on " + hub_->where +
                                   " still running at the wait deadline");
    }
    const auto state = channel_->state();
    if (!state.lost.empty()) {
      return UnavailableError("the SSH connection to " + hub_->where + " carrying process " + id_ +
                              " ended before its exit status arrived: " + state.lost);
    }
    return state.exit;
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
    BITFUSION_ASSIGN_OR_RETURN(
        auto c, MakeSshProcess(hub_, internal::HostExecSpec(spec, env_, working_dir_),
                               /*quiet=*/true));
    return internal::RunHostExec(*c, deadline, id_);
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
    char secs[32];
    std::snprintf(secs, sizeof secs, "%.3f", static_cast<double>(interval.count()) / 1e9);
    auto spawn = [hub = hub_, secs = std::string(secs)](int pid) {
      return hub->session->Spawn("exec sh -c " + ShellQuote(kStats) + " bf-stats " +
                                 Quoted({std::to_string(pid), secs}));
    };
    return channel_->Stats(std::move(spawn), std::move(callback));
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
    const auto state = channel_->state();
    info.state = state.exited ? "exited" : "running";
    info.pid = state.exited ? 0 : state.remote_pid;
    info.started_ns = state.exit.start_ns;
    if (state.exited) {
      info.exit_code = state.exit.signal != 0 ? 128 + state.exit.signal : state.exit.exit_code;
      info.finished_ns = state.exit.end_ns;
    }
    return info;
  }

 private:
  bool Finished() { return started_ && channel_->state().finished; }

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

  // The channel's end (on the loop): the die event, unless the process was kept.
  void Ended(const ExitStatus& exit, const std::string& lost) {
    if (quiet_ || kept_) return;
    const int code = exit.signal != 0 ? 128 + exit.signal : exit.exit_code;
    hub_->events->Emit(EventType::kContainerDied, "die", id_, labels_,
                       {{"exitCode", std::to_string(lost.empty() ? code : 255)}});
  }

  void Teardown() {
    if (!started_) return;
    // End of input: the wrapper ends the group with SIGKILL (KEEP first leaves it running).
    if (kept_) (void)Signal("KEEP");
    {
      std::lock_guard lock(ctl_mu_);
      CloseFd(stdin_fd_);
    }
    if (!kept_) {
      channel_->WaitFinished(DeadlineAfter(std::chrono::seconds(10) + hub_->options.drain_timeout));
    }
    channel_->Close();
    if (!channel_->client_reaped()) {
      // Kept: the client goes now (the command's later output has nowhere to go). Otherwise it
      // ends with the channel once the wrapper is done.
      if (kept_) ::kill(client_pid_, SIGTERM);
      (void)internal::ReapWithin(client_pid_, std::chrono::seconds(5));
    }
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
  int client_pid_ = -1;  // the local ssh client
  std::mutex ctl_mu_;    // guards stdin_fd_: control lines go out whole
  int stdin_fd_ = -1;
  std::unique_ptr<internal::SshProcessChannel> channel_;  // once started
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
