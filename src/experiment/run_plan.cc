// RunPlan: the five interfaces composed into one workflow. Prepare: resolve every benchmark's
// command, reach the runner, build or fetch the images, check the sources, open the sinks, find
// the machine. Execute: for every benchmark lease its devices, then run its warm-ups and
// repetitions (each one RunOnce, run_once.h) under a metric stream. Finish: close the sinks,
// deliver the last events, summarise. Only interfaces are used here: a new runner, source,
// sink, allocator or provisioner works in plans without a change to this file.
#include <algorithm>
#include <map>

#include "bitfusion/container_runner.h"
#include "bitfusion/device_allocator.h"
#include "bitfusion/events.h"
#include "bitfusion/experiment.h"
#include "bitfusion/log.h"
#include "bitfusion/metric_stream.h"
#include "bitfusion/provisioner.h"
#include "bitfusion/result_sink.h"
#include "experiment/plan_programs.h"
#include "experiment/repetition_policy.h"
#include "experiment/run_once.h"

namespace bitfusion {
namespace {

using namespace std::chrono_literals;
using namespace internal;

// What the prepare step found: everything a run needs that could fail before the first run.
struct PreparedPlan {
  std::vector<std::vector<std::string>> argvs;  // per benchmark
  std::shared_ptr<ContainerRunner> runner;
  RunnerCapabilities caps;
  std::map<std::string, std::string> digests;                   // image -> digest
  std::map<std::string, std::vector<std::string>> entrypoints;  // image -> ENTRYPOINT
  std::vector<std::shared_ptr<ResultSink>> sinks;
  std::size_t caller_sinks = 0;  // the last ones in `sinks`: ExperimentOptions::sink_objects
  MachineInfo machine;
};

std::string PlanName(const PlanSpec& plan) {
  return plan.source_file.empty() ? "plan " + plan.name : plan.source_file;
}

Result<std::shared_ptr<ContainerRunner>> ReachRunner(const PlanSpec& plan,
                                                     RunnerCapabilities& caps) {
  BITFUSION_ASSIGN_OR_RETURN(auto runner, ContainerRunnerFromUri(plan.runner));
  auto got = runner->Capabilities();
  if (!got) {
    if (got.error().code() != StatusCode::kUnavailable) return got.error();
    return UnavailableError(got.error().message() +
                            "\nNo container engine is reachable for this plan. To run the "
                            "benchmarks as plain processes instead, use a plan with \"runner\": "
                            "\"process://\", such as examples/specs/quickstart.json.");
  }
  caps = *got;
  return runner;
}

// With a runner of images: what dead runs left goes first, then the plan's own images are built
// and every other image is fetched; each image's digest and entrypoint are kept.
Status PrepareImages(const PlanSpec& plan, const ExperimentOptions& options, PreparedPlan& p) {
  if (p.caps.reap) {
    // What runs killed on this host left behind goes first (their containers and process
    // groups still hold CPUs).
    ReapPolicy dead;
    dead.expired = false;
    if (auto reaped = p.runner->Reap(dead); reaped.ok()) {
      if (!reaped->containers.empty() || !reaped->images.empty()) {
        LogAt(LogLevel::kWarning, "removed ", reaped->containers.size(), " container(s) and ",
              reaped->images.size(), " image(s) left by runs that died");
      }
      for (const auto& e : reaped->errors) LogAt(LogLevel::kWarning, "reap: ", e);
    } else if (reaped.error().code() != StatusCode::kUnimplemented) {
      return reaped.error().WithContext("removing what dead runs left on " + plan.runner);
    }
  }
  if (p.caps.images) {
    for (std::size_t i = 0; i < plan.benchmarks.size(); ++i) {
      if (plan.benchmarks[i].image.empty()) {
        return InvalidArgumentError(plan.source_file + ": benchmarks[" + std::to_string(i) +
                                    "].image: missing; runner " + plan.runner +
                                    " runs images (or use \"runner\": \"process://\")");
      }
    }
    for (const auto& [ref, recipe] : plan.images) {
      BITFUSION_RETURN_IF_ERROR(BuildPlanImage(*p.runner, plan, ref, recipe, options));
    }
  }
  for (const auto& b : plan.benchmarks) {
    if (!b.image.empty() && p.digests.count(b.image)) continue;
    if (!plan.images.count(b.image)) {
      BITFUSION_RETURN_IF_ERROR(
          p.runner->EnsureImage(b.image, DeadlineAfter(10min)).WithContext("benchmark " + b.name));
    }
    if (b.image.empty()) continue;
    BITFUSION_ASSIGN_OR_RETURN(auto info, p.runner->InspectImage(b.image));
    p.digests[b.image] = info.digest;
    p.entrypoints[b.image] = info.entrypoint;
  }
  return Status::OK();
}

// Every source of the plan is checked before anything runs. "container" and "probe" follow each
// run's own container, so they need a runner whose commands run in containers.
Status CheckSources(const PlanSpec& plan, const ExperimentOptions& options,
                    const RunnerCapabilities& caps) {
  for (const auto& source : plan.sources) {
    auto probe = IsOwnProbeSource(source);
    if (!probe) return probe.error().WithContext("metric source \"" + source + "\"");
    if (*probe) {
      if (!caps.containers) {
        return InvalidArgumentError(
            PlanName(plan) +
            ": metric source \"probe\" mounts bitfusion-probe into each benchmark's container, "
            "but runner " +
            plan.runner + " (" + caps.engine + ") runs no containers; use a docker:// runner");
      }
      BITFUSION_RETURN_IF_ERROR(
          LocateProbe(plan, options).status().WithContext("metric source \"probe\""));
      continue;
    }
    auto own = IsOwnContainerSource(source);
    if (!own) return own.error().WithContext("metric source \"" + source + "\"");
    if (*own) {
      // process:// runs plain child processes, which have no cgroup of their own to sample.
      if (!caps.containers) {
        return InvalidArgumentError(
            PlanName(plan) +
            ": metric source \"container\" samples each benchmark's own container through its "
            "cgroup, but runner " +
            plan.runner + " (" + caps.engine +
            ") runs no containers; use a docker:// runner, or drop \"container\" (the run "
            "record's exit usage has each benchmark's CPU time and peak memory)");
      }
      continue;
    }
    BITFUSION_RETURN_IF_ERROR(
        MetricSourceFromUri(source).status().WithContext("metric source \"" + source + "\""));
  }
  return Status::OK();
}

// The machine the plan runs on: the first the plan's provisioner lists.
Result<MachineInfo> FindMachine(const PlanSpec& plan) {
  BITFUSION_ASSIGN_OR_RETURN(auto provisioner, ProvisionerFromUri(plan.provisioner));
  BITFUSION_ASSIGN_OR_RETURN(auto machines, provisioner->List());
  if (machines.empty()) {
    return FailedPreconditionError(PlanName(plan) + ": provisioner " + plan.provisioner +
                                   " has no machine to run on; bring one up first");
  }
  return provisioner->WaitReady(machines.front().id, DeadlineAfter(10s));
}

// Everything that can fail before a benchmark runs fails here, before any run starts.
Result<PreparedPlan> Prepare(const PlanSpec& plan, const ExperimentOptions& options) {
  if (plan.benchmarks.empty()) {
    return InvalidArgumentError("plan " + plan.name + " has no benchmarks");
  }
  PreparedPlan p;
  for (std::size_t i = 0; i < plan.benchmarks.size(); ++i) {
    BITFUSION_ASSIGN_OR_RETURN(auto argv, ResolveCommand(plan, plan.benchmarks[i], i, options));
    p.argvs.push_back(std::move(argv));
  }
  BITFUSION_ASSIGN_OR_RETURN(p.runner, ReachRunner(plan, p.caps));
  BITFUSION_RETURN_IF_ERROR(PrepareImages(plan, options, p));
  BITFUSION_RETURN_IF_ERROR(CheckSources(plan, options, p.caps));
  for (const auto& uri : options.sinks.empty() ? plan.sinks : options.sinks) {
    BITFUSION_ASSIGN_OR_RETURN(auto sink, ResultSinkFromUri(uri));
    p.sinks.push_back(std::move(sink));
  }
  p.caller_sinks = options.sink_objects.size();
  for (const auto& sink : options.sink_objects) {
    if (sink == nullptr)
      return InvalidArgumentError("ExperimentOptions::sink_objects holds a null sink");
    p.sinks.push_back(sink);
  }
  BITFUSION_ASSIGN_OR_RETURN(p.machine, FindMachine(plan));
  return p;
}

// Reactors on the engine's events: the last log lines of a container that failed, and the OOM
// killer's verdict, both keyed by the run id label each container carries. An inactive
// subscription when the runner has no events.
Subscription WatchEngine(const PlanSpec& plan, PreparedPlan& p, EventBus& bus, Reactor& reactor,
                         RunNotes& notes) {
  if (!p.caps.events) return {};
  auto by_run = [](const Event& e) { return EventAttribute(e, "run_id"); };
  reactor.Add(AttachLogTailOnFailure(p.runner, kStderrTail,
                                     [&notes, by_run](const Event& e, std::vector<LogLine> tail) {
                                       if (!by_run(e).empty()) notes.AddTail(by_run(e), tail);
                                     }));
  reactor.Add(MarkFailedOnOom([&notes, by_run](const Event& e) {
    if (!by_run(e).empty()) notes.MarkOom(by_run(e));
  }));
  auto subscribed = p.runner->Events(bus.Publisher());
  if (subscribed.ok()) return std::move(*subscribed);
  LogAt(LogLevel::kWarning, "no events from ", plan.runner, " (", subscribed.error().ToString(),
        "); failed runs get stderr only");
  return {};
}

// One benchmark's warm-ups and measured runs; each record goes to `store` as soon as it is
// made. Stops early when the plan is cancelled.
void RunBenchmark(const RunContext& ctx, std::size_t index, const std::vector<std::string>& argv,
                  const LeasedDevices& devices, PlanResult& result,
                  const std::function<void(RunRecord)>& store) {
  const BenchmarkSpec& b = ctx.plan.benchmarks[index];
  RepetitionPolicy policy(b);
  RunProgress progress;
  progress.machine = ctx.machine.hostname;
  progress.benchmark = b.name;
  progress.benchmark_index = index;
  progress.benchmarks = ctx.plan.benchmarks.size();
  progress.warmups = b.warmup;
  progress.planned = b.repetitions;
  progress.target_rsd = b.adaptive.enabled ? b.adaptive.target_rsd : 0;
  progress.metric = policy.metric();
  const auto& on_progress = ctx.options.on_progress;
  const auto first_start = std::chrono::steady_clock::now();
  for (int k = 0;; ++k) {
    if (Cancelled(ctx.options)) {
      result.interrupted = true;
      break;
    }
    const bool warmup = k < b.warmup;
    const int repetition = warmup ? k : k - b.warmup;
    progress.started = true;
    progress.warmup = warmup;
    progress.run = repetition + 1;
    progress.record = nullptr;
    progress.stopped.clear();
    if (on_progress) on_progress(progress);
    RunRecord record = RunOnce(ctx, b, argv, devices, repetition, warmup);
    std::string why;
    if (!warmup) {
      why = policy.Add(record, std::chrono::steady_clock::now() - first_start);
      if (!why.empty() && b.adaptive.enabled) {
        record.labels["repetitions_stop"] = policy.stop_kind();
        record.labels["repetitions_stop_detail"] = why;
        result.repetitions_stopped[b.name] = why;
      }
    }
    progress.started = false;
    progress.last = policy.last();
    progress.rsd = policy.rsd();
    progress.eta_ns =
        why.empty() ? policy.EtaNs(k + 1, std::chrono::steady_clock::now() - first_start) : 0;
    progress.stopped = why;
    progress.record = &record;
    if (on_progress) on_progress(progress);
    progress.record = nullptr;
    store(std::move(record));
    if (result.interrupted || !why.empty()) break;
  }
}

// Every benchmark of the plan gets rows, in plan order; one with no successful run gets a
// wall_time row with 0 runs.
std::vector<MetricSummary> Summaries(const PlanSpec& plan, const std::vector<RunRecord>& runs) {
  const std::vector<MetricSummary> all = SummarizeRuns(runs);
  std::vector<MetricSummary> out;
  for (const auto& b : plan.benchmarks) {
    const std::size_t before = out.size();
    for (const auto& m : all) {
      if (m.benchmark == b.name) out.push_back(m);
    }
    if (out.size() == before) {
      MetricSummary m;
      m.benchmark = b.name;
      m.metric = "wall_time";
      m.unit = "s";
      out.push_back(m);
    }
  }
  return out;
}

}  // namespace

Result<PlanResult> RunPlan(const PlanSpec& plan, const ExperimentOptions& options) {
  BITFUSION_ASSIGN_OR_RETURN(PreparedPlan p, Prepare(plan, options));

  PlanResult result;
  result.plan = plan.name;
  result.plan_run_id = NewRunId();
  RunNotes notes;
  EventBus bus;
  Reactor reactor(bus);
  Subscription host_events;
  if (options.on_event) host_events = bus.Subscribe({}, nullptr, options.on_event);
  for (const auto& sink : p.sinks) sink->SetEventCallback(bus.Publisher());
  Subscription events = WatchEngine(plan, p, bus, reactor, notes);
  // Every record goes to the sinks and the caller as soon as it is made.
  std::vector<int> failed_writes(p.sinks.size(), 0);
  auto store = [&](RunRecord record) {
    if (record.status == kRunInterrupted) result.interrupted = true;
    if (record.status != kRunOk && record.status != kRunInterrupted) ++result.failed_runs;
    for (std::size_t i = 0; i < p.sinks.size(); ++i) {
      if (Status s = p.sinks[i]->Write(record); !s.ok()) {
        result.sink_errors.push_back(s.ToString());
        ++failed_writes[i];
      }
    }
    if (options.on_run) options.on_run(record);
    result.runs.push_back(std::move(record));
  };
  // Leases and releases are published on the plan's bus and held in the plan run's name.
  std::shared_ptr<DeviceAllocator> allocator;
  if (std::any_of(plan.benchmarks.begin(), plan.benchmarks.end(),
                  [](const BenchmarkSpec& b) { return !b.devices.empty(); })) {
    auto made = DeviceAllocatorFromUri(plan.device_allocator,
                                       BackendContext{bus.Publisher(), result.plan_run_id, {}});
    if (!made) return made.error().WithContext("device_allocator " + plan.device_allocator);
    allocator = std::move(*made);
  }

  const RunContext ctx{plan,         options,
                       *p.runner,    p.sinks,
                       p.machine,    result.plan_run_id,
                       p.digests,    events.active() ? &notes : nullptr,
                       p.entrypoints};
  for (std::size_t i = 0; i < plan.benchmarks.size() && !result.interrupted; ++i) {
    const BenchmarkSpec& b = plan.benchmarks[i];
    LeasedDevices devices;
    if (!b.devices.empty()) {
      auto leased = LeaseDevices(*allocator, p.caps, plan, b, options.cancel);
      if (!leased && leased.error().code() == StatusCode::kCancelled) {
        result.interrupted = true;
        break;
      }
      if (!leased) {
        // The benchmark cannot run; one record says why, and the plan goes on.
        RunRecord record;
        record.run_id = NewRunId();
        record.plan = plan.name;
        record.plan_run_id = result.plan_run_id;
        record.benchmark = b.name;
        record.runner = Redact(plan.runner);
        record.machine = p.machine;
        record.status = kRunError;
        record.error = leased.error().WithContext("leasing devices").ToString();
        store(std::move(record));
        continue;
      }
      devices = std::move(*leased);
    }
    RunBenchmark(ctx, i, p.argvs[i], devices, result, store);
  }

  // Finish.
  // No deadline: each sink's own flush_timeout, which for a durable sink is one budget for the
  // whole outage, so a store that is down does not hold the plan up here either. An
  // interrupted plan gives each sink a few seconds: what a durable sink has not sent by then
  // stays in its spool for the next run.
  constexpr auto kInterruptedSinkWait = std::chrono::seconds(3);
  const bool cancelled = Cancelled(options);
  for (std::size_t i = 0; i < p.sinks.size(); ++i) {
    ResultSink& sink = *p.sinks[i];
    // The caller's own sinks (the last ones) stay open for the caller.
    const bool callers = i + p.caller_sinks >= p.sinks.size();
    const Deadline deadline = cancelled ? DeadlineAfter(kInterruptedSinkWait) : kNoDeadline;
    const Status closed = callers ? sink.Flush(deadline) : sink.Close(deadline);
    if (!closed.ok()) result.sink_errors.push_back(closed.ToString());
    SinkOutcome outcome;
    outcome.uri = sink.uri();
    outcome.counters = sink.counters();
    outcome.spool = sink.spool_dir();
    outcome.stored = closed.ok() && failed_writes[i] == 0 &&
                     outcome.counters.samples_pending == 0 && outcome.counters.runs_pending == 0 &&
                     outcome.counters.samples_dropped == 0;
    result.sinks.push_back(std::move(outcome));
  }
  // The caller sees every event of the plan before RunPlan returns.
  if (Status s = bus.Flush(DeadlineAfter(10s)); !s.ok()) {
    LogAt(LogLevel::kWarning, "delivering the plan's last events: ", s.ToString());
  }
  result.summary = Summaries(plan, result.runs);
  return result;
}

}  // namespace bitfusion
