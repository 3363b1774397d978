// influx://HOST:PORT/DB, influx+https://USER:PASSWORD@HOST:PORT/DB — InfluxDB 1.x, line protocol
// over HTTP (POST /write?db=DB&precision=ns). Durable: a spool in front, retries with backoff
// (result_sink.h).
//
// A sample becomes one point:
//
//   cpu.user,cpu=0,run=r1,unit=s value=1.5,monotonic_ns=5123456789i 1700000000123456789
//
// - measurement = metric; tags = the batch's labels merged with the series' own, plus `unit`;
//   fields `value` (float) and `monotonic_ns` (integer); the timestamp in nanoseconds.
// - Exactly once: InfluxDB identifies a point by measurement, tags and timestamp, so a point
//   sent again (a retry, a replayed spool) overwrites itself. Two different samples of one
//   series at one timestamp are one point too: the later wins.
// - NaN and ±infinity are not line-protocol numbers: such a point has no `value` field and a
//   string field `value_text` ("NaN", "Infinity", "-Infinity") instead.
// - Text: invalid UTF-8 is replaced by U+FFFD as in every sink; so are CR and LF (a point is one
//   line) and a backslash that would end a measurement, tag key or tag value (line protocol
//   cannot end one in a backslash). A label whose key or value is empty is not stored (InfluxDB
//   refuses empty tags); label keys `time` and `unit` (reserved) are stored as `_time`, `_unit`.
//   A measurement, tag key or tag value longer than 1024 bytes is cut to 1000 bytes plus "~" and
//   16 hex digits of its SHA-256, so different long labels stay different series and the series
//   key stays under InfluxDB's 64 KiB limit.
// - A point InfluxDB still refuses (its answer is 400 "partial write") is counted as dropped and
//   logged with InfluxDB's reason; the other points of the request are stored.
//
// A run record becomes a point of measurement `bitfusion_run` (tags run_id, benchmark, plan,
// plan_run_id; fields status, error, repetition, warmup, exit_code, signal, wall_time_ns,
// start_ns, end_ns, user_cpu_ns, system_cpu_ns, max_rss_bytes, observer_* and `record`, the
// whole record as JSON) at its start time, and each result a point of `bitfusion_result` (tags
// run_id, benchmark, metric, unit and the result's metadata; fields as for samples) at its own
// timestamp. Writing a run again overwrites it.
//
// The database is created (CREATE DATABASE, which is idempotent) before the first write, not in
// Make: a store that is down when the sink starts is an outage like any other.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "bitfusion/result_sink.h"
#include "sinks/http_sink_internal.h"

namespace bitfusion {

struct InfluxSinkOptions {
  /// Host, port (default 8086), credentials, TLS (`ca=FILE`), `gzip`, `timeout`.
  internal::HttpSinkTarget http;
  std::string database;
  /// Retention policy to write into (query key `rp`); empty = the database's default.
  std::string retention_policy;
  /// Send CREATE DATABASE before the first write (query key `create_db`, default true); off for
  /// users without admin rights on a database that exists.
  bool create_database = true;
  /// Largest request body, in bytes (query key `request_bytes`, default 4 MiB; InfluxDB's
  /// default limit is 25 MB).
  std::size_t request_bytes = std::size_t{4} << 20;
  ResultSinkOptions sink;
  std::string redacted_uri;

  /// influx://HOST:PORT/DB?rp=…&create_db=…&gzip=…&timeout=…&ca=…&spool=…&batch_samples=…
  static Result<InfluxSinkOptions> FromUri(const Uri& uri);
};

/// Writes samples and run records to InfluxDB 1.x; see the top of this header.
class InfluxSink final : public ResultSink {
 public:
  static Result<std::shared_ptr<InfluxSink>> Make(const InfluxSinkOptions& options);
  ~InfluxSink() override;

 private:
  InfluxSink(const InfluxSinkOptions& options, std::unique_ptr<net::HttpClient> client);
  Status WriteSamples(const std::vector<SampleBatch>& batches) override;
  Status WriteRun(const RunRecord& record) override;
  Status EnsureDatabase();
  Status Post(std::string& lines, std::int64_t points);

  const InfluxSinkOptions options_;
  std::unique_ptr<net::HttpClient> client_;
  std::string write_target_;
  bool database_ready_ = false;
  std::string body_;  // reused between calls
};

namespace internal {

/// Line-protocol encoding, exposed for tests.
class InfluxEncoder {
 public:
  /// Appends one line per sample of `batch`; returns how many lines.
  std::size_t Append(const SampleBatch& batch, std::string& out);
  /// Appends the lines that stand for a run record.
  void AppendRun(const RunRecord& record, std::string& out);

  /// Appends a measurement, tag key or tag value with line protocol's escapes (`equals`: '='
  /// is escaped too, as in tag keys and values).
  static void AppendName(std::string& out, std::string_view text, bool equals);
  /// Appends ",key=value" for each label worth storing (see the top of influx_sink.h).
  static void AppendTags(std::string& out, const Labels& labels);
  /// Appends `"text"` as a string field value.
  static void AppendStringField(std::string& out, std::string_view text);

 private:
  std::vector<std::string> prefix_;  // per series: measurement,tags value=
  Labels merged_;
};

}  // namespace internal

}  // namespace bitfusion
