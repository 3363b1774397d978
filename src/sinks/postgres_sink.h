// postgres://USER[:PASSWORD]@HOST[:PORT]/DB (also postgresql://) — PostgreSQL through libpq,
// samples in batches with COPY. Durable: a spool in front, retries with backoff (result_sink.h).
// HOST may be a unix-socket directory, percent-encoded: postgres://me@%2Frun%2Fpostgresql/db.
//
// TLS: to a host other than this machine (not a unix socket, localhost, 127.x or ::1) the sink
// asks libpq for sslmode=verify-full (an encrypted connection to a server whose certificate
// names HOST and chains to sslrootcert=FILE, default ~/.postgresql/root.crt), not libpq's
// default "prefer", which anyone on the path can downgrade. `sslmode=` in the URI, or
// PGSSLMODE in the environment, chooses otherwise (sslmode=require: encrypted, unverified;
// sslmode=disable: plain). Local connections keep libpq's default.
//
// Schema, in the schema named by `schema=` (default "public"), created if missing; the same
// tables as sqlite:// (docs/sqlite-schema.md) in PostgreSQL's types:
//
//   machines (machine_id text PRIMARY KEY, hostname text, fingerprint jsonb, first_seen_ns bigint,
//             last_seen_ns bigint)
//   runs     (run_id text PRIMARY KEY, plan, plan_run_id, benchmark text, repetition int,
//             warmup boolean, machine_id text, runner, image, image_digest, status, error text,
//             exit_code, signal int, timed_out, oom_killed boolean, start_ns, end_ns,
//             wall_time_ns, user_cpu_ns, system_cpu_ns, max_rss_bytes, observer_cpu_ns,
//             observer_samples, observer_samples_dropped, observer_interval_ns bigint,
//             labels jsonb, record jsonb)               writing a run again replaces it
//   results  (run_id, metric text, value double precision, unit text, labels jsonb,
//             timestamp_ns, monotonic_ns bigint)        index on run_id
//   series   (series_id bigserial PRIMARY KEY, series_key text UNIQUE, metric text, unit text,
//             labels jsonb)   series_key: SHA-256 hex of the canonical (metric, unit, labels)
//   samples  (series_id bigint, timestamp_ns bigint, monotonic_ns bigint,
//             value double precision, PRIMARY KEY (series_id, timestamp_ns))
//
// - Exactly once: a sample is identified by its series and timestamp; the sink COPYs a call's
//   samples into a temporary table and moves them with INSERT ... ON CONFLICT DO NOTHING, so a
//   sample sent again (a retry, a replayed spool) is stored once. A second, different sample of
//   one series at one timestamp is not stored either: the first wins.
// - NaN and ±infinity are stored as PostgreSQL's own NaN, Infinity and -Infinity.
// - Text: invalid UTF-8 is replaced by U+FFFD, as in every sink, and so is the NUL character,
//   which PostgreSQL text cannot hold.
// - Each backend call is one transaction. If PostgreSQL refuses the data itself (a data
//   exception, which the encoding above should make impossible, or a constraint someone added),
//   the call is repeated one sample at a time, and only the samples it refuses are dropped
//   (counted and logged). A run record it refuses is logged and not stored.
//
// The connection is made, and the schema created, on the first write, not in Make: a server that
// is down when the sink starts is an outage like any other. A lost connection is made again on
// the next attempt.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "bitfusion/result_sink.h"

namespace bitfusion {

struct PostgresSinkOptions {
  /// libpq connection keywords (host, port, dbname, user, password, sslmode, ...).
  std::vector<std::pair<std::string, std::string>> connection;
  /// Schema for the tables (query key `schema`, default "public"); created if missing.
  std::string schema = "public";
  ResultSinkOptions sink;
  std::string redacted_uri;

  /// postgres://USER:PASSWORD@HOST:PORT/DB?schema=…&sslmode=…&sslrootcert=…&connect_timeout=…
  /// &application_name=…&spool=…&batch_samples=…
  static Result<PostgresSinkOptions> FromUri(const Uri& uri);
};

/// Stores samples and run records in PostgreSQL; see the top of this header.
class PostgresSink final : public ResultSink {
 public:
  static Result<std::shared_ptr<PostgresSink>> Make(const PostgresSinkOptions& options);
  ~PostgresSink() override;

 private:
  struct Db;  // the libpq connection and caches; keeps libpq-fe.h out of this header

  explicit PostgresSink(const PostgresSinkOptions& options);
  Status WriteSamples(const std::vector<SampleBatch>& batches) override;
  Status WriteRun(const RunRecord& record) override;
  Status CloseBackend(Deadline deadline) override;

  const PostgresSinkOptions options_;
  std::unique_ptr<Db> db_;
};

}  // namespace bitfusion
