#include "bitfusion/experiment.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

#include "bitfusion/metric_stream.h"
#include "bitfusion/registry.h"
#include "bitfusion/serialize.h"

namespace bitfusion {
namespace {

using namespace std::chrono_literals;

std::string ErrorOf(std::string_view json) {
  auto plan = ParsePlan(json, "plan.json");
  EXPECT_FALSE(plan.ok());
  return plan.ok() ? "" : plan.error().message();
}

TEST(PlanParserTest, ReadsAFullPlan) {
  auto plan = ParsePlan(R"({
    "name": "p", "runner": "process://",
    "metrics": {"sources": ["host", "null"], "interval": "20ms"},
    "sinks": ["null://"],
    "benchmarks": [
      {"program": "bf-stream", "args": ["--mib", "8"], "repetitions": 3, "warmup": 0,
       "env": {"A": "1"}, "timeout": "5s"},
      {"name": "echo", "command": ["echo", "hi"]}
    ]})",
                        "plan.json");
  ASSERT_TRUE(plan.ok()) << plan.error().ToString();
  EXPECT_EQ(plan->name, "p");
  EXPECT_EQ(plan->interval, 20ms);
  EXPECT_EQ(plan->sources, (std::vector<std::string>{"host", "null"}));
  ASSERT_EQ(plan->benchmarks.size(), 2u);
  EXPECT_EQ(plan->benchmarks[0].name, "bf-stream");
  EXPECT_EQ(plan->benchmarks[0].repetitions, 3);
  EXPECT_EQ(plan->benchmarks[0].warmup, 0);
  EXPECT_EQ(plan->benchmarks[0].timeout, 5s);
  EXPECT_EQ(plan->benchmarks[0].env.at("A"), "1");
  EXPECT_EQ(plan->benchmarks[1].repetitions, 5) << "default repetitions";
  EXPECT_EQ(plan->benchmarks[1].warmup, 1) << "default warm-up";
}

TEST(PlanParserTest, BenchmarksAskForDevices) {
  auto plan = ParsePlan(R"({"device_allocator": "sysfs:///srv/tree", "device_wait": "5s",
    "benchmarks": [{"command": ["true"],
                    "devices": [{"kind": "gpu", "vendor": "NVIDIA", "count": 2}]}]})",
                        "plan.json");
  ASSERT_TRUE(plan.ok()) << plan.error().ToString();
  EXPECT_EQ(plan->device_allocator, "sysfs:///srv/tree");
  EXPECT_EQ(plan->device_wait, 5s);
  ASSERT_EQ(plan->benchmarks[0].devices.size(), 1u);
  EXPECT_EQ(plan->benchmarks[0].devices[0].count, 2);
  EXPECT_EQ(plan->benchmarks[0].devices[0].vendor, "NVIDIA");
  const std::string message =
      ErrorOf(R"({"benchmarks": [{"command": ["true"], "devices": [{"count": "many"}]}]})");
  EXPECT_EQ(message.rfind("plan.json: benchmarks[0].devices", 0), 0u) << message;
}

TEST(PlanParserTest, SyntaxErrorsNameFileLineAndColumn) {
  const std::string message = ErrorOf("{\n  \"name\": \"x\",\n  \"benchmarks\": [,]\n}");
  EXPECT_NE(message.find("plan.json: line 3, column 18"), std::string::npos) << message;
}

TEST(PlanParserTest, FieldErrorsNameTheField) {
  EXPECT_NE(ErrorOf(R"({"benchmarks": [{"program": "x", "repetitons": 3}]})")
                .find("benchmarks[0].repetitons: unknown field"),
            std::string::npos);
  EXPECT_NE(ErrorOf(R"({"benchmarks": [{"program": "x"}, {"program": "y", "repetitions": 0}]})")
                .find("benchmarks[1].repetitions: expected an integer >= 1"),
            std::string::npos);
  EXPECT_NE(ErrorOf(R"({"benchmarks": [{"program": "x", "command": ["y"]}]})")
                .find("benchmarks[0]: give exactly one of"),
            std::string::npos);
  EXPECT_NE(ErrorOf(R"({"benchmarks": [{"program": "x", "timeout": "soon"}]})")
                .find("benchmarks[0].timeout"),
            std::string::npos);
  EXPECT_NE(ErrorOf(R"({"benchmarks": [{"program": "x"}, {"program": "x"}]})")
                .find("duplicate benchmark name \"x\""),
            std::string::npos);
  EXPECT_NE(ErrorOf(R"({"name": "x"})").find("benchmarks: missing"), std::string::npos);
  EXPECT_NE(ErrorOf(R"({"metrics": {"interval": "100us"}, "benchmarks": [{"program": "x"}]})")
                .find("metrics.interval: must be at least 1ms"),
            std::string::npos);
  EXPECT_NE(ErrorOf("[1]").find("expected a JSON object"), std::string::npos);
  EXPECT_NE(ErrorOf(R"({"benchmarks": [{"program": "x"}]} trailing)").find("unexpected text"),
            std::string::npos);
}

TEST(PlanParserTest, ImagesAreBuildRecipes) {
  auto plan = ParsePlan(R"({"runner": "docker://",
      "images": {"bench/q:1": {"context": "../images/q", "files": {"tool": "bf-stream-static"},
                               "build_args": {"N": "4"}}},
      "benchmarks": [{"program": "bf-stream", "image": "bench/q:1"}]})",
                        "plan.json");
  ASSERT_TRUE(plan.ok()) << plan.error().ToString();
  const ImageRecipe& r = plan->images.at("bench/q:1");
  EXPECT_EQ(r.context, "../images/q");
  EXPECT_EQ(r.dockerfile, "Dockerfile");
  EXPECT_EQ(r.files.at("tool"), "bf-stream-static");
  EXPECT_EQ(r.build_args.at("N"), "4");
  EXPECT_EQ(plan->benchmarks[0].image, "bench/q:1");
  EXPECT_NE(ErrorOf(R"({"images": {"a:1": {"files": {}}}, "benchmarks": [{"program": "x"}]})")
                .find("images[\"a:1\"].context: missing"),
            std::string::npos);
  EXPECT_NE(ErrorOf(R"({"images": {"a:1": {"context": "c", "from": "x"}},
                        "benchmarks": [{"program": "x"}]})")
                .find("images[\"a:1\"].from: unknown field"),
            std::string::npos);
}

TEST(PlanParserTest, LoadPlanNamesAMissingFile) {
  auto plan = LoadPlan("/nonexistent/plan.json");
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.error().code(), StatusCode::kNotFound);
  EXPECT_NE(plan.error().message().find("/nonexistent/plan.json"), std::string::npos);
}

TEST(PlanParserTest, AdaptiveRepetitions) {
  auto plan = ParsePlan(R"({"benchmarks": [{"command": ["true"], "repetitions":
      {"min": 4, "max": 30, "target_rsd": "1.5%", "max_time": "10m", "metric": "score"}},
      {"name": "d", "command": ["true"], "repetitions": {}}]})",
                        "plan.json");
  ASSERT_TRUE(plan.ok()) << plan.error().ToString();
  const BenchmarkSpec& b = plan->benchmarks[0];
  EXPECT_TRUE(b.adaptive.enabled);
  EXPECT_EQ(b.adaptive.min, 4);
  EXPECT_EQ(b.repetitions, 30);
  EXPECT_DOUBLE_EQ(b.adaptive.target_rsd, 0.015);
  EXPECT_EQ(b.adaptive.max_time, std::chrono::minutes(10));
  EXPECT_EQ(b.adaptive.metric, "score");
  const BenchmarkSpec& d = plan->benchmarks[1];
  EXPECT_TRUE(d.adaptive.enabled);
  EXPECT_EQ(d.adaptive.min, 3) << "defaults: 3 to 20 runs until RSD < 2.5 %";
  EXPECT_EQ(d.repetitions, 20);
  EXPECT_DOUBLE_EQ(d.adaptive.target_rsd, 0.025);
  EXPECT_EQ(d.adaptive.metric, "wall_time");
  EXPECT_FALSE(ParsePlan(R"({"benchmarks": [{"command": ["true"], "repetitions": 3}]})", "p")
                   ->benchmarks[0]
                   .adaptive.enabled)
      << "an integer keeps its meaning";

  EXPECT_NE(ErrorOf(R"({"benchmarks": [{"command": ["x"], "repetitions": {"min": 9, "max": 4}}]})")
                .find("benchmarks[0].repetitions: min (9) is above max (4)"),
            std::string::npos);
  EXPECT_NE(
      ErrorOf(R"({"benchmarks": [{"command": ["x"], "repetitions": {"target_rsd": "lots"}}]})")
          .find("benchmarks[0].repetitions.target_rsd: expected a percentage"),
      std::string::npos);
  EXPECT_NE(
      ErrorOf(R"({"benchmarks": [{"command": ["x"], "repetitions": {"target_rsd": "150%"}}]})")
          .find("below 100 %"),
      std::string::npos);
  EXPECT_NE(ErrorOf(R"({"benchmarks": [{"command": ["x"], "repetitions": {"mni": 3}}]})")
                .find("benchmarks[0].repetitions.mni: unknown field"),
            std::string::npos);
  EXPECT_NE(ErrorOf(R"({"benchmarks": [{"command": ["x"], "repetitions": {"min": 1}}]})")
                .find("expected an integer >= 2"),
            std::string::npos);
}

TEST(StatisticsTest, Summarize) {
  Statistics s = Summarize({4, 1, 3, 2});
  EXPECT_EQ(s.count, 4u);
  EXPECT_DOUBLE_EQ(s.median, 2.5);
  EXPECT_DOUBLE_EQ(s.mean, 2.5);
  EXPECT_NEAR(s.stddev, 1.2909944487, 1e-9);
  EXPECT_EQ(s.min, 1);
  EXPECT_EQ(s.max, 4);
  EXPECT_EQ(Summarize({7}).stddev, 0);
  EXPECT_EQ(Summarize({}).count, 0u);
  EXPECT_EQ(Summarize({1, std::nan(""), 3}).count, 2u);
}

class RunPlanTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           ("bf-runplan-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  PlanSpec Plan(std::vector<std::string> command, int reps, int warmup) {
    PlanSpec plan;
    plan.name = "t";
    plan.source_file = (dir_ / "plan.json").string();
    plan.sinks = {"jsonl://" + (dir_ / "out.jsonl").string()};
    BenchmarkSpec b;
    b.name = "b";
    b.command = std::move(command);
    b.repetitions = reps;
    b.warmup = warmup;
    plan.benchmarks.push_back(b);
    return plan;
  }

  std::vector<std::string> Lines(const std::string& name) {
    std::ifstream in(dir_ / name);
    std::vector<std::string> out;
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
  }

  std::filesystem::path dir_;
};

TEST_F(RunPlanTest, RunsRepetitionsAndSummarisesReportedResults) {
  PlanSpec plan = Plan({"sh", "-c",
                        "echo 'BITFUSION_RESULT work.rate 42.5 ops/s'; "
                        "echo 'BITFUSION_RESULT broken.line notanumber'; sleep 0.05"},
                       3, 1);
  int callbacks = 0;
  ExperimentOptions options;
  options.on_run = [&](const RunRecord&) { ++callbacks; };
  auto result = RunPlan(plan, options);
  ASSERT_TRUE(result.ok()) << result.error().ToString();
  EXPECT_EQ(callbacks, 4);
  ASSERT_EQ(result->runs.size(), 4u);
  EXPECT_TRUE(result->runs[0].warmup);
  EXPECT_FALSE(result->runs[1].warmup);
  EXPECT_EQ(result->runs[3].repetition, 2);
  EXPECT_EQ(result->failed_runs, 0);
  EXPECT_FALSE(result->interrupted);
  EXPECT_TRUE(result->sink_errors.empty());
  for (const auto& r : result->runs) {
    EXPECT_EQ(r.status, kRunOk);
    EXPECT_EQ(r.plan_run_id, result->plan_run_id);
    EXPECT_GT(r.overhead.samples, 0) << "host metrics are sampled during every run";
    EXPECT_FALSE(r.machine.hostname.empty());
  }
  ASSERT_EQ(result->summary.size(), 2u);
  EXPECT_EQ(result->summary[0].metric, "wall_time");
  EXPECT_EQ(result->summary[0].stats.count, 3u) << "warm-ups are not summarised";
  EXPECT_EQ(result->summary[1].metric, "work.rate");
  EXPECT_EQ(result->summary[1].unit, "ops/s");
  EXPECT_DOUBLE_EQ(result->summary[1].stats.median, 42.5);
  // The sink got every run record after that run's samples.
  int records = 0, samples_before_first_record = 0;
  for (const auto& line : Lines("out.jsonl")) {
    if (line.find("\"type\":\"run\"") != std::string::npos) {
      ++records;
    } else if (records == 0) {
      ++samples_before_first_record;
    }
  }
  EXPECT_EQ(records, 4);
  EXPECT_GT(samples_before_first_record, 0);
  const std::string table = FormatSummaryTable(*result);
  EXPECT_NE(table.find("work.rate"), std::string::npos) << table;
  EXPECT_NE(FormatSummaryJson(*result).find("\"plan_run_id\":\"" + result->plan_run_id),
            std::string::npos);
}

TEST_F(RunPlanTest, AdaptiveRepetitionsStopWhenTheRsdIsUnderTheTarget) {
  PlanSpec plan = Plan({"sh", "-c", "echo 'BITFUSION_RESULT score 7 points'"}, 20, 1);
  BenchmarkSpec& b = plan.benchmarks[0];
  b.adaptive.enabled = true;
  b.adaptive.min = 3;
  b.adaptive.target_rsd = 0.025;
  b.adaptive.metric = "score";
  std::vector<RunProgress> seen;
  ExperimentOptions options;
  options.on_progress = [&](const RunProgress& p) { seen.push_back(p); };
  auto result = RunPlan(plan, options);
  ASSERT_TRUE(result.ok()) << result.error().ToString();
  ASSERT_EQ(result->runs.size(), 4u) << "1 warm-up, then 3 runs: a constant score has RSD 0";
  const RunRecord& last = result->runs.back();
  EXPECT_EQ(last.labels.at("repetitions_stop"), "target_rsd");
  EXPECT_NE(last.labels.at("repetitions_stop_detail").find("after 3 runs"), std::string::npos)
      << last.labels.at("repetitions_stop_detail");
  EXPECT_EQ(result->runs[2].labels.count("repetitions_stop"), 0u) << "only the last says why";
  EXPECT_NE(result->repetitions_stopped.at("b").find("RSD 0.00 %"), std::string::npos);
  EXPECT_NE(FormatSummaryTable(*result).find("repetitions: b: RSD"), std::string::npos);
  ASSERT_EQ(seen.size(), 8u) << "a start and an end per run";
  EXPECT_TRUE(seen[0].started);
  EXPECT_TRUE(seen[0].warmup);
  EXPECT_FALSE(seen[7].started);
  EXPECT_EQ(seen[7].run, 3);
  EXPECT_EQ(seen[7].planned, 20);
  EXPECT_DOUBLE_EQ(seen[7].target_rsd, 0.025);
  EXPECT_DOUBLE_EQ(seen[7].last, 7);
  EXPECT_DOUBLE_EQ(seen[7].rsd, 0);
  EXPECT_FALSE(seen[7].stopped.empty());
  EXPECT_GE(seen[5].eta_ns, 0) << "an ETA once a run has been timed";
}

TEST_F(RunPlanTest, AdaptiveRepetitionsStopAtTheMaximumAndTheTimeLimit) {
  // Each run scores the square of its number: the RSD never settles.
  const std::string counter = (dir_ / "count").string();
  const std::vector<std::string> growing = {
      "sh", "-c",
      "echo >> " + counter + "; n=$(wc -l < " + counter +
          "); echo \"BITFUSION_RESULT score $((n*n)) points\""};
  PlanSpec plan = Plan(growing, 4, 0);
  BenchmarkSpec& b = plan.benchmarks[0];
  b.adaptive.enabled = true;
  b.adaptive.min = 2;
  b.adaptive.target_rsd = 0.01;
  b.adaptive.metric = "score";
  auto result = RunPlan(plan, {});
  ASSERT_TRUE(result.ok()) << result.error().ToString();
  ASSERT_EQ(result->runs.size(), 4u);
  EXPECT_EQ(result->runs.back().labels.at("repetitions_stop"), "max");
  EXPECT_NE(result->repetitions_stopped.at("b").find("max of 4 runs"), std::string::npos)
      << result->repetitions_stopped.at("b");

  b.repetitions = 100;
  b.adaptive.max_time = std::chrono::milliseconds(1);
  result = RunPlan(plan, {});
  ASSERT_TRUE(result.ok());
  ASSERT_EQ(result->runs.size(), 1u) << "the time limit stops it after the first run";
  EXPECT_EQ(result->runs.back().labels.at("repetitions_stop"), "max_time");
}

TEST_F(RunPlanTest, FixedRepetitionsAddNoStopLabels) {
  auto result = RunPlan(Plan({"true"}, 2, 0), {});
  ASSERT_TRUE(result.ok());
  ASSERT_EQ(result->runs.size(), 2u);
  EXPECT_EQ(result->runs.back().labels.count("repetitions_stop"), 0u);
  EXPECT_TRUE(result->repetitions_stopped.empty());
}

// Test sources that count how often they are made: "idle-test" samples nothing on this host
// (as "gpu" does without a GPU library), "busy-test" samples one value each tick.
struct CountedSourceOptions {
  bool idle = false;
  static Result<CountedSourceOptions> FromUri(const Uri& uri) {
    return CountedSourceOptions{uri.scheme == "idle-test"};
  }
};
class CountedSource final : public MetricSource {
 public:
  static inline std::atomic<int> idle_made{0}, busy_made{0};
  static Result<std::shared_ptr<CountedSource>> Make(const CountedSourceOptions& o) {
    ++(o.idle ? idle_made : busy_made);
    return std::make_shared<CountedSource>(o.idle);
  }
  explicit CountedSource(bool idle) : idle_(idle), uri_(idle ? "idle-test://" : "busy-test://") {}
  const std::string& uri() const override { return uri_; }
  Status Collect(Timestamp now, SampleBatch& batch) override {
    if (idle_) return Status::OK();
    if (series_ < 0) series_ = static_cast<int>(batch.AddSeries({"busy.value", "1", {}, false}));
    batch.Append(static_cast<std::uint32_t>(series_), now.wall_ns, now.mono_ns, 1.0);
    return Status::OK();
  }
  std::string WhyDisabled() const override { return idle_ ? "nothing to sample here" : ""; }

 private:
  bool idle_;
  std::string uri_;
  int series_ = -1;
};
BITFUSION_REGISTER(MetricSource, "idle-test", CountedSourceOptions, CountedSource);
BITFUSION_REGISTER(MetricSource, "busy-test", CountedSourceOptions, CountedSource);

// A source that samples nothing on the machine is made once, when the plan checks its sources,
// and left out of the runs; one that samples is made for every run.
TEST_F(RunPlanTest, ASourceThatSamplesNothingHereIsCheckedOnceAndLeftOutOfTheRuns) {
  for (const bool with_busy : {false, true}) {
    CountedSource::idle_made = 0;
    CountedSource::busy_made = 0;
    PlanSpec plan = Plan({"sleep", "0.05"}, 3, 1);
    plan.interval = 10ms;
    // As rates too: the wrapper says what the source it wraps says.
    plan.sources = {"idle-test://", "idle-test://?rate=true"};
    if (with_busy) plan.sources.push_back("busy-test://");
    auto result = RunPlan(plan, {});
    ASSERT_TRUE(result.ok()) << result.error().ToString();
    ASSERT_EQ(result->runs.size(), 4u);
    for (const auto& r : result->runs) EXPECT_EQ(r.status, kRunOk) << r.error;
    EXPECT_EQ(CountedSource::idle_made.load(), 2) << "made again for a run";
    EXPECT_EQ(CountedSource::busy_made.load(), with_busy ? 1 + 4 : 0);
  }
}

TEST_F(RunPlanTest, FailedRunsCarryTheirStderr) {
  PlanSpec plan = Plan({"sh", "-c", "echo 'disk on fire' >&2; exit 3"}, 1, 0);
  auto result = RunPlan(plan, {});
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->failed_runs, 1);
  ASSERT_EQ(result->runs.size(), 1u);
  EXPECT_EQ(result->runs[0].status, kRunFailed);
  EXPECT_EQ(result->runs[0].exit.exit_code, 3);
  EXPECT_NE(result->runs[0].error.find("exit status 3"), std::string::npos);
  EXPECT_NE(result->runs[0].error.find("disk on fire"), std::string::npos);
  EXPECT_EQ(result->summary.at(0).stats.count, 0u);
}

TEST_F(RunPlanTest, TimeoutIsRecorded) {
  PlanSpec plan = Plan({"sleep", "30"}, 1, 0);
  plan.benchmarks[0].timeout = 200ms;
  auto result = RunPlan(plan, {});
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->runs.at(0).status, kRunTimedOut);
  EXPECT_EQ(result->failed_runs, 1);
}

TEST_F(RunPlanTest, CancelStopsTheRunAndKeepsWhatWasMeasured) {
  PlanSpec plan = Plan({"sleep", "30"}, 3, 0);
  std::atomic<bool> cancel{false};
  ExperimentOptions options;
  options.cancel = &cancel;
  std::thread canceller([&] {
    std::this_thread::sleep_for(300ms);
    cancel.store(true);
  });
  const auto start = std::chrono::steady_clock::now();
  auto result = RunPlan(plan, options);
  canceller.join();
  ASSERT_TRUE(result.ok());
  EXPECT_LT(std::chrono::steady_clock::now() - start, 20s) << "sleep 30 must have been stopped";
  EXPECT_TRUE(result->interrupted);
  ASSERT_EQ(result->runs.size(), 1u) << "no run starts after the interrupt";
  EXPECT_EQ(result->runs[0].status, kRunInterrupted);
  EXPECT_GT(result->runs[0].overhead.samples, 0);
  int records = 0;
  for (const auto& line : Lines("out.jsonl")) {
    if (line.find("\"status\":\"interrupted\"") != std::string::npos) ++records;
  }
  EXPECT_EQ(records, 1) << "the interrupted run's record is stored";
}

TEST_F(RunPlanTest, BadSinkFailsBeforeAnythingRuns) {
  PlanSpec plan = Plan({"sh", "-c", "touch " + (dir_ / "ran").string()}, 1, 0);
  plan.sinks = {"sqlite:///nonexistent-dir/x/results.db"};
  auto result = RunPlan(plan, {});
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.error().message().find("/nonexistent-dir/x/results.db"), std::string::npos)
      << result.error().message();
  EXPECT_FALSE(std::filesystem::exists(dir_ / "ran"));

  plan.sinks = {"mongodb://x"};
  result = RunPlan(plan, {});
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.error().message().find("known schemes"), std::string::npos);
}

TEST_F(RunPlanTest, UnknownProgramNamesWhereItLooked) {
  PlanSpec plan = Plan({}, 1, 0);
  plan.benchmarks[0].command.clear();
  plan.benchmarks[0].program = "bf-no-such-benchmark";
  ExperimentOptions options;
  options.program_dirs = {dir_.string()};
  auto result = RunPlan(plan, options);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code(), StatusCode::kNotFound);
  EXPECT_NE(result.error().message().find("benchmarks[0].program"), std::string::npos);
  EXPECT_NE(result.error().message().find(dir_.string()), std::string::npos);
}

TEST_F(RunPlanTest, LeasedDevicesReachTheBenchmarkAndAreHeldForAllItsRuns) {
  // Two of the recorded DGX A100's eight GPUs, for a process:// benchmark: CUDA_VISIBLE_DEVICES.
  PlanSpec plan = Plan({"sh", "-c",
                        "echo \"$CUDA_VISIBLE_DEVICES\" | tr , '\\n' | grep -c . | "
                        "sed 's/^/BITFUSION_RESULT visible.gpus /'"},
                       2, 1);
  plan.sources = {"null"};
  plan.device_allocator = "sysfs://" + std::string(BITFUSION_TEST_FIXTURES) +
                          "/sysfs/dgx-a100?lock_dir=" + (dir_ / "locks").string();
  DeviceRequest request;
  request.vendor = "NVIDIA";
  request.count = 2;
  plan.benchmarks[0].devices = {request};
  std::mutex mu;
  std::map<std::string, int> events;
  ExperimentOptions options;
  options.on_event = [&](const Event& e) {
    std::lock_guard lock(mu);
    ++events[EventTypeName(e.type)];
  };
  auto result = RunPlan(plan, options);
  ASSERT_TRUE(result.ok()) << result.error().ToString();
  ASSERT_EQ(result->runs.size(), 3u);
  const std::string ids = result->runs[0].labels.at("devices");
  EXPECT_EQ(std::count(ids.begin(), ids.end(), ','), 1) << ids;
  for (const auto& r : result->runs) {
    EXPECT_EQ(r.status, kRunOk) << r.error;
    EXPECT_EQ(r.labels.at("devices"), ids) << "the same lease serves every run";
  }
  EXPECT_EQ(result->summary.at(1).metric, "visible.gpus");
  EXPECT_EQ(result->summary.at(1).stats.median, 2);
  {
    std::lock_guard lock(mu);
    EXPECT_EQ(events["device.leased"], 2) << "one event per device, once for all runs";
    EXPECT_EQ(events["device.released"], 2);
  }

  // Asking for more than the host has is one error record, and the plan goes on.
  plan.benchmarks[0].devices[0].count = 9;
  result = RunPlan(plan, {});
  ASSERT_TRUE(result.ok()) << result.error().ToString();
  ASSERT_EQ(result->runs.size(), 1u);
  EXPECT_EQ(result->runs[0].status, kRunError);
  EXPECT_NE(result->runs[0].error.find("leasing devices"), std::string::npos);
  EXPECT_EQ(result->failed_runs, 1);
}

TEST_F(RunPlanTest, BundledProgramsAreFoundInProgramDirs) {
  const auto program = dir_ / "bf-fake";
  std::ofstream(program) << "#!/bin/sh\necho 'BITFUSION_RESULT fake.value 7'\n";
  std::filesystem::permissions(program, std::filesystem::perms::owner_all);
  PlanSpec plan = Plan({}, 1, 0);
  plan.benchmarks[0].command.clear();
  plan.benchmarks[0].program = "bf-fake";
  plan.sources = {"null"};
  ExperimentOptions options;
  options.program_dirs = {"/nonexistent", dir_.string()};
  auto result = RunPlan(plan, options);
  ASSERT_TRUE(result.ok()) << result.error().ToString();
  EXPECT_EQ(result->runs.at(0).command.at(0), program.string());
  EXPECT_EQ(result->summary.at(1).metric, "fake.value");
  EXPECT_EQ(result->summary.at(1).unit, "1");
}

}  // namespace
}  // namespace bitfusion
