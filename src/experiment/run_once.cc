#include "experiment/run_once.h"

#include <atomic>
#include <charconv>
#include <deque>
#include <mutex>

#include "bitfusion/log.h"
#include "bitfusion/metric_stream.h"
#include "bitfusion/probe.h"
#include "bitfusion/uri.h"
#include "experiment/plan_machines.h"
#include "experiment/plan_programs.h"

namespace bitfusion::internal {
namespace {

using namespace std::chrono_literals;

// How often the run loop looks at the cancel flag while a benchmark runs.
constexpr auto kCancelPoll = 50ms;
// How long a cancelled benchmark gets between SIGTERM and SIGKILL.
constexpr auto kStopGrace = 2s;
// How long a run waits, after its container ended, for sources with samples on their way (a
// probe's last sample).
constexpr auto kDrainTimeout = 1s;

// "BITFUSION_RESULT <metric> <value> [unit]"
std::optional<Sample> ParseResultLine(std::string_view line) {
  if (line.substr(0, kResultLinePrefix.size()) != kResultLinePrefix) return std::nullopt;
  line.remove_prefix(kResultLinePrefix.size());
  std::vector<std::string_view> fields;
  while (!line.empty()) {
    const auto start = line.find_first_not_of(" \t");
    if (start == std::string_view::npos) break;
    line.remove_prefix(start);
    const auto end = line.find_first_of(" \t");
    fields.push_back(line.substr(0, end));
    line = end == std::string_view::npos ? std::string_view() : line.substr(end);
  }
  if (fields.size() < 2 || fields.size() > 3) return std::nullopt;
  double value = 0;
  auto [p, ec] = std::from_chars(fields[1].data(), fields[1].data() + fields[1].size(), value);
  if (ec != std::errc() || p != fields[1].data() + fields[1].size()) return std::nullopt;
  Sample s;
  s.metric = std::string(fields[0]);
  s.value = value;
  s.unit = fields.size() == 3 ? std::string(fields[2]) : "1";
  return s;
}

// Collects what a running benchmark prints: result lines and the tail of stderr.
class OutputCollector {
 public:
  void OnLine(LogStream stream, std::string_view line) {
    const Timestamp now = Now();
    std::lock_guard lock(mu_);
    if (stream == LogStream::kStdout) {
      if (auto sample = ParseResultLine(line)) {
        sample->timestamp_ns = now.wall_ns;
        sample->monotonic_ns = now.mono_ns;
        results_.push_back(std::move(*sample));
      } else if (line.substr(0, kResultLinePrefix.size()) == kResultLinePrefix) {
        LogAt(LogLevel::kWarning, "ignoring malformed result line \"", line,
              "\"; expected BITFUSION_RESULT <metric> <value> [unit]");
      }
    } else {
      stderr_tail_.emplace_back(line);
      if (stderr_tail_.size() > kStderrTail) stderr_tail_.pop_front();
    }
  }
  std::vector<Sample> results() {
    std::lock_guard lock(mu_);
    return results_;
  }
  std::string stderr_tail() {
    std::lock_guard lock(mu_);
    std::string out;
    for (const auto& l : stderr_tail_) out += (out.empty() ? "" : "\n") + l;
    return out;
  }

 private:
  std::mutex mu_;
  std::vector<Sample> results_;
  std::deque<std::string> stderr_tail_;
};

void Fail(RunRecord& record, const char* status, const Status& why) {
  record.status = status;
  record.error = why.ToString();
}

// The record of a run about to start, with the labels its samples and container carry.
RunRecord NewRecord(const RunContext& ctx, const BenchmarkSpec& b,
                    const std::vector<std::string>& argv, const LeasedDevices& devices,
                    int repetition, bool warmup) {
  RunRecord record;
  record.run_id = NewRunId();
  record.plan = ctx.plan.name;
  record.plan_run_id = ctx.plan_run_id;
  record.benchmark = b.name;
  record.repetition = repetition;
  record.warmup = warmup;
  record.runner = Redact(ctx.runner_uri);
  // As stored, redacted: "--password=..." in a command line is not for a results store.
  for (const auto& arg : argv) record.command.push_back(Redact(arg));
  record.image = b.image;
  if (auto it = ctx.image_digests.find(b.image); it != ctx.image_digests.end()) {
    record.image_digest = it->second;
  }
  record.machine = ctx.machine;
  record.labels = {{"plan", ctx.plan.name},
                   {"plan_run_id", ctx.plan_run_id},
                   {"run_id", record.run_id},
                   {"benchmark", b.name},
                   {"repetition", std::to_string(repetition)},
                   {"warmup", warmup ? "true" : "false"},
                   {"machine", ctx.machine_name.empty() ? ctx.machine.hostname : ctx.machine_name}};
  if (!ctx.machine_group.empty()) record.labels["machine_group"] = ctx.machine_group;
  if (!devices.ids.empty()) record.labels["devices"] = devices.ids;
  return record;
}

// The run's stream with the plan's ordinary sources and sinks; the sources that follow the
// run's own container are added once it exists.
Result<std::unique_ptr<MetricStream>> OpenStream(const RunContext& ctx, const RunRecord& record) {
  MetricStreamOptions options;
  options.interval = ctx.plan.interval;
  options.labels = record.labels;
  BITFUSION_ASSIGN_OR_RETURN(auto stream, MetricStream::Make(options));
  for (const auto& source : ctx.sources) {
    if (auto own = IsOwnContainerSource(source); own.ok() && *own) continue;
    if (auto probe = IsOwnProbeSource(source); probe.ok() && *probe) continue;
    BITFUSION_RETURN_IF_ERROR(stream->Add(source).WithContext("metric source " + source));
  }
  for (const auto& sink : ctx.sinks) BITFUSION_RETURN_IF_ERROR(stream->Attach(sink));
  return stream;
}

ContainerSpec SpecFor(const BenchmarkSpec& b, const std::vector<std::string>& argv,
                      const RunRecord& record, const LeasedDevices& devices) {
  ContainerSpec spec;
  spec.image = b.image;
  spec.command = argv;
  spec.env = b.env;
  spec.working_dir = b.working_dir;
  spec.timeout_ns = b.timeout.count();
  spec.labels = record.labels;
  // The lease's settings win over the benchmark's env: a benchmark must not see other devices.
  for (const auto& edits : devices.edits) edits.ApplyTo(spec);
  return spec;
}

// Adds `source` (as rates when asked) to the stream, and remembers it among the sources that
// follow this run's container.
Status AddOwn(MetricStream& stream, std::shared_ptr<MetricSource> source, bool rate,
              std::vector<std::shared_ptr<MetricSource>>& own) {
  if (rate) source = CountersAsRates(std::move(source));
  own.push_back(source);
  return stream.Add(std::move(source));
}

// "probe": bitfusion-probe mounted into this run's container in front of its command; its
// source listens before the container exists.
Status AddProbes(const RunContext& ctx, const BenchmarkSpec& b, ContainerSpec& spec,
                 MetricStream& stream, std::vector<std::shared_ptr<MetricSource>>& own) {
  for (const auto& source : ctx.sources) {
    auto is_probe = IsOwnProbeSource(source);
    if (!is_probe.ok() || !*is_probe) continue;
    const Uri uri = *Uri::Parse(source);  // checked by IsOwnProbeSource at plan validation
    ContainerProbeOptions po;
    po.name = b.name;
    po.interval = ctx.plan.interval;
    po.processes = *uri.QueryBool("processes", true);
    auto path = LocateProbe(ctx.plan, ctx.options);
    if (!path) return path.error().WithContext("metric source " + source);
    po.probe_path = *path;
    // On another machine's engine the probe is copied there and its socket forwarded back.
    if (ContainersSampledByEngine(ctx.runner_uri)) po.remote = ctx.host_source_uri;
    // The probe replaces the entrypoint and runs what followed it: keep the image's own in front
    // of the benchmark's command, as the engine would have.
    if (spec.entrypoint.empty()) {
      if (auto it = ctx.image_entrypoints.find(b.image); it != ctx.image_entrypoints.end()) {
        spec.entrypoint = it->second;
      }
    }
    auto probe = ProbeContainer(po, spec);
    if (!probe) return probe.error().WithContext("metric source " + source);
    BITFUSION_RETURN_IF_ERROR(
        AddOwn(stream, std::move(probe->source), *uri.QueryBool("rate", false), own)
            .WithContext("metric source " + source));
  }
  return Status::OK();
}

// "container": this run's container, sampled through its cgroup once it runs (the source waits,
// off the sampling thread, for the container to start; TargetStarted makes it look at once, so
// sampling begins within about a millisecond of the start, not at the first instruction).
Status AddContainerSources(const RunContext& ctx, const std::string& container_id,
                           MetricStream& stream, std::vector<std::shared_ptr<MetricSource>>& own) {
  for (const auto& source : ctx.sources) {
    auto is_own = IsOwnContainerSource(source);
    if (!is_own.ok() || !*is_own) continue;
    const Uri uri = *Uri::Parse(source);  // checked by IsOwnContainerSource at plan validation
    const int every = static_cast<int>(*uri.QueryInt("detail_every", 1));
    // The runner outlives the stream, which is stopped before the run ends.
    std::shared_ptr<ContainerRunner> runner(std::shared_ptr<void>(), &ctx.runner);
    // Another machine's cgroups are not readable here: its engine's stats stream is.
    auto made = ContainersSampledByEngine(ctx.runner_uri)
                    ? EngineStatsMetricSource(std::move(runner), container_id)
                    : ContainerMetricSource(std::move(runner), container_id, every);
    if (!made) return made.error().WithContext("metric source " + source);
    BITFUSION_RETURN_IF_ERROR(AddOwn(stream, std::move(*made), *uri.QueryBool("rate", false), own)
                                  .WithContext("metric source " + source));
  }
  return Status::OK();
}

// Starts the stream and the container and waits for it to end, stopping it (gracefully, then
// not) when the plan is cancelled. Stops the stream after the sources that follow the container
// had their chance to deliver what is on its way.
Result<ExitStatus> Execute(const RunContext& ctx, const BenchmarkSpec& b, Container& container,
                           MetricStream& stream,
                           const std::vector<std::shared_ptr<MetricSource>>& own,
                           bool& interrupted) {
  // Sampling starts just before the benchmark so its first tick precedes the first instruction.
  BITFUSION_RETURN_IF_ERROR(stream.Start());
  if (Status s = container.Start(); !s.ok()) {
    (void)stream.Stop();
    return s;
  }
  for (const auto& source : own) source->TargetStarted();
  Result<ExitStatus> exit = DeadlineExceededError("not waited yet");
  while (true) {
    exit = container.Wait(DeadlineAfter(kCancelPoll));
    if (exit.ok() || exit.error().code() != StatusCode::kDeadlineExceeded) break;
    if (!interrupted && Cancelled(ctx.options)) {
      interrupted = true;
      if (Status s = container.Stop(kStopGrace); !s.ok()) {
        LogAt(LogLevel::kError, "stopping ", b.name, ": ", s.ToString());
      }
    }
  }
  for (const auto& source : own) {
    if (!source->Drain(kDrainTimeout)) {
      LogAt(LogLevel::kInfo, "metric source ", source->uri(), " of ", b.name,
            " still had samples on their way 1 s after its container exited");
    }
  }
  if (Status s = stream.Stop(); !s.ok()) {
    LogAt(LogLevel::kWarning, "stopping metrics of ", b.name, ": ", s.ToString());
  }
  return exit;
}

// The run's status and error from how it ended.
void Classify(const RunContext& ctx, const BenchmarkSpec& b, const Result<ExitStatus>& exit,
              bool interrupted, OutputCollector& output, RunRecord& record) {
  if (!exit.ok()) {
    Fail(record, kRunError, exit.error());
    return;
  }
  record.exit = *exit;
  Sample wall;
  wall.metric = "wall_time";
  wall.unit = "s";
  wall.value = static_cast<double>(exit->wall_time_ns) / 1e9;
  wall.timestamp_ns = exit->end_ns;
  record.results.insert(record.results.begin(), wall);
  if (interrupted) {
    record.status = kRunInterrupted;
    record.error = "interrupted by the user";
  } else if (exit->timed_out) {
    record.status = kRunTimedOut;
    record.error = "killed after the timeout of " + FormatDuration(b.timeout);
  } else if (exit->oom_killed || (ctx.notes != nullptr && ctx.notes->Oom(record.run_id))) {
    record.status = kRunFailed;
    record.exit.oom_killed = true;
    record.error = "killed by the out-of-memory killer (exit status " +
                   std::to_string(exit->exit_code) + "); give it more memory";
  } else if (!exit->success()) {
    record.status = kRunFailed;
    record.error = exit->signal ? "killed by signal " + std::to_string(exit->signal)
                                : "exit status " + std::to_string(exit->exit_code);
    // The engine's own record of its last lines (a reactor fetched them when it died), else
    // what this process saw on stderr.
    std::optional<std::vector<LogLine>> tail;
    if (ctx.notes != nullptr) tail = ctx.notes->WaitForTail(record.run_id, DeadlineAfter(2s));
    // Redacted: a failing program may print its configuration, credentials included, and
    // records go to stores that others read.
    if (tail && !tail->empty()) {
      record.error += "; last log lines:";
      for (const auto& l : *tail) record.error += "\n" + Redact(l.text);
    } else if (const std::string err = output.stderr_tail(); !err.empty()) {
      record.error += "; last stderr lines:\n" + Redact(err);
    }
  }
}

}  // namespace

// Leases every device `b` asks for; the first request that cannot be met is the error.
Result<LeasedDevices> LeaseDevices(DeviceAllocator& allocator, const RunnerCapabilities& caps,
                                   const PlanSpec& plan, const BenchmarkSpec& b,
                                   const std::atomic<bool>* cancel) {
  LeasedDevices out;
  // Waited for in slices, so that an interrupt does not wait out device_wait.
  constexpr auto kSlice = std::chrono::milliseconds(500);
  for (const auto& request : b.devices) {
    const Deadline until = DeadlineAfter(plan.device_wait);
    Result<std::unique_ptr<DeviceLease>> lease = UnavailableError("not tried");
    while (true) {
      const Deadline slice = std::min(until, DeadlineAfter(kSlice));
      lease = allocator.Acquire(request, slice);
      const auto now = std::chrono::steady_clock::now();
      // Busy until the slice ended: wait on. An answer before then (a request that can never
      // be met) or the plan's own deadline ends the wait.
      if (lease.ok() || lease.error().code() != StatusCode::kResourceExhausted || now >= until ||
          now + std::chrono::milliseconds(50) < slice) {
        break;
      }
      if (cancel != nullptr && cancel->load()) {
        return CancelledError("interrupted while waiting for devices (" +
                              DescribeDeviceRequest(request) + ")");
      }
    }
    BITFUSION_RETURN_IF_ERROR(lease.status());
    std::unique_ptr<DeviceLease> held = std::move(*lease);
    BITFUSION_ASSIGN_OR_RETURN(ContainerEdits edits, allocator.EditsFor(*held, caps));
    out.edits.push_back(std::move(edits));
    for (const auto& d : held->devices()) out.ids += (out.ids.empty() ? "" : ",") + d.id;
    out.leases.push_back(std::move(held));
  }
  return out;
}

// A plan source "container" (or "container?rate=true&detail_every=10") means each run's own
// container: it is made for every run once the container exists (see RunOnce). Other
// "container:ID" sources name a container of their own and are ordinary sources.
Result<bool> IsOwnContainerSource(const std::string& source) {
  BITFUSION_ASSIGN_OR_RETURN(Uri uri, Uri::Parse(source));
  if (uri.scheme != "container" || !uri.host.empty() || !uri.path.empty()) return false;
  BITFUSION_RETURN_IF_ERROR(uri.CheckQueryKeys({"rate", "detail_every"}));
  BITFUSION_RETURN_IF_ERROR(uri.QueryBool("rate", false).status());
  BITFUSION_ASSIGN_OR_RETURN(const std::int64_t every, uri.QueryInt("detail_every", 1));
  if (every < 1 || every > 1'000'000) {
    return InvalidArgumentError("option detail_every of \"" + source +
                                "\" must be a whole number of samples from 1 up");
  }
  return true;
}

// A plan source "probe" (or "probe?processes=false&rate=true") means bitfusion-probe inside
// each run's own container, wrapping its command (bitfusion/probe.h): the container's own view,
// on the host's timeline. "probe:NAME?socket=PATH" is an ordinary source.
Result<bool> IsOwnProbeSource(const std::string& source) {
  BITFUSION_ASSIGN_OR_RETURN(Uri uri, Uri::Parse(source));
  if (uri.scheme != "probe" || !uri.host.empty() || !uri.path.empty()) return false;
  BITFUSION_RETURN_IF_ERROR(uri.CheckQueryKeys({"rate", "processes"}));
  BITFUSION_RETURN_IF_ERROR(uri.QueryBool("processes", true).status());
  BITFUSION_RETURN_IF_ERROR(uri.QueryBool("rate", false).status());
  return true;
}

// The clock estimate a remote machine's samples carry (host+ssh://'s clock_offset_ns and
// clock_uncertainty_ns labels), taken from the first batch that has it, for the run's record.
// Filled on the stream's delivery thread, read once its subscription is cancelled (Cancel waits
// for a callback that is running), so it needs no lock.
struct ClockNote {
  void From(const SampleBatch& batch) {
    if (!offset.empty()) return;
    auto find = [&](const Labels& labels) {
      auto o = labels.find("clock_offset_ns");
      auto u = labels.find("clock_uncertainty_ns");
      if (o == labels.end() || u == labels.end()) return false;
      offset = o->second;
      uncertainty = u->second;
      return true;
    };
    if (find(batch.labels)) return;
    for (const auto& series : batch.series) {
      if (find(series.labels)) return;
    }
  }
  void Into(RunRecord& record) const {
    if (offset.empty()) return;
    record.labels["clock_offset_ns"] = offset;
    record.labels["clock_uncertainty_ns"] = uncertainty;
  }

  std::string offset, uncertainty;
};

RunRecord RunOnce(const RunContext& ctx, const BenchmarkSpec& b,
                  const std::vector<std::string>& argv, const LeasedDevices& devices,
                  int repetition, bool warmup) {
  // Prepare: the record, the stream, the container with what follows it.
  RunRecord record = NewRecord(ctx, b, argv, devices, repetition, warmup);
  auto stream = OpenStream(ctx, record);
  if (!stream) {
    Fail(record, kRunError, stream.error());
    return record;
  }
  ContainerSpec spec = SpecFor(b, argv, record, devices);
  std::vector<std::shared_ptr<MetricSource>> own;  // the sources that follow the container
  if (Status s = AddProbes(ctx, b, spec, **stream, own); !s.ok()) {
    Fail(record, kRunError, s);
    return record;
  }
  auto container = ctx.runner.Create(spec);
  if (!container) {
    Fail(record, kRunError, container.error());
    return record;
  }
  if (Status s = AddContainerSources(ctx, (*container)->id(), **stream, own); !s.ok()) {
    Fail(record, kRunError, s);
    return record;
  }
  OutputCollector output;
  Subscription logs =
      (*container)->Logs([&](LogStream s, std::string_view line) { output.OnLine(s, line); });
  ClockNote clock;
  Subscription batches = (*stream)->Subscribe([&clock](const SampleBatch& b) { clock.From(b); });

  // Execute.
  bool interrupted = false;
  Result<ExitStatus> exit = Execute(ctx, b, **container, **stream, own, interrupted);
  logs.Cancel();
  batches.Cancel();
  clock.Into(record);

  // Classify.
  const StreamOverhead overhead = (*stream)->Overhead();
  record.overhead.cpu_ns =
      overhead.sampler_cpu_ns + overhead.delivery_cpu_ns + overhead.source_cpu_ns;
  record.overhead.samples = overhead.samples;
  record.overhead.samples_dropped = overhead.samples_dropped;
  record.overhead.interval_ns = ctx.plan.interval.count();
  record.results = output.results();
  Classify(ctx, b, exit, interrupted, output, record);
  return record;
}

}  // namespace bitfusion::internal
