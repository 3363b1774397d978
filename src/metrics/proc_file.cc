#include "metrics/proc_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

namespace bitfusion {
namespace internal {

ProcFile::ProcFile(ProcFile&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), shape_(other.shape_), path_(std::move(other.path_)) {}

ProcFile& ProcFile::operator=(ProcFile&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    shape_ = other.shape_;
    path_ = std::move(other.path_);
  }
  return *this;
}

ProcFile::~ProcFile() {
  if (fd_ >= 0) ::close(fd_);
}

Result<ProcFile> ProcFile::Open(std::string path, Shape shape) {
  ProcFile file;
  file.fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (file.fd_ < 0) return ErrnoError(errno, "opening " + path);
  file.shape_ = shape;
  file.path_ = std::move(path);
  return file;
}

Result<std::string_view> ProcFile::Read(std::vector<char>& buffer) const {
  if (buffer.size() < 4096) buffer.resize(4096);
  std::size_t total = 0;
  for (;;) {
    const ssize_t n =
        ::pread(fd_, buffer.data() + total, buffer.size() - total, static_cast<off_t>(total));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(errno, "reading " + path_);
    }
    const auto got = static_cast<std::size_t>(n);
    if (shape_ == Shape::kSingleRecord) {
      // A full buffer may mean a truncated file: grow and read it again from the start.
      if (got < buffer.size()) return std::string_view(buffer.data(), got);
      buffer.resize(buffer.size() * 2);
      continue;
    }
    if (got == 0) return std::string_view(buffer.data(), total);
    total += got;
    if (total == buffer.size()) buffer.resize(buffer.size() * 2);
  }
}

}  // namespace internal

}  // namespace bitfusion
