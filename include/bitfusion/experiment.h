// The thin Experiment layer: a plan of benchmarks (JSON), run with repetitions and warm-ups
// while metrics stream, stored in sinks, summarised with statistics. Everything here is built
// on the five interfaces; a host application can do the same without it.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "bitfusion/device.h"
#include "bitfusion/event.h"
#include "bitfusion/events.h"
#include "bitfusion/export.h"
#include "bitfusion/machine.h"
#include "bitfusion/result_sink.h"
#include "bitfusion/run_record.h"
#include "bitfusion/statistics.h"
#include "bitfusion/status.h"

namespace bitfusion {

struct BenchmarkSpec {
  std::string name;
  /// A bundled benchmark program ("bf-stream") or a path; bare names are looked up next to the
  /// bitfusion executable, then in PATH. Exclusive with `command`.
  std::string program;
  std::vector<std::string> args;     ///< arguments after `program`
  std::vector<std::string> command;  ///< full argv, looked up in PATH; exclusive with `program`
  /// Measured runs: the fixed count, or with `adaptive` the most that are made.
  int repetitions = 5;
  /// Adaptive repetitions ("repetitions": {"min": 3, "max": 20, "target_rsd": "2.5%",
  /// "max_time": "10m", "metric": "wall_time"}): runs go on from `min` until the metric's
  /// relative standard deviation over the measured, successful runs falls under `target_rsd`,
  /// `repetitions` runs were made, or `max_time` has passed since the first measured run. The
  /// last run's record says why it stopped (labels "repetitions_stop" and "..._detail").
  struct Adaptive {
    bool enabled = false;
    int min = 3;
    double target_rsd = 0.025;             ///< a fraction: 0.025 = 2.5 %
    std::chrono::nanoseconds max_time{0};  ///< 0 = no limit
    std::string metric = "wall_time";
  } adaptive;
  int warmup = 1;  ///< runs before those, recorded with warmup=true
  std::map<std::string, std::string> env;
  std::string working_dir;
  std::chrono::nanoseconds timeout{0};  ///< per run; 0 = none
  /// Image to run in, for container runners (docker://); `program` is then looked up inside it.
  std::string image;
  /// Accelerators leased for all of this benchmark's runs (warm-ups included) and passed in
  /// the way the runner accepts (see DeviceAllocator::EditsFor).
  std::vector<DeviceRequest> devices;
  /// The machine groups (PlanSpec::machines) it runs on, each of their machines running all of
  /// its runs; empty = every group.
  std::vector<std::string> on;
};

/// `count` machines of one kind from one provisioner, acquired before a plan's first run and
/// released after its last (also on failure or Ctrl-C; their expiry tag covers a kill -9).
/// What a machine must have before a run lands on it (a group's "preflight"). Free inodes and
/// space are read on the engine's data root (overlay layers exhaust inodes long before bytes), or
/// on the login directory for runners without an engine.
struct PreflightLimits {
  std::uint64_t min_free_inodes = 100'000;
  std::uint64_t min_free_bytes = std::uint64_t{2} << 30;
  std::string min_engine_version;  ///< "20.10"; empty = any
};

/// What the preflight found on one machine of a plan's groups.
struct MachinePreflight {
  std::string machine;  ///< "office-1"
  std::string kernel;   ///< uname -r there
  std::string engine;   ///< "docker", "process"
  std::string engine_version;
  std::string storage_driver;  ///< empty without an engine
  std::string data_root;       ///< where free inodes and space were read
  std::uint64_t free_inodes = 0;
  std::uint64_t free_bytes = 0;
  /// Accelerator drivers loaded there: "nvidia 550.54.14", "amdgpu (in kernel)"; empty = none.
  std::vector<std::string> accelerator_drivers;
  int setup_steps = 0;   ///< the group's setup steps that ran there (all of them when it passed)
  double setup_s = 0.0;  ///< how long they took
  std::string error;     ///< why the machine was not used; empty = it passed
};

struct MachineGroupSpec {
  std::string name;         ///< the key in "machines"; runs are labelled machine=NAME-I
  std::string provisioner;  ///< "static://inventory.json", "aws://us-east-1", "local://"
  int count = 1;
  std::string type;  ///< a machine type; empty = the cheapest that meets `requirements`
  /// "gpu" / "fpga": "KIND[:COUNT]" (as `bitfusion machines up --gpu`), "min_vcpus",
  /// "min_memory", "arch".
  MachineRequirements requirements;
  std::chrono::seconds ttl{4 * 3600};  ///< expiry tag on what the group makes
  std::string image;                   ///< OS image; empty = the provider's default
  std::string zone;                    ///< empty = the provider's choice
  /// Shell commands run once on every machine of the group before its preflight (over SSH on
  /// remote machines, through `sh -c`, in order; the first that fails stops them): what a team
  /// did with Salt or Packer. Clouds can also take user data through their provisioner's URI.
  std::vector<std::string> setup;
  std::chrono::seconds setup_timeout{30 * 60};  ///< for each setup step
  PreflightLimits preflight;
};

/// How to build an image a plan names when the engine lacks it (or has an older build of it).
struct ImageRecipe {
  std::string context;  ///< build context directory (resolved against the plan's directory)
  std::string dockerfile = "Dockerfile";  ///< within the context
  /// Files added to the context: name in the context -> a bundled program ("bf-stream-static",
  /// found like a benchmark's `program`) or a path (absolute, or relative to the plan).
  std::map<std::string, std::string> files;
  std::map<std::string, std::string> build_args;
};

struct PlanSpec {
  std::string name;
  std::string runner = "process://";
  /// Where the plan runs without `machines`: the first machine this provisioner lists (local://
  /// is this host).
  std::string provisioner = "local://";
  /// Machine groups ("machines": {"NAME": {...}}), in name order. With them, every benchmark
  /// runs on every machine of its groups (BenchmarkSpec::on), one benchmark at a time per
  /// machine and the machines in parallel; remote machines are reached by the plan's runner
  /// over SSH (process:// -> process+ssh://, docker:// -> docker+ssh://).
  std::vector<MachineGroupSpec> machines;
  /// Webhooks the plan's events are forwarded to ("webhooks": [{"url": "https://...",
  /// "events": ["container.died", "machine.down", "sink.degraded"]}]; no "events" = all).
  std::vector<WebhookOptions> webhooks;
  std::vector<std::string> sources = {"host"};  ///< metric sources sampled during every run
  std::chrono::nanoseconds interval = std::chrono::milliseconds(10);
  std::vector<std::string> sinks;  ///< none = results only printed
  std::vector<BenchmarkSpec> benchmarks;
  /// Images the plan builds itself when missing, by reference ("bitfusion/quickstart:0.1").
  std::map<std::string, ImageRecipe> images;
  /// Where benchmarks' devices come from: local:// (this host) or sysfs:///ROOT.
  std::string device_allocator = "local://";
  /// How long to wait for devices other holders have; 0 = fail at once if they are busy.
  std::chrono::nanoseconds device_wait{0};
  /// A registry ("HOST:PORT", e.g. the team's own) through which the plan's images reach
  /// remote docker machines: pushed once from this host, pulled by each machine. Empty = each
  /// image is streamed from this host's engine into the machine's over SSH. Either way only a
  /// machine whose engine lacks the image's id gets it.
  std::string registry;
  std::string source_file;  ///< where it was read from, for messages
};

/// Parses a plan. Errors name `source_name`, the line and column of a syntax error, or the
/// JSON path of a bad field ("benchmarks[1].repetitions: expected a positive integer").
BITFUSION_EXPORT Result<PlanSpec> ParsePlan(std::string_view json, std::string_view source_name);
BITFUSION_EXPORT Result<PlanSpec> LoadPlan(const std::string& path);

struct MetricSummary {
  std::string benchmark;
  std::string metric;  ///< "wall_time" or a metric the benchmark reported
  std::string unit;
  Statistics stats;  ///< over measured (non-warm-up) successful runs
};

/// Per benchmark and metric (in the order the runs first reported them, wall_time first): the
/// statistics of its measured, successful repetitions. A Google Benchmark import's entries
/// count as benchmarks "PROGRAM:ENTRY", one value per repetition, aggregates left out.
BITFUSION_EXPORT std::vector<MetricSummary> SummarizeRuns(const std::vector<RunRecord>& runs,
                                                          const StatisticsOptions& options = {});

/// Where a plan stands, for progress displays: sent when a run starts and when it has ended.
struct RunProgress {
  std::string machine;  ///< where the benchmark runs
  std::string benchmark;
  std::size_t benchmark_index = 0;  ///< 0-based, in the plan
  std::size_t benchmarks = 0;       ///< in the plan
  bool started = false;             ///< a run is starting (else: `record` has just ended)
  bool warmup = false;
  int run = 0;            ///< 1-based among the benchmark's warm-ups, or among its measured runs
  int warmups = 0;        ///< warm-ups planned
  int planned = 0;        ///< measured runs planned: the count, or the most when adaptive
  double target_rsd = 0;  ///< > 0: adaptive, runs go on until the RSD is under this
  std::string metric;     ///< the metric `last` and `rsd` are of ("wall_time" unless adaptive)
  double last = std::numeric_limits<double>::quiet_NaN();  ///< its last value; NaN when none
  /// Over the measured, successful runs so far; NaN below 2.
  double rsd = std::numeric_limits<double>::quiet_NaN();
  std::int64_t eta_ns = -1;  ///< this benchmark's time left (at most, when adaptive); -1 unknown
  /// On the benchmark's last run: why no run follows ("RSD 1.2 % < 2.5 % after 5 runs").
  std::string stopped;
  const RunRecord* record = nullptr;  ///< the run that ended; null when started
};

/// What became of one sink's data once the plan closed it.
struct SinkOutcome {
  std::string uri;        ///< redacted
  SinkCounters counters;  ///< after Close: what the store took, what is still held
  /// A durable sink's spool: where what the store did not take waits for the next sink with
  /// this spool (empty for other sinks).
  std::string spool;
  /// Every write and the close succeeded and nothing is held: all of it is in the store.
  bool stored = false;
};

/// How one image reached one remote machine before its first run there.
struct ImageDelivery {
  std::string machine;  ///< "office-1"
  std::string image;    ///< the benchmark's reference
  std::string id;       ///< the image id on both engines afterwards
  /// "present" (the machine had that id: nothing sent), "registry" (pushed and pulled through
  /// PlanSpec::registry) or "stream" (this host's engine's archive loaded over SSH).
  std::string method;
  std::int64_t bytes = 0;  ///< archive bytes streamed; for "registry", the image's size
  double seconds = 0;      ///< how long getting it there took
};

struct PlanResult {
  std::string plan;
  std::string plan_run_id;
  std::vector<RunRecord> runs;  ///< warm-ups included
  std::vector<MetricSummary> summary;
  /// Per benchmark with adaptive repetitions: why its runs stopped.
  std::map<std::string, std::string> repetitions_stopped;
  int failed_runs = 0;
  bool interrupted = false;
  /// Writes or closes that failed; samples a sink could not store are counted in each message.
  std::vector<std::string> sink_errors;
  /// One per sink, in the plan's order.
  std::vector<SinkOutcome> sinks;
  /// Machines of the plan's groups that could not be released (each message names them; their
  /// expiry tags and `bitfusion reap --provisioner URI` end them), and what a machine that stopped
  /// answering kept of its failed runs when it was asked again at the end (the message says
  /// how it goes: its expiry label, or the `bitfusion reap` command to run).
  std::vector<std::string> machine_errors;
  /// The machines of the plan's groups: name ("office-1") -> the machine; empty without groups.
  std::map<std::string, MachineInfo> machines;
  /// Each machine's setup and preflight, by name; a machine whose `error` is set ran nothing
  /// (its benchmarks have one error record each). Empty without groups.
  std::map<std::string, MachinePreflight> preflight;
  /// Per remote docker machine and image: how the image got there (ImageDelivery::method).
  std::vector<ImageDelivery> images;
};

struct ExperimentOptions {
  /// When non-empty, used instead of the plan's sinks.
  std::vector<std::string> sinks;
  /// Sinks the caller made (e.g. written in Python), written to besides the URIs' ones. The
  /// plan flushes them at the end but does not close them: they stay the caller's.
  std::vector<std::shared_ptr<ResultSink>> sink_objects;
  /// Extra directories searched first for bundled programs (the CLI passes its own).
  std::vector<std::string> program_dirs;
  /// Set (e.g. from a SIGINT handler) to stop: the running benchmark is stopped, what was
  /// measured is flushed, its record is marked interrupted, and no further run starts.
  const std::atomic<bool>* cancel = nullptr;
  /// Called after every run, on the calling thread.
  std::function<void(const RunRecord&)> on_run;
  /// Called when a run starts and when it has ended, on the calling thread.
  std::function<void(const RunProgress&)> on_progress;
  /// Called for every event of the plan's runs — containers (from engines that stream events),
  /// device leases and releases, sinks degrading and recovering — on the plan's event-bus
  /// thread, in order.
  std::function<void(const Event&)> on_event;
};

/// A benchmark line "BITFUSION_RESULT <metric> <value> [unit]" on stdout reports a result.
inline constexpr std::string_view kResultLinePrefix = "BITFUSION_RESULT ";

/// Runs the plan on this host. Sinks are opened (and fail) before the first run. With a container
/// runner, containers and images that dead runs on this host left behind are removed first,
/// the plan's images are built when missing, every record carries its image's digest, and the
/// engine's events feed reactors: a failed run gets the container's last log lines, one the
/// OOM killer ended is marked failed.
BITFUSION_EXPORT Result<PlanResult> RunPlan(const PlanSpec& plan, const ExperimentOptions& options);

/// The summary as an aligned text table.
BITFUSION_EXPORT std::string FormatSummaryTable(const PlanResult& result);
/// One progress event as a JSON object on one line: "event" ("run_started", "run_finished"),
/// machine, benchmark, run, planned, last, rsd, eta_s, stopped, run_id, status and error.
BITFUSION_EXPORT std::string FormatProgressJson(const RunProgress& progress);
/// The summary, the runs (id, status, wall time, observer cost) and sink errors as one JSON
/// object.
BITFUSION_EXPORT std::string FormatSummaryJson(const PlanResult& result);

}  // namespace bitfusion
