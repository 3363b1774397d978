// Appending samples straight into a SampleBatch's columns: what every metric source's sampling
// loop writes through.
#pragma once

#include <cstddef>
#include <cstdint>

#include "bitfusion/clock.h"
#include "bitfusion/sample.h"

namespace bitfusion {

namespace internal {

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

}  // namespace internal

}  // namespace bitfusion
