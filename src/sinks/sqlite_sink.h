// sqlite://PATH — the embedded default store: one SQLite file holding samples, run records and
// the machines they ran on. "sqlite://out/r.db" is the relative path out/r.db,
// "sqlite:///abs/r.db" an absolute one. docs/sqlite-schema.md has the same schema with queries.
//
// Schema, version 1 (PRAGMA user_version = 1, PRAGMA application_id = 0x42467573, "BFus"):
//
//   machines   one row per distinct machine fingerprint
//     machine_id     TEXT PRIMARY KEY   "<id or hostname>-<16 hex of SHA-256(fingerprint)>"
//     hostname       TEXT NOT NULL
//     fingerprint    TEXT NOT NULL      MachineInfo as JSON without the fields that change while
//                                       the hardware does not: address, state, labels,
//                                       ssh, the lifecycle timestamps (*_ns)
//     first_seen_ns  INTEGER NOT NULL   earliest / latest start of a run on it (ns since the
//     last_seen_ns   INTEGER NOT NULL   epoch; the write time when a run has no start)
//
//   runs       one row per RunRecord; writing a run_id again replaces the run and its results
//     run_id TEXT PRIMARY KEY, plan, plan_run_id, benchmark TEXT, repetition INTEGER,
//     warmup INTEGER (0/1), machine_id TEXT (NULL when the record names no machine), runner,
//     image, image_digest, status, error TEXT, exit_code, signal, timed_out (0/1),
//     oom_killed (0/1), start_ns, end_ns, wall_time_ns, user_cpu_ns, system_cpu_ns,
//     max_rss_bytes, observer_cpu_ns, observer_samples, observer_samples_dropped,
//     observer_interval_ns INTEGER, labels TEXT (JSON object),
//     record TEXT (the whole RunRecord as JSON, as the JSONL sink writes it)
//     index runs_plan_run_id (plan_run_id)
//
//   results    the metrics a run reported
//     run_id TEXT NOT NULL, metric TEXT NOT NULL, value REAL, unit TEXT NOT NULL,
//     labels TEXT NOT NULL (JSON object), timestamp_ns INTEGER NOT NULL,
//     monotonic_ns INTEGER NOT NULL
//     index results_run_id (run_id)
//
//   series     one row per distinct (metric, unit, labels)
//     series_id INTEGER PRIMARY KEY, metric TEXT NOT NULL, unit TEXT NOT NULL,
//     labels TEXT NOT NULL   canonical JSON: compact, keys sorted, the batch's labels merged with
//                            the series' own (the series wins)
//     UNIQUE (metric, unit, labels)
//
//   samples    the time series, one row per sample, in the order written
//     series_id INTEGER NOT NULL, timestamp_ns INTEGER NOT NULL, monotonic_ns INTEGER NOT NULL,
//     value REAL
//     no index by default (see samples_index below)
//
// Values: NaN is stored as NULL (SQLite has no NaN); ±infinity is stored as the REAL ±Inf. Text
// that is not valid UTF-8 has each bad sequence replaced by U+FFFD, as in the JSONL sink.
// REFERENCES are documentation only: foreign keys are not enforced, as that would cost a lookup
// per inserted sample.
//
// Writing: journal_mode=WAL and synchronous=NORMAL, so readers never block the writer and a
// commit does not wait for the disk; each backend call is one transaction (BEGIN IMMEDIATE …
// COMMIT) over prepared statements, and a failed call is rolled back whole, so the samples the
// base class keeps for the retry are not stored twice. Flush() checkpoints the WAL and fsyncs
// it: what was flushed survives a power cut. Series ids are cached in memory and found
// or added on first sight, also across sinks reopening the same file. Other processes may read
// the file at any time, and may write to it too (they wait up to busy_timeout for the lock).
//
// Make opens the file, creates the schema and takes the write lock once, so a path that cannot
// be written (missing directory, read-only file or directory, not a database, a newer schema)
// fails before any run, with the path in the message.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "bitfusion/result_sink.h"

namespace bitfusion {

struct SqliteSinkOptions {
  /// Database file; created with the schema if missing; its directory must exist and be
  /// writable (SQLite puts its -wal and -shm files beside it).
  std::filesystem::path path;
  /// Keep a UNIQUE index on samples(series_id, timestamp_ns) (query key `samples_index`,
  /// default false). It makes per-series time-range queries fast and stores each sample once
  /// however often it is written (a re-import, a replay); it halves insert speed with a few
  /// series, more with many (numbers in docs/sqlite-schema.md). Once created it stays; after
  /// the runs is the cheap time to add it, with the statements in docs/sqlite-schema.md.
  bool samples_index = false;
  /// How long to wait for another process that holds the write lock (query key
  /// `busy_timeout`, default 5s).
  std::chrono::milliseconds busy_timeout = std::chrono::seconds(5);
  ResultSinkOptions sink;

  /// sqlite://PATH?samples_index=true&busy_timeout=10s&batch_samples=…&max_delay=…
  static Result<SqliteSinkOptions> FromUri(const Uri& uri);
};

/// Stores samples and run records in a SQLite file; the schema is described at the top of this
/// header.
class SqliteSink final : public ResultSink {
 public:
  static Result<std::shared_ptr<SqliteSink>> Make(const SqliteSinkOptions& options);
  ~SqliteSink() override;

 private:
  struct Db;  // the connection and its statements; keeps sqlite3.h out of this header

  SqliteSink(const SqliteSinkOptions& options, std::unique_ptr<Db> db);
  Status WriteSamples(const std::vector<SampleBatch>& batches) override;
  Status WriteRun(const RunRecord& record) override;
  Status SyncBackend(Deadline deadline) override;
  Status CloseBackend(Deadline deadline) override;

  const SqliteSinkOptions options_;
  std::unique_ptr<Db> db_;
};

}  // namespace bitfusion
