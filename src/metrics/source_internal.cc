#include "metrics/source_internal.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <limits>
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

// The layout moved (a line appeared or vanished before this one): find the key anywhere.
const RowTable::Row* RowTable::FindMoved(std::size_t position, std::string_view key) {
  for (std::uint32_t i = 0; i < rows_.size(); ++i) {
    if (rows_[i].key == key) {
      if (position >= at_position_.size()) {
        at_position_.resize(position + 1, std::numeric_limits<std::uint32_t>::max());
      }
      at_position_[position] = i;
      return &rows_[i];
    }
  }
  return nullptr;
}

const RowTable::Row* RowTable::Add(std::size_t position, std::string_view key,
                                   std::uint32_t first_series, bool exported) {
  rows_.push_back(Row{std::string(key), first_series, exported});
  if (position >= at_position_.size()) {
    at_position_.resize(position + 1, std::numeric_limits<std::uint32_t>::max());
  }
  at_position_[position] = static_cast<std::uint32_t>(rows_.size() - 1);
  return &rows_.back();
}

void RowTable::Clear() {
  rows_.clear();
  at_position_.clear();
}

bool IsPartitionOf(std::string_view name, std::string_view disk) {
  if (disk.empty() || name.size() <= disk.size() || name.substr(0, disk.size()) != disk) {
    return false;
  }
  std::string_view rest = name.substr(disk.size());
  const bool disk_ends_in_digit = disk.back() >= '0' && disk.back() <= '9';
  if (disk_ends_in_digit) {
    if (rest.front() != 'p') return false;
    rest.remove_prefix(1);
  }
  if (rest.empty()) return false;
  for (char c : rest) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

}  // namespace internal

}  // namespace bitfusion
