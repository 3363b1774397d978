#include "sinks/append_file_internal.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>
#include <utility>

namespace bitfusion::internal {

Status ReadAppendFileUri(const Uri& uri, std::string_view extension, std::filesystem::path& path,
                         bool& fsync, ResultSinkOptions& sink) {
  BITFUSION_RETURN_IF_ERROR(uri.CheckQueryKeys(ResultSinkOptions::QueryKeysWith({"fsync"})));
  path = uri.FilePath();
  if (path.empty()) {
    const std::string name = "results" + std::string(extension);
    return InvalidArgumentError("sink URI " + uri.ToString() + " names no file; write " +
                                uri.scheme + "://out/" + name + " (relative) or " + uri.scheme +
                                ":///abs/" + name);
  }
  BITFUSION_ASSIGN_OR_RETURN(fsync, uri.QueryBool("fsync", fsync));
  BITFUSION_ASSIGN_OR_RETURN(sink, ResultSinkOptions::FromUri(uri));
  return Status::OK();
}

AppendOnlyFile::AppendOnlyFile(int fd, std::filesystem::path path, std::string what, bool regular)
    : fd_(fd), path_(std::move(path)), what_(std::move(what)), regular_(regular) {}

AppendOnlyFile::~AppendOnlyFile() {
  if (fd_ >= 0) ::close(fd_);
}

Result<std::unique_ptr<AppendOnlyFile>> AppendOnlyFile::Open(const std::filesystem::path& path,
                                                             std::string_view what) {
  const std::string name = std::string(what) + " " + path.string();
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    const int err = errno;
    std::error_code ec;
    const std::filesystem::path dir = path.parent_path();
    if (err == ENOENT && !dir.empty() && !std::filesystem::is_directory(dir, ec)) {
      return NotFoundError("cannot create " + name + ": directory " + dir.string() +
                           " does not exist; create it first or choose another path");
    }
    return ErrnoError(err, "cannot open " + name + " for appending");
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return ErrnoError(err, "cannot stat " + name);
  }
  if (S_ISREG(st.st_mode)) {
    return std::unique_ptr<AppendOnlyFile>(new AppendOnlyFile(fd, path, std::string(what), true));
  }
  // Not a regular file (a pipe such as /dev/stdout, a FIFO, a terminal, /dev/null): open it once
  // more for writing only. Kept open for reading as well, a pipe has this process as a reader of
  // its own, so a reader that goes away (`bitfusion metrics | head`) is never noticed: no EPIPE,
  // and the writes block for good once the pipe is full. O_NONBLOCK for the open only, so that a
  // FIFO nobody reads is an error rather than a wait.
  ::close(fd);
  const int wfd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_NONBLOCK | O_CLOEXEC);
  if (wfd < 0) {
    const int err = errno;
    if (err == ENXIO) {
      return FailedPreconditionError("cannot open " + name +
                                     ": it is a pipe that nothing reads; start its reader first");
    }
    return ErrnoError(err, "cannot open " + name + " for writing");
  }
  if (const int flags = ::fcntl(wfd, F_GETFL);
      flags < 0 || ::fcntl(wfd, F_SETFL, flags & ~O_NONBLOCK) != 0) {
    const int err = errno;
    ::close(wfd);
    return ErrnoError(err, "cannot set " + name + " to blocking writes");
  }
  return std::unique_ptr<AppendOnlyFile>(new AppendOnlyFile(wfd, path, std::string(what), false));
}

Result<std::int64_t> AppendOnlyFile::Size() const {
  if (!regular_) return 0;
  struct stat st {};
  if (::fstat(fd_, &st) != 0)
    return ErrnoError(errno, "cannot stat " + what_ + " " + path_.string());
  return static_cast<std::int64_t>(st.st_size);
}

Result<std::string> AppendOnlyFile::ReadPrefix(std::size_t n) const {
  std::string out(n, '\0');
  std::size_t got = 0;
  while (got < n) {
    const ssize_t r = ::pread(fd_, out.data() + got, n - got, static_cast<off_t>(got));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return ErrnoError(errno, "cannot read " + what_ + " " + path_.string());
    if (r == 0) break;
    got += static_cast<std::size_t>(r);
  }
  out.resize(got);
  return out;
}

Status AppendOnlyFile::Begin() {
  if (!regular_) return Status::OK();
  BITFUSION_ASSIGN_OR_RETURN(begin_size_, Size());
  return Status::OK();
}

Status AppendOnlyFile::Write(std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd_, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EPIPE) {
      return CancelledError("the reader of " + what_ + " " + path_.string() +
                            " has gone (its pipe was closed at the other end); nothing more is "
                            "written there");
    }
    if (n < 0) return ErrnoError(errno, "cannot write " + what_ + " " + path_.string());
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return Status::OK();
}

Status AppendOnlyFile::WriteOrAbort(std::string_view bytes) {
  Status status = Write(bytes);
  if (!status.ok()) Abort();
  return status;
}

void AppendOnlyFile::Abort() {
  // Cutting back is what keeps a retried batch from being stored twice; if even that fails, the
  // disk is in trouble and the write error already says so.
  if (regular_ && begin_size_ >= 0) {
    [[maybe_unused]] const int rc = ::ftruncate(fd_, static_cast<off_t>(begin_size_));
  }
}

Status AppendOnlyFile::Sync() {
  if (::fsync(fd_) != 0 && errno != EINVAL && errno != EROFS) {
    return ErrnoError(errno, "cannot fsync " + what_ + " " + path_.string());
  }
  return Status::OK();
}

Status AppendOnlyFile::Close() {
  if (fd_ < 0) return Status::OK();
  const int fd = std::exchange(fd_, -1);
  if (::close(fd) != 0 && errno != EINTR) {
    return ErrnoError(errno, "cannot close " + what_ + " " + path_.string());
  }
  return Status::OK();
}

AppendFileSink::AppendFileSink(std::string uri, const ResultSinkOptions& sink, bool fsync,
                               std::unique_ptr<AppendOnlyFile> file)
    : ResultSink(std::move(uri), sink), fsync_(fsync), file_(std::move(file)) {}

Status AppendFileSink::WriteSamples(const std::vector<SampleBatch>& batches) {
  BITFUSION_RETURN_IF_ERROR(file_->Begin());
  buffer_.clear();
  for (const SampleBatch& batch : batches) {
    EncodeBatch(batch, buffer_);
    if (buffer_.size() >= kAppendChunkBytes) {
      BITFUSION_RETURN_IF_ERROR(file_->WriteOrAbort(buffer_));
      buffer_.clear();
    }
  }
  BITFUSION_RETURN_IF_ERROR(file_->WriteOrAbort(buffer_));
  // One huge batch should not pin its encoding for the sink's lifetime.
  if (buffer_.capacity() > 16 * kAppendChunkBytes) std::string().swap(buffer_);
  return Status::OK();
}

Status AppendFileSink::WriteRun(const RunRecord& record) {
  std::string text;
  EncodeRun(record, text);
  BITFUSION_RETURN_IF_ERROR(file_->Begin());
  return file_->WriteOrAbort(text);
}

Status AppendFileSink::SyncBackend(Deadline) { return fsync_ ? file_->Sync() : Status::OK(); }

Status AppendFileSink::CloseBackend(Deadline) { return file_->Close(); }

}  // namespace bitfusion::internal
