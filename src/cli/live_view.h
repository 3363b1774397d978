// The live terminal view of `bitfusion metrics`: when stdout is a terminal, the latest value of
// every series (counters as per-second rates since the previous frame) is redrawn in place
// about once a second, under a header with the stream's own cost.
#pragma once

#include <cstdint>
#include <cstdio>
#include <map>
#include <mutex>
#include <string>

#include "bitfusion/metric_stream.h"
#include "bitfusion/sample.h"

namespace bitfusion::cli {

class LiveView {
 public:
  /// Draws on `out` (a terminal); `rows` and `columns` bound each frame (0: ask the terminal).
  explicit LiveView(std::FILE* out, int rows = 0, int columns = 0);

  /// Takes the newest readings of a delivered batch. Called on the stream's delivery thread.
  void OnBatch(const SampleBatch& batch);

  /// Redraws the whole frame: elapsed time, ticks, samples, drops and observer CPU as a share of
  /// one core, then one line per series, sorted by metric and labels, cut to the terminal's
  /// height with a line saying how many were left out. Called from the controlling thread.
  void Render(const StreamOverhead& overhead, double elapsed_s, bool final_frame);

 private:
  struct Row {
    std::string metric;
    std::string labels;  // "cpu=3 iface=eth0"
    std::string unit;
    bool counter = false;
    double value = 0;
    std::int64_t mono_ns = 0;
    // The reading the previous frame showed (the first one before that): a counter's rate is
    // taken over the time between frames, because kernel counters tick in coarse steps (CPU
    // time in 10 ms jiffies) that make a rate between two 10 ms samples mostly noise.
    double base = 0;
    std::int64_t base_mono_ns = 0;
  };

  std::FILE* out_;
  int rows_, columns_;
  std::mutex mu_;
  std::map<std::string, Row> table_;  // by metric + labels, so frames are stable
};

}  // namespace bitfusion::cli
