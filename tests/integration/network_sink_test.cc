// The sink conformance suite (tests/unit/sink_conformance.h) for the network sinks, against the
// stores themselves: a real InfluxDB 1.x, a real PostgreSQL and the strict Elasticsearch fake,
// started by these tests. What each store holds is read back through its own query interface
// (InfluxQL over HTTP, libpq, _search/_count) and compared sample by sample, exactly once. Then
// what the network sinks promise beyond the suite: outages ridden out through the spool,
// deterministic identity, bad input.

#include <libpq-fe.h>

#include <gtest/gtest.h>

#include <boost/url/encode.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>

#include <set>
#include <string>
#include <vector>

#include "integration/sink_services.h"
#include "sinks/text_encoding_internal.h"
#include "unit/sink_conformance.h"

namespace bitfusion {
namespace {

using namespace conformance;  // NOLINT(google-build-using-namespace): the suite's vocabulary
using testing::InfluxService;
using testing::PostgresService;

std::string Encode(std::string_view text) {
  return boost::urls::encode(text, boost::urls::unreserved_chars);
}

// ---- InfluxDB ------------------------------------------------------------------------------

double InfluxValue(const json::value& value, const json::value& value_text) {
  if (!value.is_null()) return ExactDouble(value);
  return NonFinite(Str(value_text));
}

Stored ReadInflux(const std::string& db) {
  const int port = InfluxService::Get()->port();
  const net::HttpResponse response = testing::HttpCall(
      port, "GET",
      "/query?db=" + Encode(db) + "&epoch=ns&q=" + Encode("SELECT * FROM /.*/ GROUP BY *"));
  if (response.status != 200) {
    throw std::runtime_error("InfluxDB query: HTTP " + std::to_string(response.status) + " " +
                             response.body.substr(0, 300));
  }
  const json::value answer = ParseJsonExact(response.body);
  const json::object& result = answer.at("results").at(0).as_object();
  Stored out;
  if (result.contains("error")) {
    // Nothing written yet: the sink makes the database on its first write.
    if (Str(result.at("error")).find("database not found") == 0) return out;
    throw std::runtime_error(Str(result.at("error")));
  }
  std::map<std::string, StoredRun> runs;
  std::vector<std::pair<std::string, StoredSample>> results;
  if (!result.contains("series")) return out;
  for (const json::value& series : result.at("series").as_array()) {
    const std::string name = Str(series.at("name"));
    Labels tags;
    if (series.as_object().contains("tags")) {
      for (const auto& [k, v] : series.at("tags").as_object()) {
        // GROUP BY * names every tag key of the measurement; "" is a tag the point lacks.
        if (!Str(v).empty()) tags[std::string(k)] = Str(v);
      }
    }
    std::map<std::string, std::size_t> column;
    const json::array& columns = series.at("columns").as_array();
    for (std::size_t i = 0; i < columns.size(); ++i) column[Str(columns[i])] = i;
    auto field = [&](const json::array& row, const std::string& key) -> const json::value& {
      static const json::value null;
      auto it = column.find(key);
      return it == column.end() ? null : row.at(it->second);
    };
    for (const json::value& row_value : series.at("values").as_array()) {
      const json::array& row = row_value.as_array();
      if (name == "bitfusion_run") {
        StoredRun& r = runs[tags.at("run_id")];
        r.run_id = tags.at("run_id");
        r.benchmark = tags.count("benchmark") ? tags.at("benchmark") : "";
        r.status = Str(field(row, "status"));
        r.repetition = ExactInt(field(row, "repetition"));
        r.exit_code = ExactInt(field(row, "exit_code"));
        r.wall_time_ns = ExactInt(field(row, "wall_time_ns"));
        continue;
      }
      StoredSample s;
      s.timestamp_ns = ExactInt(field(row, "time"));
      s.monotonic_ns = ExactInt(field(row, "monotonic_ns"));
      s.value = InfluxValue(field(row, "value"), field(row, "value_text"));
      s.labels = tags;
      s.unit = tags.count("unit") ? tags.at("unit") : "";
      s.labels.erase("unit");
      if (name == "bitfusion_result") {
        s.metric = tags.at("metric");
        const std::string run_id = tags.at("run_id");
        for (const char* k : {"metric", "run_id", "benchmark"}) s.labels.erase(k);
        results.emplace_back(run_id, std::move(s));
        continue;
      }
      s.metric = name;
      out.samples.push_back(std::move(s));
    }
  }
  for (auto& [run_id, s] : results) runs[run_id].results.push_back(std::move(s));
  for (auto& [id, r] : runs) out.runs.push_back(std::move(r));
  return out;
}

// What InfluxDB's line protocol cannot carry, as influx_sink.h documents it.
void AdjustInflux(StoredSample& s) {
  const std::string fffd = "\xEF\xBF\xBD";
  auto fix = [&](std::string text) {
    for (std::size_t at; (at = text.find_first_of("\r\n")) != std::string::npos;) {
      text.replace(at, 1, fffd);
    }
    if (text.size() > 1024) {
      const std::string digest = internal::Sha256Hex(text).substr(0, 16);
      text = text.substr(0, 1000) + "~" + digest;
    }
    return text;
  };
  s.metric = fix(s.metric);
  Labels labels;
  for (const auto& [k, v] : s.labels) labels[fix(k)] = fix(v);
  s.labels = labels;
}

std::string InfluxUri(const fs::path& dir, const std::string& db, const std::string& query) {
  const int port = InfluxService::Get()->port();
  return "influx://127.0.0.1:" + std::to_string(port) + "/" + db +
         "?spool=" + (dir / "spool").string() + (query.empty() ? "" : "&" + query);
}

SinkKind InfluxKind() {
  SinkKind kind;
  kind.scheme = "influx";
  kind.read = &ReadInflux;
  kind.uri = &InfluxUri;
  kind.adjust_odd = &AdjustInflux;
  kind.unavailable = [] { return InfluxService::Get() ? "" : InfluxService::Why(); };
  return kind;
}

// ---- what the InfluxDB sink promises beyond the suite ----------------------------------------

class InfluxSinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    BITFUSION_REQUIRE_SERVICE(InfluxService::Get() != nullptr, InfluxService::Why());
    dir_ = testing::FreshDir(::testing::UnitTest::GetInstance()->current_test_info()->name());
    static int counter = 0;
    db_ = "influx_test_" + std::to_string(::getpid()) + "_" + std::to_string(++counter);
  }
  fs::path dir_;
  std::string db_;
};

TEST_F(InfluxSinkTest, NamesLineProtocolCannotCarryGetTheirDocumentedForm) {
  auto sink = ResultSinkFromUri(InfluxUri(dir_, db_, ""));
  ASSERT_TRUE(sink.ok()) << sink.status().ToString();
  SampleBatch b;
  const auto s = b.AddSeries({"odd measure,ment=1\\",
                              "u",
                              {{"time", "t"},
                               {"unit", "label unit"},
                               {"empty", ""},
                               {"trail\\", "end\\"},
                               {"mid\\dle", "a\\,b c=d"},
                               {"eq=key", "x=y"}}});
  b.Append(s, kT0, 1, 2.5);
  ASSERT_TRUE((*sink)->Write(b).ok());
  ASSERT_TRUE((*sink)->Close().ok());
  const Stored stored = ReadInflux(db_);
  ASSERT_EQ(stored.samples.size(), 1u);
  const std::string fffd = "\xEF\xBF\xBD";
  EXPECT_EQ(stored.samples[0].metric, "odd measure,ment=1" + fffd) << "no trailing backslash";
  EXPECT_EQ(stored.samples[0].unit, "u");
  const Labels want = {{"_time", "t"},
                       {"_unit", "label unit"},
                       {"trail" + fffd, "end" + fffd},
                       {"mid\\dle", "a\\,b c=d"},
                       {"eq=key", "x=y"}};
  EXPECT_EQ(stored.samples[0].labels, want);
}

TEST_F(InfluxSinkTest, PointsInfluxRefusesAreDroppedAndTheirNeighboursStored) {
  // "value" is a string field in this measurement (and shard) already: a float point is a type
  // conflict.
  const int port = InfluxService::Get()->port();
  ASSERT_EQ(testing::HttpCall(port, "POST", "/query?q=" + Encode("CREATE DATABASE " + db_), "",
                              "application/x-www-form-urlencoded")
                .status,
            200);
  ASSERT_EQ(testing::HttpCall(port, "POST", "/write?db=" + db_,
                              "taken value=\"text\" " + std::to_string(kT0 + 5), "text/plain")
                .status,
            204);
  auto sink = ResultSinkFromUri(InfluxUri(dir_, db_, ""));
  ASSERT_TRUE(sink.ok()) << sink.status().ToString();
  SampleBatch b;
  const auto taken = b.AddSeries({"taken", "1", {}});
  const auto free = b.AddSeries({"free", "1", {}});
  b.Append(taken, kT0, 1, 1);
  b.Append(free, kT0, 1, 2);
  b.Append(free, kT0 + 1, 2, 3);
  ASSERT_TRUE((*sink)->Write(b).ok());
  ASSERT_TRUE((*sink)->Close().ok());
  const SinkCounters c = (*sink)->counters();
  EXPECT_EQ(c.samples_dropped, 1);
  EXPECT_EQ(c.samples_written, 2);
  EXPECT_EQ(c.samples_pending, 0);
  int free_points = 0;
  for (const StoredSample& s : ReadInflux(db_).samples) free_points += s.metric == "free";
  EXPECT_EQ(free_points, 2);
}

TEST_F(InfluxSinkTest, AStoreThatIsDownIsWaitedForAndGetsEverythingOnce) {
  const int port = testing::FreePort();  // nothing listens here yet
  const std::string uri =
      "influx://127.0.0.1:" + std::to_string(port) + "/" + db_ +
      "?batch_samples=30&retry_initial=20ms&retry_max=200ms&spool=" + (dir_ / "spool").string();
  auto sink = ResultSinkFromUri(uri);
  ASSERT_TRUE(sink.ok()) << "a store that is down does not stop the sink from starting: "
                         << sink.status().ToString();
  std::vector<SampleBatch> written;
  for (int i = 0; i < 10; ++i) {
    written.push_back(CpuBatch(i * 10, 10));
    ASSERT_TRUE((*sink)->Write(written.back()).ok()) << "spooled, not refused";
  }
  ASSERT_TRUE((*sink)->Write(MakeRun("run-outage", 0)).ok());
  EXPECT_TRUE((*sink)->counters().degraded);
  EXPECT_EQ((*sink)->counters().samples_pending, 300);
  EXPECT_GT((*sink)->counters().spool_bytes, 0);

  auto influx = InfluxService::Start(port);
  ASSERT_TRUE(influx->ready());
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while ((*sink)->counters().samples_pending > 0 && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE((*sink)->Close().ok());
  EXPECT_FALSE((*sink)->counters().degraded);
  EXPECT_GT((*sink)->counters().retries, 0);
  // ReadInflux reads the shared server; this one is the test's own.
  const net::HttpResponse response = testing::HttpCall(
      port, "GET", "/query?db=" + db_ + "&epoch=ns&q=" + Encode("SELECT count(value) FROM /.*/"));
  for (const char* metric : {"cpu.user", "cpu.system", "mem.used"}) {
    EXPECT_NE(response.body.find("\"" + std::string(metric) +
                                 "\",\"columns\":[\"time\",\"count\"],"
                                 "\"values\":[[0,100]]"),
              std::string::npos)
        << response.body.substr(0, 500);
  }
  const net::HttpResponse runs = testing::HttpCall(
      port, "GET",
      "/query?db=" + db_ + "&epoch=ns&q=" + Encode("SELECT count(status) FROM bitfusion_run"));
  EXPECT_NE(runs.body.find("[[0,1]]"), std::string::npos) << runs.body.substr(0, 500);
}

// ---- PostgreSQL ----------------------------------------------------------------------------

// A libpq connection to the test server, for reading back and for poking at it.
class PgReader {
 public:
  PgReader() : conn_(PQconnectdb(PostgresService::Get()->conninfo().c_str())) {
    if (PQstatus(conn_) != CONNECTION_OK) {
      throw std::runtime_error(std::string("cannot connect: ") + PQerrorMessage(conn_));
    }
  }
  ~PgReader() { PQfinish(conn_); }
  PgReader(const PgReader&) = delete;
  PgReader& operator=(const PgReader&) = delete;

  // The rows of `sql` as text (NULL as "NULL"), with `arg` as $1 when given.
  std::vector<std::vector<std::string>> Query(const std::string& sql,
                                              const std::string* arg = nullptr) {
    const char* values[1] = {arg != nullptr ? arg->c_str() : nullptr};
    PGresult* r = PQexecParams(conn_, sql.c_str(), arg != nullptr ? 1 : 0, nullptr, values, nullptr,
                               nullptr, 0);
    const ExecStatusType status = PQresultStatus(r);
    if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
      const std::string error = PQresultErrorMessage(r);
      PQclear(r);
      throw std::runtime_error(sql + ": " + error);
    }
    std::vector<std::vector<std::string>> rows;
    for (int i = 0; i < PQntuples(r); ++i) {
      std::vector<std::string> row;
      for (int j = 0; j < PQnfields(r); ++j) {
        row.push_back(PQgetisnull(r, i, j) ? "NULL" : PQgetvalue(r, i, j));
      }
      rows.push_back(std::move(row));
    }
    PQclear(r);
    return rows;
  }

 private:
  PGconn* conn_;
};

double PgValue(const std::string& text) {
  if (text == "NaN" || text == "Infinity" || text == "-Infinity") return NonFinite(text);
  return ParseDouble(text);
}

Stored ReadPostgres(const std::string& schema) {
  PgReader db;
  Stored out;
  const std::string s = "\"" + schema + "\"";
  if (db.Query("SELECT to_regclass('" + s + ".samples')")[0][0] == "NULL") return out;
  for (const auto& row :
       db.Query("SELECT se.metric, se.unit, se.labels::text, sa.timestamp_ns, sa.monotonic_ns, "
                "sa.value::text FROM " +
                s + ".samples sa JOIN " + s + ".series se USING (series_id)")) {
    out.samples.push_back({row[0], row[1], LabelsFromJson(json::parse(row[2])), ParseInt(row[3]),
                           ParseInt(row[4]), PgValue(row[5])});
  }
  for (const auto& row : db.Query("SELECT run_id, benchmark, status, repetition, exit_code, "
                                  "wall_time_ns, record::text FROM " +
                                  s + ".runs")) {
    StoredRun r{row[0], row[1], row[2], ParseInt(row[3]), ParseInt(row[4]), ParseInt(row[5]), {}};
    if (Str(json::parse(row[6]).at("run_id")) != r.run_id) {
      throw std::runtime_error("record column does not match run " + r.run_id);
    }
    for (const auto& res : db.Query("SELECT metric, unit, value::text, labels::text, "
                                    "timestamp_ns FROM " +
                                        s + ".results WHERE run_id = $1",
                                    &r.run_id)) {
      r.results.push_back({res[0], res[1], LabelsFromJson(json::parse(res[3])), ParseInt(res[4]), 0,
                           PgValue(res[2])});
    }
    out.runs.push_back(std::move(r));
  }
  return out;
}

std::string PostgresUri(const fs::path& dir, const std::string& schema, const std::string& query) {
  return "postgres://postgres@127.0.0.1:" + std::to_string(PostgresService::Get()->port()) +
         "/postgres?schema=" + schema + "&spool=" + (dir / "spool").string() +
         (query.empty() ? "" : "&" + query);
}

SinkKind PostgresKind() {
  SinkKind kind;
  kind.scheme = "postgres";
  kind.read = &ReadPostgres;
  kind.uri = &PostgresUri;
  kind.unavailable = [] { return PostgresService::Get() ? "" : PostgresService::Why(); };
  return kind;
}

// ---- what the PostgreSQL sink promises beyond the suite --------------------------------------

class PostgresSinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    BITFUSION_REQUIRE_SERVICE(PostgresService::Get() != nullptr, PostgresService::Why());
    dir_ = testing::FreshDir(::testing::UnitTest::GetInstance()->current_test_info()->name());
    static int counter = 0;
    schema_ = "pgsink_test_" + std::to_string(::getpid()) + "_" + std::to_string(++counter);
  }
  std::shared_ptr<ResultSink> Make(const std::string& query = "") {
    auto sink = ResultSinkFromUri(PostgresUri(dir_, schema_, query));
    EXPECT_TRUE(sink.ok()) << sink.status().ToString();
    return sink.ok() ? *sink : nullptr;
  }
  fs::path dir_;
  std::string schema_;
};

TEST_F(PostgresSinkTest, SamplesSentTwiceAreStoredOnce) {
  const SampleBatch batch = CpuBatch(0, 50);
  for (int i = 0; i < 2; ++i) {
    auto sink = Make();
    ASSERT_TRUE(sink);
    ASSERT_TRUE(sink->Write(batch).ok());
    ASSERT_TRUE(sink->Write(MakeRun("run-twice", 0)).ok());
    ASSERT_TRUE(sink->Close().ok());
  }
  const Stored stored = ReadPostgres(schema_);
  EXPECT_TRUE(SameSamples(Expected({batch}), stored.samples));
  EXPECT_TRUE(SameRuns({MakeRun("run-twice", 0)}, stored.runs));
}

TEST_F(PostgresSinkTest, NulCharactersBecomeReplacementCharacters) {
  auto sink = Make();
  ASSERT_TRUE(sink);
  SampleBatch b;
  using namespace std::string_literals;
  b.Append(b.AddSeries({"nul\0metric"s, "u\0"s, {{"k\0"s, "v\0v"s}}}), kT0, 1, 1.5);
  RunRecord run = MakeRun("run-nul", 0);
  run.error = "bad\0byte"s;
  run.machine.kernel = "6.1\0"s;
  ASSERT_TRUE(sink->Write(b).ok());
  ASSERT_TRUE(sink->Write(run).ok());
  ASSERT_TRUE(sink->Close().ok());
  const std::string fffd = "\xEF\xBF\xBD";
  const Stored stored = ReadPostgres(schema_);
  ASSERT_EQ(stored.samples.size(), 1u);
  EXPECT_EQ(stored.samples[0].metric, "nul" + fffd + "metric");
  EXPECT_EQ(stored.samples[0].unit, "u" + fffd);
  EXPECT_EQ(stored.samples[0].labels, (Labels{{"k" + fffd, "v" + fffd + "v"}}));
  PgReader db;
  const auto rows = db.Query("SELECT error, record->>'error' FROM \"" + schema_ + "\".runs");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0][0], "bad" + fffd + "byte");
  EXPECT_EQ(rows[0][1], "bad" + fffd + "byte");
  EXPECT_EQ(sink->counters().samples_dropped, 0);
}

TEST_F(PostgresSinkTest, RowsPostgresRefusesAreDroppedAndTheirNeighboursStored) {
  auto sink = Make();
  ASSERT_TRUE(sink);
  ASSERT_TRUE(sink->Write(CpuBatch(0, 1)).ok());
  ASSERT_TRUE(sink->Flush().ok());
  // A rule of the DBA's that some samples break.
  PgReader db;
  db.Query("ALTER TABLE \"" + schema_ + "\".samples ADD CHECK (value <> 13)");
  SampleBatch b;
  const auto s = b.AddSeries({"checked", "1", {}});
  for (int i = 0; i < 20; ++i) b.Append(s, kT0 + i, i, i);
  ASSERT_TRUE(sink->Write(b).ok());
  ASSERT_TRUE(sink->Write(MakeRun("run-checked", 0)).ok());
  ASSERT_TRUE(sink->Close().ok());
  const SinkCounters c = sink->counters();
  EXPECT_EQ(c.samples_dropped, 1);
  EXPECT_EQ(c.samples_written, 3 + 19);
  EXPECT_EQ(c.samples_pending, 0);
  const Stored stored = ReadPostgres(schema_);
  EXPECT_EQ(stored.samples.size(), 3u + 19u);
  for (const StoredSample& x : stored.samples) EXPECT_NE(x.value, 13);
  EXPECT_EQ(stored.runs.size(), 1u) << "the run behind the refused sample is stored";
}

TEST_F(PostgresSinkTest, ALostConnectionIsMadeAgainAndNothingIsLost) {
  auto sink = Make("batch_samples=30&retry_initial=10ms&retry_max=100ms");
  ASSERT_TRUE(sink);
  std::vector<SampleBatch> written;
  for (int i = 0; i < 3; ++i) {
    written.push_back(CpuBatch(i * 10, 10));
    ASSERT_TRUE(sink->Write(written.back()).ok());
  }
  ASSERT_EQ(sink->counters().samples_written, 90);
  // The server ends the sink's session, as a restart or a failover would.
  PgReader db;
  const auto killed = db.Query(
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = "
      "'bitfusion' AND pid <> pg_backend_pid()");
  ASSERT_FALSE(killed.empty());
  for (int i = 3; i < 9; ++i) {
    written.push_back(CpuBatch(i * 10, 10));
    ASSERT_TRUE(sink->Write(written.back()).ok()) << "held in the spool while it reconnects";
  }
  ASSERT_TRUE(sink->Close().ok());
  EXPECT_GT(sink->counters().errors, 0) << "the dead session was noticed";
  EXPECT_TRUE(SameSamples(Expected(written), ReadPostgres(schema_).samples));
}

INSTANTIATE_TEST_SUITE_P(NetworkSinks, SinkConformanceTest,
                         ::testing::Values(InfluxKind(), PostgresKind()), KindName);

}  // namespace
}  // namespace bitfusion
