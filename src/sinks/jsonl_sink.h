// jsonl://PATH — one JSON object per line, appended to a file. "jsonl://out/r.jsonl" is the
// relative path out/r.jsonl, "jsonl:///abs/r.jsonl" an absolute one.
//
// A sample line (PerfKit Benchmarker's field names, plus exact nanosecond timestamps):
//
//   {"type":"sample","metric":"cpu.user","value":1.5,"unit":"s","metadata":{"cpu":"0","run":"r1"},
//    "timestamp":1700000000.123456,"timestamp_ns":1700000000123456789,"monotonic_ns":5123456789}
//
// - "metadata" holds the batch's labels merged with the series' own (the series wins), keys
//   sorted. "timestamp" is seconds since the epoch as a double, the field PerfKit tools read; it
//   is rounded to about a microsecond, so "timestamp_ns" carries the exact value.
// - Values are written in the shortest form that reads back to the same double.
// - NaN and ±infinity are not JSON numbers: such a sample is written with "value":null and a
//   "value_text" member, "NaN", "Infinity" or "-Infinity" (spellings that Python's float() and
//   JavaScript's Number() read back). The sample is never dropped and never fails its batch.
// - Strings (metric, unit, label keys and values) are escaped as JSON requires; bytes that are
//   not valid UTF-8 are replaced by U+FFFD (one per maximal invalid subsequence, as Unicode
//   recommends), so every line is valid JSON, however odd the input.
//
// A run record line is {"type":"run", ...} followed by the RunRecord's members as ToJson writes
// them (serialize.h), on one line. A result whose value is not finite gets the same
// "value":null + "value_text" treatment as a sample.
//
// The file is opened (and created, mode 0644 less the umask) in Make, so a path that cannot be
// written fails before any run; its directory must already exist. Lines are only ever appended.
// Each backend call writes whole lines; when a write fails the file is cut back to its length
// before the call, so the samples the base class keeps for the retry are not stored twice. That
// assumes this sink is the file's only writer. Flush() fsyncs (a file that cannot be synced,
// such as /dev/null, is fine).
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "bitfusion/result_sink.h"
#include "bitfusion/run_record.h"
#include "sinks/append_file_internal.h"
#include "sinks/record_json.h"

namespace bitfusion {

struct JsonlSinkOptions {
  /// File to append to; created if missing; its directory must exist.
  std::filesystem::path path;
  /// Flush() fsyncs the file (query key `fsync`, default true). Off, Flush() only hands the data
  /// to the OS, which survives a crash of the process but not of the machine.
  bool fsync = true;
  ResultSinkOptions sink;

  /// jsonl://PATH?fsync=false&batch_samples=…&max_delay=…
  static Result<JsonlSinkOptions> FromUri(const Uri& uri);
};

namespace internal {

/// Encodes sample lines. Keeps its per-series scratch between calls, so encoding a stream of
/// batches allocates only when a batch has more series than any before.
class JsonlEncoder {
 public:
  /// Appends one line per sample of `batch` to `out`.
  void Append(const SampleBatch& batch, std::string& out);

 private:
  std::vector<std::string> before_value_;  // per series: {"type":"sample","metric":…,"value":
  std::vector<std::string> after_value_;   // per series: ,"unit":…,"metadata":{…},"timestamp":
  Labels merged_;
};

}  // namespace internal

/// Appends samples and run records to a JSON Lines file; the format is described at the top of
/// this header.
class JsonlSink final : public internal::AppendFileSink {
 public:
  static Result<std::shared_ptr<JsonlSink>> Make(const JsonlSinkOptions& options);
  ~JsonlSink() override;

 private:
  JsonlSink(const JsonlSinkOptions& options, std::unique_ptr<internal::AppendOnlyFile> file);
  void EncodeBatch(const SampleBatch& batch, std::string& out) override;
  void EncodeRun(const RunRecord& record, std::string& out) override;

  internal::JsonlEncoder encoder_;
};

}  // namespace bitfusion
