// Reading results back: `compare` on two stores of 10,000 runs each, and `report` on a plan run
// with 1M samples. Each is timed next to a reference measured in the same run: the floor of
// reading the same rows with plain sqlite3 (and, for compare, parsing each record's JSON with
// Boost.JSON), so the ratio says what the statistics, the rendering and the record decoding add.
//
// Targets (issue 11): compare of 2 x 10,000 runs in seconds, not minutes; report of 1M samples
// in a few seconds with a page under a few MB. Counters:
//   vs_read        time / the plain-read floor's time (both in the same run)
//   peak_mib       extra heap at the peak (operator new, counted by allocation_counter.cc)
//   page_kib       the report's size
//
//   results_benchmark [Google Benchmark flags]
// The stores are written once to $TMPDIR (default /tmp) through the sqlite:// sink and removed
// at exit.
#include <benchmark/benchmark.h>
#include <sqlite3.h>
#include <unistd.h>

#include <boost/json.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "allocation_counter.h"
#include "bitfusion/result_sink.h"
#include "bitfusion/results.h"

namespace {

namespace fs = std::filesystem;
using bitfusion::RunRecord;
using bitfusion::Sample;
using bitfusion::SampleBatch;

constexpr int kBenchmarks = 100;
constexpr int kRepetitions = 100;  // 100 x 100 = 10,000 runs per store
constexpr int kReportRuns = 5;
constexpr int kReportSeries = 20;
constexpr int kSamplesPerSeries = 10'000;  // 5 x 20 x 10,000 = 1M samples

// Extra heap at the peak of `run`, in MiB (operator new; SQLite's own malloc is not counted).
template <class F>
double PeakHeapMib(F&& run) {
  const std::int64_t before = bitfusion::bench::LiveBytes();
  bitfusion::bench::ResetPeakBytes();
  run();
  return static_cast<double>(bitfusion::bench::PeakBytes() - before) / (1 << 20);
}

class Stores {
 public:
  static Stores& Get() {
    static Stores stores;
    return stores;
  }
  std::string base, candidate, report;

 private:
  Stores() {
    const char* tmp = std::getenv("TMPDIR");
    dir_ = fs::path(tmp ? tmp : "/tmp") / ("bf-results-bench-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    base = (dir_ / "base.db").string();
    candidate = (dir_ / "cand.db").string();
    report = (dir_ / "report.db").string();
    WriteRuns(base, 1.0);
    WriteRuns(candidate, 1.05);
    WriteReport(report);
  }
  ~Stores() {
    if (std::getenv("BITFUSION_KEEP_STORES") == nullptr) fs::remove_all(dir_);
  }

  static void Check(const bitfusion::Status& s) {
    if (!s.ok()) {
      std::fprintf(stderr, "results_benchmark: %s\n", s.ToString().c_str());
      std::exit(1);
    }
  }

  static RunRecord Record(const std::string& plan_run, const std::string& benchmark, int rep,
                          double wall_s, std::int64_t start_ns) {
    RunRecord r;
    r.run_id = bitfusion::NewRunId();
    r.plan = "bench";
    r.plan_run_id = plan_run;
    r.benchmark = benchmark;
    r.repetition = rep;
    r.machine.hostname = "host-a";
    r.machine.cpu.model_name = "Some CPU @ 3.0GHz";
    r.exit.start_ns = start_ns;
    r.exit.end_ns = start_ns + static_cast<std::int64_t>(wall_s * 1e9);
    r.exit.wall_time_ns = r.exit.end_ns - start_ns;
    r.labels = {{"run_id", r.run_id}, {"benchmark", benchmark}, {"plan_run_id", plan_run}};
    for (const auto& [metric, unit, value] :
         {std::tuple<const char*, const char*, double>{"wall_time", "s", wall_s},
          {"work.rate", "ops/s", 1000 / wall_s},
          {"work.bytes", "MB/s", 5000 / wall_s}}) {
      Sample s;
      s.metric = metric;
      s.unit = unit;
      s.value = value;
      s.timestamp_ns = r.exit.end_ns;
      r.results.push_back(s);
    }
    return r;
  }

  static void WriteRuns(const std::string& path, double scale) {
    auto sink = bitfusion::ResultSinkFromUri("sqlite://" + path);
    Check(sink.status());
    const std::string plan_run = bitfusion::NewRunId();
    std::int64_t t = 1'700'000'000'000'000'000;
    for (int b = 0; b < kBenchmarks; ++b) {
      for (int rep = 0; rep < kRepetitions; ++rep) {
        const double wall = scale * (1 + b * 0.01) * (1 + 0.02 * ((rep * 7919) % 13) / 13.0);
        Check((*sink)->Write(Record(plan_run, "bench" + std::to_string(b), rep, wall, t)));
        t += 1'000'000'000;
      }
    }
    Check((*sink)->Close());
  }

  static void WriteReport(const std::string& path) {
    auto sink = bitfusion::ResultSinkFromUri("sqlite://" + path);
    Check(sink.status());
    const std::string plan_run = bitfusion::NewRunId();
    std::int64_t t = 1'700'000'000'000'000'000;
    for (int r = 0; r < kReportRuns; ++r) {
      RunRecord record = Record(plan_run, "stream", r, 100.0, t);
      SampleBatch batch;
      batch.labels = record.labels;
      for (int s = 0; s < kReportSeries; ++s) {
        batch.AddSeries({s < kReportSeries / 2 ? "cpu.user" : "mem.used",
                         s < kReportSeries / 2 ? "s" : "bytes",
                         {{"cpu", std::to_string(s)}}});
      }
      for (int i = 0; i < kSamplesPerSeries; ++i) {
        for (int s = 0; s < kReportSeries; ++s) {
          batch.Append(static_cast<std::uint32_t>(s), t + i * 10'000'000LL, i * 10'000'000LL,
                       s * 10.0 + (i % 100) * 0.1);
        }
      }
      Check((*sink)->Write(batch));
      Check((*sink)->Write(record));
      t += 101'000'000'000LL;
    }
    Check((*sink)->Close());
  }

  fs::path dir_;
};

// The floor: every run record of a store read and its JSON parsed, nothing else.
std::size_t ReadRecordsRaw(const std::string& path) {
  sqlite3* db = nullptr;
  sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
  sqlite3_stmt* stmt = nullptr;
  sqlite3_prepare_v2(db, "SELECT record FROM runs ORDER BY start_ns", -1, &stmt, nullptr);
  std::size_t n = 0;
  while (sqlite3_step(stmt) == SQLITE_ROW) {
    const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    boost::json::value v = boost::json::parse(text);
    n += v.is_object();
  }
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return n;
}

// The floor: every sample row read.
std::size_t ReadSamplesRaw(const std::string& path) {
  sqlite3* db = nullptr;
  sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
  sqlite3_stmt* stmt = nullptr;
  sqlite3_prepare_v2(db, "SELECT series_id, timestamp_ns, value FROM samples", -1, &stmt, nullptr);
  std::size_t n = 0;
  double sum = 0;
  while (sqlite3_step(stmt) == SQLITE_ROW) {
    sum += sqlite3_column_double(stmt, 2) + static_cast<double>(sqlite3_column_int64(stmt, 1));
    ++n;
  }
  benchmark::DoNotOptimize(sum);
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return n;
}

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

void BM_Compare10kRuns(benchmark::State& state) {
  Stores& stores = Stores::Get();
  double ours = 0, floor = 0, peak = 0;
  std::size_t rows = 0;
  for (auto _ : state) {
    auto start = std::chrono::steady_clock::now();
    bitfusion::Result<bitfusion::ComparisonResult> result = bitfusion::InternalError("not run");
    peak = std::max(peak, PeakHeapMib([&] {
                      result = bitfusion::CompareResults(stores.base, stores.candidate);
                    }));
    ours += Seconds(start);
    if (!result.ok()) {
      state.SkipWithError(result.error().ToString().c_str());
      return;
    }
    rows = result->metrics.size();
    state.PauseTiming();
    start = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(ReadRecordsRaw(stores.base) + ReadRecordsRaw(stores.candidate));
    floor += Seconds(start);
    state.ResumeTiming();
  }
  state.counters["runs"] = 2.0 * kBenchmarks * kRepetitions;
  state.counters["metrics_compared"] = static_cast<double>(rows);
  state.counters["vs_read"] = ours / floor;
  state.counters["peak_mib"] = peak;
}
BENCHMARK(BM_Compare10kRuns)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_Report1MSamples(benchmark::State& state) {
  Stores& stores = Stores::Get();
  double ours = 0, floor = 0, peak = 0;
  std::size_t bytes = 0;
  for (auto _ : state) {
    auto start = std::chrono::steady_clock::now();
    bitfusion::Result<std::string> html = bitfusion::InternalError("not run");
    peak = std::max(peak, PeakHeapMib([&] { html = bitfusion::RenderReport(stores.report); }));
    ours += Seconds(start);
    if (!html.ok()) {
      state.SkipWithError(html.error().ToString().c_str());
      return;
    }
    bytes = html->size();
    state.PauseTiming();
    start = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(ReadSamplesRaw(stores.report));
    floor += Seconds(start);
    state.ResumeTiming();
  }
  state.counters["samples"] = static_cast<double>(kReportRuns) * kReportSeries * kSamplesPerSeries;
  state.counters["page_kib"] = static_cast<double>(bytes) / 1024.0;
  state.counters["vs_read"] = ours / floor;
  state.counters["peak_mib"] = peak;
}
BENCHMARK(BM_Report1MSamples)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
