#include "metrics/container_source.h"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <sstream>
#include <utility>

#include "bitfusion/log.h"
#include "bitfusion/registry.h"
#include "core/clock.h"

namespace bitfusion {
namespace {

constexpr auto kFirstPoll = std::chrono::milliseconds(10);
constexpr auto kMaxPoll = std::chrono::milliseconds(250);

bool Runs(const ContainerInfo& info) {
  return info.pid > 0 && (info.state == "running" || info.state == "paused");
}

bool Ended(const ContainerInfo& info) {
  return info.state == "exited" || info.state == "dead" || info.state == "removing";
}

}  // namespace

Result<ContainerSourceOptions> ContainerSourceOptions::FromUri(const Uri& uri) {
  BITFUSION_RETURN_IF_ERROR(uri.CheckQueryKeys({"runner", "root", "proc_root", "detail_every"}));
  ContainerSourceOptions options;
  options.id = uri.host.empty() ? uri.path : uri.host + uri.path;
  if (options.id.empty() || options.id.find('/') != std::string::npos) {
    return InvalidArgumentError("metric source " + uri.ToString() +
                                " does not name a container; write container:ID with the "
                                "container's id, a unique prefix of it, or its name");
  }
  if (auto runner = uri.Query("runner")) {
    if (runner->empty()) {
      return InvalidArgumentError("option runner in " + uri.ToString() +
                                  " is empty; give a runner URI such as docker:// or "
                                  "docker:///var/run/docker.sock");
    }
    options.runner = *runner;
  }
  if (auto root = uri.Query("root")) {
    if (root->empty()) {
      return InvalidArgumentError("option root in " + uri.ToString() +
                                  " is empty; give where the cgroup filesystems are mounted");
    }
    options.cgroup_root = *root;
  }
  if (auto root = uri.Query("proc_root")) {
    if (root->empty()) {
      return InvalidArgumentError("option proc_root in " + uri.ToString() +
                                  " is empty; give the directory procfs is mounted on");
    }
    options.proc_root = *root;
  }
  BITFUSION_ASSIGN_OR_RETURN(options.detail_every, DetailEveryFromUri(uri));
  return options;
}

Result<std::shared_ptr<ContainerSource>> ContainerSource::Make(
    const ContainerSourceOptions& options) {
  auto runner = ContainerRunnerFromUri(options.runner);
  if (!runner) {
    return runner.error().WithContext("metric source container:" + options.id + ", runner " +
                                      options.runner);
  }
  return Make(std::move(*runner), options);
}

Result<std::shared_ptr<ContainerSource>> ContainerSource::Make(
    std::shared_ptr<ContainerRunner> runner, const ContainerSourceOptions& options) {
  if (!runner) return InvalidArgumentError("container source: no runner given");
  if (options.id.empty()) return InvalidArgumentError("container source: no container id given");
  auto info = runner->InspectContainer(options.id);
  if (!info) {
    if (info.error().code() == StatusCode::kUnimplemented) {
      return InvalidArgumentError(
          "container:" + options.id + ": runner " + options.runner +
          " cannot inspect containers, so their cgroups cannot be found; use a docker:// "
          "(or Podman's Docker-compatible) runner, or sample a plain process with process:PID");
    }
    return info.error().WithContext("metric source container:" + options.id);
  }
  std::shared_ptr<ContainerSource> source(new ContainerSource());
  source->options_ = options;
  source->runner_ = std::move(runner);
  source->short_id_ = info->id.substr(0, 12);
  source->uri_ = "container:" + options.id;
  source->labels_ = {{"container", source->short_id_}};
  if (!info->name.empty()) source->labels_["container_name"] = info->name;
  if (Ended(*info)) {
    return FailedPreconditionError("container " + options.id + " is not running (" + info->state +
                                   "); container:ID samples a created or running container");
  }
  if (Runs(*info)) {
    auto dirs = source->DirsOf(info->pid);
    if (!dirs) {
      return dirs.error().WithContext("finding the cgroup of container " + options.id);
    }
    BITFUSION_RETURN_IF_ERROR(source->MakeInner(*dirs));
    source->state_ = kReady;
    return source;
  }
  // Created (or restarting): wait for its process off the sampling thread.
  source->waiter_ = std::thread([s = source.get()] { s->Resolve(); });
  return source;
}

ContainerSource::~ContainerSource() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (waiter_.joinable()) waiter_.join();
}

void ContainerSource::TargetStarted() {
  {
    std::lock_guard lock(mu_);
    started_ = true;
  }
  wake_.notify_all();
}

Result<CgroupDirs> ContainerSource::DirsOf(int pid) const {
  const std::string file = options_.proc_root + "/" + std::to_string(pid) + "/cgroup";
  std::ifstream in(file);
  std::stringstream text;
  text << in.rdbuf();
  if (!in || text.str().empty()) {
    return NotFoundError("cannot read " + file + " (the container's main process " +
                         std::to_string(pid) + " has exited?)");
  }
  return CgroupDirs::FromProcCgroup(options_.cgroup_root, text.str());
}

Status ContainerSource::MakeInner(const CgroupDirs& dirs) {
  auto inner = CgroupSource::Make(dirs, uri_, labels_, options_.detail_every);
  if (!inner) return inner.error().WithContext("sampling container " + options_.id);
  inner_ = std::move(*inner);
  return Status::OK();
}

void ContainerSource::Resolve() {
  auto poll = kFirstPoll;
  const std::int64_t cpu_start = internal::ThreadCpuNs();
  auto account = [&] { background_cpu_ns_.store(internal::ThreadCpuNs() - cpu_start); };
  for (;;) {
    {
      std::unique_lock lock(mu_);
      wake_.wait_for(lock, poll, [&] { return stopping_ || started_; });
      if (stopping_) break;
      if (started_) {
        started_ = false;
        poll = kFirstPoll / 2;  // doubled below: look again soon if the engine lags behind
      }
    }
    poll = std::min<std::chrono::milliseconds>(poll * 2, kMaxPoll);
    auto info = runner_->InspectContainer(options_.id);
    Status gone;
    if (!info) {
      // The engine not answering for a moment is no reason to give up; a removed container is.
      if (info.error().code() != StatusCode::kNotFound) {
        account();
        continue;
      }
      gone = NotFoundError("container " + short_id_ + " is gone before it ran (" +
                           info.error().message() + ")");
    } else if (Ended(*info)) {
      gone = NotFoundError("container " + short_id_ + " exited before it could be sampled (" +
                           info->state + ", exit code " + std::to_string(info->exit_code) + ")");
    } else if (Runs(*info)) {
      auto dirs = DirsOf(info->pid);
      if (!dirs && dirs.error().code() != StatusCode::kNotFound) gone = dirs.error();
      if (!dirs && dirs.error().code() == StatusCode::kNotFound) {
        // Exited between the two reads: the next inspection says so.
        account();
        continue;
      }
      if (dirs) {
        std::lock_guard lock(mu_);
        dirs_ = std::move(*dirs);
        account();
        state_ = kReady;
        return;
      }
    } else {
      account();
      continue;
    }
    std::lock_guard lock(mu_);
    gone_ = gone;
    account();
    state_ = kGone;
    return;
  }
  account();
}

Status ContainerSource::Collect(Timestamp now, SampleBatch& batch) {
  if (!inner_) {
    switch (state_.load(std::memory_order_acquire)) {
      case kWaiting: return Status::OK();
      case kGone: {
        std::lock_guard lock(mu_);
        return gone_.code() == StatusCode::kNotFound ? gone_ : NotFoundError(gone_.message());
      }
      default: {
        CgroupDirs dirs;
        {
          std::lock_guard lock(mu_);
          dirs = dirs_;
        }
        Status made = MakeInner(dirs);
        if (!made.ok()) {
          // The group went between the lookup and the opening: the container has exited.
          return made.code() == StatusCode::kNotFound ? made : NotFoundError(made.message());
        }
      }
    }
  }
  Status status = inner_->Collect(now, batch);
  if (status.code() == StatusCode::kNotFound) {
    return NotFoundError("container " + short_id_ + " has exited (" + status.message() + ")");
  }
  return status;
}

Result<std::shared_ptr<MetricSource>> ContainerMetricSource(std::shared_ptr<ContainerRunner> runner,
                                                            std::string_view container_id,
                                                            int detail_every) {
  ContainerSourceOptions options;
  options.id = std::string(container_id);
  options.detail_every = detail_every;
  options.runner = "(the caller's runner)";
  BITFUSION_ASSIGN_OR_RETURN(auto source, ContainerSource::Make(std::move(runner), options));
  return std::shared_ptr<MetricSource>(std::move(source));
}

BITFUSION_REGISTER(MetricSource, "container", ContainerSourceOptions, ContainerSource);

}  // namespace bitfusion
