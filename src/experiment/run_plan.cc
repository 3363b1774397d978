// RunPlan: the five interfaces composed into one workflow — fingerprint the machine, open the
// sinks, then for every benchmark run its warm-ups and repetitions under a metric stream, and
// store a run record for each.
#include <openssl/evp.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "bitfusion/container_runner.h"
#include "bitfusion/device_allocator.h"
#include "bitfusion/events.h"
#include "bitfusion/experiment.h"
#include "bitfusion/log.h"
#include "bitfusion/metric_stream.h"
#include "bitfusion/probe.h"
#include "bitfusion/provisioner.h"
#include "bitfusion/result_sink.h"
#include "bitfusion/uri.h"
#include "devices/sysfs_allocator.h"
#include "metrics/container_source.h"
#include "metrics/probe_source.h"

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

// A bundled program ("bf-stream") next to the CLI first, then in PATH; or a path (relative to
// the plan). `field` names where it was asked for, for the error.
Result<std::string> LocateProgram(const PlanSpec& plan, const std::string& program,
                                  const std::string& field, const ExperimentOptions& options) {
  if (program.find('/') != std::string::npos) {
    fs::path p(program);
    if (p.is_relative() && !plan.source_file.empty()) {
      p = fs::path(plan.source_file).parent_path() / p;
    }
    if (!Executable(p)) {
      return NotFoundError(field + ": \"" + p.string() + "\" is not an executable file");
    }
    return fs::absolute(p).string();
  }
  std::string looked;
  for (const auto& dir : options.program_dirs) {
    const fs::path candidate = fs::path(dir) / program;
    if (Executable(candidate)) return candidate.string();
    looked += (looked.empty() ? "" : ", ") + dir;
  }
  const char* path = std::getenv("PATH");
  std::string_view dirs = path ? path : "";
  while (!dirs.empty()) {
    const auto colon = dirs.find(':');
    const fs::path candidate = fs::path(std::string(dirs.substr(0, colon))) / program;
    if (Executable(candidate)) return candidate.string();
    dirs = colon == std::string_view::npos ? std::string_view() : dirs.substr(colon + 1);
  }
  return NotFoundError(field + ": \"" + program + "\" is neither a bundled benchmark (looked in " +
                       (looked.empty() ? std::string("no program directories") : looked) +
                       ") nor in PATH; build it or give a path");
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
  } else {
    BITFUSION_ASSIGN_OR_RETURN(auto program, LocateProgram(plan, b.program, field, options));
    argv.push_back(std::move(program));
  }
  argv.insert(argv.end(), b.args.begin(), b.args.end());
  return argv;
}

fs::path PlanRelative(const PlanSpec& plan, const std::string& path) {
  fs::path p(path);
  if (p.is_relative() && !plan.source_file.empty()) {
    p = fs::path(plan.source_file).parent_path() / p;
  }
  return p.lexically_normal();
}

// SHA-256 over every file of a build (names and contents), so a changed benchmark program or
// Dockerfile makes the image be built again.
Result<std::string> ContextDigest(const BuildSpec& build) {
  std::vector<std::pair<std::string, fs::path>> files;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(build.context_dir, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file()) {
      files.emplace_back(fs::relative(it->path(), build.context_dir).string(), it->path());
    }
  }
  if (ec) return ErrnoError(ec.value(), "reading build context " + build.context_dir.string());
  for (const auto& [name, path] : build.extra_files) files.emplace_back(name, path);
  std::sort(files.begin(), files.end());
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr);
  for (const auto& [name, path] : files) {
    EVP_DigestUpdate(ctx.get(), name.data(), name.size() + 1);
    std::ifstream in(path, std::ios::binary);
    if (!in) return ErrnoError(errno, "reading " + path.string());
    char buf[65536];
    while (in.read(buf, sizeof buf) || in.gcount() > 0) {
      EVP_DigestUpdate(ctx.get(), buf, static_cast<std::size_t>(in.gcount()));
    }
  }
  for (const auto& [k, v] : build.build_args) {
    EVP_DigestUpdate(ctx.get(), k.data(), k.size() + 1);
    EVP_DigestUpdate(ctx.get(), v.data(), v.size() + 1);
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  EVP_DigestFinal_ex(ctx.get(), md, &len);
  std::string hex;
  for (unsigned i = 0; i < len; ++i) {
    static constexpr char kHex[] = "0123456789abcdef";
    hex += kHex[md[i] >> 4];
    hex += kHex[md[i] & 15];
  }
  return hex;
}

// Label holding ContextDigest on images a plan built.
constexpr const char* kContextLabel = "bitfusion.context_sha256";

// The plan's own recipe for `ref`: built when the engine lacks the image or holds an older
// build of it.
Status BuildPlanImage(ContainerRunner& runner, const PlanSpec& plan, const std::string& ref,
                      const ImageRecipe& recipe, const ExperimentOptions& options) {
  const std::string field = plan.source_file + ": images[\"" + ref + "\"]";
  BuildSpec build;
  build.context_dir = PlanRelative(plan, recipe.context);
  build.dockerfile = recipe.dockerfile;
  build.tag = ref;
  build.build_args = recipe.build_args;
  for (const auto& [name, source] : recipe.files) {
    if (source.find('/') != std::string::npos) {
      build.extra_files[name] = PlanRelative(plan, source);
      std::error_code ec;
      if (!fs::exists(build.extra_files[name], ec)) {
        return NotFoundError(field + ".files." + name + ": " + build.extra_files[name].string() +
                             " does not exist");
      }
    } else {
      BITFUSION_ASSIGN_OR_RETURN(auto program,
                                 LocateProgram(plan, source, field + ".files." + name, options));
      build.extra_files[name] = program;
    }
  }
  BITFUSION_ASSIGN_OR_RETURN(std::string digest, ContextDigest(build));
  auto present = runner.InspectImage(ref);
  if (present.ok()) {
    auto it = present->labels.find(kContextLabel);
    if (it != present->labels.end() && it->second == digest) return Status::OK();
  } else if (present.error().code() != StatusCode::kNotFound) {
    return present.error();
  }
  build.labels[kContextLabel] = digest;
  LogAt(LogLevel::kInfo, "building image ", ref, " from ", build.context_dir.string());
  return runner.BuildImage(build, DeadlineAfter(10min)).status().WithContext(field);
}

// What reactors learned about runs from the engine's events, by run id.
class RunNotes {
 public:
  void AddTail(const std::string& run_id, std::vector<LogLine> tail) {
    std::lock_guard lock(mu_);
    tails_[run_id] = std::move(tail);
    cv_.notify_all();
  }
  void MarkOom(const std::string& run_id) {
    std::lock_guard lock(mu_);
    oom_.insert(run_id);
  }
  bool Oom(const std::string& run_id) {
    std::lock_guard lock(mu_);
    return oom_.count(run_id) > 0;
  }
  // The tail for a failed run; the engine reports the death a moment after Wait() returns.
  std::optional<std::vector<LogLine>> WaitForTail(const std::string& run_id, Deadline deadline) {
    std::unique_lock lock(mu_);
    cv_.wait_until(lock, deadline, [&] { return tails_.count(run_id) > 0; });
    auto it = tails_.find(run_id);
    if (it == tails_.end()) return std::nullopt;
    return it->second;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, std::vector<LogLine>> tails_;
  std::set<std::string> oom_;
};

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
  std::map<std::string, std::string> image_digests;
  RunNotes* notes = nullptr;  // null when the runner has no event stream
  // Image -> its ENTRYPOINT, for the "probe" source, which puts the probe in front of it.
  std::map<std::string, std::vector<std::string>> image_entrypoints;
};

// The devices one benchmark holds for all its runs, and what they add to each container.
struct LeasedDevices {
  std::vector<std::unique_ptr<DeviceLease>> leases;
  std::vector<ContainerEdits> edits;  // one per request
  std::string ids;                    // comma-separated, for the runs' "devices" label
};

// Leases every device `b` asks for; the first request that cannot be met is the error.
Result<LeasedDevices> LeaseDevices(DeviceAllocator& allocator, const RunnerCapabilities& caps,
                                   const PlanSpec& plan, const BenchmarkSpec& b) {
  LeasedDevices out;
  for (const auto& request : b.devices) {
    BITFUSION_ASSIGN_OR_RETURN(auto lease,
                               allocator.Acquire(request, DeadlineAfter(plan.device_wait)));
    BITFUSION_ASSIGN_OR_RETURN(ContainerEdits edits, allocator.EditsFor(*lease, caps));
    out.edits.push_back(std::move(edits));
    for (const auto& d : lease->devices()) out.ids += (out.ids.empty() ? "" : ",") + d.id;
    out.leases.push_back(std::move(lease));
  }
  return out;
}

// A plan's allocator, its leases and releases published on the run's event bus.
Result<std::shared_ptr<DeviceAllocator>> MakeAllocator(const PlanSpec& plan,
                                                       const std::string& plan_run_id,
                                                       EventBus& bus) {
  BITFUSION_ASSIGN_OR_RETURN(Uri uri, Uri::Parse(plan.device_allocator));
  if (uri.scheme != "local" && uri.scheme != "sysfs") {
    return DeviceAllocatorFromUri(plan.device_allocator);
  }
  BITFUSION_ASSIGN_OR_RETURN(SysfsAllocatorOptions options, SysfsAllocatorOptions::FromUri(uri));
  options.run_id = plan_run_id;
  options.on_event = bus.Publisher();
  BITFUSION_ASSIGN_OR_RETURN(auto allocator, SysfsAllocator::Make(options));
  return std::shared_ptr<DeviceAllocator>(std::move(allocator));
}

void Fail(RunRecord& record, const char* status, const Status& why) {
  record.status = status;
  record.error = why.ToString();
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

Result<std::string> LocateProbe(const PlanSpec& plan, const ExperimentOptions& options) {
  auto bundled = LocateProgram(plan, "bitfusion-probe", "metric source \"probe\"", options);
  if (bundled.ok()) return bundled;
  return FindProbe();
}

// One execution of one benchmark. Never returns an error: what went wrong is in the record.
RunRecord RunOnce(const RunContext& ctx, const BenchmarkSpec& b,
                  const std::vector<std::string>& argv, const LeasedDevices& devices,
                  int repetition, bool warmup) {
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
                   {"machine", ctx.machine.hostname}};
  if (!devices.ids.empty()) record.labels["devices"] = devices.ids;

  MetricStreamOptions stream_options;
  stream_options.interval = ctx.plan.interval;
  stream_options.labels = record.labels;
  auto stream = MetricStream::Make(stream_options);
  if (!stream) {
    Fail(record, kRunError, stream.error());
    return record;
  }
  for (const auto& source : ctx.plan.sources) {
    if (auto own = IsOwnContainerSource(source); own.ok() && *own) continue;
    if (auto probe = IsOwnProbeSource(source); probe.ok() && *probe) continue;
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
  // The lease's settings win over the benchmark's env: a benchmark must not see other devices.
  for (const auto& edits : devices.edits) edits.ApplyTo(spec);
  // Kept typed: the run tells container sources that the container started, and waits for the
  // probes' last samples before stopping the stream.
  std::vector<std::shared_ptr<ProbeSource>> probes;
  std::vector<std::shared_ptr<ContainerSource>> container_sources;
  // "probe": mounted into this run's container in front of its command; its source listens
  // before the container exists.
  for (const auto& source : ctx.plan.sources) {
    auto own = IsOwnProbeSource(source);
    if (!own.ok() || !*own) continue;
    const Uri uri = *Uri::Parse(source);
    ContainerProbeOptions po;
    po.name = b.name;
    po.interval = ctx.plan.interval;
    po.processes = *uri.QueryBool("processes", true);
    auto path = LocateProbe(ctx.plan, ctx.options);
    if (path.ok()) po.probe_path = *path;
    // The probe replaces the entrypoint and runs what followed it: keep the image's own in front
    // of the benchmark's command, as the engine would have.
    if (spec.entrypoint.empty()) {
      if (auto it = ctx.image_entrypoints.find(b.image); it != ctx.image_entrypoints.end()) {
        spec.entrypoint = it->second;
      }
    }
    auto probe = path.ok() ? ProbeContainer(po, spec) : Result<ContainerProbe>(path.error());
    if (!probe) {
      Fail(record, kRunError, probe.error().WithContext("metric source " + source));
      return record;
    }
    if (auto typed = std::dynamic_pointer_cast<ProbeSource>(probe->source)) {
      probes.push_back(std::move(typed));
    }
    std::shared_ptr<MetricSource> added = probe->source;
    if (*uri.QueryBool("rate", false)) added = CountersAsRates(std::move(added));
    if (Status s = (*stream)->Add(std::move(added)); !s.ok()) {
      Fail(record, kRunError, s.WithContext("metric source " + source));
      return record;
    }
  }
  auto container = ctx.runner.Create(spec);
  if (!container) {
    Fail(record, kRunError, container.error());
    return record;
  }
  // "container": this run's container, sampled through its cgroup once it runs (the source waits,
  // off the sampling thread, for the container to start; Started() below makes it look at once,
  // so sampling begins within about a millisecond of the start, not at the first instruction).
  for (const auto& source : ctx.plan.sources) {
    auto own = IsOwnContainerSource(source);
    if (!own.ok() || !*own) continue;
    // Checked by IsOwnContainerSource at plan validation.
    const Uri uri = *Uri::Parse(source);
    const int every = static_cast<int>(*uri.QueryInt("detail_every", 1));
    // The runner outlives the stream, which is stopped before this function returns.
    auto made = ContainerMetricSource(
        std::shared_ptr<ContainerRunner>(std::shared_ptr<void>(), &ctx.runner), (*container)->id(),
        every);
    if (!made) {
      Fail(record, kRunError, made.error().WithContext("metric source " + source));
      return record;
    }
    if (auto typed = std::dynamic_pointer_cast<ContainerSource>(*made)) {
      container_sources.push_back(std::move(typed));
    }
    std::shared_ptr<MetricSource> added = std::move(*made);
    if (*uri.QueryBool("rate", false)) added = CountersAsRates(std::move(added));
    if (Status s = (*stream)->Add(std::move(added)); !s.ok()) {
      Fail(record, kRunError, s.WithContext("metric source " + source));
      return record;
    }
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
  for (const auto& source : container_sources) source->Started();
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
  // The probe sends its last sample after the command exits, just before the container ends;
  // let its reader take it (bounded) so that Stop's final collection delivers it.
  for (const auto& probe : probes) {
    if (!probe->WaitEnded(std::chrono::seconds(1))) {
      LogAt(LogLevel::kInfo, "the probe in ", b.name,
            "'s container did not close its connection within 1 s of the container's exit");
    }
  }
  if (Status s = (*stream)->Stop(); !s.ok()) {
    LogAt(LogLevel::kWarning, "stopping metrics of ", b.name, ": ", s.ToString());
  }
  logs.Cancel();

  const StreamOverhead overhead = (*stream)->Overhead();
  record.overhead.cpu_ns =
      overhead.sampler_cpu_ns + overhead.delivery_cpu_ns + overhead.source_cpu_ns;
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
    if (tail && !tail->empty()) {
      record.error += "; last log lines:";
      for (const auto& l : *tail) record.error += "\n" + l.text;
    } else if (const std::string err = output.stderr_tail(); !err.empty()) {
      record.error += "; last stderr lines:\n" + err;
    }
  }
  return record;
}

// Whether another measured run of a benchmark follows: a fixed count, or adaptive repetitions
// that go on until the metric's RSD is under the target or a cap is reached.
class RepetitionPolicy {
 public:
  explicit RepetitionPolicy(const BenchmarkSpec& b) : b_(b) {}

  const std::string& metric() const {
    static const std::string kWallTime = "wall_time";
    return b_.adaptive.enabled ? b_.adaptive.metric : kWallTime;
  }
  double last() const { return last_; }
  double rsd() const { return rsd_; }
  const char* stop_kind() const { return kind_; }

  // Takes a measured run; returns why no run follows, or "" to go on. `elapsed`: since the
  // benchmark's first run started.
  std::string Add(const RunRecord& r, std::chrono::nanoseconds elapsed) {
    ++made_;
    last_ = std::nan("");
    if (r.status == kRunOk) {
      for (const auto& s : r.results) {
        if (s.metric != metric()) continue;
        last_ = s.value;
        if (std::isfinite(s.value)) values_.push_back(s.value);
        break;
      }
    }
    rsd_ = values_.size() >= 2 ? Summarize(values_).rsd : std::nan("");
    if (!b_.adaptive.enabled) {
      kind_ = "count";
      return made_ >= b_.repetitions ? std::to_string(made_) + (made_ == 1 ? " run" : " runs") : "";
    }
    const std::string rsd_text = std::isnan(rsd_) ? "no RSD" : "RSD " + Percent(rsd_);
    const std::string target = Percent(b_.adaptive.target_rsd);
    if (made_ >= b_.adaptive.min && values_.size() >= 2 && rsd_ < b_.adaptive.target_rsd) {
      kind_ = "target_rsd";
      return rsd_text + " < " + target + " after " + std::to_string(made_) + " runs";
    }
    std::string missing;
    if (values_.empty()) missing = "; no successful run reported " + metric();
    if (made_ >= b_.repetitions) {
      kind_ = "max";
      return "max of " + std::to_string(made_) + " runs reached with " + rsd_text + " (target " +
             target + ")" + missing;
    }
    if (b_.adaptive.max_time.count() > 0 && elapsed >= b_.adaptive.max_time) {
      kind_ = "max_time";
      return "max_time " + FormatDuration(b_.adaptive.max_time) + " reached after " +
             std::to_string(made_) + " runs with " + rsd_text + " (target " + target + ")" +
             missing;
    }
    return "";
  }

  // This benchmark's time left after `runs` runs (warm-ups included) took `elapsed`: the mean
  // run times the runs still planned (at most, when adaptive); capped by max_time.
  std::int64_t EtaNs(int runs, std::chrono::nanoseconds elapsed) const {
    if (runs <= 0) return -1;
    const int left = b_.warmup + b_.repetitions - runs;
    if (left <= 0) return 0;
    std::int64_t eta = elapsed.count() / runs * left;
    if (b_.adaptive.enabled && b_.adaptive.max_time.count() > 0) {
      eta = std::min<std::int64_t>(
          eta, std::max<std::int64_t>(0, (b_.adaptive.max_time - elapsed).count()));
    }
    return eta;
  }

 private:
  static std::string Percent(double fraction) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2f %%", fraction * 100);
    return buf;
  }

  const BenchmarkSpec& b_;
  int made_ = 0;
  std::vector<double> values_;
  double last_ = std::nan("");
  double rsd_ = std::nan("");
  const char* kind_ = "";
};

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
  if (plan.benchmarks.empty())
    return InvalidArgumentError("plan " + plan.name + " has no benchmarks");
  // Everything that can fail before a benchmark runs fails here, before any run starts.
  std::vector<std::vector<std::string>> argvs;
  for (std::size_t i = 0; i < plan.benchmarks.size(); ++i) {
    BITFUSION_ASSIGN_OR_RETURN(auto argv, ResolveCommand(plan, plan.benchmarks[i], i, options));
    argvs.push_back(std::move(argv));
  }
  BITFUSION_ASSIGN_OR_RETURN(auto runner, ContainerRunnerFromUri(plan.runner));
  auto caps = runner->Capabilities();
  if (!caps) {
    if (caps.error().code() != StatusCode::kUnavailable) return caps.error();
    return UnavailableError(caps.error().message() +
                            "\nNo container engine is reachable for this plan. To run the "
                            "benchmarks as plain processes instead, use a plan with \"runner\": "
                            "\"process://\", such as examples/specs/quickstart.json.");
  }
  std::map<std::string, std::string> digests;
  std::map<std::string, std::vector<std::string>> entrypoints;
  if (caps->images) {
    for (std::size_t i = 0; i < plan.benchmarks.size(); ++i) {
      if (plan.benchmarks[i].image.empty()) {
        return InvalidArgumentError(plan.source_file + ": benchmarks[" + std::to_string(i) +
                                    "].image: missing; runner " + plan.runner +
                                    " runs images (or use \"runner\": \"process://\")");
      }
    }
    // What runs killed on this host left behind goes first (their containers still hold CPUs).
    ReapPolicy dead;
    dead.expired = false;
    if (auto reaped = runner->Reap(dead); reaped.ok()) {
      if (!reaped->containers.empty() || !reaped->images.empty()) {
        LogAt(LogLevel::kWarning, "removed ", reaped->containers.size(), " container(s) and ",
              reaped->images.size(), " image(s) left by runs that died");
      }
      for (const auto& e : reaped->errors) LogAt(LogLevel::kWarning, "reap: ", e);
    } else if (reaped.error().code() != StatusCode::kUnimplemented) {
      return reaped.error().WithContext("removing what dead runs left on " + plan.runner);
    }
    for (const auto& [ref, recipe] : plan.images) {
      BITFUSION_RETURN_IF_ERROR(BuildPlanImage(*runner, plan, ref, recipe, options));
    }
  }
  for (const auto& b : plan.benchmarks) {
    if (!b.image.empty() && digests.count(b.image)) continue;
    if (!plan.images.count(b.image)) {
      BITFUSION_RETURN_IF_ERROR(
          runner->EnsureImage(b.image, DeadlineAfter(10min)).WithContext("benchmark " + b.name));
    }
    if (b.image.empty()) continue;
    BITFUSION_ASSIGN_OR_RETURN(auto info, runner->InspectImage(b.image));
    digests[b.image] = info.digest;
    entrypoints[b.image] = info.entrypoint;
  }
  for (const auto& source : plan.sources) {
    auto probe = IsOwnProbeSource(source);
    if (!probe) return probe.error().WithContext("metric source \"" + source + "\"");
    if (*probe) {
      if (caps->engine != "docker" && caps->engine != "podman") {
        return InvalidArgumentError(
            (plan.source_file.empty() ? "plan " + plan.name : plan.source_file) +
            ": metric source \"probe\" mounts bitfusion-probe into each benchmark's container, "
            "but runner " +
            plan.runner + " (" + caps->engine + ") runs no containers; use a docker:// runner");
      }
      BITFUSION_RETURN_IF_ERROR(
          LocateProbe(plan, options).status().WithContext("metric source \"probe\""));
      continue;
    }
    auto own = IsOwnContainerSource(source);
    if (!own) return own.error().WithContext("metric source \"" + source + "\"");
    if (*own) {
      // process:// runs plain child processes, which have no cgroup of their own to sample.
      if (caps->engine != "docker" && caps->engine != "podman") {
        return InvalidArgumentError(
            (plan.source_file.empty() ? "plan " + plan.name : plan.source_file) +
            ": metric source \"container\" samples each benchmark's own container through its "
            "cgroup, but runner " +
            plan.runner + " (" + caps->engine +
            ") runs no containers; use a docker:// runner, or drop \"container\" (the run "
            "record's exit usage has each benchmark's CPU time and peak memory)");
      }
      continue;
    }
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

  // Reactors on the engine's events: the last log lines of a container that failed, and the
  // OOM killer's verdict, both keyed by the run id label each container carries.
  RunNotes notes;
  EventBus bus;
  Reactor reactor(bus);
  Subscription host_events;
  if (options.on_event) host_events = bus.Subscribe({}, nullptr, options.on_event);
  for (const auto& sink : sinks) sink->SetEventCallback(bus.Publisher());
  Subscription events;
  if (caps->events) {
    auto by_run = [](const Event& e) { return EventAttribute(e, "run_id"); };
    reactor.Add(AttachLogTailOnFailure(runner, kStderrTail,
                                       [&notes, by_run](const Event& e, std::vector<LogLine> tail) {
                                         if (!by_run(e).empty()) notes.AddTail(by_run(e), tail);
                                       }));
    reactor.Add(MarkFailedOnOom([&notes, by_run](const Event& e) {
      if (!by_run(e).empty()) notes.MarkOom(by_run(e));
    }));
    auto subscribed = runner->Events(bus.Publisher());
    if (subscribed.ok()) {
      events = std::move(*subscribed);
    } else {
      LogAt(LogLevel::kWarning, "no events from ", plan.runner, " (", subscribed.error().ToString(),
            "); failed runs get stderr only");
    }
  }

  PlanResult result;
  result.plan = plan.name;
  result.plan_run_id = NewRunId();
  // Every record goes to the sinks and the caller as soon as it is made.
  auto store = [&](RunRecord record) {
    if (record.status == kRunInterrupted) result.interrupted = true;
    if (record.status != kRunOk && record.status != kRunInterrupted) ++result.failed_runs;
    for (const auto& sink : sinks) {
      if (Status s = sink->Write(record); !s.ok()) result.sink_errors.push_back(s.ToString());
    }
    if (options.on_run) options.on_run(record);
    result.runs.push_back(std::move(record));
  };
  std::shared_ptr<DeviceAllocator> allocator;
  if (std::any_of(plan.benchmarks.begin(), plan.benchmarks.end(),
                  [](const BenchmarkSpec& b) { return !b.devices.empty(); })) {
    auto made = MakeAllocator(plan, result.plan_run_id, bus);
    if (!made) return made.error().WithContext("device_allocator " + plan.device_allocator);
    allocator = std::move(*made);
  }
  RunContext ctx{plan,       options,
                 *runner,    sinks,
                 machine,    result.plan_run_id,
                 digests,    events.active() ? &notes : nullptr,
                 entrypoints};
  for (std::size_t i = 0; i < plan.benchmarks.size() && !result.interrupted; ++i) {
    const BenchmarkSpec& b = plan.benchmarks[i];
    LeasedDevices devices;
    if (!b.devices.empty()) {
      auto leased = LeaseDevices(*allocator, *caps, plan, b);
      if (!leased) {
        // The benchmark cannot run; one record says why, and the plan goes on.
        RunRecord record;
        record.run_id = NewRunId();
        record.plan = plan.name;
        record.plan_run_id = result.plan_run_id;
        record.benchmark = b.name;
        record.runner = plan.runner;
        record.machine = machine;
        Fail(record, kRunError, leased.error().WithContext("leasing devices"));
        store(std::move(record));
        continue;
      }
      devices = std::move(*leased);
    }
    RepetitionPolicy policy(b);
    RunProgress progress;
    progress.machine = machine.hostname;
    progress.benchmark = b.name;
    progress.benchmark_index = i;
    progress.benchmarks = plan.benchmarks.size();
    progress.warmups = b.warmup;
    progress.planned = b.repetitions;
    progress.target_rsd = b.adaptive.enabled ? b.adaptive.target_rsd : 0;
    progress.metric = policy.metric();
    const auto first_start = std::chrono::steady_clock::now();
    for (int k = 0;; ++k) {
      if (Cancelled(options)) {
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
      if (options.on_progress) options.on_progress(progress);
      RunRecord record = RunOnce(ctx, b, argvs[i], devices, repetition, warmup);
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
      if (options.on_progress) options.on_progress(progress);
      progress.record = nullptr;
      store(std::move(record));
      if (result.interrupted || !why.empty()) break;
    }
  }
  for (const auto& sink : sinks) {
    if (Status s = sink->Close(DeadlineAfter(60s)); !s.ok()) {
      result.sink_errors.push_back(s.ToString());
    }
  }
  // The caller sees every event of the plan before RunPlan returns.
  if (Status s = bus.Flush(DeadlineAfter(10s)); !s.ok()) {
    LogAt(LogLevel::kWarning, "delivering the plan's last events: ", s.ToString());
  }
  result.summary = Summaries(plan, result.runs);
  return result;
}

}  // namespace bitfusion
