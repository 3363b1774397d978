// The one suite every ResultSink backend passes, shared by the unit tests (the file and local
// sinks) and the integration tests (the network sinks, against real or faked stores). Each sink
// is made through ResultSinkFromUri, fed batches and run records, closed, and then what it
// stored is read back with an independent reader (a JSON parser, an RFC 4180 parser, the sqlite3
// API, the store's own query API) and compared sample by sample: everything must arrive exactly
// once, with its values, labels and timestamps. null:// stores nothing, so for it the counters
// are the record.
//
// A test file includes this header, defines readers, and instantiates SinkConformanceTest with
// one SinkKind per sink.
#pragma once

#include <unistd.h>

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bitfusion/result_sink.h"
#include "bitfusion/run_record.h"
#include "bitfusion/sample.h"
#include "core/json_numbers.h"
#include "integration/service.h"

namespace bitfusion::conformance {

namespace fs = std::filesystem;
namespace json = boost::json;

inline constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
inline constexpr double kInf = std::numeric_limits<double>::infinity();

// ---- what a store gives back, in one shape for every sink ---------------------------------

struct StoredSample {
  std::string metric;
  std::string unit;
  Labels labels;
  std::int64_t timestamp_ns = 0;
  std::int64_t monotonic_ns = 0;
  double value = 0;
};

struct StoredRun {
  std::string run_id;
  std::string benchmark;
  std::string status;
  std::int64_t repetition = 0;
  std::int64_t exit_code = 0;
  std::int64_t wall_time_ns = 0;
  std::vector<StoredSample> results;  // metric, unit, value and timestamp are compared
};

struct Stored {
  std::vector<StoredSample> samples;
  std::vector<StoredRun> runs;
};

inline std::string ValueText(double v) {
  if (std::isnan(v)) return "NaN";
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, end);
}

// One line per sample that differs whenever any field differs, so sorted lists of them compare
// as multisets and print readably.
inline std::string Key(const StoredSample& s) {
  std::string out = s.metric + " | " + s.unit + " | {";
  for (const auto& [k, v] : s.labels) out += k + "=" + v + ",";
  out += "} | " + std::to_string(s.timestamp_ns) + " | " + std::to_string(s.monotonic_ns) + " | " +
         ValueText(s.value);
  return out;
}

inline std::string ResultKey(const StoredSample& s) {
  return s.metric + " | " + s.unit + " | " + std::to_string(s.timestamp_ns) + " | " +
         ValueText(s.value);
}

inline double NonFinite(std::string_view text) {
  if (text == "NaN") return kNaN;
  if (text == "Infinity") return kInf;
  if (text == "-Infinity") return -kInf;
  throw std::runtime_error("unexpected value text \"" + std::string(text) + "\"");
}

inline double ParseDouble(std::string_view text) {
  double v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || p != text.data() + text.size()) {
    throw std::runtime_error("not a number: \"" + std::string(text) + "\"");
  }
  return v;
}

inline std::int64_t ParseInt(std::string_view text) {
  std::int64_t v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || p != text.data() + text.size()) {
    throw std::runtime_error("not an integer: \"" + std::string(text) + "\"");
  }
  return v;
}

inline std::string Str(const json::value& v) { return std::string(v.as_string()); }

inline Labels LabelsFromJson(const json::value& v) {
  Labels out;
  for (const auto& member : v.as_object()) out[std::string(member.key())] = Str(member.value());
  return out;
}

inline std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// ---- reading stores' JSON answers exactly -----------------------------------------------

// Boost 1.81 parses doubles fast rather than exactly. Stores answer in JSON, so their numbers
// are turned into strings ("#" and the number's own text) before parsing, and read with
// from_chars: a lossy encoder cannot hide behind a lossy reader.
inline json::value ParseJsonExact(std::string_view text) {
  const std::string out = internal::JsonNumbersAsText(text);
  json::error_code ec;
  json::value v = json::parse(out, ec);
  if (ec)
    throw std::runtime_error("not JSON (" + ec.message() +
                             "): " + std::string(text.substr(0, 300)));
  return v;
}

// A number read by ParseJsonExact.
inline double ExactDouble(const json::value& v) {
  const std::string text = Str(v);
  if (text.empty() || text[0] != '#') throw std::runtime_error("not a number: " + text);
  return ParseDouble(std::string_view(text).substr(1));
}
inline std::int64_t ExactInt(const json::value& v) {
  const std::string text = Str(v);
  if (text.empty() || text[0] != '#') throw std::runtime_error("not a number: " + text);
  return ParseInt(std::string_view(text).substr(1));
}

// ---- the sinks under test ------------------------------------------------------------------

struct SinkKind {
  std::string scheme;     // also the test name's suffix, unless `name` is set
  std::string extension;  // file sinks: the file's extension; empty for the others
  // Reads back what the sink stored at `where` (the file, or the store's name for the test);
  // empty: the sink keeps nothing.
  std::function<Stored(const std::string& where)> read;
  // Sinks without a file: the URI of a fresh store named `where` for one test (`dir` is the
  // test's own directory, for a spool), with `query` (may be empty) added.
  std::function<std::string(const fs::path& dir, const std::string& where,
                            const std::string& query)>
      uri;
  // What this store does to odd text that the others keep as it is (its documented outcome),
  // applied to the expected samples of OddValuesAndTextKeepTheirNeighbours.
  std::function<void(StoredSample&)> adjust_odd;
  // Services: why the store cannot be used here, or "" when it can.
  std::function<std::string()> unavailable;
  std::string name;  // test name suffix, when one scheme is tested twice
};

inline std::string KindName(const ::testing::TestParamInfo<SinkKind>& info) {
  std::string name = info.param.name.empty() ? info.param.scheme : info.param.name;
  std::replace(name.begin(), name.end(), '+', '_');
  return name;
}
inline void PrintTo(const SinkKind& kind, std::ostream* os) { *os << kind.scheme << "://"; }

// ---- expectations --------------------------------------------------------------------------

inline std::vector<StoredSample> Expected(const std::vector<SampleBatch>& batches) {
  std::vector<StoredSample> out;
  for (const SampleBatch& b : batches) {
    for (std::size_t i = 0; i < b.size(); ++i) {
      Sample s = b.At(i);
      out.push_back({s.metric, s.unit, s.metadata, s.timestamp_ns, s.monotonic_ns, s.value});
    }
  }
  return out;
}

inline StoredRun ExpectedRun(const RunRecord& r) {
  StoredRun out{r.run_id,         r.benchmark,         r.status, r.repetition,
                r.exit.exit_code, r.exit.wall_time_ns, {}};
  for (const Sample& s : r.results) {
    out.results.push_back({s.metric, s.unit, s.metadata, s.timestamp_ns, s.monotonic_ns, s.value});
  }
  return out;
}

// Multiset equality; on failure names what is missing and what is extra or duplicated.
inline ::testing::AssertionResult SameSamples(std::vector<StoredSample> expected,
                                              std::vector<StoredSample> actual) {
  std::vector<std::string> want;
  std::vector<std::string> got;
  for (const auto& s : expected) want.push_back(Key(s));
  for (const auto& s : actual) got.push_back(Key(s));
  std::sort(want.begin(), want.end());
  std::sort(got.begin(), got.end());
  if (want == got) return ::testing::AssertionSuccess();
  std::vector<std::string> missing;
  std::vector<std::string> extra;
  std::set_difference(want.begin(), want.end(), got.begin(), got.end(),
                      std::back_inserter(missing));
  std::set_difference(got.begin(), got.end(), want.begin(), want.end(), std::back_inserter(extra));
  auto result = ::testing::AssertionFailure()
                << "expected " << want.size() << " samples, stored " << got.size() << "; "
                << missing.size() << " missing, " << extra.size() << " extra or duplicated";
  for (std::size_t i = 0; i < missing.size() && i < 5; ++i) {
    result << "\n  missing: " << missing[i].substr(0, 300);
  }
  for (std::size_t i = 0; i < extra.size() && i < 5; ++i) {
    result << "\n  extra:   " << extra[i].substr(0, 300);
  }
  return result;
}

inline ::testing::AssertionResult SameRuns(const std::vector<RunRecord>& records,
                                           const std::vector<StoredRun>& actual) {
  std::map<std::string, const StoredRun*> by_id;
  for (const StoredRun& r : actual) {
    if (!by_id.emplace(r.run_id, &r).second) {
      return ::testing::AssertionFailure() << "run " << r.run_id << " stored twice";
    }
  }
  if (by_id.size() != records.size()) {
    return ::testing::AssertionFailure()
           << "expected " << records.size() << " runs, stored " << by_id.size();
  }
  for (const RunRecord& record : records) {
    const StoredRun want = ExpectedRun(record);
    auto it = by_id.find(want.run_id);
    if (it == by_id.end()) return ::testing::AssertionFailure() << "run " << want.run_id << " lost";
    const StoredRun& got = *it->second;
    if (got.benchmark != want.benchmark || got.status != want.status ||
        got.repetition != want.repetition || got.exit_code != want.exit_code ||
        got.wall_time_ns != want.wall_time_ns) {
      return ::testing::AssertionFailure()
             << "run " << want.run_id << " stored as benchmark=" << got.benchmark
             << " status=" << got.status << " repetition=" << got.repetition
             << " exit_code=" << got.exit_code << " wall_time_ns=" << got.wall_time_ns;
    }
    std::vector<std::string> w;
    std::vector<std::string> g;
    for (const auto& s : want.results) w.push_back(ResultKey(s));
    for (const auto& s : got.results) g.push_back(ResultKey(s));
    std::sort(w.begin(), w.end());
    std::sort(g.begin(), g.end());
    if (w != g) {
      auto failure = ::testing::AssertionFailure()
                     << "results of run " << want.run_id << " differ:";
      for (const auto& s : w) failure << "\n  want " << s;
      for (const auto& s : g) failure << "\n  got  " << s;
      return failure;
    }
  }
  return ::testing::AssertionSuccess();
}

// ---- test data -----------------------------------------------------------------------------

inline constexpr std::int64_t kT0 = 1'700'000'000'000'000'000;

inline SampleBatch CpuBatch(int first, int count) {
  SampleBatch b;
  b.labels = {{"run", "r1"}, {"machine", "m1"}, {"cpu", "all"}};
  // Series labels win over the batch's: cpu=all is overridden.
  const auto user = b.AddSeries({"cpu.user", "s", {{"cpu", "0"}}});
  const auto sys = b.AddSeries({"cpu.system", "s", {{"cpu", "0"}}});
  const auto mem = b.AddSeries({"mem.used", "bytes", {}});
  for (int i = first; i < first + count; ++i) {
    const std::int64_t t = kT0 + std::int64_t{i} * 1'000'000;
    b.Append(user, t, 5'000'000'000 + i, 0.1 * i);  // 0.1 * i: digits that need exactness
    b.Append(sys, t, 5'000'000'000 + i, 1.0 / (i + 3));
    b.Append(mem, t, 5'000'000'000 + i, 4096.0 * i + 1);
  }
  return b;
}

inline RunRecord MakeRun(const std::string& id, int repetition) {
  RunRecord r;
  r.run_id = id;
  r.plan = "conformance";
  r.plan_run_id = "plan-1";
  r.benchmark = "stream";
  r.repetition = repetition;
  r.runner = "process://";
  r.command = {"stream", "--size", "1G"};
  r.machine.id = "local";
  r.machine.provider = "local";
  r.machine.hostname = "host-a";
  r.machine.cpu.model_name = "Test CPU @ 3.0GHz";
  r.machine.cpu.cores = 8;
  r.machine.cpu.max_mhz = 3000.5;
  r.machine.memory_bytes = 64ull << 30;
  r.machine.kernel = "6.1.0";
  r.status = kRunOk;
  r.exit.exit_code = 0;
  r.exit.start_ns = kT0 + 1'000'000'000'000;
  r.exit.end_ns = r.exit.start_ns + 2'500'000'000;
  r.exit.wall_time_ns = 2'500'000'000;
  r.exit.usage.user_cpu_ns = 2'000'000'000;
  r.exit.usage.max_rss_bytes = 1 << 30;
  r.results = {
      Sample{"stream.triad", 12345.5, "MB/s", {{"threads", "8"}}, r.exit.end_ns - 10, 77},
      Sample{"wall_time", 2.5, "s", {}, r.exit.end_ns, 78},
  };
  r.overhead = {1'000'000, 250, 0, 10'000'000};
  r.labels = {{"suite", "conformance"}};
  return r;
}

// ---- the suite -----------------------------------------------------------------------------

class SinkConformanceTest : public ::testing::TestWithParam<SinkKind> {
 protected:
  void SetUp() override {
    if (GetParam().unavailable) {
      const std::string why = GetParam().unavailable();
      BITFUSION_REQUIRE_SERVICE(why.empty(), why);
    }
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = std::string(info->test_suite_name()) + "-" + info->name();
    std::replace(name.begin(), name.end(), '/', '-');
    dir_ = fs::temp_directory_path() /
           ("bitfusion-sink-test-" + std::to_string(::getpid()) + "-" + name);
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    path_ = dir_ / ("results" + GetParam().extension);
    // A store of its own per test: lower-case letters, digits and '_' suit every store's names.
    static std::atomic<int> counter{0};
    where_ = GetParam().extension.empty()
                 ? "bf_" + std::to_string(::getpid()) + "_" + std::to_string(++counter)
                 : path_.string();
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  bool Keeps() const { return static_cast<bool>(GetParam().read); }

  std::string UriFor(const fs::path& path, const std::string& query = "") const {
    if (GetParam().uri) return GetParam().uri(dir_, where_, query);
    const std::string q = query.empty() ? "" : "?" + query;
    if (GetParam().extension.empty()) return GetParam().scheme + "://" + q;
    return GetParam().scheme + "://" + path.string() + q;
  }

  std::shared_ptr<ResultSink> Make(const std::string& query = "") {
    auto sink = ResultSinkFromUri(UriFor(path_, query));
    EXPECT_TRUE(sink.ok()) << sink.status().ToString();
    return sink.ok() ? *sink : nullptr;
  }

  // What the sink stored, read while it may still be open (null:// keeps nothing).
  Stored Read() {
    if (!Keeps()) return {};
    try {
      return GetParam().read(where_);
    } catch (const std::exception& e) {
      ADD_FAILURE() << "reading back " << where_ << ": " << e.what();
      return {};
    }
  }

  // Checks the store against everything written; for null://, the sink's counters.
  void ExpectStored(const std::shared_ptr<ResultSink>& sink,
                    const std::vector<StoredSample>& samples, const std::vector<RunRecord>& runs) {
    const SinkCounters c = sink->counters();
    EXPECT_EQ(c.samples_written, static_cast<std::int64_t>(samples.size()));
    EXPECT_EQ(c.runs_written, static_cast<std::int64_t>(runs.size()));
    EXPECT_EQ(c.samples_pending, 0);
    EXPECT_EQ(c.samples_dropped, 0);
    EXPECT_EQ(c.errors, 0);
    if (!Keeps()) return;
    Stored stored = Read();
    EXPECT_TRUE(SameSamples(samples, stored.samples));
    EXPECT_TRUE(SameRuns(runs, stored.runs));
  }

  fs::path dir_;
  fs::path path_;
  std::string where_;  // the file, or the name of the test's own store
};

TEST_P(SinkConformanceTest, StoresEverySampleAndRunExactlyOnce) {
  auto sink = Make();
  ASSERT_TRUE(sink);
  std::vector<SampleBatch> batches = {CpuBatch(0, 10), CpuBatch(10, 1), CpuBatch(11, 200)};
  // A batch with no shared labels and a series with none either.
  SampleBatch bare;
  bare.Append(bare.AddSeries({"events", "1", {}}), kT0, 0, 7);
  batches.push_back(bare);
  const std::vector<RunRecord> runs = {MakeRun("run-a", 0), MakeRun("run-b", 1)};

  ASSERT_TRUE(sink->Write(batches[0]).ok());
  ASSERT_TRUE(sink->Write(batches[1]).ok());
  ASSERT_TRUE(sink->Write(runs[0]).ok());
  ASSERT_TRUE(sink->Write(batches[2]).ok());
  ASSERT_TRUE(sink->Write(batches[3]).ok());
  ASSERT_TRUE(sink->Write(runs[1]).ok());
  ASSERT_TRUE(sink->Flush().ok());
  ASSERT_TRUE(sink->Close().ok());
  ExpectStored(sink, Expected(batches), runs);
}

TEST_P(SinkConformanceTest, BatchSamplesDecidesWhenTheBackendWrites) {
  auto sink = Make("batch_samples=5&max_delay=1h");
  ASSERT_TRUE(sink);
  std::vector<SampleBatch> written;
  auto write = [&](int first) {
    SampleBatch b;
    b.Append(b.AddSeries({"x", "1", {{"i", std::to_string(first)}}}), kT0 + first, first, first);
    written.push_back(b);
    return sink->Write(b);
  };
  ASSERT_TRUE(write(0).ok());
  ASSERT_TRUE(write(1).ok());
  ASSERT_TRUE(write(2).ok());
  ASSERT_TRUE(write(3).ok());
  EXPECT_EQ(sink->counters().samples_pending, 4);
  EXPECT_EQ(sink->counters().backend_calls, 0);
  EXPECT_TRUE(Read().samples.empty()) << "nothing may reach the store below batch_samples";

  ASSERT_TRUE(write(4).ok());
  EXPECT_EQ(sink->counters().samples_pending, 0);
  EXPECT_EQ(sink->counters().samples_written, 5);
  EXPECT_EQ(sink->counters().backend_calls, 1) << "five pending samples go in one call";
  if (Keeps()) {
    EXPECT_TRUE(SameSamples(Expected(written), Read().samples))
        << "a sent batch is visible without Flush";
  }

  ASSERT_TRUE(write(5).ok());
  EXPECT_EQ(sink->counters().samples_pending, 1);
  ASSERT_TRUE(sink->Flush().ok());
  EXPECT_EQ(sink->counters().samples_pending, 0);
  EXPECT_EQ(sink->counters().backend_calls, 2);
  ASSERT_TRUE(sink->Close().ok());
  ExpectStored(sink, Expected(written), {});
}

TEST_P(SinkConformanceTest, MaxDelaySendsOldPendingSamples) {
  auto sink = Make("batch_samples=1000000&max_delay=1ms");
  ASSERT_TRUE(sink);
  const SampleBatch first = CpuBatch(0, 1);
  ASSERT_TRUE(sink->Write(first).ok());
  // A quiet stream: no further write comes, and the sink's own thread sends the samples once
  // they are older than max_delay. This waits for a lower bound, it does not race an upper one.
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (sink->counters().samples_written < 3 && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(sink->counters().samples_pending, 0);
  EXPECT_EQ(sink->counters().samples_written, 3);
  if (Keeps()) EXPECT_TRUE(SameSamples(Expected({first}), Read().samples));
  // A write that finds its pending batch old sends it at once, too.
  const SampleBatch second = CpuBatch(1, 1);
  ASSERT_TRUE(sink->Write(second).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const SampleBatch third = CpuBatch(2, 1);
  ASSERT_TRUE(sink->Write(third).ok());
  ASSERT_TRUE(sink->Close().ok());
  ExpectStored(sink, Expected({first, second, third}), {});
}

TEST_P(SinkConformanceTest, MaxDelayLeavesYoungSamplesPending) {
  auto sink = Make("batch_samples=1000000&max_delay=1h");
  ASSERT_TRUE(sink);
  ASSERT_TRUE(sink->Write(CpuBatch(0, 2)).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(sink->counters().samples_pending, 6);
  EXPECT_EQ(sink->counters().backend_calls, 0);
  ASSERT_TRUE(sink->Close().ok());
  ExpectStored(sink, Expected({CpuBatch(0, 2)}), {});
}

TEST_P(SinkConformanceTest, BatchBytesDecidesWhenTheBackendWrites) {
  // Each CpuBatch(i, 1) takes well over 100 bytes in memory: every write is sent at once.
  auto sink = Make("batch_samples=1000000&batch_bytes=100&max_delay=1h");
  ASSERT_TRUE(sink);
  ASSERT_TRUE(sink->Write(CpuBatch(0, 1)).ok());
  EXPECT_EQ(sink->counters().samples_pending, 0);
  EXPECT_EQ(sink->counters().backend_calls, 1);
  ASSERT_TRUE(sink->Close().ok());
  ExpectStored(sink, Expected({CpuBatch(0, 1)}), {});
}

TEST_P(SinkConformanceTest, RunRecordSendsPendingSamplesFirst) {
  auto sink = Make("batch_samples=1000000&max_delay=1h");
  ASSERT_TRUE(sink);
  const SampleBatch batch = CpuBatch(0, 4);
  const RunRecord run = MakeRun("run-a", 0);
  ASSERT_TRUE(sink->Write(batch).ok());
  ASSERT_TRUE(sink->Write(run).ok());
  EXPECT_EQ(sink->counters().samples_pending, 0);
  if (Keeps()) {
    Stored stored = Read();
    EXPECT_TRUE(SameSamples(Expected({batch}), stored.samples));
    EXPECT_TRUE(SameRuns({run}, stored.runs));
  }
  ASSERT_TRUE(sink->Close().ok());
  ExpectStored(sink, Expected({batch}), {run});
}

TEST_P(SinkConformanceTest, WritesAfterCloseFailWithFailedPrecondition) {
  auto sink = Make("batch_samples=1000000");
  ASSERT_TRUE(sink);
  const SampleBatch batch = CpuBatch(0, 1);
  ASSERT_TRUE(sink->Write(batch).ok());
  ASSERT_TRUE(sink->Close().ok());
  const Status after = sink->Write(batch);
  EXPECT_EQ(after.code(), StatusCode::kFailedPrecondition) << after.ToString();
  EXPECT_EQ(sink->Write(MakeRun("late", 0)).code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(sink->Close().ok()) << "Close is idempotent";
  EXPECT_TRUE(sink->Flush().ok()) << "nothing is left to flush";
  ExpectStored(sink, Expected({batch}), {});
}

TEST_P(SinkConformanceTest, MalformedBatchIsRefusedAndNotQueued) {
  auto sink = Make("batch_samples=1");
  ASSERT_TRUE(sink);
  SampleBatch bad_index;
  bad_index.Append(bad_index.AddSeries({"x", "1", {}}), kT0, 0, 1);
  bad_index.series_index[0] = 5;
  EXPECT_EQ(sink->Write(bad_index).code(), StatusCode::kInvalidArgument);
  SampleBatch ragged = CpuBatch(0, 2);
  ragged.monotonic_ns.pop_back();
  EXPECT_EQ(sink->Write(ragged).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(sink->counters().samples_pending, 0);
  const SampleBatch good = CpuBatch(0, 2);
  ASSERT_TRUE(sink->Write(good).ok()) << "a refused batch must not poison the queue";
  ASSERT_TRUE(sink->Close().ok());
  ExpectStored(sink, Expected({good}), {});
}

TEST_P(SinkConformanceTest, OddValuesAndTextKeepTheirNeighbours) {
  auto sink = Make("batch_samples=1000000");
  ASSERT_TRUE(sink);
  const std::string long_value(100'000, 'v');
  const std::string long_key = std::string(5'000, 'k');
  SampleBatch b;
  b.labels = {{"run", "r1"}, {"odd", "a,b;c=d\\e\"f"}};
  const auto plain = b.AddSeries({"plain", "1", {}});
  const auto quoted = b.AddSeries({"we\"ird,metric\nname\t\x01", "s", {{"ctl", "line1\r\nline2"}}});
  const auto broken =
      b.AddSeries({"bad\xff utf8 \xe2\x82", "\xc0\xaf", {{"k\xfe", "v\xed\xa0\x80!"}}});
  const auto long_labels = b.AddSeries({"long", "1", {{long_key, long_value}}});
  const auto unicode = b.AddSeries({"temp.°C", "°C", {{"gpu", "NVIDIA H100 — 80GB ✓"}}});
  b.Append(plain, kT0 + 1, 1, 1.0);
  b.Append(plain, kT0 + 2, 2, kNaN);
  b.Append(plain, kT0 + 3, 3, kInf);
  b.Append(plain, kT0 + 4, 4, -kInf);
  b.Append(quoted, kT0 + 5, 5, 5.0);
  b.Append(broken, kT0 + 6, 6, kNaN);
  b.Append(long_labels, kT0 + 7, 7, 1e300);
  b.Append(unicode, kT0 + 8, 8, -273.15);
  b.Append(plain, kT0 + 9, 9, 5e-324);  // the smallest subnormal
  b.Append(plain, kT0 + 10, 10, std::numeric_limits<double>::max());
  RunRecord run = MakeRun("run-odd", 0);
  run.status = kRunFailed;
  run.exit.exit_code = 3;
  run.error = "exit status 3: \xff garbage";
  run.results.push_back(Sample{"broken.metric", kNaN, "1", {}, kT0 + 11, 0});
  run.results.push_back(Sample{"overflow", kInf, "1", {}, kT0 + 12, 0});

  ASSERT_TRUE(sink->Write(b).ok()) << "odd samples never fail their batch";
  ASSERT_TRUE(sink->Write(run).ok());
  ASSERT_TRUE(sink->Close().ok());

  // The documented outcome, the same for every sink: values come back as written (NaN and
  // ±infinity included), text comes back with invalid UTF-8 replaced by U+FFFD.
  std::vector<StoredSample> want = Expected({b});
  const std::string fffd = "\xEF\xBF\xBD";
  for (StoredSample& s : want) {
    if (s.metric == "bad\xff utf8 \xe2\x82") {
      s.metric = "bad" + fffd + " utf8 " + fffd;
      s.unit = fffd + fffd;  // C0 and AF are each invalid on their own
      s.labels.erase("k\xfe");
      s.labels["k" + fffd] = "v" + fffd + fffd + fffd + "!";  // a surrogate is three bad bytes
    }
    if (GetParam().adjust_odd) GetParam().adjust_odd(s);
  }
  ExpectStored(sink, want, {run});
}

TEST_P(SinkConformanceTest, ConcurrentWritersLoseNothing) {
  auto sink = Make("batch_samples=64&max_delay=1h");
  ASSERT_TRUE(sink);
  constexpr int kThreads = 6;
  constexpr int kBatches = 60;
  constexpr int kPerBatch = 25;
  std::vector<std::vector<SampleBatch>> sent(kThreads);
  std::vector<RunRecord> runs;
  for (int i = 0; i < 8; ++i) runs.push_back(MakeRun("concurrent-" + std::to_string(i), i));
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      SampleBatch b;
      b.labels = {{"thread", std::to_string(t)}};
      const auto series = b.AddSeries({"m" + std::to_string(t % 3), "1", {}});
      for (int i = 0; i < kBatches; ++i) {
        b.ClearSamples();
        for (int k = 0; k < kPerBatch; ++k) {
          const std::int64_t id = (std::int64_t{t} * kBatches + i) * kPerBatch + k;
          b.Append(series, kT0 + id, id, static_cast<double>(id) / 4);
        }
        if (!sink->Write(b).ok()) ++failures;
        sent[t].push_back(b);
        if (i % 20 == 0 && !sink->Flush().ok()) ++failures;
      }
    });
  }
  threads.emplace_back([&] {
    for (const RunRecord& r : runs) {
      if (!sink->Write(r).ok()) ++failures;
    }
  });
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  ASSERT_TRUE(sink->Close().ok());
  std::vector<SampleBatch> all;
  for (const auto& per_thread : sent) all.insert(all.end(), per_thread.begin(), per_thread.end());
  ExpectStored(sink, Expected(all), runs);
}

TEST_P(SinkConformanceTest, UnknownQueryKeyIsRefused) {
  auto sink = ResultSinkFromUri(UriFor(path_, "batch_sampels=10"));
  ASSERT_FALSE(sink.ok());
  EXPECT_EQ(sink.error().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(sink.error().message().find("batch_sampels"), std::string::npos)
      << sink.error().ToString();
}

TEST_P(SinkConformanceTest, ReopeningAppends) {
  const SampleBatch first = CpuBatch(0, 3);
  const SampleBatch second = CpuBatch(3, 3);
  {
    auto sink = Make();
    ASSERT_TRUE(sink);
    ASSERT_TRUE(sink->Write(first).ok());
    ASSERT_TRUE(sink->Write(MakeRun("run-a", 0)).ok());
    ASSERT_TRUE(sink->Close().ok());
  }
  auto sink = Make();
  ASSERT_TRUE(sink);
  ASSERT_TRUE(sink->Write(second).ok());
  ASSERT_TRUE(sink->Close().ok());
  EXPECT_EQ(sink->counters().samples_written, 9);
  if (Keeps()) {
    Stored stored = Read();
    EXPECT_TRUE(SameSamples(Expected({first, second}), stored.samples));
    EXPECT_TRUE(SameRuns({MakeRun("run-a", 0)}, stored.runs));
  }
}

}  // namespace bitfusion::conformance
