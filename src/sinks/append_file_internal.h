// What the append-only file sinks (jsonl://, csv://) share: the file itself, with all-or-nothing
// appends, the options every such sink reads from its URI, and the sink around the file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "bitfusion/result_sink.h"
#include "bitfusion/run_record.h"
#include "bitfusion/sample.h"
#include "bitfusion/status.h"
#include "bitfusion/uri.h"

namespace bitfusion::internal {

/// Reads what every append-only file sink takes from its URI: the path ("SCHEME://rel/path" or
/// "SCHEME:///abs/path"), `fsync` and the batching keys; any other key is refused.
/// `extension` (".jsonl") only shapes the example in the error for a URI without a path.
Status ReadAppendFileUri(const Uri& uri, std::string_view extension, std::filesystem::path& path,
                         bool& fsync, ResultSinkOptions& sink);

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
  /// Writes all of `bytes` at the end of the file. A pipe whose reader has gone (`bitfusion
  /// metrics | head`) is kCancelled: the consumer stopped, nothing is wrong with the data.
  Status Write(std::string_view bytes);
  /// Write, and Abort when it fails: the append started by Begin() leaves nothing behind.
  Status WriteOrAbort(std::string_view bytes);
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

/// Bytes encoded before they are written out: large enough to make system calls rare, small
/// enough that a huge pending queue does not double in memory.
inline constexpr std::size_t kAppendChunkBytes = 1 << 20;

/// What jsonl:// and csv:// are beyond their encoding: a sink that appends each write of
/// batches or of a run record to one file as an all-or-nothing append (encoded in chunks of
/// about kAppendChunkBytes), fsyncs it on Flush when asked to, and closes it. A backend says
/// how a batch and a run record are written as text; its destructor calls CloseOnDestroy.
class AppendFileSink : public ResultSink {
 protected:
  AppendFileSink(std::string uri, const ResultSinkOptions& sink, bool fsync,
                 std::unique_ptr<AppendOnlyFile> file);

  /// Appends the text of one batch, or of one run record, to `out`.
  virtual void EncodeBatch(const SampleBatch& batch, std::string& out) = 0;
  virtual void EncodeRun(const RunRecord& record, std::string& out) = 0;

 private:
  Status WriteSamples(const std::vector<SampleBatch>& batches) final;
  Status WriteRun(const RunRecord& record) final;
  Status SyncBackend(Deadline deadline) final;
  Status CloseBackend(Deadline deadline) final;

  const bool fsync_;
  const std::unique_ptr<AppendOnlyFile> file_;
  std::string buffer_;  // reused between calls
};

}  // namespace bitfusion::internal
