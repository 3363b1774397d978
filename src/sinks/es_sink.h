// es://HOST:PORT/INDEX, es+https://USER:PASSWORD@HOST:PORT/INDEX — Elasticsearch 7.x and 8.x
// (and OpenSearch), the _bulk API with NDJSON bodies. Durable: a spool in front, retries with
// backoff (result_sink.h).
//
// A sample becomes one document, with PerfKit Benchmarker's field names, so dashboards built on
// PerfKit's published samples work unchanged:
//
//   {"metric":"cpu.user","value":1.5,"unit":"s","metadata":{"cpu":"0","run":"r1"},
//    "timestamp":"2023-11-14T22:13:20.123456789Z","timestamp_ns":1700000000123456789,
//    "monotonic_ns":5123456789}
//
// - metadata: the batch's labels merged with the series' own. Elasticsearch reads a dot in a
//   field name as a path ("gpu.model" is field "model" of object "gpu"), so labels "gpu" and
//   "gpu.model" together would make "gpu" both a value and an object and the document would be
//   refused: dots in label keys become '_' ("gpu_model"); if that name is taken by another
//   label, '_' is added until it is free. An empty (or all-blank) key gets a '_' in front.
// - timestamp: date_nanos, RFC 3339 with nine fractional digits, UTC; timestamp_ns keeps the
//   exact integer. Elasticsearch cannot store dates before 1970 at nanosecond resolution: such a
//   sample is refused by the store (counted as dropped, logged) and its neighbours are kept.
// - NaN and ±infinity are not JSON numbers: "value":null and "value_text" ("NaN", "Infinity",
//   "-Infinity"), as in the JSONL sink. Invalid UTF-8 becomes U+FFFD.
// - _id: 32 hex digits derived from the series (metric, unit, labels) and the timestamp, so a
//   document sent again (a retry, a replayed spool) replaces itself: the index holds each sample
//   once. Two different samples of one series at one timestamp are one document: the later wins.
// - Index: INDEX, or with `index_per=day` INDEX-YYYY.MM.DD (UTC, from each sample's timestamp),
//   `index_per=month` INDEX-YYYY.MM, `index_per=run` INDEX-<the sample's "run" label, ASCII
//   lower-cased, every character but a-z 0-9 . - _ replaced by '_', over 50 bytes cut to 34 plus
//   16 hex digits of its SHA-256>. Run records go to INDEX-runs, one
//   document per run with _id = run_id: the RunRecord as the JSONL sink writes it (label keys
//   treated as above) plus "timestamp" (its start).
// - Index template: before the first write the sink installs a template for INDEX and INDEX-*
//   (composable /_index_template on 7.8 and later, legacy /_template before; `template=false`
//   skips it): metric, unit and every string keyword (ignore_above 1024: longer labels are kept
//   in _source, not indexed, so no label is too long to store), value double, timestamp
//   date_nanos, timestamp_ns and monotonic_ns long.
// - Bulk answers are read item by item: items refused with 429 or 5xx are sent again, alone,
//   with exponential backoff and jitter (`item_attempts` times; then the call fails, and the
//   sink's retry from the spool sends only the items still unsettled); items refused for good (a
//   mapping conflict made by someone else's documents, a date before 1970) are counted as dropped
//   and logged with Elasticsearch's reason. A 429 or 5xx for the whole request makes the sink retry
//   it with backoff from the spool.
// - Authentication: HTTP basic (user:password in the URI), or an API key (`api_key=ID:KEY`, or
//   the base64 form Elasticsearch hands out; or `api_key_file=PATH` holding either). TLS with
//   es+https://, verified against the system store or `ca=FILE`. Request bodies gzip'd with
//   `gzip=true`.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "bitfusion/result_sink.h"
#include "sinks/http_sink_internal.h"

namespace bitfusion {

struct ElasticsearchSinkOptions {
  enum class IndexPer { kNone, kDay, kMonth, kRun };

  /// Host, port (default 9200), basic auth, TLS (`ca=FILE`), `gzip`, `timeout`.
  internal::HttpSinkTarget http;
  /// The index (or the stem of the indices) from the URI's path.
  std::string index;
  /// One index per day, month or run (query key `index_per`: none, day, month, run).
  IndexPer index_per = IndexPer::kNone;
  /// "Authorization: ApiKey ..." value, base64 (query keys `api_key`, `api_key_file`).
  std::string api_key;
  /// Install the index template before the first write (query key `template`, default true).
  bool install_template = true;
  /// Largest _bulk body, in bytes (query key `request_bytes`, default 8 MiB).
  std::size_t request_bytes = std::size_t{8} << 20;
  /// Sends of items Elasticsearch refuses with 429 or 5xx within one call (query key
  /// `item_attempts`, default 5).
  int item_attempts = 5;
  ResultSinkOptions sink;
  std::string redacted_uri;

  /// es://HOST:PORT/INDEX?index_per=…&api_key=…&template=…&gzip=…&ca=…&spool=…&batch_samples=…
  static Result<ElasticsearchSinkOptions> FromUri(const Uri& uri);
};

namespace internal {

/// The _bulk NDJSON encoder, exposed for tests and the benchmark.
class EsBulkEncoder {
 public:
  explicit EsBulkEncoder(std::string index, ElasticsearchSinkOptions::IndexPer index_per =
                                                ElasticsearchSinkOptions::IndexPer::kNone);
  /// Appends an index action and a document per sample of `batch`. `offsets` (when given) gets
  /// where each item (action and document lines) starts in `out`.
  void Append(const SampleBatch& batch, std::string& out,
              std::vector<std::size_t>* offsets = nullptr);
  /// The run record's document (one line, no action).
  static Result<std::string> RunDocument(const RunRecord& record);

  /// A label key as a field name Elasticsearch takes (see es_sink.h).
  static std::string FieldName(std::string_view key);
  /// `labels` with every key made a field name, without collisions.
  static Labels FieldNames(const Labels& labels);
  /// Appends RFC 3339 UTC with nine fractional digits.
  static void AppendTimestamp(std::string& out, std::int64_t ns);
  /// The document id of a sample: series digest and timestamp.
  static void AppendId(std::string& out, std::uint64_t series_hi, std::uint64_t series_lo,
                       std::int64_t ns);

 private:
  struct SeriesCode {
    std::string before_value;  // {"metric":…,"value":
    std::string after_value;   // ,"unit":…,"metadata":{…},"timestamp":"
    std::uint64_t id_hi = 0, id_lo = 0;
    std::string run_index;  // index_per=run: this series' index
  };
  void IndexName(const SampleBatch& batch, const SeriesCode& code, std::int64_t ns,
                 std::string& out);

  const std::string index_;
  const ElasticsearchSinkOptions::IndexPer index_per_;
  std::vector<SeriesCode> series_;
  Labels merged_;
  std::int64_t cached_day_ = INT64_MIN;
  std::string cached_date_;  // "YYYY-MM-DD" of cached_day_
};

}  // namespace internal

/// Writes samples and run records to Elasticsearch; see the top of this header.
class ElasticsearchSink final : public ResultSink {
 public:
  static Result<std::shared_ptr<ElasticsearchSink>> Make(const ElasticsearchSinkOptions& options);
  ~ElasticsearchSink() override;

 private:
  ElasticsearchSink(const ElasticsearchSinkOptions& options,
                    std::unique_ptr<net::HttpClient> client);
  Status WriteSamples(const std::vector<SampleBatch>& batches) override;
  Status WriteRun(const RunRecord& record) override;
  Status Prepare();
  Status PutTemplate();
  /// Sends a _bulk body whose items start at `offsets`, retrying what may be retried; marks in
  /// `done` (indexed by `items`) what Elasticsearch settled. `run_id`: the body is that run's
  /// record (what is refused is a run, not samples).
  Status Bulk(std::string& body, std::vector<std::size_t> offsets, std::vector<std::size_t> items,
              std::vector<bool>* done, const std::string& run_id);
  Result<net::HttpResponse> Send(const std::string& method, const std::string& target,
                                 std::string_view content_type, std::string& body);

  const ElasticsearchSinkOptions options_;
  std::unique_ptr<net::HttpClient> client_;
  internal::EsBulkEncoder encoder_;
  bool prepared_ = false;
  int major_version_ = 0;
  std::string body_;
};

}  // namespace bitfusion
