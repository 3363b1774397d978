// Samples: PerfKit Benchmarker's shape (metric, value, unit, metadata, timestamp) and the
// columnar SampleBatch that the hot path moves.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "bitfusion/export.h"

namespace bitfusion {

/// Labels (PerfKit's "metadata"): run, machine, container, device, benchmark, cpu, ... Sorted
/// so that equal label sets compare and hash equal.
using Labels = std::map<std::string, std::string>;

/// One measurement, for people and for stores that take rows.
struct Sample {
  std::string metric;             ///< "cpu.user", "wall_time", "stream.triad"
  double value = 0.0;             ///< NaN/inf allowed; each sink documents what it does with them
  std::string unit;               ///< "s", "bytes", "B/s", "GFLOP/s", "1" for counts and ratios
  Labels metadata;                ///< labels of the batch merged with the series' own
  std::int64_t timestamp_ns = 0;  ///< wall clock, ns since the Unix epoch
  std::int64_t monotonic_ns = 0;  ///< CLOCK_MONOTONIC of the machine that took it; 0 if unknown
};

/// What one column of values means; a batch holds a small table of these.
struct Series {
  std::string metric;
  std::string unit;
  Labels labels;  ///< labels this series adds to the batch's shared ones, e.g. {"cpu": "3"}
  /// True for a cumulative counter (CPU seconds, bytes read since boot): what a metric stream
  /// turns into a per-second rate when asked to (MetricStreamOptions::rates, "?rate=true").
  /// Set by the source that declares the series; sinks do not store it.
  bool counter = false;
};

/// Columnar samples: shared labels once, a series table, then four parallel arrays with one
/// entry per sample. Sources keep one batch, Clear() it after delivery and refill it, so the
/// steady state allocates nothing.
struct BITFUSION_EXPORT SampleBatch {
  Labels labels;               ///< shared by every sample in the batch
  std::vector<Series> series;  ///< indexed by series_index
  std::vector<std::uint32_t> series_index;
  std::vector<std::int64_t> timestamp_ns;  ///< wall clock
  std::vector<std::int64_t> monotonic_ns;
  std::vector<double> value;

  std::size_t size() const { return value.size(); }
  bool empty() const { return value.empty(); }

  /// Adds a series and returns its index.
  std::uint32_t AddSeries(Series s);
  void Append(std::uint32_t series_idx, std::int64_t wall_ns, std::int64_t mono_ns, double v) {
    series_index.push_back(series_idx);
    timestamp_ns.push_back(wall_ns);
    monotonic_ns.push_back(mono_ns);
    value.push_back(v);
  }
  /// Room for n more samples without reallocation.
  void Reserve(std::size_t n);
  /// Drops the samples, keeps labels, series and capacity.
  void ClearSamples();
  /// Sample i with labels merged (series labels win over batch labels).
  Sample At(std::size_t i) const;
  /// Appends every sample of `other`, remapping its series into this batch. Labels of `other`
  /// that differ from this batch's are folded into the copied series.
  void AppendBatch(const SampleBatch& other);
};

}  // namespace bitfusion
