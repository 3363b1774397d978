// Statistics of repeated measurements, in one place: summaries (median, spread, percentiles, a
// bootstrap interval of the median, outliers by two rules, warnings), and the comparison of two
// samples (change of the median with its bootstrap interval, two-sided Mann-Whitney U).
//
// Pure functions: no I/O, no clocks, no global state. Every bootstrap is seeded, so the same
// values always give the same interval. Non-finite values (NaN, ±infinity) are counted and left
// out of every statistic.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "bitfusion/export.h"

namespace bitfusion {

struct StatisticsOptions {
  double confidence = 0.95;                ///< of the bootstrap intervals, in (0, 1)
  int bootstrap_resamples = 2000;          ///< resamples per bootstrap interval
  std::uint64_t seed = 0x626974667573ULL;  ///< bootstrap seed: same values, same interval
  /// A value whose modified z-score |0.6745 (x - median) / MAD| exceeds this is an outlier
  /// (Iglewicz and Hoaglin's 3.5, as hyperfine uses).
  double mad_threshold = 3.5;
  double tukey_k = 1.5;    ///< Tukey's fences: outside [Q1 - k IQR, Q3 + k IQR] is an outlier
  double high_rsd = 0.10;  ///< warn when stddev / |mean| reaches this (pyperf's 10 %)
};

struct Statistics {
  std::size_t count = 0;      ///< finite values summarised
  std::size_t nonfinite = 0;  ///< NaN and ±infinity, left out
  /// stddev: sample (n - 1), 0 for one value. These and the percentiles are NaN when count is 0.
  double median = 0, mean = 0, stddev = 0, min = 0, max = 0;
  double rsd = 0;          ///< relative standard deviation, stddev / |mean|; NaN when the mean is 0
  double p5 = 0, p95 = 0;  ///< percentiles, R's default definition (type 7)
  /// Percentile bootstrap interval of the median at `confidence`; NaN when count < 2.
  double median_ci_low = 0, median_ci_high = 0;
  /// Indices into the values as given (non-finite ones included in the numbering), ascending.
  std::vector<std::size_t> mad_outliers;    ///< modified z-score above the threshold
  std::vector<std::size_t> tukey_outliers;  ///< outside Tukey's fences
  bool first_is_outlier = false;            ///< the first finite value is an outlier by either rule
  /// People-readable warnings: the first run is an outlier (a warm-up is missing), the RSD is
  /// high, non-finite values were left out. Empty when nothing is suspicious.
  std::vector<std::string> warnings;
};

/// Summarises `values` in the order they were measured (the order matters for
/// `first_is_outlier`).
BITFUSION_EXPORT Statistics Summarize(const std::vector<double>& values,
                                      const StatisticsOptions& options = {});

/// The p-quantile (0 <= p <= 1) of finite `values` as R's quantile(type = 7) computes it; NaN
/// when there is none.
BITFUSION_EXPORT double Quantile(std::vector<double> values, double p);

struct MannWhitneyResult {
  double u = 0;        ///< U of the first sample: pairs (x, y) with x > y, ties counted 1/2
  double p_value = 1;  ///< two-sided; NaN when either sample is empty
  bool exact = false;  ///< the exact distribution was used (no ties, both samples < 50)
};

/// Two-sided Mann-Whitney U (Wilcoxon rank-sum) test of finite `x` against finite `y`, as R's
/// wilcox.test(x, y) computes it: the exact distribution when both samples have fewer than 50
/// values and there are no ties, else the normal approximation with tie and continuity
/// corrections.
BITFUSION_EXPORT MannWhitneyResult MannWhitneyU(const std::vector<double>& x,
                                                const std::vector<double>& y);

struct SampleComparison {
  double baseline_median = 0, candidate_median = 0;
  /// candidate_median / baseline_median - 1; NaN when the baseline median is 0.
  double change = 0;
  /// Percentile bootstrap interval of `change` (each sample resampled on its own); NaN when
  /// either sample has fewer than 2 values.
  double change_ci_low = 0, change_ci_high = 0;
  MannWhitneyResult test;  ///< p_value NaN when either sample has fewer than 2 values
};

/// Compares two samples of one metric (finite values only are used).
BITFUSION_EXPORT SampleComparison CompareSamples(const std::vector<double>& baseline,
                                                 const std::vector<double>& candidate,
                                                 const StatisticsOptions& options = {});

}  // namespace bitfusion
