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

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "bitfusion/machine.h"
#include "bitfusion/result_sink.h"
#include "bitfusion/run_record.h"

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

/// Encoding shared by the text sinks (JSONL, CSV, SQLite): one definition of what happens to odd
/// strings and non-finite numbers, so every store tells the same story.

/// Appends `text`, with every invalid UTF-8 sequence replaced by U+FFFD.
void AppendValidUtf8(std::string& out, std::string_view text);
std::string ValidUtf8(std::string_view text);
/// Appends `text` as a JSON string literal, quotes included, valid UTF-8 guaranteed.
void AppendJsonString(std::string& out, std::string_view text);
/// Appends labels as a compact JSON object in key order: the canonical form of a label set.
void AppendJsonLabels(std::string& out, const Labels& labels);
/// Appends the shortest decimal that reads back as `value`; `value` must be finite.
void AppendDouble(std::string& out, double value);
void AppendInt(std::string& out, std::int64_t value);
/// "NaN", "Infinity" or "-Infinity" for a non-finite value.
std::string_view NonFiniteText(double value);

/// The RunRecord as one line of compact JSON (no newline), with `{"type":"run",` in front when
/// `with_type` is set. Non-finite result values become null plus "value_text".
Result<std::string> RunRecordJson(const RunRecord& record, bool with_type);
/// The MachineInfo as compact JSON; a non-finite cpu.max_mhz becomes null.
Result<std::string> MachineInfoJson(const MachineInfo& machine);

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

/// A file that is only appended to, by one writer, with all-or-nothing appends.
class AppendOnlyFile {
 public:
  /// Opens (creating) `path` for appending. `what` names the file's role in errors
  /// ("jsonl sink file").
  static Result<std::unique_ptr<AppendOnlyFile>> Open(const std::filesystem::path& path,
                                                      std::string_view what);
  ~AppendOnlyFile();
  AppendOnlyFile(const AppendOnlyFile&) = delete;
  AppendOnlyFile& operator=(const AppendOnlyFile&) = delete;

  /// Current length in bytes (0 for files that are not regular files).
  Result<std::int64_t> Size() const;
  /// Reads up to `n` bytes from the start (for header checks).
  Result<std::string> ReadPrefix(std::size_t n) const;
  /// Starts an append: remembers the length to cut back to when Abort() is called.
  Status Begin();
  /// Writes all of `bytes` at the end of the file.
  Status Write(std::string_view bytes);
  /// Cuts the file back to its length at Begin(); best effort for regular files.
  void Abort();
  /// fsync; files that do not support it (pipes, /dev/null) are not an error.
  Status Sync();
  Status Close();
  const std::filesystem::path& path() const { return path_; }

 private:
  AppendOnlyFile(int fd, std::filesystem::path path, std::string what, bool regular);

  int fd_;
  const std::filesystem::path path_;
  const std::string what_;
  const bool regular_;
  std::int64_t begin_size_ = -1;
};

}  // namespace internal

/// Appends samples and run records to a JSON Lines file; the format is described at the top of
/// this header.
class JsonlSink final : public ResultSink {
 public:
  static Result<std::shared_ptr<JsonlSink>> Make(const JsonlSinkOptions& options);
  ~JsonlSink() override;

 private:
  JsonlSink(const JsonlSinkOptions& options, std::string uri,
            std::unique_ptr<internal::AppendOnlyFile> file);
  Status WriteSamples(const std::vector<SampleBatch>& batches) override;
  Status WriteRun(const RunRecord& record) override;
  Status SyncBackend(Deadline deadline) override;
  Status CloseBackend(Deadline deadline) override;

  const JsonlSinkOptions options_;
  std::unique_ptr<internal::AppendOnlyFile> file_;
  internal::JsonlEncoder encoder_;
  std::string buffer_;  // reused between calls
};

}  // namespace bitfusion
