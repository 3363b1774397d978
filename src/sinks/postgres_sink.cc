#include "sinks/postgres_sink.h"

#include <libpq-fe.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <unordered_map>
#include <utility>

#include "bitfusion/clock.h"
#include "bitfusion/log.h"
#include "bitfusion/registry.h"
#include "core/sha256.h"
#include "sinks/machine_identity.h"
#include "sinks/record_json.h"

namespace bitfusion {

namespace {

// URI query keys that are libpq connection keywords, passed on as they are.
constexpr std::string_view kLibpqKeys[] = {
    "sslmode",          "sslrootcert",         "sslcert", "sslkey", "connect_timeout",
    "application_name", "target_session_attrs"};

// Whether libpq reaches `host` without leaving this machine: a unix-socket directory (or no
// host: libpq's default socket), localhost or a loopback address.
bool IsLocalHost(const std::string& host) {
  if (host.empty() || host.front() == '/' || host.front() == '@') return true;
  if (host == "localhost" || host == "::1" || host == "[::1]") return true;
  return host.rfind("127.", 0) == 0 && host.find_first_not_of("0123456789.") == std::string::npos;
}

}  // namespace

Result<PostgresSinkOptions> PostgresSinkOptions::FromUri(const Uri& uri) {
  std::vector<std::string_view> keys = ResultSinkOptions::DurableQueryKeysWith({"schema"});
  keys.insert(keys.end(), std::begin(kLibpqKeys), std::end(kLibpqKeys));
  BITFUSION_RETURN_IF_ERROR(uri.CheckQueryKeys(keys));
  PostgresSinkOptions options;
  options.redacted_uri = Redact(uri.ToString());
  const std::string db = uri.path.empty() ? "" : uri.path.substr(1);
  if (db.empty() || db.find('/') != std::string::npos) {
    return InvalidArgumentError("sink URI " + options.redacted_uri +
                                " names no database; write postgres://USER@HOST:PORT/DATABASE");
  }
  auto& c = options.connection;
  if (!uri.host.empty()) c.emplace_back("host", uri.host);
  if (uri.port) c.emplace_back("port", std::to_string(*uri.port));
  c.emplace_back("dbname", db);
  if (!uri.user.empty()) c.emplace_back("user", uri.user);
  if (!uri.password.empty()) c.emplace_back("password", uri.password);
  for (const std::string_view key : kLibpqKeys) {
    if (auto v = uri.Query(key)) c.emplace_back(std::string(key), *v);
  }
  // libpq's own default, sslmode=prefer, lets anyone on the path downgrade to plain text or
  // pose as the server. Off this machine the default is verify-full; `sslmode=` (or PGSSLMODE)
  // chooses otherwise.
  const char* env_sslmode = std::getenv("PGSSLMODE");
  if (!uri.Query("sslmode") && (env_sslmode == nullptr || *env_sslmode == '\0') &&
      !IsLocalHost(uri.host)) {
    c.emplace_back("sslmode", "verify-full");
  }
  if (!uri.Query("connect_timeout")) c.emplace_back("connect_timeout", "10");
  if (!uri.Query("application_name")) c.emplace_back("application_name", "bitfusion");
  options.schema = uri.Query("schema").value_or(options.schema);
  if (options.schema.empty() || options.schema.rfind("pg_", 0) == 0) {
    return InvalidArgumentError("option schema=\"" + options.schema + "\" in " +
                                options.redacted_uri +
                                " is not a name for a schema of ours (empty, or reserved by "
                                "PostgreSQL for its own: pg_...); choose another");
  }
  BITFUSION_ASSIGN_OR_RETURN(options.sink, ResultSinkOptions::FromUri(uri));
  return options;
}

namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// Text PostgreSQL can hold: valid UTF-8 without NUL.
std::string PgText(std::string_view text) {
  std::string valid = internal::ValidUtf8(text);
  if (valid.find('\0') == std::string::npos) return valid;
  std::string out;
  for (const char c : valid) {
    if (c == '\0') {
      out += kReplacement;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

// jsonb cannot hold \u0000 either: JSON text with the escape (not an escaped backslash
// followed by "u0000") gets U+FFFD's instead.
std::string PgJson(std::string json) {
  for (std::size_t at = 0; (at = json.find("\\u0000", at)) != std::string::npos; at += 6) {
    std::size_t backslashes = 0;
    while (at >= backslashes + 1 && json[at - backslashes - 1] == '\\') ++backslashes;
    if (backslashes % 2 == 0) json.replace(at, 6, "\\ufffd");
  }
  return PgText(json);
}

std::string PgLabels(const Labels& labels) {
  Labels clean;
  for (const auto& [k, v] : labels) clean[PgText(k)] = PgText(v);
  std::string out;
  internal::AppendJsonLabels(out, clean);
  return out;
}

std::string QuoteIdent(std::string_view name) {
  std::string out = "\"";
  for (const char c : name) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  return out + "\"";
}

std::string Float8(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
  std::string out;
  internal::AppendDouble(out, v);
  return out;
}

struct PgResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using PgResult = std::unique_ptr<PGresult, PgResultDeleter>;

// The sink's schema; %s is the quoted schema name. Keep in step with postgres_sink.h.
constexpr const char* kSchema = R"sql(
CREATE SCHEMA IF NOT EXISTS %s;
CREATE TABLE IF NOT EXISTS %s.machines (
  machine_id text PRIMARY KEY, hostname text NOT NULL, fingerprint jsonb NOT NULL,
  first_seen_ns bigint NOT NULL, last_seen_ns bigint NOT NULL);
CREATE TABLE IF NOT EXISTS %s.runs (
  run_id text PRIMARY KEY, plan text NOT NULL, plan_run_id text NOT NULL, benchmark text NOT NULL,
  repetition integer NOT NULL, warmup boolean NOT NULL, machine_id text, runner text NOT NULL,
  image text NOT NULL, image_digest text NOT NULL, status text NOT NULL, error text NOT NULL,
  exit_code integer NOT NULL, signal integer NOT NULL, timed_out boolean NOT NULL,
  oom_killed boolean NOT NULL, start_ns bigint NOT NULL, end_ns bigint NOT NULL,
  wall_time_ns bigint NOT NULL, user_cpu_ns bigint NOT NULL, system_cpu_ns bigint NOT NULL,
  max_rss_bytes bigint NOT NULL, observer_cpu_ns bigint NOT NULL, observer_samples bigint NOT NULL,
  observer_samples_dropped bigint NOT NULL, observer_interval_ns bigint NOT NULL,
  labels jsonb NOT NULL, record jsonb NOT NULL);
CREATE INDEX IF NOT EXISTS runs_plan_run_id ON %s.runs (plan_run_id);
CREATE TABLE IF NOT EXISTS %s.results (
  run_id text NOT NULL, metric text NOT NULL, value double precision, unit text NOT NULL,
  labels jsonb NOT NULL, timestamp_ns bigint NOT NULL, monotonic_ns bigint NOT NULL);
CREATE INDEX IF NOT EXISTS results_run_id ON %s.results (run_id);
CREATE TABLE IF NOT EXISTS %s.series (
  series_id bigserial PRIMARY KEY, series_key text NOT NULL UNIQUE, metric text NOT NULL,
  unit text NOT NULL, labels jsonb NOT NULL);
CREATE TABLE IF NOT EXISTS %s.samples (
  series_id bigint NOT NULL, timestamp_ns bigint NOT NULL, monotonic_ns bigint NOT NULL,
  value double precision, PRIMARY KEY (series_id, timestamp_ns));
)sql";

std::string WithSchema(const char* sql, const std::string& schema) {
  std::string out;
  for (const char* p = sql; *p != '\0'; ++p) {
    if (p[0] == '%' && p[1] == 's') {
      out += schema;
      ++p;
    } else {
      out.push_back(*p);
    }
  }
  return out;
}

}  // namespace

struct PostgresSink::Db {
  const PostgresSinkOptions& options;
  PGconn* conn = nullptr;
  bool ready = false;  // connected, schema made, statements prepared, staging table made
  std::string schema;  // quoted
  std::unordered_map<std::string, std::int64_t> series_ids;  // series_key -> series_id
  std::vector<std::string> new_series;                       // added in the open transaction
  std::vector<std::int64_t> batch_ids;
  std::string copy_buffer;

  explicit Db(const PostgresSinkOptions& o) : options(o), schema(QuoteIdent(o.schema)) {}
  ~Db() { Disconnect(); }

  void Disconnect() {
    if (conn != nullptr) PQfinish(conn);
    conn = nullptr;
    ready = false;
  }

  std::string Where() const { return "PostgreSQL " + options.redacted_uri; }

  // What a person (and the base's retry policy) can do about an error decides the code.
  Status Error(const PGresult* result, std::string_view what) {
    const char* state = result != nullptr ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : nullptr;
    std::string detail = result != nullptr ? PQresultErrorMessage(result) : "";
    if (detail.empty() && conn != nullptr) detail = PQerrorMessage(conn);
    while (!detail.empty() && (detail.back() == '\n' || detail.back() == ' ')) detail.pop_back();
    const std::string message = Where() + ": " + std::string(what) + ": " + detail;
    const std::string code = state != nullptr ? state : "";
    if (conn == nullptr || PQstatus(conn) != CONNECTION_OK) {
      ready = false;  // made again on the next attempt
      return UnavailableError(message);
    }
    if (code.rfind("28", 0) == 0) {
      return PermissionDeniedError(message + " (check the user, password and pg_hba.conf)");
    }
    // Data exceptions and integrity violations (a CHECK a DBA added, say): the data is refused.
    if (code.rfind("22", 0) == 0 || code.rfind("23", 0) == 0) return InvalidArgumentError(message);
    if (code.rfind("42", 0) == 0) {
      return FailedPreconditionError(message +
                                     " (is the schema one this bitfusion made? choose another "
                                     "with schema=)");
    }
    return UnavailableError(message);
  }

  Result<PgResult> Exec(const std::string& sql, std::string_view what,
                        ExecStatusType want = PGRES_COMMAND_OK) {
    PgResult r(PQexec(conn, sql.c_str()));
    if (PQresultStatus(r.get()) != want) return Error(r.get(), what);
    return r;
  }

  Result<PgResult> ExecPrepared(const char* name,
                                const std::vector<std::optional<std::string>>& params,
                                std::string_view what, ExecStatusType want = PGRES_COMMAND_OK) {
    std::vector<const char*> values;
    values.reserve(params.size());
    for (const auto& p : params) values.push_back(p ? p->c_str() : nullptr);
    PgResult r(PQexecPrepared(conn, name, static_cast<int>(values.size()), values.data(), nullptr,
                              nullptr, 0));
    if (PQresultStatus(r.get()) != want) return Error(r.get(), what);
    return r;
  }

  Status Prepare(const char* name, const std::string& sql) {
    PgResult r(PQprepare(conn, name, sql.c_str(), 0, nullptr));
    if (PQresultStatus(r.get()) != PGRES_COMMAND_OK) {
      return Error(r.get(), std::string("preparing ") + name);
    }
    return Status::OK();
  }

  Status Connect() {
    if (ready && PQstatus(conn) == CONNECTION_OK) return Status::OK();
    Disconnect();
    std::vector<const char*> keys;
    std::vector<const char*> values;
    for (const auto& [k, v] : options.connection) {
      keys.push_back(k.c_str());
      values.push_back(v.c_str());
    }
    keys.push_back(nullptr);
    values.push_back(nullptr);
    conn = PQconnectdbParams(keys.data(), values.data(), 0);
    if (conn == nullptr || PQstatus(conn) != CONNECTION_OK) {
      std::string detail = conn != nullptr ? PQerrorMessage(conn) : "out of memory";
      while (!detail.empty() && detail.back() == '\n') detail.pop_back();
      Disconnect();
      if (detail.find("password authentication failed") != std::string::npos ||
          detail.find("no pg_hba.conf entry") != std::string::npos) {
        return PermissionDeniedError("cannot log in to " + Where() + ": " + detail +
                                     "; check the user and password");
      }
      return UnavailableError("cannot connect to " + Where() + ": " + detail +
                              "; is it running, and is the address right?");
    }
    // Server notices ("relation already exists, skipping") are not the user's business.
    PQsetNoticeProcessor(
        conn, [](void*, const char*) {}, nullptr);
    // Two sinks may make the schema at once: one at a time, under a lock named by it.
    BITFUSION_RETURN_IF_ERROR(Exec("BEGIN", "starting a transaction").status());
    Status made = [&]() -> Status {
      BITFUSION_RETURN_IF_ERROR(
          Exec("SELECT pg_advisory_xact_lock(4342007, hashtext(" + Literal(options.schema) + "))",
               "locking the schema", PGRES_TUPLES_OK)
              .status());
      BITFUSION_RETURN_IF_ERROR(
          Exec(WithSchema(kSchema, schema), "creating the schema " + schema).status());
      return Exec("COMMIT", "committing the schema").status();
    }();
    if (!made.ok()) {
      Exec("ROLLBACK", "rolling back").status().ok();
      return made;
    }
    BITFUSION_RETURN_IF_ERROR(
        Exec("CREATE TEMP TABLE IF NOT EXISTS bf_staging (series_id bigint, timestamp_ns bigint, "
             "monotonic_ns bigint, value double precision) ON COMMIT DELETE ROWS",
             "creating the staging table")
            .status());
    struct {
      const char* name;
      const char* sql;
    } statements[] = {
        {"bf_series",
         "INSERT INTO %s.series (series_key, metric, unit, labels) VALUES ($1, $2, $3, $4) "
         "ON CONFLICT (series_key) DO UPDATE SET series_key = EXCLUDED.series_key "
         "RETURNING series_id"},
        {"bf_sample",
         "INSERT INTO %s.samples (series_id, timestamp_ns, monotonic_ns, value) "
         "VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING"},
        {"bf_move", "INSERT INTO %s.samples SELECT * FROM bf_staging ON CONFLICT DO NOTHING"},
        {"bf_machine",
         "INSERT INTO %s.machines (machine_id, hostname, fingerprint, first_seen_ns, "
         "last_seen_ns) VALUES ($1, $2, $3, $4, $4) ON CONFLICT (machine_id) DO UPDATE SET "
         "first_seen_ns = least(machines.first_seen_ns, EXCLUDED.first_seen_ns), "
         "last_seen_ns = greatest(machines.last_seen_ns, EXCLUDED.last_seen_ns)"},
        {"bf_delete_results", "DELETE FROM %s.results WHERE run_id = $1"},
        {"bf_delete_run", "DELETE FROM %s.runs WHERE run_id = $1"},
        {"bf_run",
         "INSERT INTO %s.runs (run_id, plan, plan_run_id, benchmark, repetition, warmup, "
         "machine_id, runner, image, image_digest, status, error, exit_code, signal, timed_out, "
         "oom_killed, start_ns, end_ns, wall_time_ns, user_cpu_ns, system_cpu_ns, max_rss_bytes, "
         "observer_cpu_ns, observer_samples, observer_samples_dropped, observer_interval_ns, "
         "labels, record) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, "
         "$15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28)"},
        {"bf_result",
         "INSERT INTO %s.results (run_id, metric, value, unit, labels, timestamp_ns, "
         "monotonic_ns) VALUES ($1, $2, $3, $4, $5, $6, $7)"},
    };
    for (const auto& [name, sql] : statements) {
      BITFUSION_RETURN_IF_ERROR(Prepare(name, WithSchema(sql, schema)));
    }
    ready = true;
    return Status::OK();
  }

  std::string Literal(const std::string& text) {
    char* escaped = PQescapeLiteral(conn, text.data(), text.size());
    std::string out = escaped != nullptr ? escaped : "''";
    PQfreemem(escaped);
    return out;
  }

  void Rollback() {
    if (conn != nullptr && PQstatus(conn) == CONNECTION_OK &&
        PQtransactionStatus(conn) != PQTRANS_IDLE) {
      PgResult r(PQexec(conn, "ROLLBACK"));
    }
    for (const std::string& key : new_series) series_ids.erase(key);
    new_series.clear();
  }

  Status Commit() {
    BITFUSION_RETURN_IF_ERROR(Exec("COMMIT", "committing").status());
    new_series.clear();
    return Status::OK();
  }

  // Fills batch_ids with the series_id of each series of `batch`, adding new series.
  Status ResolveSeries(const SampleBatch& batch) {
    batch_ids.resize(batch.series.size());
    Labels merged;
    for (std::size_t s = 0; s < batch.series.size(); ++s) {
      const Series& series = batch.series[s];
      merged = batch.labels;
      for (const auto& [k, v] : series.labels) merged[k] = v;
      const std::string metric = PgText(series.metric);
      const std::string unit = PgText(series.unit);
      const std::string labels = PgLabels(merged);
      // JSON strings are self-delimiting, so the concatenation is unambiguous.
      std::string canonical;
      internal::AppendJsonString(canonical, metric);
      internal::AppendJsonString(canonical, unit);
      canonical += labels;
      std::string key = internal::Sha256Hex(canonical);
      if (auto it = series_ids.find(key); it != series_ids.end()) {
        batch_ids[s] = it->second;
        continue;
      }
      BITFUSION_ASSIGN_OR_RETURN(PgResult r,
                                 ExecPrepared("bf_series", {key, metric, unit, labels},
                                              "adding series " + metric, PGRES_TUPLES_OK));
      batch_ids[s] = std::atoll(PQgetvalue(r.get(), 0, 0));
      series_ids.emplace(key, batch_ids[s]);
      new_series.push_back(std::move(key));
    }
    return Status::OK();
  }

  // COPYs the samples into the staging table; `ids` holds each batch's series ids, resolved
  // beforehand (no other statement may run during a COPY).
  Status Copy(const std::vector<SampleBatch>& batches,
              const std::vector<std::vector<std::int64_t>>& ids) {
    BITFUSION_RETURN_IF_ERROR(
        Exec("COPY bf_staging FROM STDIN", "starting COPY", PGRES_COPY_IN).status());
    auto flush = [&]() -> Status {
      if (PQputCopyData(conn, copy_buffer.data(), static_cast<int>(copy_buffer.size())) != 1) {
        return Error(nullptr, "sending COPY data");
      }
      copy_buffer.clear();
      return Status::OK();
    };
    copy_buffer.clear();
    Status status;
    for (std::size_t b = 0; b < batches.size(); ++b) {
      const SampleBatch& batch = batches[b];
      for (std::size_t i = 0; i < batch.size(); ++i) {
        internal::AppendInt(copy_buffer, ids[b][batch.series_index[i]]);
        copy_buffer.push_back('\t');
        internal::AppendInt(copy_buffer, batch.timestamp_ns[i]);
        copy_buffer.push_back('\t');
        internal::AppendInt(copy_buffer, batch.monotonic_ns[i]);
        copy_buffer.push_back('\t');
        copy_buffer += Float8(batch.value[i]);
        copy_buffer.push_back('\n');
      }
      if (copy_buffer.size() >= (std::size_t{1} << 20)) {
        status = flush();
        if (!status.ok()) break;
      }
    }
    if (status.ok() && !copy_buffer.empty()) status = flush();
    if (PQputCopyEnd(conn, status.ok() ? nullptr : "bitfusion gave up") != 1 && status.ok()) {
      status = Error(nullptr, "ending COPY");
    }
    PgResult r(PQgetResult(conn));
    if (status.ok() && PQresultStatus(r.get()) != PGRES_COMMAND_OK) {
      status = Error(r.get(), "copying samples");
    }
    while (PGresult* more = PQgetResult(conn)) PQclear(more);
    if (copy_buffer.capacity() > (std::size_t{16} << 20)) std::string().swap(copy_buffer);
    return status;
  }
};

PostgresSink::PostgresSink(const PostgresSinkOptions& options)
    : ResultSink(options.redacted_uri, options.sink),
      options_(options),
      db_(std::make_unique<Db>(options_)) {}

PostgresSink::~PostgresSink() { CloseOnDestroy(); }

Result<std::shared_ptr<PostgresSink>> PostgresSink::Make(const PostgresSinkOptions& options) {
  auto sink = std::shared_ptr<PostgresSink>(new PostgresSink(options));
  BITFUSION_RETURN_IF_ERROR(sink->OpenSpool());
  return sink;
}

Status PostgresSink::WriteSamples(const std::vector<SampleBatch>& batches) {
  Db& db = *db_;
  BITFUSION_RETURN_IF_ERROR(db.Connect());
  BITFUSION_RETURN_IF_ERROR(db.Exec("BEGIN", "starting a transaction").status());
  Status status = [&]() -> Status {
    std::vector<std::vector<std::int64_t>> ids;
    for (const SampleBatch& batch : batches) {
      BITFUSION_RETURN_IF_ERROR(db.ResolveSeries(batch));
      ids.push_back(db.batch_ids);
    }
    BITFUSION_RETURN_IF_ERROR(db.Copy(batches, ids));
    BITFUSION_RETURN_IF_ERROR(db.ExecPrepared("bf_move", {}, "storing samples").status());
    return db.Commit();
  }();
  if (status.ok()) return status;
  db.Rollback();
  if (status.code() != StatusCode::kInvalidArgument) return status;

  // PostgreSQL refused some of the data itself: one sample at a time, so that only what it
  // refuses is left out.
  LogAt(LogLevel::kWarning, "sink ", uri(), ": ", status.message(),
        "; storing this call's samples one at a time to keep the others");
  std::int64_t dropped = 0;
  std::string reason;
  for (const SampleBatch& batch : batches) {
    BITFUSION_RETURN_IF_ERROR(db.ResolveSeries(batch));
    db.new_series.clear();  // committed one by one
    for (std::size_t i = 0; i < batch.size(); ++i) {
      Status one = db.ExecPrepared("bf_sample",
                                   {std::to_string(db.batch_ids[batch.series_index[i]]),
                                    std::to_string(batch.timestamp_ns[i]),
                                    std::to_string(batch.monotonic_ns[i]), Float8(batch.value[i])},
                                   "storing a sample")
                       .status();
      if (one.code() == StatusCode::kInvalidArgument) {
        ++dropped;
        if (reason.empty()) reason = one.message();
      } else if (!one.ok()) {
        return one;
      }
    }
  }
  RecordDropped(dropped, reason);
  return Status::OK();
}

Status PostgresSink::WriteRun(const RunRecord& record) {
  Db& db = *db_;
  const std::string record_json = internal::RunRecordJson(record, false);
  const internal::MachineIdentity machine = internal::IdentifyMachine(record.machine);
  BITFUSION_RETURN_IF_ERROR(db.Connect());
  BITFUSION_RETURN_IF_ERROR(db.Exec("BEGIN", "starting a transaction").status());
  Status status = [&]() -> Status {
    const std::string run_id = PgText(record.run_id);
    if (!machine.machine_id.empty()) {
      const std::int64_t seen = record.exit.start_ns > 0 ? record.exit.start_ns : WallNowNs();
      BITFUSION_RETURN_IF_ERROR(
          db.ExecPrepared("bf_machine",
                          {PgText(machine.machine_id), PgText(record.machine.hostname),
                           PgJson(machine.fingerprint_json), std::to_string(seen)},
                          "storing machine " + machine.machine_id)
              .status());
    }
    BITFUSION_RETURN_IF_ERROR(
        db.ExecPrepared("bf_delete_results", {run_id}, "replacing run " + run_id).status());
    BITFUSION_RETURN_IF_ERROR(
        db.ExecPrepared("bf_delete_run", {run_id}, "replacing run " + run_id).status());
    const ExitStatus& exit = record.exit;
    auto boolean = [](bool b) { return std::string(b ? "true" : "false"); };
    std::vector<std::optional<std::string>> params = {
        run_id,
        PgText(record.plan),
        PgText(record.plan_run_id),
        PgText(record.benchmark),
        std::to_string(record.repetition),
        boolean(record.warmup),
        machine.machine_id.empty() ? std::nullopt
                                   : std::optional<std::string>(PgText(machine.machine_id)),
        PgText(record.runner),
        PgText(record.image),
        PgText(record.image_digest),
        PgText(record.status),
        PgText(record.error),
        std::to_string(exit.exit_code),
        std::to_string(exit.signal),
        boolean(exit.timed_out),
        boolean(exit.oom_killed),
    };
    for (const std::int64_t v :
         {exit.start_ns, exit.end_ns, exit.wall_time_ns, exit.usage.user_cpu_ns,
          exit.usage.system_cpu_ns, exit.usage.max_rss_bytes, record.overhead.cpu_ns,
          record.overhead.samples, record.overhead.samples_dropped, record.overhead.interval_ns}) {
      params.push_back(std::to_string(v));
    }
    params.push_back(PgLabels(record.labels));
    params.push_back(PgJson(record_json));
    BITFUSION_RETURN_IF_ERROR(db.ExecPrepared("bf_run", params, "storing run " + run_id).status());
    for (const Sample& r : record.results) {
      BITFUSION_RETURN_IF_ERROR(
          db.ExecPrepared(
                "bf_result",
                {run_id, PgText(r.metric), Float8(r.value), PgText(r.unit), PgLabels(r.metadata),
                 std::to_string(r.timestamp_ns), std::to_string(r.monotonic_ns)},
                "storing a result of run " + run_id)
              .status());
    }
    return db.Commit();
  }();
  if (status.ok()) return status;
  db.Rollback();
  if (status.code() == StatusCode::kInvalidArgument) {
    // Data PostgreSQL will never take: sending it again would block everything behind it.
    LogAt(LogLevel::kError, "sink ", uri(), ": run ", record.run_id,
          " is not stored, PostgreSQL refuses it: ", status.message());
    return Status::OK();
  }
  return status;
}

Status PostgresSink::CloseBackend(Deadline) {
  db_->Disconnect();
  return Status::OK();
}

BITFUSION_REGISTER(ResultSink, "postgres", PostgresSinkOptions, PostgresSink);
BITFUSION_REGISTER(ResultSink, "postgresql", PostgresSinkOptions, PostgresSink);

}  // namespace bitfusion
