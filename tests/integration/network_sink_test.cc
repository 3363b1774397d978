// The sink conformance suite (tests/unit/sink_conformance.h) for the network sinks, against the
// stores themselves: a real InfluxDB 1.x, a real PostgreSQL and the strict Elasticsearch fake,
// started by these tests. What each store holds is read back through its own query interface
// (InfluxQL over HTTP, libpq, _search/_count) and compared sample by sample, exactly once. Then
// what the network sinks promise beyond the suite: outages ridden out through the spool,
// deterministic identity, bad input.

#include <libpq-fe.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <boost/url/encode.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "core/sha256.h"
#include "integration/sink_services.h"
#include "unit/sink_conformance.h"

namespace bitfusion {
namespace {

using namespace conformance;  // NOLINT(google-build-using-namespace): the suite's vocabulary
using testing::EsFakeService;
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

// ---- Elasticsearch (the fake) ----------------------------------------------------------------

// The ES document's RFC 3339 timestamp, read independently of the sink's encoder.
std::int64_t ParseRfc3339Nanos(const std::string& text) {
  int y = 0;
  unsigned mo = 0, d = 0, h = 0, mi = 0, s = 0;
  char nanos[10] = {};
  if (std::sscanf(text.c_str(), "%4d-%2u-%2uT%2u:%2u:%2u.%9[0-9]Z", &y, &mo, &d, &h, &mi, &s,
                  nanos) != 7 ||
      std::strlen(nanos) != 9 || text.back() != 'Z') {
    throw std::runtime_error("timestamp is not RFC 3339 with nine fractional digits: " + text);
  }
  const auto days =
      std::chrono::sys_days(std::chrono::year(y) / std::chrono::month(mo) / std::chrono::day(d))
          .time_since_epoch()
          .count();
  return ((days * 24 + h) * 60 + mi) * 60'000'000'000LL + s * 1'000'000'000LL + ParseInt(nanos);
}

double EsValue(const json::object& o) {
  const json::value& v = o.at("value");
  if (v.is_null()) return NonFinite(Str(o.at("value_text")));
  return ExactDouble(v);
}

Labels EsLabels(const json::value& v) {
  Labels out;
  for (const auto& [k, x] : v.as_object()) out[std::string(k)] = Str(x);
  return out;
}

json::value EsSearch(int port, const std::string& target, const std::string& body) {
  const net::HttpResponse r =
      testing::HttpCall(port, "POST", "/" + target + "/_search?ignore_unavailable=true", body);
  if (r.status == 404) return json::value();
  if (r.status != 200) {
    throw std::runtime_error("_search " + target + ": HTTP " + std::to_string(r.status) + " " +
                             r.body.substr(0, 300));
  }
  return ParseJsonExact(r.body);
}

// The indices a search target names: none when it names nothing (a 404).
std::vector<std::string> EsIndices(int port, const std::string& target) {
  const net::HttpResponse r = testing::HttpCall(port, "GET", "/" + target + "/_mapping", "");
  if (r.status == 404) return {};
  if (r.status != 200) {
    throw std::runtime_error("_mapping " + target + ": HTTP " + std::to_string(r.status) + " " +
                             r.body.substr(0, 300));
  }
  const json::value mappings = ParseJsonExact(r.body);
  std::vector<std::string> out;
  for (const auto& [name, mapping] : mappings.as_object()) out.emplace_back(name);
  return out;
}

Stored ReadEsOn(int port, const std::string& index) {
  Stored out;
  // A search answers at most 10000 hits, and unless asked counts no further either (total
  // 10000, relation "gte"): each index is read in pages, in its own order (_doc), with an exact
  // count to check that every document was seen.
  std::vector<std::string> indices = EsIndices(port, index);
  for (std::string& name : EsIndices(port, index + "-*")) indices.push_back(std::move(name));
  for (const std::string& name : indices) {
    std::int64_t expected = -1;
    std::int64_t seen = 0;
    std::string after;
    for (;;) {
      const json::value samples =
          EsSearch(port, name,
                   R"({"query":{"exists":{"field":"metric"}},"size":10000,"sort":["_doc"],)"
                   R"("track_total_hits":true)" +
                       (after.empty() ? std::string() : R"(,"search_after":)" + after) + "}");
      if (samples.is_null()) break;
      const json::value& total = samples.at("hits").at("total");
      if (Str(total.at("relation")) != "eq") {
        throw std::runtime_error("_search " + name + " did not count its documents exactly");
      }
      if (expected < 0) expected = ExactInt(total.at("value"));
      const json::array& hits = samples.at("hits").at("hits").as_array();
      if (hits.empty()) break;
      for (const json::value& hit : hits) {
        const json::object& o = hit.at("_source").as_object();
        StoredSample s;
        s.metric = Str(o.at("metric"));
        s.unit = Str(o.at("unit"));
        s.labels = EsLabels(o.at("metadata"));
        s.timestamp_ns = ExactInt(o.at("timestamp_ns"));
        s.monotonic_ns = ExactInt(o.at("monotonic_ns"));
        s.value = EsValue(o);
        if (ParseRfc3339Nanos(Str(o.at("timestamp"))) != s.timestamp_ns) {
          throw std::runtime_error("timestamp disagrees with timestamp_ns in " +
                                   json::serialize(hit).substr(0, 300));
        }
        out.samples.push_back(std::move(s));
      }
      seen += static_cast<std::int64_t>(hits.size());
      after = "[" + std::to_string(ExactInt(hits.back().at("sort").at(0))) + "]";
    }
    if (expected >= 0 && seen != expected) {
      throw std::runtime_error("read " + std::to_string(seen) + " documents of index " + name +
                               ", which counts " + std::to_string(expected));
    }
  }
  const json::value runs = EsSearch(port, index + "-runs", R"({"size":1000})");
  if (!runs.is_null()) {
    for (const json::value& hit : runs.at("hits").at("hits").as_array()) {
      const json::object& o = hit.at("_source").as_object();
      StoredRun r;
      r.run_id = Str(o.at("run_id"));
      if (Str(hit.at("_id")) != r.run_id) throw std::runtime_error("run _id is not its run_id");
      r.benchmark = Str(o.at("benchmark"));
      r.status = Str(o.at("status"));
      r.repetition = ExactInt(o.at("repetition"));
      r.exit_code = ExactInt(o.at("exit").at("exit_code"));
      r.wall_time_ns = ExactInt(o.at("exit").at("wall_time_ns"));
      for (const json::value& rv : o.at("results").as_array()) {
        const json::object& ro = rv.as_object();
        r.results.push_back({Str(ro.at("metric")), Str(ro.at("unit")), EsLabels(ro.at("metadata")),
                             ExactInt(ro.at("timestamp_ns")), 0, EsValue(ro)});
      }
      out.runs.push_back(std::move(r));
    }
  }
  return out;
}

Stored ReadEs(const std::string& index) { return ReadEsOn(EsFakeService::Get()->port(), index); }

std::string EsUriOn(int port, const fs::path& dir, const std::string& index,
                    const std::string& query) {
  return "es://127.0.0.1:" + std::to_string(port) + "/" + index +
         "?spool=" + (dir / "spool").string() + (query.empty() ? "" : "&" + query);
}

std::string EsUri(const fs::path& dir, const std::string& index, const std::string& query) {
  return EsUriOn(EsFakeService::Get()->port(), dir, index, query);
}

SinkKind EsKind() {
  SinkKind kind;
  kind.scheme = "es";
  kind.read = &ReadEs;
  kind.uri = &EsUri;
  kind.unavailable = [] { return EsFakeService::Get() ? "" : EsFakeService::Why(); };
  return kind;
}

// The same suite against the fake in Elasticsearch 8 mode.
EsFakeService* Es8() {
  static std::unique_ptr<EsFakeService> fake = EsFakeService::Start({"--version", "8.11.0"});
  return fake->ready() ? fake.get() : nullptr;
}

SinkKind Es8Kind() {
  SinkKind kind = EsKind();
  kind.name = "es8";
  kind.read = [](const std::string& index) { return ReadEsOn(Es8()->port(), index); };
  kind.uri = [](const fs::path& dir, const std::string& index, const std::string& query) {
    return EsUriOn(Es8()->port(), dir, index, query);
  };
  kind.unavailable = [] { return Es8() ? "" : EsFakeService::Why(); };
  return kind;
}

// ---- what the InfluxDB sink promises beyond the suite ----------------------------------------

class InfluxSinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    BITFUSION_REQUIRE_SERVICE(InfluxService::Get() != nullptr, InfluxService::Why());
    dir_ = testing::FreshDir(::testing::UnitTest::GetInstance()->current_test_info()->name());
    remove_dir_.path = dir_;
    static int counter = 0;
    db_ = "influx_test_" + std::to_string(::getpid()) + "_" + std::to_string(++counter);
  }
  fs::path dir_;
  testing::RemoveDirLater remove_dir_;
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
    remove_dir_.path = dir_;
    static int counter = 0;
    schema_ = "pgsink_test_" + std::to_string(::getpid()) + "_" + std::to_string(++counter);
  }
  std::shared_ptr<ResultSink> Make(const std::string& query = "") {
    auto sink = ResultSinkFromUri(PostgresUri(dir_, schema_, query));
    EXPECT_TRUE(sink.ok()) << sink.status().ToString();
    return sink.ok() ? *sink : nullptr;
  }
  fs::path dir_;
  testing::RemoveDirLater remove_dir_;
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

// ---- what the Elasticsearch sink promises beyond the suite -------------------------------------

class EsSinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    BITFUSION_REQUIRE_SERVICE(EsFakeService::Get() != nullptr, EsFakeService::Why());
    dir_ = testing::FreshDir(::testing::UnitTest::GetInstance()->current_test_info()->name());
    remove_dir_.path = dir_;
    static int counter = 0;
    index_ = "es_test_" + std::to_string(::getpid()) + "_" + std::to_string(++counter);
  }
  // A fake of the test's own, with es_fake.py's options.
  std::unique_ptr<EsFakeService> Fake(const std::vector<std::string>& args) {
    auto fake = EsFakeService::Start(args);
    EXPECT_TRUE(fake->ready()) << fake->Log();
    return fake;
  }
  std::shared_ptr<ResultSink> Make(int port, const std::string& query = "") {
    auto sink = ResultSinkFromUri(EsUriOn(port, dir_, index_, query));
    EXPECT_TRUE(sink.ok()) << sink.status().ToString();
    return sink.ok() ? *sink : nullptr;
  }
  json::value Stats(int port) {
    return json::parse(testing::HttpCall(port, "GET", "/_fake/stats").body);
  }
  fs::path dir_;
  testing::RemoveDirLater remove_dir_;
  std::string index_;
};

TEST_F(EsSinkTest, DottedLabelKeysBecomeFieldNamesElasticsearchTakes) {
  const int port = EsFakeService::Get()->port();
  auto sink = Make(port);
  ASSERT_TRUE(sink);
  SampleBatch b;
  // Written as they are, "gpu" and "gpu.model" make "gpu" both a value and an object: the fake
  // (as Elasticsearch) refuses such a document.
  b.labels = {{"gpu", "h100"},  {"gpu.model", "sxm5"}, {"a.b", "dotted"},
              {"a_b", "plain"}, {"", "empty"},         {"cpu", "0"}};
  b.Append(b.AddSeries({"m", "1", {}}), kT0, 1, 1);
  b.Append(b.AddSeries({"m", "1", {{"x.y.z", "deep"}}}), kT0, 1, 2);
  ASSERT_TRUE(sink->Write(b).ok());
  ASSERT_TRUE(sink->Close().ok());
  EXPECT_EQ(sink->counters().samples_dropped, 0);
  const Stored stored = ReadEs(index_);
  ASSERT_EQ(stored.samples.size(), 2u);
  const Labels base = {{"gpu", "h100"},    {"gpu_model", "sxm5"}, {"a_b", "plain"},
                       {"a_b_", "dotted"}, {"_", "empty"},        {"cpu", "0"}};
  Labels deep = base;
  deep["x_y_z"] = "deep";
  std::set<Labels> got;
  for (const StoredSample& s : stored.samples) got.insert(s.labels);
  EXPECT_EQ(got, (std::set<Labels>{base, deep}));
}

TEST_F(EsSinkTest, TemplateIsInstalledAndMapsTheFields) {
  const int port = EsFakeService::Get()->port();
  auto sink = Make(port);
  ASSERT_TRUE(sink);
  ASSERT_TRUE(sink->Write(CpuBatch(0, 2)).ok());
  ASSERT_TRUE(sink->Write(MakeRun("run-t", 0)).ok());
  ASSERT_TRUE(sink->Close().ok());
  const net::HttpResponse tpl =
      testing::HttpCall(port, "GET", "/_index_template/bitfusion-" + index_);
  ASSERT_EQ(tpl.status, 200) << tpl.body;
  const json::value mapping =
      json::parse(testing::HttpCall(port, "GET", "/" + index_ + "/_mapping").body);
  const json::value& props = mapping.at(index_).at("mappings").at("properties");
  EXPECT_EQ(Str(props.at("value").at("type")), "double");
  EXPECT_EQ(Str(props.at("timestamp").at("type")), "date_nanos");
  EXPECT_EQ(Str(props.at("metric").at("type")), "keyword");
  EXPECT_EQ(Str(props.at("metadata").at("properties").at("cpu").at("type")), "keyword");
  const json::value runs =
      json::parse(testing::HttpCall(port, "GET", "/" + index_ + "-runs/_mapping").body);
  EXPECT_EQ(Str(runs.at(index_ + "-runs")
                    .at("mappings")
                    .at("properties")
                    .at("results")
                    .at("properties")
                    .at("value")
                    .at("type")),
            "double");
}

TEST_F(EsSinkTest, IndexPerDayAndPerRun) {
  const int port = EsFakeService::Get()->port();
  constexpr std::int64_t kDay = 86'400'000'000'000;
  const std::int64_t midnight = 1'700'006'400'000'000'000;  // 2023-11-15T00:00:00Z
  {
    auto sink = Make(port, "index_per=day");
    ASSERT_TRUE(sink);
    SampleBatch b;
    const auto s = b.AddSeries({"m", "1", {}});
    b.Append(s, midnight - 1, 1, 1);
    b.Append(s, midnight, 2, 2);
    b.Append(s, midnight + kDay + 5, 3, 3);
    ASSERT_TRUE(sink->Write(b).ok());
    ASSERT_TRUE(sink->Close().ok());
  }
  for (const char* day : {"-2023.11.14", "-2023.11.15", "-2023.11.16"}) {
    const net::HttpResponse r = testing::HttpCall(port, "GET", "/" + index_ + day + "/_count");
    EXPECT_NE(r.body.find("\"count\": 1"), std::string::npos) << day << ": " << r.body;
  }
  index_ += "_runs";
  auto sink = Make(port, "index_per=run");
  ASSERT_TRUE(sink);
  SampleBatch b;
  b.labels = {{"run", "Run/A 1"}};
  b.Append(b.AddSeries({"m", "1", {}}), kT0, 1, 1);
  ASSERT_TRUE(sink->Write(b).ok());
  ASSERT_TRUE(sink->Close().ok());
  const net::HttpResponse r = testing::HttpCall(port, "GET", "/" + index_ + "-run_a_1/_count");
  EXPECT_NE(r.body.find("\"count\": 1"), std::string::npos) << r.body;
}

TEST_F(EsSinkTest, DocumentsElasticsearchRefusesAreDroppedAndTheirNeighboursKept) {
  const int port = EsFakeService::Get()->port();
  auto sink = Make(port);
  ASSERT_TRUE(sink);
  SampleBatch b;
  const auto s = b.AddSeries({"m", "1", {}});
  b.Append(s, kT0, 1, 1);
  b.Append(s, -5'000'000'000, 2, 2);  // 1969: date_nanos cannot hold it
  b.Append(s, kT0 + 1, 3, 3);
  ASSERT_TRUE(sink->Write(b).ok());
  ASSERT_TRUE(sink->Close().ok());
  const SinkCounters c = sink->counters();
  EXPECT_EQ(c.samples_dropped, 1);
  EXPECT_EQ(c.samples_written, 2);
  EXPECT_EQ(ReadEs(index_).samples.size(), 2u);
}

TEST_F(EsSinkTest, ItemsRejectedWith429AreSentAgainAloneAndStoredOnce) {
  auto fake = Fake({"--item-429", "0.5", "--seed", "3"});
  auto sink = Make(fake->port(), "batch_samples=200&retry_initial=5ms&retry_max=20ms");
  ASSERT_TRUE(sink);
  std::vector<SampleBatch> written;
  for (int i = 0; i < 10; ++i) {
    written.push_back(CpuBatch(i * 20, 20));
    ASSERT_TRUE(sink->Write(written.back()).ok());
  }
  ASSERT_TRUE(sink->Close().ok());
  EXPECT_TRUE(SameSamples(Expected(written), ReadEsOn(fake->port(), index_).samples));
  const json::value stats = Stats(fake->port());
  EXPECT_GT(stats.at("injected_item_429").as_int64(), 100);
  // Only what was refused went again: about one extra item per refusal, not whole requests.
  EXPECT_EQ(stats.at("bulk_items").as_int64(),
            600 + stats.at("injected_item_429").as_int64() + 1 /* template's index run */ - 1);
}

TEST_F(EsSinkTest, WholeRequestFaultsAreRiddenOutThroughTheSpool) {
  auto fake = Fake({"--bulk-429", "0.3", "--bulk-500", "0.2", "--drop", "0.2", "--seed", "11"});
  auto sink = Make(fake->port(), "batch_samples=30&retry_initial=5ms&retry_max=50ms&timeout=5s");
  ASSERT_TRUE(sink);
  std::vector<SampleBatch> written;
  for (int i = 0; i < 20; ++i) {
    written.push_back(CpuBatch(i * 10, 10));
    ASSERT_TRUE(sink->Write(written.back()).ok()) << "held in the spool, not refused";
  }
  ASSERT_TRUE(sink->Write(MakeRun("run-faults", 0)).ok());
  ASSERT_TRUE(sink->Close(DeadlineAfter(std::chrono::seconds(60))).ok());
  const SinkCounters c = sink->counters();
  EXPECT_GT(c.retries, 0);
  EXPECT_EQ(c.samples_pending, 0);
  const Stored stored = ReadEsOn(fake->port(), index_);
  EXPECT_TRUE(SameSamples(Expected(written), stored.samples));
  EXPECT_TRUE(SameRuns({MakeRun("run-faults", 0)}, stored.runs));
  const json::value stats = Stats(fake->port());
  for (const char* fault : {"injected_bulk_429", "injected_bulk_500", "injected_drop"}) {
    EXPECT_GT(stats.at(fault).as_int64(), 0) << fault;
  }
}

TEST_F(EsSinkTest, SlowAnswersPastTheTimeoutAreRetried) {
  auto fake = Fake({"--slow-ms", "400"});
  auto sink = Make(fake->port(), "timeout=150ms&retry_initial=5ms&retry_max=20ms");
  ASSERT_TRUE(sink);
  ASSERT_TRUE(sink->Write(CpuBatch(0, 5)).ok());
  const Status flushed = sink->Flush(DeadlineAfter(std::chrono::milliseconds(700)));
  EXPECT_EQ(flushed.code(), StatusCode::kDeadlineExceeded) << flushed.ToString();
  EXPECT_TRUE(sink->counters().degraded);
  testing::HttpCall(fake->port(), "POST", "/_fake/faults", R"({"slow_ms":0})");
  ASSERT_TRUE(sink->Close().ok());
  EXPECT_TRUE(SameSamples(Expected({CpuBatch(0, 5)}), ReadEsOn(fake->port(), index_).samples));
}

TEST_F(EsSinkTest, BasicAuthAndApiKeysAndGzip) {
  auto fake = Fake({"--user", "elastic:s3cret", "--api-key", "kid:ksecret"});
  const std::string port = std::to_string(fake->port());
  for (const std::string& uri :
       {"es://elastic:s3cret@127.0.0.1:" + port + "/" + index_ + "_basic?gzip=true",
        "es://127.0.0.1:" + port + "/" + index_ + "_key?api_key=kid:ksecret"}) {
    auto sink = ResultSinkFromUri(uri + "&spool=" + (dir_ / "spool").string());
    ASSERT_TRUE(sink.ok()) << sink.status().ToString();
    EXPECT_EQ((*sink)->uri().find("s3cret"), std::string::npos) << "secrets are not shown";
    EXPECT_EQ((*sink)->uri().find("ksecret"), std::string::npos) << "secrets are not shown";
    ASSERT_TRUE((*sink)->Write(CpuBatch(0, 3)).ok());
    ASSERT_TRUE((*sink)->Close().ok()) << uri;
    EXPECT_EQ((*sink)->counters().samples_written, 9);
  }
  auto wrong = ResultSinkFromUri("es://elastic:wrong@127.0.0.1:" + port + "/" + index_ +
                                 "?spool=" + (dir_ / "spool").string() + "&flush_timeout=100ms");
  ASSERT_TRUE(wrong.ok());
  ASSERT_TRUE((*wrong)->Write(CpuBatch(0, 1)).ok());
  const Status closed = (*wrong)->Close();
  EXPECT_EQ(closed.code(), StatusCode::kPermissionDenied) << closed.ToString();
  EXPECT_EQ(closed.message().find("wrong"), std::string::npos) << closed.ToString();
}

TEST_F(EsSinkTest, TlsWithACaBundle) {
  BITFUSION_REQUIRE_SERVICE(testing::HaveProgram("openssl"), "openssl is not installed");
  const fs::path cert = dir_ / "cert.pem";
  const fs::path key = dir_ / "key.pem";
  const std::string make_cert =
      "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 -addext "
      "subjectAltName=IP:127.0.0.1 -keyout " +
      key.string() + " -out " + cert.string() + " > " + (dir_ / "openssl.log").string() + " 2>&1";
  ASSERT_EQ(std::system(make_cert.c_str()), 0);
  auto fake = Fake({"--tls-cert", cert.string(), "--tls-key", key.string()});
  const std::string base = "es+https://127.0.0.1:" + std::to_string(fake->port()) + "/" + index_;
  auto sink =
      ResultSinkFromUri(base + "?ca=" + cert.string() + "&spool=" + (dir_ / "spool").string());
  ASSERT_TRUE(sink.ok()) << sink.status().ToString();
  ASSERT_TRUE((*sink)->Write(CpuBatch(0, 2)).ok());
  ASSERT_TRUE((*sink)->Close().ok());
  EXPECT_EQ((*sink)->counters().samples_written, 6);
  // Without the CA bundle the server cannot be verified: nothing is sent, all is kept.
  auto untrusted =
      ResultSinkFromUri(base + "?spool=" + (dir_ / "spool2").string() + "&flush_timeout=100ms");
  ASSERT_TRUE(untrusted.ok());
  ASSERT_TRUE((*untrusted)->Write(CpuBatch(0, 2)).ok());
  const Status closed = (*untrusted)->Close();
  EXPECT_EQ(closed.code(), StatusCode::kPermissionDenied) << closed.ToString();
  EXPECT_EQ((*untrusted)->counters().samples_written, 0);
}

// The tests' own reader must see every document: a search answers at most 10000 hits and, unless
// asked, counts no further (total 10000, relation "gte"), so a reader that trusted one search
// saw a store of 12100 samples as samples 0..9999 -- as if sample 10000 were lost.
TEST_F(EsSinkTest, TheTestsReaderSeesMoreThanOneSearchWindowOfDocuments) {
  const int port = EsFakeService::Get()->port();
  auto sink = Make(port, "batch_samples=5000");
  ASSERT_TRUE(sink);
  constexpr std::int64_t kSamples = 12'100;
  SampleBatch b;
  const auto series = b.AddSeries({"window.sample", "1", {}});
  for (std::int64_t n = 0; n < kSamples; ++n) b.Append(series, kT0 + n, n, 0.5);
  ASSERT_TRUE(sink->Write(b).ok());
  ASSERT_TRUE(sink->Close().ok());
  ASSERT_EQ(sink->counters().samples_written, kSamples);
  const Stored stored = ReadEs(index_);
  std::set<std::int64_t> seen;
  for (const StoredSample& s : stored.samples) seen.insert(s.timestamp_ns - kT0);
  EXPECT_EQ(stored.samples.size(), static_cast<std::size_t>(kSamples));
  ASSERT_EQ(seen.size(), static_cast<std::size_t>(kSamples));
  EXPECT_EQ(*seen.begin(), 0);
  EXPECT_EQ(*seen.rbegin(), kSamples - 1);
}

// ---- the crash test ----------------------------------------------------------------------------

// A writer is killed with SIGKILL while Elasticsearch answers 429 to half the bulk requests; a new
// writer on the same spool then sends what the first left behind. The store must hold every
// sample the first writer acknowledged, each exactly once, and nothing it never wrote.
TEST_F(EsSinkTest, AWriterKilledDuringAnOutageLosesNothingAndDuplicatesNothing) {
  auto fake = Fake({"--bulk-429", "0.5", "--seed", "5"});
  const std::string uri =
      EsUriOn(fake->port(), dir_, index_, "batch_samples=500&retry_initial=10ms&retry_max=100ms");
  int out[2];
  ASSERT_EQ(::pipe(out), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::dup2(out[1], 1);
    ::close(out[0]);
    ::close(out[1]);
    ::execl(BITFUSION_SINK_CRASH_WRITER, BITFUSION_SINK_CRASH_WRITER, uri.c_str(), "100",
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(out[1]);
  FILE* acks = ::fdopen(out[0], "r");
  long long last = -1;
  long long batch = 0;
  while (last < 60 && std::fscanf(acks, "%lld", &batch) == 1) last = batch;
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  // What it acknowledged between our last read and the kill is in the pipe still.
  while (std::fscanf(acks, "%lld", &batch) == 1) last = batch;
  std::fclose(acks);
  ASSERT_TRUE(WIFSIGNALED(status)) << "the writer stopped on its own, status " << status;
  ASSERT_GE(last, 60) << "the writer acknowledged too little before it was killed";

  // The restart: a writer on the same spool, with the store still refusing half the requests.
  auto sink = ResultSinkFromUri(uri);
  ASSERT_TRUE(sink.ok()) << sink.status().ToString();
  ASSERT_TRUE((*sink)->Close(DeadlineAfter(std::chrono::seconds(90))).ok());
  EXPECT_GT((*sink)->counters().samples_replayed, 0) << "the dead writer left data to replay";

  const Stored stored = ReadEsOn(fake->port(), index_);
  std::map<std::int64_t, int> copies;
  for (const StoredSample& s : stored.samples) ++copies[s.timestamp_ns - kT0];
  const std::int64_t acknowledged = (last + 1) * 100;
  for (std::int64_t n = 0; n < acknowledged; ++n) {
    ASSERT_EQ(copies[n], 1) << "sample " << n << " of " << acknowledged << " acknowledged";
  }
  // Beyond what was acknowledged: at most the batch being written at the kill, whole.
  const std::int64_t extra = static_cast<std::int64_t>(copies.size()) - acknowledged;
  EXPECT_TRUE(extra == 0 || extra == 100) << extra << " samples beyond the acknowledged";
  for (const auto& [n, k] : copies) EXPECT_EQ(k, 1) << "sample " << n;
  const json::value count =
      json::parse(testing::HttpCall(fake->port(), "GET", "/" + index_ + "/_count").body);
  EXPECT_EQ(count.at("count").as_int64(), static_cast<std::int64_t>(copies.size()));
  EXPECT_GT(Stats(fake->port()).at("injected_bulk_429").as_int64(), 0);
}

INSTANTIATE_TEST_SUITE_P(NetworkSinks, SinkConformanceTest,
                         ::testing::Values(InfluxKind(), PostgresKind(), EsKind(), Es8Kind()),
                         KindName);

}  // namespace
}  // namespace bitfusion
