// The line position -> series table of the metric sources that read record-per-line kernel
// files (diskstats, net/dev, cgroup stat files).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace bitfusion {

namespace internal {

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

}  // namespace internal

}  // namespace bitfusion
