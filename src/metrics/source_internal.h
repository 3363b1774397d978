// Helpers shared by the metric sources that read kernel files (host, process, cgroup) and by
// their benchmarks: a file kept open and re-read with pread, allocation-free number parsing, a
// writer straight into a SampleBatch's columns, and a line-position -> series table.
#pragma once

#include <charconv>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "bitfusion/clock.h"
#include "bitfusion/sample.h"
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

/// Appends samples stamped with one timestamp through raw pointers into the batch's columns:
/// a push_back per column per sample costs more than the parsing. The columns are sized up front
/// (`expected` more samples, grown if needed) and trimmed to what was written on destruction,
/// so the batch is consistent whatever path the caller returns by.
class BatchWriter {
 public:
  BatchWriter(SampleBatch& batch, const Timestamp& now, std::size_t expected)
      : batch_(batch), wall_ns_(now.wall_ns), mono_ns_(now.mono_ns), size_(batch.size()) {
    Resize(size_ + expected);
  }
  ~BatchWriter() { Resize(size_); }
  BatchWriter(const BatchWriter&) = delete;
  BatchWriter& operator=(const BatchWriter&) = delete;

  [[gnu::always_inline]] void Append(std::uint32_t series, double value) {
    if (size_ == room_) [[unlikely]]
      Resize(room_ * 2 + 64);
    index_[size_] = series;
    wall_[size_] = wall_ns_;
    mono_[size_] = mono_ns_;
    value_[size_] = value;
    ++size_;
  }
  std::size_t size() const { return size_; }

 private:
  [[gnu::noinline]] void Resize(std::size_t n) {
    batch_.series_index.resize(n);
    batch_.timestamp_ns.resize(n);
    batch_.monotonic_ns.resize(n);
    batch_.value.resize(n);
    index_ = batch_.series_index.data();
    wall_ = batch_.timestamp_ns.data();
    mono_ = batch_.monotonic_ns.data();
    value_ = batch_.value.data();
    room_ = n;
  }

  SampleBatch& batch_;
  const std::int64_t wall_ns_, mono_ns_;
  std::size_t size_ = 0;
  std::size_t room_ = 0;
  std::uint32_t* index_ = nullptr;
  std::int64_t* wall_ = nullptr;
  std::int64_t* mono_ = nullptr;
  double* value_ = nullptr;
};

/// Line position -> row of series, checked by name, so the steady state costs one compare per
/// line and a layout change (a new interface, a CPU coming online) just adds rows.
class RowTable {
 public:
  struct Row {
    std::string key;
    std::uint32_t first_series = 0;
    bool exported = false;  ///< false for lines that are read but not reported (partitions)
  };

  /// The row for `key` seen at line `position`, or nullptr when the key is new.
  const Row* Find(std::size_t position, std::string_view key) {
    if (position < at_position_.size()) {
      const std::uint32_t i = at_position_[position];
      if (i < rows_.size() && SameKey(rows_[i].key, key)) return &rows_[i];
    }
    return FindMoved(position, key);
  }
  /// The row whose key starts `line` and is followed by `delimiter`, if it is the row seen at
  /// this position last time: the steady-state check, with no scanning for the delimiter.
  const Row* Expected(std::size_t position, const char* line, const char* end,
                      char delimiter) const {
    if (position >= at_position_.size()) return nullptr;
    const std::uint32_t i = at_position_[position];
    if (i >= rows_.size()) return nullptr;
    const std::string& key = rows_[i].key;
    if (static_cast<std::size_t>(end - line) <= key.size() || line[key.size()] != delimiter ||
        !SameKey(key, std::string_view(line, key.size()))) {
      return nullptr;
    }
    return &rows_[i];
  }
  /// Adds the row for a new key found at `position`.
  const Row* Add(std::size_t position, std::string_view key, std::uint32_t first_series,
                 bool exported);
  void Clear();
  /// Rows in the order they were first seen.
  const std::vector<Row>& rows() const { return rows_; }

 private:
  // Keys are a few bytes long and checked once per line: comparing them in (overlapping) words
  // costs a branch or two, where a byte loop or a call to memcmp costs several.
  static bool SameKey(const std::string& a, std::string_view b) {
    const std::size_t n = a.size();
    if (n != b.size()) return false;
    const char* x = a.data();
    const char* y = b.data();
    if (n >= 8) {
      for (std::size_t i = 0; i + 8 < n; i += 8) {
        if (Word<std::uint64_t>(x + i) != Word<std::uint64_t>(y + i)) return false;
      }
      return Word<std::uint64_t>(x + n - 8) == Word<std::uint64_t>(y + n - 8);
    }
    if (n >= 4) {
      return Word<std::uint32_t>(x) == Word<std::uint32_t>(y) &&
             Word<std::uint32_t>(x + n - 4) == Word<std::uint32_t>(y + n - 4);
    }
    for (std::size_t i = 0; i < n; ++i) {
      if (x[i] != y[i]) return false;
    }
    return true;
  }
  template <class W>
  static W Word(const char* p) {
    W w;
    std::memcpy(&w, p, sizeof w);
    return w;
  }
  const Row* FindMoved(std::size_t position, std::string_view key);

  std::vector<Row> rows_;
  std::vector<std::uint32_t> at_position_;  // index into rows_; UINT32_MAX for no row
};

/// Kernel naming rule for partitions: "sda" -> "sda1", "nvme0n1" -> "nvme0n1p1" (a "p" when the
/// disk's name ends in a digit). True when `name` is a partition of `disk`.
bool IsPartitionOf(std::string_view name, std::string_view disk);

}  // namespace internal

}  // namespace bitfusion
