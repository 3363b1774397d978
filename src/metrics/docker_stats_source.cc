#include "metrics/docker_stats_source.h"

#include <algorithm>
#include <utility>

#include "bitfusion/log.h"
#include "bitfusion/registry.h"
#include "core/clock.h"

namespace bitfusion {
namespace {

struct Field {
  const char* metric;
  const char* unit;
  bool counter;
};
// Order matters: Collect appends in this order.
constexpr Field kFields[] = {
    {"cgroup.cpu.usage", "s", true},          {"cgroup.memory.usage", "bytes", false},
    {"cgroup.memory.limit", "bytes", false},  {"cgroup.io.read_bytes", "bytes", true},
    {"cgroup.io.write_bytes", "bytes", true}, {"cgroup.pids.current", "1", false},
    {"net.rx_bytes", "bytes", true},          {"net.tx_bytes", "bytes", true}};
constexpr std::size_t kSeries = std::size(kFields);

// Readings kept for a sampler that does not come by (a stream sampled every hour): the oldest
// go first.
constexpr std::size_t kMaxPending = 4096;
// The engine sends a reading a second even for a stopped container; this much silence means
// the stream is dead.
constexpr std::int64_t kSilenceNs = 10'000'000'000;

}  // namespace

Result<DockerStatsSourceOptions> DockerStatsSourceOptions::FromUri(const Uri& uri) {
  BITFUSION_RETURN_IF_ERROR(uri.CheckQueryKeys({"runner"}));
  DockerStatsSourceOptions options;
  options.id = uri.host.empty() ? uri.path : uri.host + uri.path;
  if (options.id.empty()) {
    return InvalidArgumentError("metric source " + uri.ToString() +
                                " does not name a container; write docker-stats:ID with the "
                                "container's id or name");
  }
  if (auto runner = uri.Query("runner")) {
    if (runner->empty()) {
      return InvalidArgumentError("option runner in " + uri.ToString() +
                                  " is empty; give a runner URI such as docker:// or "
                                  "docker+tls://host:2376");
    }
    options.runner = *runner;
  }
  return options;
}

Result<std::shared_ptr<DockerStatsSource>> DockerStatsSource::Make(
    const DockerStatsSourceOptions& options) {
  auto runner = ContainerRunnerFromUri(options.runner);
  if (!runner) {
    return runner.error().WithContext("metric source docker-stats:" + options.id + ", runner " +
                                      options.runner);
  }
  return Make(std::move(*runner), options);
}

Result<std::shared_ptr<DockerStatsSource>> DockerStatsSource::Make(
    std::shared_ptr<ContainerRunner> runner, const DockerStatsSourceOptions& options) {
  if (!runner) return InvalidArgumentError("docker-stats source: no runner given");
  const std::string what = "docker-stats:" + options.id;
  auto container = runner->OpenContainer(options.id);
  if (!container) {
    if (container.error().code() == StatusCode::kUnimplemented) {
      return UnimplementedError(what + ": runner " + options.runner +
                                " cannot open containers; use a docker:// or docker+tls:// "
                                "runner, or sample a plain process with process:PID");
    }
    return container.error().WithContext(what);
  }
  auto info = (*container)->Inspect();
  if (!info) return info.error().WithContext(what);
  if (info->state == "exited" || info->state == "dead" || info->state == "removing") {
    return FailedPreconditionError(what + ": the container has already " +
                                   (info->state == "exited"
                                        ? "exited (code " + std::to_string(info->exit_code) + ")"
                                        : "stopped (" + info->state + ")") +
                                   "; there is nothing to sample");
  }

  std::shared_ptr<DockerStatsSource> source(new DockerStatsSource());
  source->uri_ = what;
  if (options.runner != "docker://") source->uri_ += "?runner=" + options.runner;
  source->short_id_ = info->id.substr(0, 12);
  source->labels_ = {{"container", source->short_id_}, {"container_name", info->name}};
  source->runner_ = std::move(runner);
  source->container_ = std::move(*container);
  source->pending_.reserve(64);
  source->drained_.reserve(64);
  source->last_heard_mono_ns_ = MonoNowNs();
  DockerStatsSource* self = source.get();
  auto subscription = source->container_->Stats(
      [self](const ContainerStats& stats) { self->OnReading(stats); }, std::chrono::seconds(1));
  if (!subscription) return subscription.error().WithContext(what);
  source->subscription_ = std::move(*subscription);
  return source;
}

DockerStatsSource::~DockerStatsSource() {
  // The stats thread uses every member below: stop it before any of them goes.
  subscription_.Cancel();
}

void DockerStatsSource::End(std::string reason) {
  std::lock_guard lock(mu_);
  if (ended_) return;
  ended_ = true;
  end_reason_ = std::move(reason);
}

void DockerStatsSource::OnReading(const ContainerStats& stats) {
  const std::int64_t received_wall = WallNowNs();
  const std::int64_t received_mono = MonoNowNs();
  last_heard_mono_ns_.store(received_mono);
  if (!stats.running) {
    {
      std::lock_guard lock(mu_);
      if (ended_) return;
    }
    // No values: the container stopped, has not started yet, or the engine closed the stream.
    // One question to the engine tells which (about once a second at most: that is how often
    // these come).
    auto info = container_->Inspect();
    if (!info) {
      End(info.error().code() == StatusCode::kNotFound
              ? "container " + short_id_ + " was removed"
              : "the engine's stats stream of container " + short_id_ +
                    " ended and the engine cannot say why: " + info.error().message());
    } else if (info->state == "exited" || info->state == "dead" || info->state == "removing") {
      End("container " + short_id_ + " exited (code " + std::to_string(info->exit_code) + ")");
    } else if (info->state == "running" && saw_values_) {
      // A running container whose readings stopped: the stream is over (engine restart).
      End("the engine's stats stream of container " + short_id_ + " ended while it runs");
    }
    stats_cpu_ns_.store(internal::ThreadCpuNs());
    return;
  }
  saw_values_ = true;
  Reading r;
  r.stats = stats;
  r.wall_ns = stats.time_ns;
  // The engine's wall time onto this host's monotonic clock, never ahead of now and never
  // behind the previous reading.
  r.mono_ns = std::min(received_mono, stats.time_ns - (received_wall - received_mono));
  r.mono_ns = std::max(r.mono_ns, last_mono_ns_ + 1);
  last_mono_ns_ = r.mono_ns;
  {
    std::lock_guard lock(mu_);
    if (pending_.size() >= kMaxPending) {
      pending_.erase(pending_.begin());
      dropped_.fetch_add(static_cast<std::int64_t>(kSeries));
    }
    pending_.push_back(r);
  }
  stats_cpu_ns_.store(internal::ThreadCpuNs());
}

Status DockerStatsSource::Collect(Timestamp now, SampleBatch& batch) {
  if (!declared_ || batch.series.size() != series_end_) {
    first_series_ = static_cast<std::uint32_t>(batch.series.size());
    for (const Field& f : kFields) {
      Labels labels = labels_;
      if (f.metric[0] == 'n') labels["iface"] = "all";
      batch.AddSeries({f.metric, f.unit, std::move(labels), f.counter});
    }
    declared_ = true;
    series_end_ = batch.series.size();
  }

  bool ended = false;
  {
    std::lock_guard lock(mu_);
    drained_.swap(pending_);  // both keep their capacity: no allocation
    ended = ended_;
  }
  if (!drained_.empty()) {
    // Each reading carries its own time (BatchWriter stamps one for all), so append directly;
    // the batch's columns keep their capacity from one delivery period to the next.
    for (const Reading& r : drained_) {
      const ContainerStats& s = r.stats;
      const double values[kSeries] = {
          static_cast<double>(s.cpu_ns) / 1e9,       static_cast<double>(s.memory_bytes),
          static_cast<double>(s.memory_limit_bytes), static_cast<double>(s.read_bytes),
          static_cast<double>(s.write_bytes),        static_cast<double>(s.pids),
          static_cast<double>(s.rx_bytes),           static_cast<double>(s.tx_bytes)};
      for (std::size_t i = 0; i < kSeries; ++i) {
        batch.Append(first_series_ + static_cast<std::uint32_t>(i), r.wall_ns, r.mono_ns,
                     values[i]);
      }
    }
    drained_.clear();
  }
  if (ended) {
    std::lock_guard lock(mu_);
    return NotFoundError(end_reason_);
  }
  if (now.mono_ns - last_heard_mono_ns_.load() > kSilenceNs) {
    return NotFoundError("the engine sent nothing on the stats stream of container " + short_id_ +
                         " for 10 s");
  }
  return Status::OK();
}

Result<std::shared_ptr<MetricSource>> EngineStatsMetricSource(
    std::shared_ptr<ContainerRunner> runner, std::string_view container_id) {
  DockerStatsSourceOptions options;
  options.id = std::string(container_id);
  options.runner = "(the caller's runner)";
  BITFUSION_ASSIGN_OR_RETURN(auto source, DockerStatsSource::Make(std::move(runner), options));
  return std::shared_ptr<MetricSource>(std::move(source));
}

BITFUSION_REGISTER(MetricSource, "docker-stats", DockerStatsSourceOptions, DockerStatsSource);

}  // namespace bitfusion
