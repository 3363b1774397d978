// RunPlan: the five interfaces composed into one workflow — fingerprint the machine, open the
// sinks, then for every benchmark run its warm-ups and repetitions under a metric stream, and
// store a run record for each.
#include <unistd.h>

#include <charconv>
#include <cmath>
#include <deque>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

#include "bitfusion/container_runner.h"
#include "bitfusion/experiment.h"
#include "bitfusion/log.h"
#include "bitfusion/metric_stream.h"
#include "bitfusion/provisioner.h"
#include "bitfusion/result_sink.h"

namespace bitfusion {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// How often the run loop looks at the cancel flag while a benchmark runs.
constexpr auto kCancelPoll = 50ms;
// How long a cancelled benchmark gets between SIGTERM and SIGKILL.
constexpr auto kStopGrace = 2s;
// Lines of stderr kept for the error message of a failed run.
constexpr std::size_t kStderrTail = 20;

bool Cancelled(const ExperimentOptions& options) {
  return options.cancel != nullptr && options.cancel->load();
}

bool Executable(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec) && ::access(p.c_str(), X_OK) == 0;
}

// argv for one benchmark: bundled programs are looked up next to the CLI first.
Result<std::vector<std::string>> ResolveCommand(const PlanSpec& plan, const BenchmarkSpec& b,
                                                std::size_t index,
                                                const ExperimentOptions& options) {
  if (!b.command.empty()) return b.command;
  const std::string field =
      plan.source_file + ": benchmarks[" + std::to_string(index) + "].program";
  std::vector<std::string> argv;
  if (!b.image.empty()) {
    argv.push_back(b.program);  // resolved inside the image
  } else if (b.program.find('/') != std::string::npos) {
    fs::path p(b.program);
    if (p.is_relative() && !plan.source_file.empty()) {
      p = fs::path(plan.source_file).parent_path() / p;
    }
    if (!Executable(p)) {
      return NotFoundError(field + ": \"" + p.string() + "\" is not an executable file");
    }
    argv.push_back(fs::absolute(p).string());
  } else {
    std::string looked;
    for (const auto& dir : options.program_dirs) {
      const fs::path candidate = fs::path(dir) / b.program;
      if (Executable(candidate)) {
        argv.push_back(candidate.string());
        break;
      }
      looked += (looked.empty() ? "" : ", ") + dir;
    }
    if (argv.empty()) {
      const char* path = std::getenv("PATH");
      std::string_view dirs = path ? path : "";
      while (argv.empty() && !dirs.empty()) {
        const auto colon = dirs.find(':');
        const fs::path candidate = fs::path(std::string(dirs.substr(0, colon))) / b.program;
        if (Executable(candidate)) argv.push_back(candidate.string());
        dirs = colon == std::string_view::npos ? std::string_view() : dirs.substr(colon + 1);
      }
    }
    if (argv.empty()) {
      return NotFoundError(field + ": \"" + b.program +
                           "\" is neither a bundled benchmark (looked in " +
                           (looked.empty() ? std::string("no program directories") : looked) +
                           ") nor in PATH; build it or give a path");
    }
  }
  argv.insert(argv.end(), b.args.begin(), b.args.end());
  return argv;
}

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

struct RunContext {
  const PlanSpec& plan;
  const ExperimentOptions& options;
  ContainerRunner& runner;
  const std::vector<std::shared_ptr<ResultSink>>& sinks;
  const MachineInfo& machine;
  std::string plan_run_id;
};

void Fail(RunRecord& record, const char* status, const Status& why) {
  record.status = status;
  record.error = why.ToString();
}

// One execution of one benchmark. Never returns an error: what went wrong is in the record.
RunRecord RunOnce(const RunContext& ctx, const BenchmarkSpec& b,
                  const std::vector<std::string>& argv, int repetition, bool warmup) {
  RunRecord record;
  record.run_id = NewRunId();
  record.plan = ctx.plan.name;
  record.plan_run_id = ctx.plan_run_id;
  record.benchmark = b.name;
  record.repetition = repetition;
  record.warmup = warmup;
  record.runner = ctx.plan.runner;
  record.command = argv;
  record.image = b.image;
  record.machine = ctx.machine;
  record.labels = {{"plan", ctx.plan.name},
                   {"plan_run_id", ctx.plan_run_id},
                   {"run_id", record.run_id},
                   {"benchmark", b.name},
                   {"repetition", std::to_string(repetition)},
                   {"warmup", warmup ? "true" : "false"},
                   {"machine", ctx.machine.hostname}};

  MetricStreamOptions stream_options;
  stream_options.interval = ctx.plan.interval;
  stream_options.labels = record.labels;
  auto stream = MetricStream::Make(stream_options);
  if (!stream) {
    Fail(record, kRunError, stream.error());
    return record;
  }
  for (const auto& source : ctx.plan.sources) {
    if (Status s = (*stream)->Add(source); !s.ok()) {
      Fail(record, kRunError, s.WithContext("metric source " + source));
      return record;
    }
  }
  for (const auto& sink : ctx.sinks) {
    if (Status s = (*stream)->Attach(sink); !s.ok()) {
      Fail(record, kRunError, s);
      return record;
    }
  }

  ContainerSpec spec;
  spec.image = b.image;
  spec.command = argv;
  spec.env = b.env;
  spec.working_dir = b.working_dir;
  spec.timeout_ns = b.timeout.count();
  spec.labels = record.labels;
  auto container = ctx.runner.Create(spec);
  if (!container) {
    Fail(record, kRunError, container.error());
    return record;
  }
  OutputCollector output;
  Subscription logs =
      (*container)->Logs([&](LogStream s, std::string_view line) { output.OnLine(s, line); });

  // Sampling starts just before the benchmark so its first tick precedes the first instruction.
  if (Status s = (*stream)->Start(); !s.ok()) {
    Fail(record, kRunError, s);
    return record;
  }
  if (Status s = (*container)->Start(); !s.ok()) {
    (void)(*stream)->Stop();
    Fail(record, kRunError, s);
    return record;
  }
  Result<ExitStatus> exit = DeadlineExceededError("not waited yet");
  bool interrupted = false;
  while (true) {
    exit = (*container)->Wait(DeadlineAfter(kCancelPoll));
    if (exit.ok() || exit.error().code() != StatusCode::kDeadlineExceeded) break;
    if (!interrupted && Cancelled(ctx.options)) {
      interrupted = true;
      if (Status s = (*container)->Stop(kStopGrace); !s.ok()) {
        LogAt(LogLevel::kError, "stopping ", b.name, ": ", s.ToString());
      }
    }
  }
  if (Status s = (*stream)->Stop(); !s.ok()) {
    LogAt(LogLevel::kWarning, "stopping metrics of ", b.name, ": ", s.ToString());
  }
  logs.Cancel();

  const StreamOverhead overhead = (*stream)->Overhead();
  record.overhead.cpu_ns = overhead.sampler_cpu_ns + overhead.delivery_cpu_ns;
  record.overhead.samples = overhead.samples;
  record.overhead.samples_dropped = overhead.samples_dropped;
  record.overhead.interval_ns = ctx.plan.interval.count();
  record.results = output.results();
  if (!exit.ok()) {
    Fail(record, kRunError, exit.error());
    return record;
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
  } else if (!exit->success()) {
    record.status = kRunFailed;
    record.error = exit->signal ? "killed by signal " + std::to_string(exit->signal)
                                : "exit status " + std::to_string(exit->exit_code);
    const std::string tail = output.stderr_tail();
    if (!tail.empty()) record.error += "; last stderr lines:\n" + tail;
  }
  return record;
}

std::vector<MetricSummary> Summaries(const PlanSpec& plan, const std::vector<RunRecord>& runs) {
  std::vector<MetricSummary> out;
  for (const auto& b : plan.benchmarks) {
    // Metrics in the order the benchmark first reported them, wall_time first.
    std::vector<std::pair<std::string, std::string>> order;
    std::map<std::string, std::vector<double>> values;
    for (const auto& r : runs) {
      if (r.benchmark != b.name || r.warmup || r.status != kRunOk) continue;
      for (const auto& s : r.results) {
        if (!values.count(s.metric)) order.emplace_back(s.metric, s.unit);
        values[s.metric].push_back(s.value);
      }
    }
    if (order.empty()) {
      MetricSummary m;  // a benchmark with no successful run still gets a row, with 0 runs
      m.benchmark = b.name;
      m.metric = "wall_time";
      m.unit = "s";
      out.push_back(m);
    }
    for (const auto& [metric, unit] : order) {
      MetricSummary m;
      m.benchmark = b.name;
      m.metric = metric;
      m.unit = unit;
      m.stats = Summarize(values[metric]);
      out.push_back(m);
    }
  }
  return out;
}

}  // namespace

Result<PlanResult> RunPlan(const PlanSpec& plan, const ExperimentOptions& options) {
  if (plan.benchmarks.empty())
    return InvalidArgumentError("plan " + plan.name + " has no benchmarks");
  // Everything that can fail before a benchmark runs fails here, before any run starts.
  std::vector<std::vector<std::string>> argvs;
  for (std::size_t i = 0; i < plan.benchmarks.size(); ++i) {
    BITFUSION_ASSIGN_OR_RETURN(auto argv, ResolveCommand(plan, plan.benchmarks[i], i, options));
    argvs.push_back(std::move(argv));
  }
  BITFUSION_ASSIGN_OR_RETURN(auto runner, ContainerRunnerFromUri(plan.runner));
  for (const auto& b : plan.benchmarks) {
    BITFUSION_RETURN_IF_ERROR(
        runner->EnsureImage(b.image, DeadlineAfter(10min)).WithContext("benchmark " + b.name));
  }
  for (const auto& source : plan.sources) {
    BITFUSION_RETURN_IF_ERROR(
        MetricSourceFromUri(source).status().WithContext("metric source \"" + source + "\""));
  }
  std::vector<std::shared_ptr<ResultSink>> sinks;
  for (const auto& uri : options.sinks.empty() ? plan.sinks : options.sinks) {
    BITFUSION_ASSIGN_OR_RETURN(auto sink, ResultSinkFromUri(uri));
    sinks.push_back(std::move(sink));
  }
  BITFUSION_ASSIGN_OR_RETURN(auto provisioner, ProvisionerFromUri("local://"));
  BITFUSION_ASSIGN_OR_RETURN(MachineInfo machine,
                             provisioner->WaitReady("local", DeadlineAfter(10s)));

  PlanResult result;
  result.plan = plan.name;
  result.plan_run_id = NewRunId();
  RunContext ctx{plan, options, *runner, sinks, machine, result.plan_run_id};
  for (std::size_t i = 0; i < plan.benchmarks.size() && !result.interrupted; ++i) {
    const BenchmarkSpec& b = plan.benchmarks[i];
    const int total = b.warmup + b.repetitions;
    for (int k = 0; k < total; ++k) {
      if (Cancelled(options)) {
        result.interrupted = true;
        break;
      }
      const bool warmup = k < b.warmup;
      RunRecord record = RunOnce(ctx, b, argvs[i], warmup ? k : k - b.warmup, warmup);
      if (record.status == kRunInterrupted) result.interrupted = true;
      if (record.status != kRunOk && record.status != kRunInterrupted) ++result.failed_runs;
      for (const auto& sink : sinks) {
        if (Status s = sink->Write(record); !s.ok()) result.sink_errors.push_back(s.ToString());
      }
      if (options.on_run) options.on_run(record);
      result.runs.push_back(std::move(record));
      if (result.interrupted) break;
    }
  }
  for (const auto& sink : sinks) {
    if (Status s = sink->Close(DeadlineAfter(60s)); !s.ok()) {
      result.sink_errors.push_back(s.ToString());
    }
  }
  result.summary = Summaries(plan, result.runs);
  return result;
}

}  // namespace bitfusion
