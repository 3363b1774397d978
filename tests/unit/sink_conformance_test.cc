// The sink conformance suite (sink_conformance.h) for the sinks that need no service: null://,
// jsonl://, csv:// and sqlite://, each read back with an independent reader; and what only the
// file sinks promise.
#include <signal.h>
#include <sqlite3.h>
#include <sys/resource.h>
#include <sys/stat.h>
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
#include "scoped_signal.h"
#include "unit/sink_conformance.h"

namespace bitfusion {
namespace {

using namespace conformance;  // NOLINT(google-build-using-namespace): the suite's vocabulary

// ---- JSONL ---------------------------------------------------------------------------------

// Boost 1.81 parses doubles fast rather than exactly; the value's own digits are read with
// from_chars so that a lossy encoder cannot hide behind a lossy reader.
double ExactSampleValue(const std::string& line) {
  const std::string_view key = R"(,"value":)";
  const std::size_t at = line.find(key);
  if (at == std::string::npos) throw std::runtime_error("no value member in " + line);
  const char* begin = line.data() + at + key.size();
  double v = 0;
  auto [p, ec] = std::from_chars(begin, line.data() + line.size(), v);
  if (ec != std::errc() || (*p != ',' && *p != '}')) {
    throw std::runtime_error("value is not a plain number in " + line);
  }
  return v;
}

double JsonValue(const json::object& o) {
  const json::value& v = o.at("value");
  if (v.is_null()) return NonFinite(Str(o.at("value_text")));
  return v.to_number<double>();
}

Stored ReadJsonl(const fs::path& path) {
  Stored out;
  std::istringstream in(ReadFile(path));
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    json::error_code ec;
    // Strict: invalid UTF-8, control characters or NaN words make this fail.
    json::value v = json::parse(line, ec);
    if (ec) {
      throw std::runtime_error("line " + std::to_string(number) + " is not valid JSON (" +
                               ec.message() + "): " + line.substr(0, 300));
    }
    const json::object& o = v.as_object();
    const std::string type = Str(o.at("type"));
    if (type == "sample") {
      StoredSample s;
      s.metric = Str(o.at("metric"));
      s.unit = Str(o.at("unit"));
      s.labels = LabelsFromJson(o.at("metadata"));
      s.timestamp_ns = o.at("timestamp_ns").to_number<std::int64_t>();
      s.monotonic_ns = o.at("monotonic_ns").to_number<std::int64_t>();
      s.value = o.at("value").is_null() ? JsonValue(o) : ExactSampleValue(line);
      const double seconds = o.at("timestamp").to_number<double>();
      if (std::abs(seconds - static_cast<double>(s.timestamp_ns) / 1e9) > 1e-5) {
        throw std::runtime_error("timestamp disagrees with timestamp_ns: " + line);
      }
      out.samples.push_back(std::move(s));
    } else if (type == "run") {
      StoredRun r;
      r.run_id = Str(o.at("run_id"));
      r.benchmark = Str(o.at("benchmark"));
      r.status = Str(o.at("status"));
      r.repetition = o.at("repetition").to_number<std::int64_t>();
      const json::object& exit = o.at("exit").as_object();
      r.exit_code = exit.at("exit_code").to_number<std::int64_t>();
      r.wall_time_ns = exit.at("wall_time_ns").to_number<std::int64_t>();
      for (const json::value& rv : o.at("results").as_array()) {
        const json::object& ro = rv.as_object();
        StoredSample s;
        s.metric = Str(ro.at("metric"));
        s.unit = Str(ro.at("unit"));
        s.labels = LabelsFromJson(ro.at("metadata"));
        s.timestamp_ns = ro.at("timestamp_ns").to_number<std::int64_t>();
        s.value = JsonValue(ro);
        r.results.push_back(std::move(s));
      }
      out.runs.push_back(std::move(r));
    } else {
      throw std::runtime_error("unknown line type " + type);
    }
  }
  return out;
}

// ---- CSV -----------------------------------------------------------------------------------

// An RFC 4180 reader written from the RFC, not from the sink: every record ends with CRLF.
std::vector<std::vector<std::string>> ParseCsv(const std::string& text) {
  std::vector<std::vector<std::string>> records;
  std::vector<std::string> fields;
  std::size_t i = 0;
  const std::size_t n = text.size();
  while (i < n) {
    std::string field;
    if (text[i] == '"') {
      ++i;
      for (;;) {
        if (i >= n) throw std::runtime_error("unterminated quoted field");
        if (text[i] == '"') {
          if (i + 1 < n && text[i + 1] == '"') {
            field += '"';
            i += 2;
            continue;
          }
          ++i;
          break;
        }
        field += text[i++];
      }
    } else {
      while (i < n && text[i] != ',' && text[i] != '\r' && text[i] != '\n') {
        if (text[i] == '"') throw std::runtime_error("quote inside an unquoted field");
        field += text[i++];
      }
    }
    fields.push_back(std::move(field));
    if (i < n && text[i] == ',') {
      ++i;
      if (i == n) throw std::runtime_error("file ends after a comma");
      continue;
    }
    if (i + 1 < n && text[i] == '\r' && text[i + 1] == '\n') {
      i += 2;
      records.push_back(std::move(fields));
      fields.clear();
      continue;
    }
    throw std::runtime_error("record does not end with CRLF at byte " + std::to_string(i));
  }
  if (!fields.empty()) throw std::runtime_error("last record does not end with CRLF");
  return records;
}

Labels ParseCsvLabels(std::string_view text) {
  Labels out;
  if (text.empty()) return out;
  std::string key;
  std::string value;
  bool in_value = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '\\' && i + 1 < text.size()) {
      (in_value ? value : key) += text[++i];
    } else if (c == ';') {
      out[key] = value;
      key.clear();
      value.clear();
      in_value = false;
    } else if (c == '=' && !in_value) {
      in_value = true;
    } else {
      (in_value ? value : key) += c;
    }
  }
  out[key] = value;
  return out;
}

double CsvValue(const std::string& text) {
  if (text == "NaN" || text == "Infinity" || text == "-Infinity") return NonFinite(text);
  return ParseDouble(text);
}

Stored ReadCsv(const fs::path& path) {
  const auto records = ParseCsv(ReadFile(path));
  const std::vector<std::string> header = {"timestamp_ns", "monotonic_ns", "metric",
                                           "value",        "unit",         "labels"};
  if (records.empty() || records[0] != header) throw std::runtime_error("missing CSV header");
  Stored out;
  std::map<std::string, StoredRun> runs;
  std::vector<std::string> run_order;
  for (std::size_t i = 1; i < records.size(); ++i) {
    const auto& f = records[i];
    if (f.size() != 6) throw std::runtime_error("row " + std::to_string(i) + " has wrong width");
    StoredSample s;
    s.timestamp_ns = ParseInt(f[0]);
    s.monotonic_ns = ParseInt(f[1]);
    s.metric = f[2];
    s.value = CsvValue(f[3]);
    s.unit = f[4];
    s.labels = ParseCsvLabels(f[5]);
    // The test's samples never carry all four run labels; run rows always do.
    const bool run_row = s.labels.count("run_id") && s.labels.count("benchmark") &&
                         s.labels.count("repetition") && s.labels.count("status");
    if (!run_row) {
      out.samples.push_back(std::move(s));
      continue;
    }
    const std::string id = s.labels.at("run_id");
    if (!runs.count(id)) run_order.push_back(id);
    StoredRun& r = runs[id];
    r.run_id = id;
    r.benchmark = s.labels.at("benchmark");
    r.status = s.labels.at("status");
    r.repetition = ParseInt(s.labels.at("repetition"));
    if (s.metric == "run.exit_code") {
      r.exit_code = static_cast<std::int64_t>(s.value);
    } else if (s.metric == "run.wall_time") {
      r.wall_time_ns = std::llround(s.value * 1e9);
    } else {
      r.results.push_back(std::move(s));
    }
  }
  for (const auto& id : run_order) out.runs.push_back(runs[id]);
  return out;
}

// ---- SQLite --------------------------------------------------------------------------------

class SqliteReader {
 public:
  explicit SqliteReader(const fs::path& path) {
    if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
      throw std::runtime_error("cannot open " + path.string() + ": " + sqlite3_errmsg(db_));
    }
  }
  ~SqliteReader() { sqlite3_close_v2(db_); }

  // Calls `row` for each result row of `sql`, bound to `arg` when given.
  template <class F>
  void Query(const std::string& sql, F row, const std::string* arg = nullptr) {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK) {
      throw std::runtime_error(sql + ": " + sqlite3_errmsg(db_));
    }
    if (arg) sqlite3_bind_text(stmt, 1, arg->c_str(), -1, SQLITE_TRANSIENT);
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) row(stmt);
    sqlite3_finalize(stmt);
    if (rc != SQLITE_DONE) throw std::runtime_error(sql + ": " + sqlite3_errmsg(db_));
  }

  static std::string Text(sqlite3_stmt* s, int i) {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(s, i));
    return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(s, i))) : "";
  }
  // NULL is how the sink stores NaN.
  static double Value(sqlite3_stmt* s, int i) {
    return sqlite3_column_type(s, i) == SQLITE_NULL ? kNaN : sqlite3_column_double(s, i);
  }

 private:
  sqlite3* db_ = nullptr;
};

Stored ReadSqlite(const fs::path& path) {
  SqliteReader db(path);
  Stored out;
  std::string integrity;
  db.Query("PRAGMA integrity_check",
           [&](sqlite3_stmt* s) { integrity = SqliteReader::Text(s, 0); });
  if (integrity != "ok") throw std::runtime_error("integrity_check: " + integrity);
  db.Query(
      "SELECT se.metric, se.unit, se.labels, sa.timestamp_ns, sa.monotonic_ns, sa.value "
      "FROM samples sa JOIN series se USING (series_id) ORDER BY sa.rowid",
      [&](sqlite3_stmt* s) {
        StoredSample x;
        x.metric = SqliteReader::Text(s, 0);
        x.unit = SqliteReader::Text(s, 1);
        x.labels = LabelsFromJson(json::parse(SqliteReader::Text(s, 2)));
        x.timestamp_ns = sqlite3_column_int64(s, 3);
        x.monotonic_ns = sqlite3_column_int64(s, 4);
        x.value = SqliteReader::Value(s, 5);
        out.samples.push_back(std::move(x));
      });
  db.Query(
      "SELECT run_id, benchmark, status, repetition, exit_code, wall_time_ns, record FROM runs "
      "ORDER BY rowid",
      [&](sqlite3_stmt* s) {
        StoredRun r;
        r.run_id = SqliteReader::Text(s, 0);
        r.benchmark = SqliteReader::Text(s, 1);
        r.status = SqliteReader::Text(s, 2);
        r.repetition = sqlite3_column_int64(s, 3);
        r.exit_code = sqlite3_column_int64(s, 4);
        r.wall_time_ns = sqlite3_column_int64(s, 5);
        // The record column must be JSON too.
        json::value record = json::parse(SqliteReader::Text(s, 6));
        if (Str(record.at("run_id")) != r.run_id) throw std::runtime_error("record mismatch");
        out.runs.push_back(std::move(r));
      });
  for (StoredRun& r : out.runs) {
    db.Query(
        "SELECT metric, unit, value, labels, timestamp_ns FROM results WHERE run_id = ?1",
        [&](sqlite3_stmt* s) {
          StoredSample x;
          x.metric = SqliteReader::Text(s, 0);
          x.unit = SqliteReader::Text(s, 1);
          x.value = SqliteReader::Value(s, 2);
          x.labels = LabelsFromJson(json::parse(SqliteReader::Text(s, 3)));
          x.timestamp_ns = sqlite3_column_int64(s, 4);
          r.results.push_back(std::move(x));
        },
        &r.run_id);
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(AllSinks, SinkConformanceTest,
                         ::testing::Values(SinkKind{"null", "", nullptr},
                                           SinkKind{"jsonl", ".jsonl", &ReadJsonl},
                                           SinkKind{"csv", ".csv", &ReadCsv},
                                           SinkKind{"sqlite", ".db", &ReadSqlite}),
                         KindName);

// The same suite's file checks, for the sinks that have a file.
class FileSinkConformanceTest : public SinkConformanceTest {};

TEST_P(FileSinkConformanceTest, FileExistsRightAfterMake) {
  auto sink = Make();
  ASSERT_TRUE(sink);
  EXPECT_TRUE(fs::exists(path_)) << "the file is made before any run, so a bad path fails early";
  Stored stored = Read();
  EXPECT_TRUE(stored.samples.empty());
  ASSERT_TRUE(sink->Close().ok());
}

TEST_P(FileSinkConformanceTest, MissingDirectoryFailsAtFromUriNamingThePath) {
  const fs::path bad = dir_ / "no-such-dir" / ("r" + GetParam().extension);
  auto sink = ResultSinkFromUri(UriFor(bad));
  ASSERT_FALSE(sink.ok());
  EXPECT_EQ(sink.error().code(), StatusCode::kNotFound) << sink.error().ToString();
  EXPECT_NE(sink.error().message().find(bad.string()), std::string::npos)
      << sink.error().ToString();
  EXPECT_FALSE(fs::exists(bad.parent_path()));
}

TEST_P(FileSinkConformanceTest, UnwritablePathFailsAtFromUriNamingThePath) {
  const fs::path bad = "/proc/bitfusion-sink-test" + GetParam().extension;
  auto sink = ResultSinkFromUri(UriFor(bad));
  ASSERT_FALSE(sink.ok());
  EXPECT_NE(sink.error().message().find(bad.string()), std::string::npos)
      << sink.error().ToString();
}

TEST_P(FileSinkConformanceTest, DirectoryAsPathFailsAtFromUri) {
  auto sink = ResultSinkFromUri(UriFor(dir_));
  ASSERT_FALSE(sink.ok());
  EXPECT_NE(sink.error().message().find(dir_.string()), std::string::npos)
      << sink.error().ToString();
}

// Lowers RLIMIT_FSIZE so that the next growth of any file fails (EFBIG, SIGXFSZ ignored), as a
// full disk would; restores both on destruction.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    getrlimit(RLIMIT_FSIZE, &saved_);
    old_handler_ = signal(SIGXFSZ, SIG_IGN);
    rlimit limit = saved_;
    limit.rlim_cur = bytes;
    setrlimit(RLIMIT_FSIZE, &limit);
  }
  ~FileSizeLimit() {
    setrlimit(RLIMIT_FSIZE, &saved_);
    signal(SIGXFSZ, old_handler_);
  }

 private:
  rlimit saved_{};
  sighandler_t old_handler_;
};

TEST_P(FileSinkConformanceTest, FailedSendKeepsSamplesAndRetryStoresThemOnce) {
  auto sink = Make("batch_samples=1000000&max_delay=1h");
  ASSERT_TRUE(sink);
  const SampleBatch before = CpuBatch(0, 5);
  ASSERT_TRUE(sink->Write(before).ok());
  ASSERT_TRUE(sink->Flush().ok());
  SampleBatch big = CpuBatch(5, 3000);
  // A series first seen in the failed call must be found again by the retry.
  big.Append(big.AddSeries({"first.seen.in.failed.call", "1", {}}), kT0, 0, 1);
  ASSERT_TRUE(sink->Write(big).ok());
  {
    // Room for part of the batch only, so a write is cut off halfway.
    std::uintmax_t size = 0;
    for (const auto& entry : fs::directory_iterator(dir_)) size += entry.file_size();
    FileSizeLimit limit(size + 4096);
    const Status failed = sink->Flush();
    EXPECT_FALSE(failed.ok());
    EXPECT_EQ(sink->counters().samples_pending, 9001) << failed.ToString();
    EXPECT_EQ(sink->counters().errors, 1);
  }
  ASSERT_TRUE(sink->Flush().ok()) << "the retry, with room again";
  ASSERT_TRUE(sink->Close().ok());
  Stored stored = Read();
  EXPECT_TRUE(SameSamples(Expected({before, big}), stored.samples));
}

INSTANTIATE_TEST_SUITE_P(FileSinks, FileSinkConformanceTest,
                         ::testing::Values(SinkKind{"jsonl", ".jsonl", &ReadJsonl},
                                           SinkKind{"csv", ".csv", &ReadCsv},
                                           SinkKind{"sqlite", ".db", &ReadSqlite}),
                         KindName);

// ---- what only one sink promises -----------------------------------------------------------

class SinkFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("bitfusion-sink-file-test-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  fs::path dir_;
};

TEST_F(SinkFileTest, JsonlLinesAreCompactAndTyped) {
  const fs::path path = dir_ / "r.jsonl";
  auto sink = *ResultSinkFromUri("jsonl://" + path.string());
  SampleBatch b;
  b.Append(b.AddSeries({"cpu.user", "s", {{"cpu", "0"}}}), 1'500'000'000'500'000'000, 9, 2.5);
  b.Append(0, 1'500'000'000'500'000'000, 10, kNaN);
  ASSERT_TRUE(sink->Write(b).ok());
  RunRecord run = MakeRun("run-a", 0);
  run.machine.cpu.max_mhz = kNaN;
  ASSERT_TRUE(sink->Write(run).ok());
  ASSERT_TRUE(sink->Close().ok());
  std::istringstream in(ReadFile(path));
  std::string line;
  std::vector<std::string> lines;
  while (std::getline(in, line)) lines.push_back(line);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0],
            R"({"type":"sample","metric":"cpu.user","value":2.5,"unit":"s","metadata":{"cpu":"0"},)"
            R"("timestamp":1500000000.5,"timestamp_ns":1500000000500000000,"monotonic_ns":9})");
  EXPECT_NE(lines[1].find(R"("value":null,"value_text":"NaN","unit")"), std::string::npos)
      << lines[1];
  EXPECT_EQ(lines[2].rfind(R"({"type":"run","run_id":"run-a",)", 0), 0u) << lines[2];
  EXPECT_NE(lines[2].find(R"("max_mhz":null)"), std::string::npos) << lines[2];
  EXPECT_NE(lines[2].find(R"("value":12345.5,)"), std::string::npos) << lines[2];
}

TEST_F(SinkFileTest, JsonlWriteErrorKeepsSamplesAndCloseSaysHowMany) {
  auto sink = ResultSinkFromUri("jsonl:///dev/full?batch_samples=1");
  ASSERT_TRUE(sink.ok()) << sink.status().ToString();
  const Status write = (*sink)->Write(CpuBatch(0, 2));
  EXPECT_EQ(write.code(), StatusCode::kResourceExhausted) << write.ToString();
  EXPECT_EQ((*sink)->counters().samples_pending, 6);
  const Status closed = (*sink)->Close();
  ASSERT_FALSE(closed.ok());
  const std::string& m = closed.message();
  EXPECT_NE(m.find("6 samples unsent"), std::string::npos) << m;
  EXPECT_EQ(m.find("sink jsonl:///dev/full"), m.rfind("sink jsonl:///dev/full"))
      << "the sink is named once: " << m;
}

// `bitfusion metrics | head`: the sink writes to /dev/stdout, a pipe. Opened for reading as well,
// the sink was a reader of its own pipe, so once `head` left it got no EPIPE and blocked for good
// when the pipe filled (seen on a real run).
TEST_F(SinkFileTest, JsonlToAPipeWhoseReaderLeftFailsInsteadOfWaitingForever) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const testing::ScopedIgnoreSignal no_sigpipe(SIGPIPE);
  {
    auto sink =
        ResultSinkFromUri("jsonl:///proc/self/fd/" + std::to_string(fds[1]) + "?batch_samples=1");
    ASSERT_TRUE(sink.ok()) << sink.status().ToString();
    ::close(fds[1]);
    ASSERT_TRUE((*sink)->Write(CpuBatch(0, 1)).ok());
    char buf[4096];
    ASSERT_GT(::read(fds[0], buf, sizeof buf), 0) << "the reader gets the lines";
    ::close(fds[0]);
    const Status write = (*sink)->Write(CpuBatch(1, 1));
    EXPECT_FALSE(write.ok()) << "the reader left; the write must fail, not succeed into a pipe "
                                "only the sink itself reads";
    // The consumer stopped: kCancelled, which the metric stream does not warn about.
    EXPECT_EQ(write.code(), StatusCode::kCancelled) << write.ToString();
    EXPECT_NE(write.message().find("has gone"), std::string::npos) << write.ToString();
    (void)(*sink)->Close();
  }
}

TEST_F(SinkFileTest, AFifoNobodyReadsIsAClearErrorNotAWait) {
  const fs::path fifo = dir_ / "fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  auto sink = ResultSinkFromUri("jsonl://" + fifo.string());
  ASSERT_FALSE(sink.ok());
  EXPECT_NE(sink.status().message().find("nothing reads"), std::string::npos)
      << sink.status().ToString();
}

// A file sink whose writes keep failing held every sample it could not write, without bound
// (715 MB after 22 minutes of `bitfusion metrics` at 100 Hz into a pipe nobody read). Beyond
// memory_max_bytes it refuses, and says so, instead.
TEST_F(SinkFileTest, AFailingFileSinkHoldsAtMostMemoryMaxBytes) {
  auto sink = ResultSinkFromUri("jsonl:///dev/full?batch_samples=1&memory_max_bytes=1");
  ASSERT_TRUE(sink.ok()) << sink.status().ToString();
  EXPECT_FALSE((*sink)->Write(CpuBatch(0, 2)).ok());  // the disk is full: held
  EXPECT_EQ((*sink)->counters().samples_pending, 6);
  for (int i = 1; i < 5; ++i) {
    const Status refused = (*sink)->Write(CpuBatch(2 * i, 2));
    EXPECT_EQ(refused.code(), StatusCode::kResourceExhausted) << refused.ToString();
    EXPECT_NE(refused.message().find("memory_max_bytes=1"), std::string::npos) << refused.message();
  }
  EXPECT_EQ((*sink)->counters().samples_pending, 6) << "nothing more was held";
  EXPECT_FALSE((*sink)->Close().ok());
  EXPECT_FALSE(ResultSinkFromUri("jsonl:///dev/null?memory_max_bytes=0").ok());
}

TEST_F(SinkFileTest, CsvHeaderIsWrittenOnceAndAForeignFileIsRefused) {
  const fs::path path = dir_ / "r.csv";
  for (int i = 0; i < 2; ++i) {
    auto sink = *ResultSinkFromUri("csv://" + path.string());
    ASSERT_TRUE(sink->Close().ok());
  }
  EXPECT_EQ(ReadFile(path), "timestamp_ns,monotonic_ns,metric,value,unit,labels\r\n");

  const fs::path foreign = dir_ / "foreign.csv";
  std::ofstream(foreign) << "a,b,c\n1,2,3\n";
  auto refused = ResultSinkFromUri("csv://" + foreign.string());
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.error().message().find(foreign.string()), std::string::npos);
  EXPECT_EQ(ReadFile(foreign), "a,b,c\n1,2,3\n") << "a refused file is left alone";
}

TEST_F(SinkFileTest, CsvTextCellsCannotBeFormulasButNumbersStayNumbers) {
  // A spreadsheet runs a cell starting with = + - @ (or tab/CR) as a formula (OWASP: CSV
  // injection); such text cells get a leading single quote. Values, and text that is just a
  // number, are left alone.
  const fs::path path = dir_ / "formulas.csv";
  auto sink = *ResultSinkFromUri("csv://" + path.string());
  SampleBatch batch;
  batch.Append(batch.AddSeries({"=HYPERLINK(\"http://x\")", "@SUM(A1)", {{"+k", "v"}}}), 1, 2,
               -2.5);
  batch.Append(batch.AddSeries({"-1.5", "\tunit", {}}), 3, 4, -1e-3);
  ASSERT_TRUE(sink->Write(batch).ok());
  ASSERT_TRUE(sink->Close().ok());
  EXPECT_EQ(ReadFile(path),
            "timestamp_ns,monotonic_ns,metric,value,unit,labels\r\n"
            "1,2,\"'=HYPERLINK(\"\"http://x\"\")\",-2.5,'@SUM(A1),'+k=v\r\n"
            "3,4,-1.5,-0.001,\"'\tunit\",\r\n");
}

TEST_F(SinkFileTest, SqliteWithTheSamplesIndexStoresASampleWrittenTwiceOnce) {
  const fs::path path = dir_ / "twice.db";
  SampleBatch batch;
  const auto s = batch.AddSeries({"m", "s", {{"k", "v"}}});
  for (int i = 0; i < 10; ++i) batch.Append(s, 1000 + i, i, i * 1.5);
  auto count = [&] {
    std::int64_t n = 0;
    SqliteReader(path).Query("SELECT count(*) FROM samples",
                             [&](sqlite3_stmt* st) { n = sqlite3_column_int64(st, 0); });
    return n;
  };
  {
    // Without the index the table is append-only (the fast default): twice is twice.
    auto sink = *ResultSinkFromUri("sqlite://" + path.string());
    ASSERT_TRUE(sink->Write(batch).ok());
    ASSERT_TRUE(sink->Write(batch).ok());
    ASSERT_TRUE(sink->Close().ok());
  }
  EXPECT_EQ(count(), 20);
  {
    // A version 2 file may carry the plain index of that name; opening with samples_index
    // removes the duplicates once and makes it unique.
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(
        sqlite3_exec(db, "CREATE INDEX samples_series_time ON samples(series_id, timestamp_ns)",
                     nullptr, nullptr, nullptr),
        SQLITE_OK);
    sqlite3_close(db);
    auto sink = *ResultSinkFromUri("sqlite://" + path.string() + "?samples_index=true");
    ASSERT_TRUE(sink->Write(batch).ok());  // a third time
    ASSERT_TRUE(sink->Close().ok());
  }
  EXPECT_EQ(count(), 10);
  {
    // Any later writer keeps to the unique index, with or without the option.
    auto sink = *ResultSinkFromUri("sqlite://" + path.string());
    ASSERT_TRUE(sink->Write(batch).ok());
    ASSERT_TRUE(sink->Close().ok());
  }
  EXPECT_EQ(count(), 10);
  double sum = 0;
  SqliteReader(path).Query("SELECT sum(value) FROM samples",
                           [&](sqlite3_stmt* st) { sum = sqlite3_column_double(st, 0); });
  EXPECT_DOUBLE_EQ(sum, 1.5 * 45);
}

TEST_F(SinkFileTest, SqliteSchemaMachinesAndReplacedRuns) {
  const fs::path path = dir_ / "r.db";
  auto sink = *ResultSinkFromUri("sqlite://" + path.string() + "?samples_index=true");
  RunRecord a = MakeRun("run-a", 0);
  RunRecord b = MakeRun("run-b", 1);
  b.exit.start_ns = a.exit.start_ns + 1000;
  b.machine.state = "running";  // volatile: the same machine
  RunRecord c = MakeRun("run-c", 2);
  c.machine.kernel = "6.2.0";  // upgraded: another fingerprint
  c.exit.start_ns = a.exit.start_ns + 5000;
  RunRecord nowhere = MakeRun("run-d", 3);
  nowhere.machine = MachineInfo{};
  for (const RunRecord* r : {&a, &b, &c, &nowhere}) ASSERT_TRUE(sink->Write(*r).ok());
  a.results.resize(1);
  a.status = kRunFailed;
  ASSERT_TRUE(sink->Write(a).ok()) << "writing a run again replaces it";
  ASSERT_TRUE(sink->Close().ok());

  SqliteReader db(path);
  std::int64_t version = 0;
  db.Query("PRAGMA user_version", [&](sqlite3_stmt* s) { version = sqlite3_column_int64(s, 0); });
  EXPECT_EQ(version, 2) << "version 2 added series.counter";
  std::vector<std::string> indexes;
  db.Query("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY name",
           [&](sqlite3_stmt* s) { indexes.push_back(SqliteReader::Text(s, 0)); });
  EXPECT_EQ(indexes, (std::vector<std::string>{"results_run_id", "runs_plan_run_id",
                                               "samples_series_time"}));
  std::vector<std::string> machines;
  db.Query(
      "SELECT machine_id, first_seen_ns, last_seen_ns FROM machines ORDER BY first_seen_ns",
      [&](sqlite3_stmt* s) {
        machines.push_back(SqliteReader::Text(s, 0) + " " +
                           std::to_string(sqlite3_column_int64(s, 2) - sqlite3_column_int64(s, 1)));
      });
  ASSERT_EQ(machines.size(), 2u);
  EXPECT_EQ(machines[0].rfind("local-", 0), 0u) << machines[0];
  EXPECT_EQ(machines[0].substr(machines[0].find(' ')), " 1000") << "first and last seen";
  std::map<std::string, std::string> run_machine;
  db.Query("SELECT run_id, ifnull(machine_id, 'NULL') FROM runs", [&](sqlite3_stmt* s) {
    run_machine[SqliteReader::Text(s, 0)] = SqliteReader::Text(s, 1);
  });
  EXPECT_EQ(run_machine["run-a"], run_machine["run-b"]);
  EXPECT_NE(run_machine["run-a"], run_machine["run-c"]);
  EXPECT_EQ(run_machine["run-d"], "NULL");
  Stored stored = ReadSqlite(path);
  EXPECT_TRUE(SameRuns({a, b, c, nowhere}, stored.runs));
}

TEST_F(SinkFileTest, SqliteRefusesFilesItDidNotMake) {
  const fs::path text = dir_ / "notes.db";
  std::ofstream(text) << "these are not the tables you are looking for\n";
  auto not_db = ResultSinkFromUri("sqlite://" + text.string());
  ASSERT_FALSE(not_db.ok());
  EXPECT_NE(not_db.error().message().find(text.string()), std::string::npos)
      << not_db.error().ToString();

  const fs::path other = dir_ / "other.db";
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(other.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "CREATE TABLE samples (x)", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  auto foreign = ResultSinkFromUri("sqlite://" + other.string());
  ASSERT_FALSE(foreign.ok());
  EXPECT_EQ(foreign.error().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(foreign.error().message().find(other.string()), std::string::npos);
}

}  // namespace
}  // namespace bitfusion
