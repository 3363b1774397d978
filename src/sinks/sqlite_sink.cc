#include "sinks/sqlite_sink.h"

#include <sqlite3.h>

#include <cmath>
#include <cstdint>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <utility>

#include "bitfusion/clock.h"
#include "bitfusion/registry.h"
#include "core/sha256.h"
#include "sinks/machine_identity.h"
#include "sinks/record_json.h"

namespace bitfusion {

Result<SqliteSinkOptions> SqliteSinkOptions::FromUri(const Uri& uri) {
  BITFUSION_RETURN_IF_ERROR(
      uri.CheckQueryKeys(ResultSinkOptions::QueryKeysWith({"samples_index", "busy_timeout"})));
  SqliteSinkOptions options;
  options.path = uri.FilePath();
  if (options.path.empty()) {
    return InvalidArgumentError("sink URI " + uri.ToString() +
                                " names no file; write sqlite://out/results.db (relative) or "
                                "sqlite:///abs/results.db");
  }
  BITFUSION_ASSIGN_OR_RETURN(options.samples_index,
                             uri.QueryBool("samples_index", options.samples_index));
  BITFUSION_ASSIGN_OR_RETURN(const std::chrono::nanoseconds busy,
                             uri.QueryDuration("busy_timeout", options.busy_timeout));
  options.busy_timeout = std::chrono::duration_cast<std::chrono::milliseconds>(busy);
  BITFUSION_ASSIGN_OR_RETURN(options.sink, ResultSinkOptions::FromUri(uri));
  return options;
}

namespace {

// 2: series.counter (version 1 files are upgraded in place when opened for writing).
constexpr int kSchemaVersion = 2;
constexpr int kApplicationId = 0x42467573;  // "BFus"

// Keep in step with the comment at the top of sqlite_sink.h and docs/sqlite-schema.md.
constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS machines (
  machine_id    TEXT PRIMARY KEY,
  hostname      TEXT NOT NULL,
  fingerprint   TEXT NOT NULL,
  first_seen_ns INTEGER NOT NULL,
  last_seen_ns  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
  run_id                   TEXT PRIMARY KEY,
  plan                     TEXT NOT NULL,
  plan_run_id              TEXT NOT NULL,
  benchmark                TEXT NOT NULL,
  repetition               INTEGER NOT NULL,
  warmup                   INTEGER NOT NULL,
  machine_id               TEXT REFERENCES machines(machine_id),
  runner                   TEXT NOT NULL,
  image                    TEXT NOT NULL,
  image_digest             TEXT NOT NULL,
  status                   TEXT NOT NULL,
  error                    TEXT NOT NULL,
  exit_code                INTEGER NOT NULL,
  signal                   INTEGER NOT NULL,
  timed_out                INTEGER NOT NULL,
  oom_killed               INTEGER NOT NULL,
  start_ns                 INTEGER NOT NULL,
  end_ns                   INTEGER NOT NULL,
  wall_time_ns             INTEGER NOT NULL,
  user_cpu_ns              INTEGER NOT NULL,
  system_cpu_ns            INTEGER NOT NULL,
  max_rss_bytes            INTEGER NOT NULL,
  observer_cpu_ns          INTEGER NOT NULL,
  observer_samples         INTEGER NOT NULL,
  observer_samples_dropped INTEGER NOT NULL,
  observer_interval_ns     INTEGER NOT NULL,
  labels                   TEXT NOT NULL,
  record                   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_plan_run_id ON runs(plan_run_id);
CREATE TABLE IF NOT EXISTS results (
  run_id       TEXT NOT NULL REFERENCES runs(run_id),
  metric       TEXT NOT NULL,
  value        REAL,
  unit         TEXT NOT NULL,
  labels       TEXT NOT NULL,
  timestamp_ns INTEGER NOT NULL,
  monotonic_ns INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS results_run_id ON results(run_id);
CREATE TABLE IF NOT EXISTS series (
  series_id INTEGER PRIMARY KEY,
  metric    TEXT NOT NULL,
  unit      TEXT NOT NULL,
  labels    TEXT NOT NULL,
  counter   INTEGER NOT NULL DEFAULT 0,
  UNIQUE (metric, unit, labels)
);
CREATE TABLE IF NOT EXISTS samples (
  series_id    INTEGER NOT NULL REFERENCES series(series_id),
  timestamp_ns INTEGER NOT NULL,
  monotonic_ns INTEGER NOT NULL,
  value        REAL
);
)sql";

// The optional samples index is UNIQUE: a sample's identity is its series and timestamp, so with
// it a batch written twice (a re-import, a retried call) is stored once (inserts are OR IGNORE).
// Version 2 files may hold a plain index of that name: its duplicates are removed once and it is
// made unique.
constexpr const char* kSamplesIndexIsUnique =
    "SELECT count(*) FROM pragma_index_list('samples') "
    "WHERE name = 'samples_series_time' AND \"unique\" = 1";
constexpr const char* kSamplesIndex = R"sql(
DELETE FROM samples WHERE rowid NOT IN
  (SELECT min(rowid) FROM samples GROUP BY series_id, timestamp_ns);
DROP INDEX IF EXISTS samples_series_time;
CREATE UNIQUE INDEX samples_series_time ON samples(series_id, timestamp_ns);
)sql";

constexpr const char* kInsertRun = R"sql(
INSERT OR REPLACE INTO runs (run_id, plan, plan_run_id, benchmark, repetition, warmup, machine_id,
  runner, image, image_digest, status, error, exit_code, signal, timed_out, oom_killed, start_ns,
  end_ns, wall_time_ns, user_cpu_ns, system_cpu_ns, max_rss_bytes, observer_cpu_ns,
  observer_samples, observer_samples_dropped, observer_interval_ns, labels, record)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20,
  ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28)
)sql";

constexpr const char* kUpsertMachine = R"sql(
INSERT INTO machines (machine_id, hostname, fingerprint, first_seen_ns, last_seen_ns)
VALUES (?1, ?2, ?3, ?4, ?4)
ON CONFLICT (machine_id) DO UPDATE SET
  first_seen_ns = min(first_seen_ns, excluded.first_seen_ns),
  last_seen_ns = max(last_seen_ns, excluded.last_seen_ns)
)sql";

struct StmtDeleter {
  void operator()(sqlite3_stmt* stmt) const { sqlite3_finalize(stmt); }
};
using Stmt = std::unique_ptr<sqlite3_stmt, StmtDeleter>;

// What a person can do about an SQLite error decides the code.
Status SqliteStatus(int rc, std::string message) {
  switch (rc & 0xFF) {
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_AUTH: return PermissionDeniedError(message);
    case SQLITE_FULL:
    case SQLITE_NOMEM: return ResourceExhaustedError(message);
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return UnavailableError(message +
                              " (another connection holds the database lock; retry, or "
                              "raise busy_timeout)");
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT: return FailedPreconditionError(message);
    default: return IOError(message);
  }
}

void BindText(sqlite3_stmt* stmt, int index, std::string_view text) {
  const std::string valid = internal::ValidUtf8(text);
  sqlite3_bind_text64(stmt, index, valid.data(), valid.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
}

void BindValue(sqlite3_stmt* stmt, int index, double value) {
  // SQLite would turn NaN into NULL by itself; saying so keeps the documented outcome explicit.
  if (std::isnan(value)) {
    sqlite3_bind_null(stmt, index);
  } else {
    sqlite3_bind_double(stmt, index, value);
  }
}

}  // namespace

struct SqliteSink::Db {
  sqlite3* conn = nullptr;
  std::filesystem::path path;
  Stmt begin, commit, rollback, insert_sample, find_series, insert_series, upsert_machine,
      delete_results, insert_run, insert_result;
  // canonical key (JSON metric + JSON unit + labels JSON) -> series_id
  std::unordered_map<std::string, std::int64_t> series_ids;
  // Keys added to series_ids in the open transaction, forgotten again if it rolls back.
  std::vector<std::string> new_series;
  std::vector<std::int64_t> batch_ids;  // series_id per series of the batch being written
  Labels merged;
  std::string key, labels_json;

  ~Db() { Close().ok(); }

  Status Error(int rc, std::string_view what) const {
    const char* detail = conn != nullptr ? sqlite3_errmsg(conn) : sqlite3_errstr(rc);
    return SqliteStatus(
        rc, "SQLite database " + path.string() + ": " + std::string(what) + ": " + detail);
  }

  Status Exec(const char* sql, std::string_view what) {
    const int rc = sqlite3_exec(conn, sql, nullptr, nullptr, nullptr);
    return rc == SQLITE_OK ? Status::OK() : Error(rc, what);
  }

  Result<Stmt> Prepare(const char* sql) {
    sqlite3_stmt* stmt = nullptr;
    const int rc = sqlite3_prepare_v3(conn, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
    if (rc != SQLITE_OK) return Error(rc, "preparing a statement (is the schema intact?)");
    return Stmt(stmt);
  }

  // Runs a statement that returns no rows, and resets it for the next use.
  Status Step(sqlite3_stmt* stmt, std::string_view what) {
    const int rc = sqlite3_step(stmt);
    Status status = rc == SQLITE_DONE || rc == SQLITE_ROW ? Status::OK() : Error(rc, what);
    sqlite3_reset(stmt);
    return status;
  }

  Result<std::int64_t> QueryInt(const char* sql) {
    BITFUSION_ASSIGN_OR_RETURN(Stmt stmt, Prepare(sql));
    const int rc = sqlite3_step(stmt.get());
    if (rc != SQLITE_ROW) return Error(rc, "reading the schema");
    return sqlite3_column_int64(stmt.get(), 0);
  }

  Status Begin() { return Step(begin.get(), "starting a transaction"); }

  Status Commit() {
    Status status = Step(commit.get(), "committing");
    if (status.ok()) new_series.clear();
    return status;
  }

  void Rollback() {
    if (sqlite3_get_autocommit(conn) == 0) Step(rollback.get(), "rolling back").ok();
    for (const std::string& k : new_series) series_ids.erase(k);
    new_series.clear();
  }

  // Fills batch_ids with the series_id of each series of `batch`, adding new series.
  Status ResolveSeries(const SampleBatch& batch) {
    batch_ids.resize(batch.series.size());
    for (std::size_t s = 0; s < batch.series.size(); ++s) {
      const Series& series = batch.series[s];
      labels_json.clear();
      if (series.labels.empty()) {
        internal::AppendJsonLabels(labels_json, batch.labels);
      } else {
        merged = batch.labels;
        for (const auto& [k, v] : series.labels) merged[k] = v;
        internal::AppendJsonLabels(labels_json, merged);
      }
      // JSON strings are self-delimiting, so the concatenation is unambiguous.
      key.clear();
      internal::AppendJsonString(key, series.metric);
      internal::AppendJsonString(key, series.unit);
      key += labels_json;
      if (auto it = series_ids.find(key); it != series_ids.end()) {
        batch_ids[s] = it->second;
        continue;
      }
      BITFUSION_ASSIGN_OR_RETURN(batch_ids[s], FindOrAddSeries(series));
      series_ids.emplace(key, batch_ids[s]);
    }
    return Status::OK();
  }

  Result<std::int64_t> FindOrAddSeries(const Series& series) {
    sqlite3_stmt* find = find_series.get();
    BindText(find, 1, series.metric);
    BindText(find, 2, series.unit);
    sqlite3_bind_text64(find, 3, labels_json.data(), labels_json.size(), SQLITE_TRANSIENT,
                        SQLITE_UTF8);
    const int rc = sqlite3_step(find);
    if (rc == SQLITE_ROW) {
      const std::int64_t id = sqlite3_column_int64(find, 0);
      sqlite3_reset(find);
      return id;
    }
    Status found = rc == SQLITE_DONE ? Status::OK() : Error(rc, "looking up a series");
    sqlite3_reset(find);
    BITFUSION_RETURN_IF_ERROR(found);

    sqlite3_stmt* insert = insert_series.get();
    BindText(insert, 1, series.metric);
    BindText(insert, 2, series.unit);
    sqlite3_bind_text64(insert, 3, labels_json.data(), labels_json.size(), SQLITE_TRANSIENT,
                        SQLITE_UTF8);
    sqlite3_bind_int(insert, 4, series.counter ? 1 : 0);
    BITFUSION_RETURN_IF_ERROR(Step(insert, "adding series " + series.metric));
    new_series.push_back(key);
    return sqlite3_last_insert_rowid(conn);
  }

  Status Close() {
    for (Stmt* stmt : {&begin, &commit, &rollback, &insert_sample, &find_series, &insert_series,
                       &upsert_machine, &delete_results, &insert_run, &insert_result}) {
      stmt->reset();
    }
    if (conn == nullptr) return Status::OK();
    sqlite3* c = std::exchange(conn, nullptr);
    const int rc = sqlite3_close_v2(c);
    if (rc != SQLITE_OK) return SqliteStatus(rc, "SQLite database " + path.string() + ": closing");
    return Status::OK();
  }
};

SqliteSink::SqliteSink(const SqliteSinkOptions& options, std::unique_ptr<Db> db)
    : ResultSink("sqlite://" + options.path.string(), options.sink),
      options_(options),
      db_(std::move(db)) {}

SqliteSink::~SqliteSink() { CloseOnDestroy(); }

Result<std::shared_ptr<SqliteSink>> SqliteSink::Make(const SqliteSinkOptions& options) {
  const std::string name = "SQLite sink file " + options.path.string();
  std::error_code ec;
  const std::filesystem::path dir = options.path.parent_path();
  if (!dir.empty() && !std::filesystem::is_directory(dir, ec)) {
    return NotFoundError("cannot create " + name + ": directory " + dir.string() +
                         " does not exist; create it first or choose another path");
  }
  auto db = std::make_unique<Db>();
  db->path = options.path;
  // The sink's own lock serialises every use of the connection, so SQLite's is not needed.
  const int rc =
      sqlite3_open_v2(options.path.c_str(), &db->conn,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) return db->Error(rc, "cannot open it");
  if (sqlite3_db_readonly(db->conn, "main") == 1) {
    return PermissionDeniedError(name +
                                 " can only be opened read-only; make it writable or "
                                 "choose another path");
  }
  sqlite3_extended_result_codes(db->conn, 1);
  sqlite3_busy_timeout(db->conn, static_cast<int>(options.busy_timeout.count()));
  // The first statements that write: a file or directory that cannot be written fails here.
  BITFUSION_RETURN_IF_ERROR(db->Exec("PRAGMA journal_mode=WAL", "switching to WAL mode"));
  BITFUSION_RETURN_IF_ERROR(db->Exec("PRAGMA synchronous=NORMAL", "setting synchronous"));

  BITFUSION_RETURN_IF_ERROR(db->Exec("BEGIN IMMEDIATE", "taking the write lock"));
  Status schema = [&]() -> Status {
    BITFUSION_ASSIGN_OR_RETURN(const std::int64_t app, db->QueryInt("PRAGMA application_id"));
    BITFUSION_ASSIGN_OR_RETURN(const std::int64_t version, db->QueryInt("PRAGMA user_version"));
    BITFUSION_ASSIGN_OR_RETURN(const std::int64_t tables,
                               db->QueryInt("SELECT count(*) FROM sqlite_master"));
    if ((app != 0 && app != kApplicationId) || (app == 0 && tables > 0)) {
      return FailedPreconditionError(name +
                                     " is a database of another application; choose a new file");
    }
    if (version > kSchemaVersion) {
      return FailedPreconditionError(name + " has schema version " + std::to_string(version) +
                                     ", newer than version " + std::to_string(kSchemaVersion) +
                                     " that this bitfusion writes; upgrade bitfusion or choose "
                                     "another file");
    }
    BITFUSION_RETURN_IF_ERROR(db->Exec(kSchema, "creating the schema"));
    if (version == 1) {
      BITFUSION_RETURN_IF_ERROR(
          db->Exec("ALTER TABLE series ADD COLUMN counter INTEGER NOT NULL DEFAULT 0",
                   "upgrading the schema from version 1"));
    }
    if (options.samples_index) {
      BITFUSION_ASSIGN_OR_RETURN(const std::int64_t unique, db->QueryInt(kSamplesIndexIsUnique));
      if (unique == 0) {
        BITFUSION_RETURN_IF_ERROR(db->Exec(kSamplesIndex, "creating the samples index"));
      }
    }
    const std::string stamp = "PRAGMA application_id=" + std::to_string(kApplicationId) +
                              "; PRAGMA user_version=" + std::to_string(kSchemaVersion);
    BITFUSION_RETURN_IF_ERROR(db->Exec(stamp.c_str(), "stamping the schema version"));
    return db->Exec("COMMIT", "committing the schema");
  }();
  if (!schema.ok()) {
    db->Exec("ROLLBACK", "rolling back").ok();
    return schema;
  }

  struct {
    Stmt* stmt;
    const char* sql;
  } statements[] = {
      {&db->begin, "BEGIN IMMEDIATE"},
      {&db->commit, "COMMIT"},
      {&db->rollback, "ROLLBACK"},
      {&db->insert_sample,
       "INSERT OR IGNORE INTO samples (series_id, timestamp_ns, monotonic_ns, value) "
       "VALUES (?1, ?2, ?3, ?4)"},
      {&db->find_series,
       "SELECT series_id FROM series WHERE metric = ?1 AND unit = ?2 AND labels = ?3"},
      {&db->insert_series,
       "INSERT INTO series (metric, unit, labels, counter) VALUES (?1, ?2, ?3, ?4)"},
      {&db->upsert_machine, kUpsertMachine},
      {&db->delete_results, "DELETE FROM results WHERE run_id = ?1"},
      {&db->insert_run, kInsertRun},
      {&db->insert_result,
       "INSERT INTO results (run_id, metric, value, unit, labels, timestamp_ns, monotonic_ns) "
       "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"},
  };
  for (auto& [stmt, sql] : statements) {
    BITFUSION_ASSIGN_OR_RETURN(*stmt, db->Prepare(sql));
  }
  return std::shared_ptr<SqliteSink>(new SqliteSink(options, std::move(db)));
}

Status SqliteSink::WriteSamples(const std::vector<SampleBatch>& batches) {
  Db& db = *db_;
  BITFUSION_RETURN_IF_ERROR(db.Begin());
  Status status = [&]() -> Status {
    sqlite3_stmt* insert = db.insert_sample.get();
    for (const SampleBatch& batch : batches) {
      BITFUSION_RETURN_IF_ERROR(db.ResolveSeries(batch));
      const std::size_t n = batch.size();
      for (std::size_t i = 0; i < n; ++i) {
        sqlite3_bind_int64(insert, 1, db.batch_ids[batch.series_index[i]]);
        sqlite3_bind_int64(insert, 2, batch.timestamp_ns[i]);
        sqlite3_bind_int64(insert, 3, batch.monotonic_ns[i]);
        BindValue(insert, 4, batch.value[i]);
        const int rc = sqlite3_step(insert);
        if (rc != SQLITE_DONE) {
          Status error = db.Error(rc, "inserting samples");
          sqlite3_reset(insert);
          return error;
        }
        sqlite3_reset(insert);
      }
    }
    return db.Commit();
  }();
  if (!status.ok()) db.Rollback();
  return status;
}

Status SqliteSink::WriteRun(const RunRecord& record) {
  Db& db = *db_;
  const std::string record_json = internal::RunRecordJson(record, false);
  const internal::MachineIdentity identity = internal::IdentifyMachine(record.machine);
  const std::string& machine_id = identity.machine_id;
  const std::string& fingerprint_json = identity.fingerprint_json;
  std::string labels_json;
  internal::AppendJsonLabels(labels_json, record.labels);

  BITFUSION_RETURN_IF_ERROR(db.Begin());
  Status status = [&]() -> Status {
    if (!machine_id.empty()) {
      sqlite3_stmt* st = db.upsert_machine.get();
      BindText(st, 1, machine_id);
      BindText(st, 2, record.machine.hostname);
      BindText(st, 3, fingerprint_json);
      sqlite3_bind_int64(st, 4, record.exit.start_ns > 0 ? record.exit.start_ns : WallNowNs());
      BITFUSION_RETURN_IF_ERROR(db.Step(st, "storing machine " + machine_id));
    }
    sqlite3_stmt* del = db.delete_results.get();
    BindText(del, 1, record.run_id);
    BITFUSION_RETURN_IF_ERROR(db.Step(del, "replacing the results of run " + record.run_id));

    sqlite3_stmt* run = db.insert_run.get();
    const ExitStatus& exit = record.exit;
    int i = 0;
    BindText(run, ++i, record.run_id);
    BindText(run, ++i, record.plan);
    BindText(run, ++i, record.plan_run_id);
    BindText(run, ++i, record.benchmark);
    sqlite3_bind_int64(run, ++i, record.repetition);
    sqlite3_bind_int64(run, ++i, record.warmup ? 1 : 0);
    if (machine_id.empty()) {
      sqlite3_bind_null(run, ++i);
    } else {
      BindText(run, ++i, machine_id);
    }
    BindText(run, ++i, record.runner);
    BindText(run, ++i, record.image);
    BindText(run, ++i, record.image_digest);
    BindText(run, ++i, record.status);
    BindText(run, ++i, record.error);
    for (const std::int64_t v :
         {std::int64_t{exit.exit_code}, std::int64_t{exit.signal}, std::int64_t{exit.timed_out},
          std::int64_t{exit.oom_killed}, exit.start_ns, exit.end_ns, exit.wall_time_ns,
          exit.usage.user_cpu_ns, exit.usage.system_cpu_ns, exit.usage.max_rss_bytes,
          record.overhead.cpu_ns, record.overhead.samples, record.overhead.samples_dropped,
          record.overhead.interval_ns}) {
      sqlite3_bind_int64(run, ++i, v);
    }
    BindText(run, ++i, labels_json);
    BindText(run, ++i, record_json);
    BITFUSION_RETURN_IF_ERROR(db.Step(run, "storing run " + record.run_id));

    sqlite3_stmt* result = db.insert_result.get();
    std::string result_labels;
    for (const Sample& r : record.results) {
      result_labels.clear();
      internal::AppendJsonLabels(result_labels, r.metadata);
      BindText(result, 1, record.run_id);
      BindText(result, 2, r.metric);
      BindValue(result, 3, r.value);
      BindText(result, 4, r.unit);
      BindText(result, 5, result_labels);
      sqlite3_bind_int64(result, 6, r.timestamp_ns);
      sqlite3_bind_int64(result, 7, r.monotonic_ns);
      BITFUSION_RETURN_IF_ERROR(db.Step(result, "storing a result of run " + record.run_id));
    }
    return db.Commit();
  }();
  if (!status.ok()) db.Rollback();
  return status;
}

Status SqliteSink::SyncBackend(Deadline) {
  // With synchronous=NORMAL a commit does not wait for the disk. A checkpoint copies the WAL
  // into the database and syncs both, but it stops short of frames that a reader still needs,
  // so the WAL itself is synced too: what was flushed survives a power cut either way.
  int wal_frames = 0;
  int checkpointed = 0;
  int rc = sqlite3_wal_checkpoint_v2(db_->conn, nullptr, SQLITE_CHECKPOINT_PASSIVE, &wal_frames,
                                     &checkpointed);
  if (rc != SQLITE_OK && (rc & 0xFF) != SQLITE_BUSY) return db_->Error(rc, "checkpointing");
  sqlite3_file* wal = nullptr;
  rc = sqlite3_file_control(db_->conn, "main", SQLITE_FCNTL_JOURNAL_POINTER, &wal);
  if (rc == SQLITE_OK && wal != nullptr && wal->pMethods != nullptr) {
    rc = wal->pMethods->xSync(wal, SQLITE_SYNC_NORMAL);
    if (rc != SQLITE_OK) return db_->Error(rc, "syncing the WAL file");
  }
  return Status::OK();
}

Status SqliteSink::CloseBackend(Deadline) { return db_->Close(); }

BITFUSION_REGISTER(ResultSink, "sqlite", SqliteSinkOptions, SqliteSink);

}  // namespace bitfusion
