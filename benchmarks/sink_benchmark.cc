// Sink throughput, each next to a reference measured in the same run, interleaved with it
// iteration by iteration (the reference runs while Google Benchmark's timer is paused), so both
// see the same machine.
//
// Targets:
// - sqlite:// stores >= 500k samples/s through ResultSink::Write (the base batches 16384 samples
//   into one transaction). Reference: plain sqlite3 prepared-statement inserts of the same rows
//   into an equivalent table, 16384 per transaction, same pragmas (WAL, synchronous=NORMAL) and
//   the same index setting. Counters: samples/s (the sink), raw_samples/s (the reference),
//   vs_raw = sink rate / reference rate (1.0: the sink adds nothing). Run with samples_index off
//   (the default) and on, which shows what the optional index costs.
// - JSONL encoding >= 1M samples/s on one core. Reference: the obvious encoder, one Boost.JSON
//   object per sample, serialised; counters boost_json_samples/s and vs_boost_json. The whole
//   jsonl:// sink writing to /dev/null, and CSV encoding, are measured too.
//
// - Elasticsearch: the _bulk NDJSON encoder (BM_EsBulkEncode, samples/s), and the CPU that the
//   whole es:// sink spends per sample (encoding, spool, HTTP, reading the answers) against the
//   official Python client's helpers.bulk (python3-elasticsearch) sending the same samples, same
//   document shape, same documents per request, to the same Elasticsearch fake, in the same run
//   (BM_EsSinkVsPythonBulk). Target: vs_python = sink CPU per sample / Python's <= 0.2. Both CPU
//   times come from getrusage; the fake's own CPU is in neither. It runs once (40960 samples),
//   whatever --benchmark_min_time says.
//
//   sink_benchmark [Google Benchmark flags], e.g. --benchmark_min_time=2
// Files go to $TMPDIR (default /tmp) and are removed afterwards.
#include <benchmark/benchmark.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/json.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "bitfusion/result_sink.h"
#include "sinks/csv_sink.h"
#include "sinks/es_sink.h"
#include "sinks/jsonl_sink.h"

namespace {

namespace fs = std::filesystem;
using bitfusion::SampleBatch;

constexpr int kSeries = 16;
constexpr int kSamplesPerBatch = 1024;
constexpr int kRowsPerTransaction = 16384;

// What a source hands over: shared labels, a series per CPU, realistic timestamps and values
// with all 17 significant digits (the expensive case for number formatting).
SampleBatch MakeBatch() {
  SampleBatch b;
  b.labels = {{"run", "3f2a9c4e8b7d6a5f4e3d2c1b0a998877"},
              {"machine", "host-a"},
              {"container", "c0ffee123456"}};
  for (int s = 0; s < kSeries; ++s) {
    b.AddSeries({"cpu.user", "s", {{"cpu", std::to_string(s)}}});
  }
  b.Reserve(kSamplesPerBatch);
  const std::int64_t t0 = 1'700'000'000'000'000'000;
  for (int i = 0; i < kSamplesPerBatch; ++i) {
    const auto s = static_cast<std::uint32_t>(i % kSeries);
    b.Append(s, t0 + i * 61'000, 5'000'000'000 + i * 61'000, (i + 1) * 0.37 / 7.0);
  }
  return b;
}

// A directory of its own per benchmark run, removed when the run ends.
class ScratchDir {
 public:
  ScratchDir() {
    const char* base = std::getenv("TMPDIR");
    path_ =
        fs::path(base ? base : "/tmp") / ("bitfusion-sink-benchmark-" + std::to_string(::getpid()) +
                                          "-" + std::to_string(counter_++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  static inline int counter_ = 0;
  fs::path path_;
};

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Plain sqlite3: one prepared INSERT, rows bound one by one, one transaction per call.
class RawSqlite {
 public:
  RawSqlite(const fs::path& path, bool index) {
    // NOMUTEX, as the sink opens its connection: the reference is SQLite at its best.
    Check(
        sqlite3_open_v2(path.c_str(), &db_,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr),
        "open");
    Check(sqlite3_exec(db_,
                       "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                       "CREATE TABLE samples (series_id INTEGER NOT NULL, timestamp_ns INTEGER "
                       "NOT NULL, monotonic_ns INTEGER NOT NULL, value REAL)",
                       nullptr, nullptr, nullptr),
          "schema");
    if (index) {
      Check(sqlite3_exec(db_, "CREATE INDEX s ON samples (series_id, timestamp_ns)", nullptr,
                         nullptr, nullptr),
            "index");
    }
    Check(sqlite3_prepare_v2(db_, "INSERT INTO samples VALUES (?1, ?2, ?3, ?4)", -1, &insert_,
                             nullptr),
          "prepare");
  }
  ~RawSqlite() {
    sqlite3_finalize(insert_);
    sqlite3_close(db_);
  }

  // The same rows the sink gets from `copies` writes of `batch`, in one transaction.
  void Insert(const SampleBatch& batch, int copies) {
    Check(sqlite3_exec(db_, "BEGIN", nullptr, nullptr, nullptr), "begin");
    for (int c = 0; c < copies; ++c) {
      for (std::size_t i = 0; i < batch.size(); ++i) {
        sqlite3_bind_int64(insert_, 1, batch.series_index[i] + 1);
        sqlite3_bind_int64(insert_, 2, batch.timestamp_ns[i] + c * 1'000'000'000LL);
        sqlite3_bind_int64(insert_, 3, batch.monotonic_ns[i]);
        sqlite3_bind_double(insert_, 4, batch.value[i]);
        Check(sqlite3_step(insert_), "insert");
        sqlite3_reset(insert_);
      }
    }
    Check(sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr), "commit");
  }

 private:
  void Check(int rc, const char* what) {
    if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
      std::fprintf(stderr, "raw sqlite3 %s: %s\n", what, sqlite3_errmsg(db_));
      std::exit(1);
    }
  }

  sqlite3* db_ = nullptr;
  sqlite3_stmt* insert_ = nullptr;
};

// Each iteration is one transaction's worth of samples through the sink (16 writes of 1024;
// the 16th sends them), then, with the timer paused, the same rows through the raw reference.
// Interleaving exposes both to the same machine, which matters on a shared one.
void BM_SqliteSink(benchmark::State& state) {
  ScratchDir dir;
  const bool index = state.range(0) != 0;
  auto sink = bitfusion::ResultSinkFromUri(
      "sqlite://" + (dir.path() / "sink.db").string() + "?max_delay=1h&batch_samples=" +
      std::to_string(kRowsPerTransaction) + "&samples_index=" + (index ? "true" : "false"));
  if (!sink.ok()) {
    state.SkipWithError(sink.error().ToString().c_str());
    return;
  }
  RawSqlite raw(dir.path() / "raw.db", index);
  constexpr int kWrites = kRowsPerTransaction / kSamplesPerBatch;
  SampleBatch batch = MakeBatch();
  std::int64_t samples = 0;
  double sink_seconds = 0;
  double raw_seconds = 0;
  for (auto _ : state) {
    auto start = std::chrono::steady_clock::now();
    for (int w = 0; w < kWrites; ++w) {
      // New timestamps each write, as a live source would send.
      for (auto& t : batch.timestamp_ns) t += 1'000'000'000;
      if (!(*sink)->Write(batch).ok()) {
        state.SkipWithError("write failed");
        return;
      }
    }
    sink_seconds += SecondsSince(start);
    samples += kRowsPerTransaction;
    state.PauseTiming();
    start = std::chrono::steady_clock::now();
    raw.Insert(batch, kWrites);
    raw_seconds += SecondsSince(start);
    state.ResumeTiming();
  }
  if (!(*sink)->Close().ok()) state.SkipWithError("close failed");
  state.counters["samples/s"] =
      benchmark::Counter(static_cast<double>(samples), benchmark::Counter::kIsRate);
  state.counters["raw_samples/s"] = static_cast<double>(samples) / raw_seconds;
  state.counters["vs_raw"] = raw_seconds / sink_seconds;
  state.counters["rows"] = static_cast<double>(samples);
}
BENCHMARK(BM_SqliteSink)
    ->ArgName("samples_index")
    ->Arg(0)
    ->Arg(1)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// The reference: what one would write without thinking about speed.
void EncodeWithBoostJson(const SampleBatch& batch, std::string& out) {
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const bitfusion::Sample s = batch.At(i);
    boost::json::object o;
    o["type"] = "sample";
    o["metric"] = s.metric;
    o["value"] = s.value;
    o["unit"] = s.unit;
    boost::json::object metadata;
    for (const auto& [k, v] : s.metadata) metadata[k] = v;
    o["metadata"] = std::move(metadata);
    o["timestamp"] = static_cast<double>(s.timestamp_ns) / 1e9;
    o["timestamp_ns"] = s.timestamp_ns;
    o["monotonic_ns"] = s.monotonic_ns;
    out += boost::json::serialize(o);
    out.push_back('\n');
  }
}

// Encoding only, into memory; the Boost.JSON reference runs on the same batch with the timer
// paused, interleaved.
void BM_JsonlEncode(benchmark::State& state) {
  const SampleBatch batch = MakeBatch();
  bitfusion::internal::JsonlEncoder encoder;
  std::string out;
  std::int64_t samples = 0;
  std::size_t bytes = 0;
  std::string reference;
  double seconds = 0;
  double reference_seconds = 0;
  for (auto _ : state) {
    auto start = std::chrono::steady_clock::now();
    out.clear();
    encoder.Append(batch, out);
    benchmark::DoNotOptimize(out.data());
    seconds += SecondsSince(start);
    samples += batch.size();
    bytes += out.size();
    state.PauseTiming();
    start = std::chrono::steady_clock::now();
    reference.clear();
    EncodeWithBoostJson(batch, reference);
    benchmark::DoNotOptimize(reference.data());
    reference_seconds += SecondsSince(start);
    state.ResumeTiming();
  }
  state.counters["samples/s"] =
      benchmark::Counter(static_cast<double>(samples), benchmark::Counter::kIsRate);
  state.counters["bytes/sample"] = static_cast<double>(bytes) / static_cast<double>(samples);
  state.counters["boost_json_samples/s"] = static_cast<double>(samples) / reference_seconds;
  state.counters["vs_boost_json"] = reference_seconds / seconds;
}
BENCHMARK(BM_JsonlEncode)->UseRealTime();

// The whole path: ResultSink::Write copying into its queue, encoding, write(2) to /dev/null.
void BM_JsonlSinkToDevNull(benchmark::State& state) {
  auto sink = bitfusion::ResultSinkFromUri("jsonl:///dev/null?fsync=false&max_delay=1h");
  if (!sink.ok()) {
    state.SkipWithError(sink.error().ToString().c_str());
    return;
  }
  const SampleBatch batch = MakeBatch();
  std::int64_t samples = 0;
  for (auto _ : state) {
    if (!(*sink)->Write(batch).ok()) {
      state.SkipWithError("write failed");
      return;
    }
    samples += batch.size();
  }
  if (!(*sink)->Close().ok()) state.SkipWithError("close failed");
  state.counters["samples/s"] =
      benchmark::Counter(static_cast<double>(samples), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_JsonlSinkToDevNull)->UseRealTime();

void BM_CsvEncode(benchmark::State& state) {
  const SampleBatch batch = MakeBatch();
  bitfusion::internal::CsvEncoder encoder;
  std::string out;
  std::int64_t samples = 0;
  for (auto _ : state) {
    out.clear();
    encoder.Append(batch, out);
    benchmark::DoNotOptimize(out.data());
    samples += batch.size();
  }
  state.counters["samples/s"] =
      benchmark::Counter(static_cast<double>(samples), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_CsvEncode)->UseRealTime();

// ---- Elasticsearch -----------------------------------------------------------------------------

void BM_EsBulkEncode(benchmark::State& state) {
  const SampleBatch batch = MakeBatch();
  bitfusion::internal::EsBulkEncoder encoder("bench");
  std::string out;
  std::int64_t samples = 0;
  std::size_t bytes = 0;
  for (auto _ : state) {
    out.clear();
    encoder.Append(batch, out);
    benchmark::DoNotOptimize(out.data());
    samples += batch.size();
    bytes += out.size();
  }
  state.counters["samples/s"] =
      benchmark::Counter(static_cast<double>(samples), benchmark::Counter::kIsRate);
  state.counters["bytes/sample"] = static_cast<double>(bytes) / static_cast<double>(samples);
}
BENCHMARK(BM_EsBulkEncode)->UseRealTime();

double CpuSeconds() {
  rusage r{};
  getrusage(RUSAGE_SELF, &r);
  return static_cast<double>(r.ru_utime.tv_sec + r.ru_stime.tv_sec) +
         static_cast<double>(r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1e6;
}

// tests/fakes/es_fake.py, run for the benchmark's lifetime.
class EsFake {
 public:
  EsFake() {
    const fs::path port_file = dir_.path() / "port";
    pid_ = ::fork();
    if (pid_ == 0) {
      ::setpgid(0, 0);
      std::freopen("/dev/null", "w", stdout);
      ::execl(BITFUSION_PYTHON, BITFUSION_PYTHON, BITFUSION_ES_FAKE, "--port-file",
              port_file.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    for (int i = 0; i < 400 && port_ == 0; ++i) {
      std::ifstream in(port_file);
      if (!(in >> port_)) std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
  }
  ~EsFake() {
    if (pid_ > 0) {
      ::kill(-pid_, SIGTERM);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  int port() const { return port_; }

 private:
  ScratchDir dir_;
  pid_t pid_ = -1;
  int port_ = 0;
};

void BM_EsSinkVsPythonBulk(benchmark::State& state) {
  constexpr int kWrites = 40;
  constexpr int kSamples = kWrites * kSamplesPerBatch;
  constexpr int kPerRequest = 16384;
  EsFake fake;
  if (fake.port() == 0) {
    state.SkipWithError("the Elasticsearch fake did not start");
    return;
  }
  ScratchDir dir;
  const std::string base = "http://127.0.0.1:" + std::to_string(fake.port());
  double sink_cpu = 0;
  double python_cpu = 0;
  for (auto _ : state) {
    SampleBatch batch = MakeBatch();
    const double start = CpuSeconds();
    auto sink = bitfusion::ResultSinkFromUri(
        "es://127.0.0.1:" + std::to_string(fake.port()) + "/bench_sink?max_delay=1h&spool=" +
        (dir.path() / "spool").string() + "&batch_samples=" + std::to_string(kPerRequest));
    if (!sink.ok()) {
      state.SkipWithError(sink.error().ToString().c_str());
      return;
    }
    for (int w = 0; w < kWrites; ++w) {
      for (auto& t : batch.timestamp_ns) t += 1'000'000'000;
      if (!(*sink)->Write(batch).ok()) {
        state.SkipWithError("write failed");
        return;
      }
    }
    if (!(*sink)->Close().ok() || (*sink)->counters().samples_written != kSamples) {
      state.SkipWithError("the sink did not store every sample");
      return;
    }
    sink_cpu = CpuSeconds() - start;

    state.PauseTiming();
    const std::string command = std::string(BITFUSION_PYTHON) + " " + BITFUSION_ES_REFERENCE +
                                " --url " + base + " --index bench_python --samples " +
                                std::to_string(kSamples) + " --chunk " +
                                std::to_string(kPerRequest);
    FILE* python = ::popen(command.c_str(), "r");
    char line[512] = {};
    const bool read = python != nullptr && std::fgets(line, sizeof(line), python) != nullptr;
    const int status = python != nullptr ? ::pclose(python) : -1;
    const char* at = std::strstr(line, "\"cpu_s\": ");
    if (!read || status != 0 || at == nullptr) {
      state.SkipWithError("the Python reference failed (is python3-elasticsearch installed?)");
      return;
    }
    python_cpu = std::atof(at + 9);
    state.ResumeTiming();
  }
  state.counters["samples"] = kSamples;
  state.counters["sink_cpu_us/sample"] = sink_cpu * 1e6 / kSamples;
  state.counters["python_cpu_us/sample"] = python_cpu * 1e6 / kSamples;
  state.counters["vs_python"] = sink_cpu / python_cpu;
}
BENCHMARK(BM_EsSinkVsPythonBulk)->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
