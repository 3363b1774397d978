// csv://PATH — samples and run results as rows of an RFC 4180 CSV file, for spreadsheets and
// pandas. "csv://out/r.csv" is the relative path out/r.csv, "csv:///abs/r.csv" an absolute one.
//
//   timestamp_ns,monotonic_ns,metric,value,unit,labels
//   1700000000123456789,5123456789,cpu.user,1.5,s,cpu=0;run=r1
//
// - The header is written when the file is new or empty. Appending to a non-empty file whose
//   first line is not this header fails in Make (FailedPrecondition), rather than mixing formats.
// - Records end with CRLF, as RFC 4180 says. A field holding a comma, a double quote or any
//   control character (CR and LF included) is put in double quotes, inner quotes doubled.
// - labels: the batch's labels merged with the series' own (the series wins), as key=value
//   pairs joined by ';' in key order. Inside keys and values, '\', ';' and '=' are escaped with a
//   backslash, so the field splits back unambiguously: split on unescaped ';', then on the first
//   unescaped '=', then drop the backslashes.
// - value: the shortest decimal that reads back as the same double; NaN and ±infinity are
//   written as NaN, Infinity and -Infinity (Python's float() and pandas read them). Such a row is
//   never dropped and never fails its batch.
// - Bytes that are not valid UTF-8 are replaced by U+FFFD, as in the JSONL sink.
//
// Run records become rows too, in the same columns, written right after the run's samples:
// - one row per result sample, with its own timestamps (the run's end when it has none);
// - a `run.wall_time` row (seconds, unit "s") and a `run.exit_code` row (unit "1"), both stamped
//   with the run's end time and monotonic_ns 0.
// Their labels are the result's metadata, then the record's labels, then (winning over both)
// run_id, benchmark, repetition and status, plus plan and plan_run_id when set and warmup=true
// for warm-up runs. What does not fit in rows (machine fingerprint, command, error text) is not
// kept: use jsonl:// or sqlite:// when it matters.
//
// Files are opened in Make (a path that cannot be written fails before any run; the directory
// must exist), appended to with all-or-nothing writes, and fsynced by Flush(), exactly as in the
// JSONL sink (jsonl_sink.h).
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "bitfusion/result_sink.h"
#include "bitfusion/run_record.h"
#include "core/json_writer.h"
#include "core/utf8.h"
#include "sinks/append_file_internal.h"

namespace bitfusion {

struct CsvSinkOptions {
  /// File to append to; created (with the header) if missing; its directory must exist.
  std::filesystem::path path;
  /// Flush() fsyncs the file (query key `fsync`, default true).
  bool fsync = true;
  ResultSinkOptions sink;

  /// csv://PATH?fsync=false&batch_samples=…&max_delay=…
  static Result<CsvSinkOptions> FromUri(const Uri& uri);
};

namespace internal {

/// The header line, CRLF included.
inline constexpr std::string_view kCsvHeader =
    "timestamp_ns,monotonic_ns,metric,value,unit,labels\r\n";

/// Appends `text` as one CSV field: quoted when RFC 4180 needs it, valid UTF-8 guaranteed.
void AppendCsvField(std::string& out, std::string_view text);
/// The labels column's text before CSV quoting: "k=v;k=v" with '\', ';', '=' escaped.
std::string CsvLabels(const Labels& labels);

/// Encodes sample rows; keeps per-series scratch between calls.
class CsvEncoder {
 public:
  /// Appends one row per sample of `batch` to `out`.
  void Append(const SampleBatch& batch, std::string& out);
  /// Appends the rows that stand for a run record (see the top of this header).
  void AppendRun(const RunRecord& record, std::string& out);

 private:
  std::vector<std::string> before_value_;  // per series: ,metric,
  std::vector<std::string> after_value_;   // per series: ,unit,labels CRLF
  Labels merged_;
};

}  // namespace internal

/// Appends samples and run results to an RFC 4180 CSV file; the format is described at the top
/// of this header.
class CsvSink final : public internal::AppendFileSink {
 public:
  static Result<std::shared_ptr<CsvSink>> Make(const CsvSinkOptions& options);
  ~CsvSink() override;

 private:
  CsvSink(const CsvSinkOptions& options, std::unique_ptr<internal::AppendOnlyFile> file);
  void EncodeBatch(const SampleBatch& batch, std::string& out) override;
  void EncodeRun(const RunRecord& record, std::string& out) override;

  internal::CsvEncoder encoder_;
};

}  // namespace bitfusion
