// A procfs, sysfs or cgroupfs file kept open and re-read with pread on every sample, and the
// allocation-free parsing of what such files hold (blanks, numbers, lines), for the metric
// sources that read kernel files (host, process, cgroup) and their benchmarks.
#pragma once

#include <charconv>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "bitfusion/status.h"

namespace bitfusion {

namespace internal {

/// A procfs, sysfs or cgroupfs file kept open and re-read from offset 0 on every sample.
class ProcFile {
 public:
  /// How much one read returns. Files made with single_open (stat, meminfo, loadavg, PID/stat,
  /// PID/status, PID/io) are generated whole, so one pread returns all of it when the buffer is
  /// big enough; record-per-line files (diskstats, net/dev) stop at the end of the kernel's page
  /// buffer and must be read until a read returns 0.
  enum class Shape { kSingleRecord, kRecords };

  ProcFile() = default;
  ProcFile(ProcFile&& other) noexcept;
  ProcFile& operator=(ProcFile&& other) noexcept;
  ProcFile(const ProcFile&) = delete;
  ProcFile& operator=(const ProcFile&) = delete;
  ~ProcFile();

  /// Opens `path` read-only; the error is ErrnoError naming the path.
  static Result<ProcFile> Open(std::string path, Shape shape);

  /// Reads the whole file into `buffer`, growing it (the only allocation) when the file does not
  /// fit. The view points into `buffer`. A failed read is ErrnoError naming the path (ESRCH when
  /// the process behind a /proc/PID file is gone).
  Result<std::string_view> Read(std::vector<char>& buffer) const;

  bool is_open() const { return fd_ >= 0; }
  const std::string& path() const { return path_; }

 private:
  int fd_ = -1;
  Shape shape_ = Shape::kSingleRecord;
  std::string path_;
};

inline const char* SkipBlanks(const char* p, const char* end) {
  while (p < end && (*p == ' ' || *p == '\t')) ++p;
  return p;
}

/// Parses the unsigned number after blanks at `p` and moves `p` past it; false (and `p` at the
/// first non-blank) when there is none. Hand-rolled for the short numbers procfs is made of,
/// because a host sample parses a few hundred of them; from 20 digits on, std::from_chars
/// decides, so a value beyond 64 bits is refused instead of wrapping.
inline bool ParseU64(const char*& p, const char* end, std::uint64_t& out) {
  p = SkipBlanks(p, end);
  const char* const start = p;
  std::uint64_t v = 0;
  while (p < end && static_cast<unsigned char>(*p - '0') < 10) {
    v = v * 10 + static_cast<unsigned char>(*p - '0');
    ++p;
  }
  if (p == start) return false;
  if (p - start < 20) {
    out = v;
    return true;
  }
  const auto [next, ec] = std::from_chars(start, end, out);
  if (ec != std::errc()) {
    p = start;
    return false;
  }
  p = next;
  return true;
}

/// ParseU64 for fields that may be negative (some of /proc/PID/stat).
inline bool ParseI64(const char*& p, const char* end, std::int64_t& out) {
  const char* q = SkipBlanks(p, end);
  const bool negative = q < end && *q == '-';
  if (negative) ++q;
  if (q >= end || static_cast<unsigned char>(*q - '0') >= 10) return false;
  std::uint64_t magnitude = 0;
  if (!ParseU64(q, end, magnitude) || magnitude > static_cast<std::uint64_t>(INT64_MAX)) {
    return false;
  }
  p = q;
  out = negative ? -static_cast<std::int64_t>(magnitude) : static_cast<std::int64_t>(magnitude);
  return true;
}

/// Moves past the next newline (or to `end`).
inline const char* NextLine(const char* p, const char* end) {
  const void* nl = std::memchr(p, '\n', static_cast<std::size_t>(end - p));
  return nl != nullptr ? static_cast<const char*>(nl) + 1 : end;
}

}  // namespace internal

}  // namespace bitfusion
