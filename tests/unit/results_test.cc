// Reading results back (sqlite:// and jsonl:// stores) and comparing plan runs.
#include "bitfusion/results.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>

#include "bitfusion/experiment.h"
#include "bitfusion/result_sink.h"

namespace bitfusion {
namespace {

namespace fs = std::filesystem;

RunRecord MakeRun(const std::string& plan_run_id, const std::string& benchmark, int repetition,
                  double wall_s, std::int64_t start_ns, bool warmup = false) {
  RunRecord r;
  r.run_id = NewRunId();
  r.plan = "p";
  r.plan_run_id = plan_run_id;
  r.benchmark = benchmark;
  r.repetition = repetition;
  r.warmup = warmup;
  r.machine.hostname = "h1";
  r.exit.start_ns = start_ns;
  r.exit.end_ns = start_ns + static_cast<std::int64_t>(wall_s * 1e9);
  r.exit.wall_time_ns = static_cast<std::int64_t>(wall_s * 1e9);
  r.labels = {{"run_id", r.run_id}, {"benchmark", benchmark}};
  Sample wall;
  wall.metric = "wall_time";
  wall.unit = "s";
  wall.value = wall_s;
  Sample rate;
  rate.metric = "work.rate";
  rate.unit = "ops/s";
  rate.value = 100 / wall_s;
  r.results = {wall, rate};
  return r;
}

std::vector<RunRecord> Series(const std::string& id, const std::string& benchmark,
                              std::vector<double> walls, std::int64_t start = 1'000'000'000) {
  std::vector<RunRecord> out;
  for (std::size_t i = 0; i < walls.size(); ++i) {
    out.push_back(MakeRun(id, benchmark, static_cast<int>(i), walls[i],
                          start + static_cast<std::int64_t>(i) * 1'000'000'000));
  }
  return out;
}

class ResultsStoreTest : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           ("bf-results-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string Uri() const {
    return std::string(GetParam()) + "://" + (dir_ / (std::string("r.") + GetParam())).string();
  }

  // Two plan runs and one import-like run (no plan run id), with samples for the first run.
  void Write() {
    auto sink = ResultSinkFromUri(Uri());
    ASSERT_TRUE(sink.ok()) << sink.error().ToString();
    first_ = Series("aaaa", "b", {1.0, 1.1, 1.2}, 1'000'000'000);
    first_[1].results[1].value = std::numeric_limits<double>::quiet_NaN();
    first_[2].results[1].value = std::numeric_limits<double>::infinity();
    second_ = Series("bbbb", "b", {2.0, 2.1}, 9'000'000'000);
    SampleBatch batch;
    batch.labels = {{"run_id", first_[0].run_id}, {"plan", "p"}};
    const auto cpu = batch.AddSeries({"cpu.user", "s", {{"cpu", "0"}}, /*counter=*/true});
    const auto mem = batch.AddSeries({"mem.used", "bytes", {}, false});
    for (int i = 0; i < 50; ++i) {
      batch.Append(cpu, 1'000'000'000 + i * 10'000'000, i, i * 0.01);
      batch.Append(mem, 1'000'000'000 + i * 10'000'000, i,
                   i == 7 ? std::numeric_limits<double>::quiet_NaN() : 1e6 + i);
    }
    SampleBatch other;  // another run's samples are not returned for the first
    other.labels = {{"run_id", second_[0].run_id}};
    other.Append(other.AddSeries({"cpu.user", "s", {}, false}), 9'000'000'000, 1, 5);
    ASSERT_TRUE((*sink)->Write(batch).ok());
    ASSERT_TRUE((*sink)->Write(other).ok());
    for (const auto& r : first_) ASSERT_TRUE((*sink)->Write(r).ok());
    for (const auto& r : second_) ASSERT_TRUE((*sink)->Write(r).ok());
    RunRecord import = MakeRun("", "gbench_prog", 0, 0.5, 20'000'000'000);
    import.plan.clear();
    ASSERT_TRUE((*sink)->Write(import).ok());
    import_id_ = import.run_id;
    ASSERT_TRUE((*sink)->Close().ok());
  }

  static inline int counter_ = 0;
  fs::path dir_;
  std::vector<RunRecord> first_, second_;
  std::string import_id_;
};

TEST_P(ResultsStoreTest, ReadsBackPlanRunsRecordsAndSamples) {
  Write();
  auto store = ResultsStore::Open(Uri());
  ASSERT_TRUE(store.ok()) << store.error().ToString();
  auto plan_runs = (*store)->PlanRuns();
  ASSERT_TRUE(plan_runs.ok()) << plan_runs.error().ToString();
  ASSERT_EQ(plan_runs->size(), 3u);
  EXPECT_EQ((*plan_runs)[0].plan_run_id, "aaaa");
  EXPECT_EQ((*plan_runs)[0].runs, 3u);
  EXPECT_EQ((*plan_runs)[0].start_ns, 1'000'000'000);
  EXPECT_EQ((*plan_runs)[1].plan_run_id, "bbbb");
  EXPECT_EQ((*plan_runs)[2].plan_run_id, import_id_) << "an import is a plan run of its own";
  EXPECT_EQ((*plan_runs)[2].plan, "gbench_prog");

  auto runs = (*store)->Runs("aaaa");
  ASSERT_TRUE(runs.ok()) << runs.error().ToString();
  ASSERT_EQ(runs->size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ((*runs)[i].run_id, first_[i].run_id);
    EXPECT_EQ((*runs)[i].repetition, static_cast<int>(i));
    ASSERT_EQ((*runs)[i].results.size(), 2u);
    EXPECT_DOUBLE_EQ((*runs)[i].results[0].value, first_[i].results[0].value);
  }
  EXPECT_TRUE(std::isnan((*runs)[1].results[1].value)) << "NaN survives the store";
  EXPECT_TRUE(std::isinf((*runs)[2].results[1].value) && (*runs)[2].results[1].value > 0);
  EXPECT_EQ((*runs)[0].machine.hostname, "h1");

  std::vector<StoredSeries> series;
  ASSERT_TRUE((*store)
                  ->ForEachSeries({first_[0].run_id},
                                  [&](StoredSeries&& s) { series.push_back(std::move(s)); })
                  .ok());
  ASSERT_EQ(series.size(), 2u);
  std::sort(series.begin(), series.end(),
            [](const StoredSeries& a, const StoredSeries& b) { return a.metric < b.metric; });
  EXPECT_EQ(series[0].metric, "cpu.user");
  EXPECT_EQ(series[0].labels.at("cpu"), "0");
  EXPECT_TRUE(series[0].counter) << "a cumulative counter says so in the store";
  EXPECT_FALSE(series[1].counter);
  EXPECT_EQ(series[0].run_id, first_[0].run_id);
  ASSERT_EQ(series[0].value.size(), 50u);
  EXPECT_EQ(series[0].timestamp_ns[49], 1'000'000'000 + 49 * 10'000'000);
  EXPECT_DOUBLE_EQ(series[0].value[49], 0.49);
  EXPECT_EQ(series[1].metric, "mem.used");
  EXPECT_TRUE(std::isnan(series[1].value[7]));
  EXPECT_DOUBLE_EQ(series[1].value[8], 1e6 + 8);
}

TEST_P(ResultsStoreTest, SelectsTheLatestPlanRunOrANamedOne) {
  Write();
  auto latest = SelectResults(Uri());
  ASSERT_TRUE(latest.ok()) << latest.error().ToString();
  EXPECT_EQ(latest->plan_run.plan_run_id, import_id_);
  auto named = SelectResults(Uri() + "@aaaa");
  ASSERT_TRUE(named.ok()) << named.error().ToString();
  EXPECT_EQ(named->runs.size(), 3u);
  auto missing = SelectResults(Uri() + "@cccc");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message().find("no plan run cccc"), std::string::npos)
      << missing.error().message();
  EXPECT_NE(missing.error().message().find("bbbb"), std::string::npos)
      << "names the plan runs it has";
}

TEST_P(ResultsStoreTest, BarePathIsRecognised) {
  Write();
  auto store = ResultsStore::Open((dir_ / (std::string("r.") + GetParam())).string());
  ASSERT_TRUE(store.ok()) << store.error().ToString();
  EXPECT_EQ((*store)->location(), Uri());
}

INSTANTIATE_TEST_SUITE_P(Stores, ResultsStoreTest, ::testing::Values("sqlite", "jsonl"));

TEST(ResultsStoreUpgrade, VersionOneSqliteFilesAreUpgradedAndRead) {
  const fs::path dir = fs::path(::testing::TempDir()) / ("bf-v1-" + std::to_string(getpid()));
  fs::create_directories(dir);
  const std::string path = (dir / "v1.db").string();
  {
    // The version 1 series table, as bitfusion 0.1 wrote it.
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db,
                           "PRAGMA application_id=1111913843; PRAGMA user_version=1;"
                           "CREATE TABLE series (series_id INTEGER PRIMARY KEY, metric TEXT NOT "
                           "NULL, unit TEXT NOT NULL, labels TEXT NOT NULL, UNIQUE (metric, unit, "
                           "labels));",
                           nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(db);
  }
  auto sink = ResultSinkFromUri("sqlite://" + path);
  ASSERT_TRUE(sink.ok()) << sink.error().ToString();
  RunRecord r = MakeRun("v1", "b", 0, 1, 1'000'000'000);
  SampleBatch batch;
  batch.labels = {{"run_id", r.run_id}};
  batch.Append(batch.AddSeries({"cpu.user", "s", {}, true}), 1'000'000'000, 0, 1);
  ASSERT_TRUE((*sink)->Write(batch).ok());
  ASSERT_TRUE((*sink)->Write(r).ok());
  ASSERT_TRUE((*sink)->Close().ok());
  auto store = ResultsStore::Open(path);
  ASSERT_TRUE(store.ok()) << store.error().ToString();
  std::vector<StoredSeries> series;
  ASSERT_TRUE(
      (*store)->ForEachSeries({r.run_id}, [&](StoredSeries&& s) { series.push_back(s); }).ok());
  ASSERT_EQ(series.size(), 1u);
  EXPECT_TRUE(series[0].counter);
  fs::remove_all(dir);
}

TEST(ResultsStoreErrors, MissingFileForeignDatabaseAndOtherSchemes) {
  auto missing = ResultsStore::Open("/nonexistent/r.db");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.error().message().find("/nonexistent/r.db"), std::string::npos);

  auto es = ResultsStore::Open("es://user:hunter2@localhost:9200/idx");
  ASSERT_FALSE(es.ok());
  EXPECT_EQ(es.error().message().find("hunter2"), std::string::npos) << es.error().message();

  const fs::path dir = fs::path(::testing::TempDir()) / ("bf-foreign-" + std::to_string(getpid()));
  fs::create_directories(dir);
  auto sink = ResultSinkFromUri("sqlite://" + (dir / "ok.db").string());
  ASSERT_TRUE(sink.ok());
  ASSERT_TRUE((*sink)->Close().ok());
  auto empty = SelectResults((dir / "ok.db").string());
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.error().message().find("no run records"), std::string::npos);

  std::ofstream(dir / "garbage.jsonl") << "this is not json\n";
  auto garbage = ResultsStore::Open((dir / "garbage.jsonl").string());
  ASSERT_FALSE(garbage.ok());
  EXPECT_NE(garbage.error().message().find(":1"), std::string::npos) << garbage.error().message();
  fs::remove_all(dir);
}

TEST(ResultsStoreCompatibility, RecordsWrittenBeforeFieldsWereAddedAreRead) {
  // A jsonl file as an older bitfusion wrote it: the machine has no zone, spot or boot times,
  // a result has no monotonic_ns.
  const fs::path dir = fs::path(::testing::TempDir()) / ("bf-old-" + std::to_string(getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "old.jsonl")
      << R"({"type":"run","run_id":"r1","plan":"p","plan_run_id":"pr","benchmark":"b",)"
      << R"("repetition":0,"warmup":false,"status":"ok","machine":{"hostname":"h",)"
      << R"("cpu":{"model_name":"x","caches":[{"level":1}]},"accelerators":[{"kind":"gpu"}]},)"
      << R"("results":[{"metric":"wall_time","value":null,"value_text":"NaN","unit":"s"},)"
      << R"({"metric":"rate","value":2.5,"unit":"ops/s","metadata":{"k":"v"}}]})"
      << "\n";
  auto store = ResultsStore::Open((dir / "old.jsonl").string());
  ASSERT_TRUE(store.ok()) << store.error().ToString();
  auto runs = (*store)->Runs("pr");
  ASSERT_TRUE(runs.ok()) << runs.error().ToString();
  ASSERT_EQ(runs->size(), 1u);
  const RunRecord& r = runs->front();
  EXPECT_EQ(r.machine.hostname, "h");
  EXPECT_EQ(r.machine.cpu.caches.at(0).level, 1);
  EXPECT_EQ(r.machine.accelerators.at(0).kind, "gpu");
  ASSERT_EQ(r.results.size(), 2u);
  EXPECT_TRUE(std::isnan(r.results[0].value));
  EXPECT_DOUBLE_EQ(r.results[1].value, 2.5);
  EXPECT_EQ(r.results[1].metadata.at("k"), "v");
  fs::remove_all(dir);
}

TEST(BetterFromUnitTest, TimesDownRatesUp) {
  EXPECT_EQ(BetterFromUnit("wall_time", "s"), Better::kLower);
  EXPECT_EQ(BetterFromUnit("gbench.real_time", "ns"), Better::kLower);
  EXPECT_EQ(BetterFromUnit("x", "ps"), Better::kLower);
  EXPECT_EQ(BetterFromUnit("matmul", "GFLOP/s"), Better::kHigher);
  EXPECT_EQ(BetterFromUnit("stream.triad", "MB/s"), Better::kHigher);
  EXPECT_EQ(BetterFromUnit("net", "Gbps"), Better::kHigher);
  EXPECT_EQ(BetterFromUnit("x", "ops"), Better::kHigher);
  EXPECT_EQ(BetterFromUnit("gbench.items_per_second", "1/s"), Better::kHigher);
  EXPECT_EQ(BetterFromUnit("mem", "bytes"), Better::kUnknown);
  EXPECT_EQ(BetterFromUnit("ratio", "1"), Better::kUnknown);
}

TEST(CompareRunsTest, VerdictsKnowWhichWayIsBetter) {
  const auto base = Series("a", "b", {1.00, 1.01, 0.99, 1.02, 0.98, 1.00, 1.01, 0.99});
  const auto slower = Series("c", "b", {1.10, 1.11, 1.09, 1.12, 1.08, 1.10, 1.11, 1.09});
  ComparisonResult result = CompareRuns(base, slower);
  ASSERT_EQ(result.metrics.size(), 2u);
  const auto& wall = result.metrics[0];
  EXPECT_EQ(wall.metric, "wall_time");
  EXPECT_EQ(wall.better, Better::kLower);
  EXPECT_EQ(wall.verdict, "slower");
  EXPECT_NEAR(wall.comparison.change, 0.10, 0.005);
  EXPECT_LT(wall.comparison.test.p_value, 0.05);
  EXPECT_LT(wall.comparison.change_ci_low, 0.10);
  EXPECT_GT(wall.comparison.change_ci_high, 0.05);
  const auto& rate = result.metrics[1];
  EXPECT_EQ(rate.better, Better::kHigher);
  EXPECT_EQ(rate.verdict, "slower") << "less throughput is worse";
  EXPECT_TRUE(result.regression);

  ComparisonResult reverse = CompareRuns(slower, base);
  EXPECT_EQ(reverse.metrics[0].verdict, "faster");
  EXPECT_EQ(reverse.metrics[1].verdict, "faster");
  EXPECT_FALSE(reverse.regression);

  ComparisonResult same = CompareRuns(base, Series("d", "b", {1.00, 1.01, 0.99, 1.02, 0.98}));
  EXPECT_EQ(same.metrics[0].verdict, "no change");
  EXPECT_FALSE(same.regression);
}

TEST(CompareRunsTest, ThresholdAlphaOverridesAndSingleRepetitions) {
  const auto base = Series("a", "b", {1.000, 1.001, 0.999, 1.002, 0.998, 1.000});
  const auto tiny = Series("c", "b", {1.005, 1.006, 1.004, 1.007, 1.003, 1.005});
  ComparisonResult result = CompareRuns(base, tiny);
  EXPECT_EQ(result.metrics[0].verdict, "no change") << "0.5 % is under the 1 % threshold";
  EXPECT_NE(result.metrics[0].note.find("threshold"), std::string::npos);
  CompareOptions strict;
  strict.threshold = 0.001;
  EXPECT_EQ(CompareRuns(base, tiny, strict).metrics[0].verdict, "slower");
  strict.better["wall_time"] = Better::kHigher;
  EXPECT_EQ(CompareRuns(base, tiny, strict).metrics[0].verdict, "faster");

  ComparisonResult single = CompareRuns(base, Series("e", "b", {2.0}));
  EXPECT_EQ(single.metrics[0].verdict, "");
  EXPECT_NEAR(single.metrics[0].comparison.change, 1.0, 1e-9) << "the change is still given";
  EXPECT_NE(single.metrics[0].note.find("no test is possible"), std::string::npos);
  EXPECT_FALSE(single.regression);
  EXPECT_NE(FormatComparisonTable(single).find("n/a"), std::string::npos);
}

TEST(CompareRunsTest, UnknownUnitsNonFiniteAndMissingBenchmarks) {
  auto base = Series("a", "b", {1, 1, 1, 1, 1, 1});
  auto cand = Series("c", "b", {1, 1, 1, 1, 1, 1});
  for (std::size_t i = 0; i < base.size(); ++i) {
    Sample s;
    s.metric = "widgets";
    s.unit = "furlongs";
    s.value = 10 + 0.01 * static_cast<double>(i);
    base[i].results.push_back(s);
    s.value = 20 + 0.01 * static_cast<double>(i);
    cand[i].results.push_back(s);
  }
  cand[0].results[0].value = std::numeric_limits<double>::quiet_NaN();
  auto other = Series("c", "only_new", {1, 2, 3});
  cand.insert(cand.end(), other.begin(), other.end());
  ComparisonResult result = CompareRuns(base, cand);
  const MetricComparison* widgets = nullptr;
  for (const auto& m : result.metrics) {
    if (m.metric == "widgets") widgets = &m;
    if (m.metric == "wall_time" && m.benchmark == "b") {
      EXPECT_NE(m.note.find("non-finite"), std::string::npos) << m.note;
    }
  }
  ASSERT_NE(widgets, nullptr);
  EXPECT_EQ(widgets->verdict, "") << "no verdict without a direction";
  EXPECT_NE(widgets->note.find("--better widgets=lower|higher"), std::string::npos)
      << widgets->note;
  EXPECT_FALSE(result.regression);
  ASSERT_EQ(result.notes.size(), 1u);
  EXPECT_NE(result.notes[0].find("only in the candidate: only_new"), std::string::npos);
  const std::string json = FormatComparisonJson(result);
  EXPECT_EQ(json.find("NaN"), std::string::npos) << "valid JSON: no bare NaN";
  EXPECT_NE(json.find("\"verdict\":null"), std::string::npos);
}

TEST(CompareRunsTest, GoogleBenchmarkImportsCompareEachRepetition) {
  auto gbench = [](const std::string& id, double base_ns) {
    RunRecord r;
    r.run_id = id;
    r.plan_run_id = id;
    r.benchmark = "prog";
    for (int rep = 0; rep < 5; ++rep) {
      Sample s;
      s.metric = "gbench.real_time";
      s.unit = "ns";
      s.value = base_ns + rep;
      s.metadata = {{"benchmark", "BM_X/8"},
                    {"run_type", "iteration"},
                    {"repetition_index", std::to_string(rep)}};
      r.results.push_back(s);
      Sample iters = s;
      iters.metric = "gbench.iterations";
      r.results.push_back(iters);
    }
    Sample mean;
    mean.metric = "gbench.real_time";
    mean.unit = "ns";
    mean.value = 1e9;  // an aggregate: never a repetition
    mean.metadata = {{"benchmark", "BM_X/8_mean"}, {"run_type", "aggregate"}};
    r.results.push_back(mean);
    return r;
  };
  ComparisonResult result = CompareRuns({gbench("x", 100)}, {gbench("y", 120)});
  ASSERT_EQ(result.metrics.size(), 1u);
  EXPECT_EQ(result.metrics[0].benchmark, "prog:BM_X/8");
  EXPECT_EQ(result.metrics[0].baseline.count, 5u);
  EXPECT_EQ(result.metrics[0].verdict, "slower");
  EXPECT_LT(result.metrics[0].comparison.test.p_value, 0.05);
}

TEST(CompareRunsTest, WarmUpsAndFailedRunsAreNotSamples) {
  auto base = Series("a", "b", {1, 1, 1});
  base.push_back(MakeRun("a", "b", 0, 50, 0, /*warmup=*/true));
  auto failed = MakeRun("a", "b", 3, 70, 0);
  failed.status = kRunFailed;
  base.push_back(failed);
  ComparisonResult result = CompareRuns(base, base);
  EXPECT_EQ(result.metrics[0].baseline.count, 3u);
  EXPECT_DOUBLE_EQ(result.metrics[0].baseline.max, 1);
}

}  // namespace
}  // namespace bitfusion
