// Statistics of repeated measurements (see bitfusion/statistics.h). Reference values for the
// tests come from R: quantile(type = 7), sd, wilcox.test.

#include "bitfusion/statistics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

namespace bitfusion {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

__extension__ typedef unsigned __int128 Uint128;  // GCC and Clang; __extension__ for -Wpedantic

// xoshiro256** (Blackman and Vigna), its state filled by splitmix64 from the seed. Our own, so
// that a seed gives the same numbers with every standard library.
class Random {
 public:
  explicit Random(std::uint64_t seed) {
    for (auto& word : state_) word = SplitMix(seed);
  }

  std::uint64_t Next() {
    const std::uint64_t result = Rotl(state_[1] * 5, 7) * 9;
    const std::uint64_t t = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = Rotl(state_[3], 45);
    return result;
  }

  /// Uniform in [0, bound), bound > 0, without bias (Lemire's multiply-and-reject).
  std::uint64_t Below(std::uint64_t bound) {
    Uint128 m = static_cast<Uint128>(Next()) * bound;
    auto low = static_cast<std::uint64_t>(m);
    if (low < bound) {
      const std::uint64_t threshold = -bound % bound;  // 2^64 mod bound
      while (low < threshold) {
        m = static_cast<Uint128>(Next()) * bound;
        low = static_cast<std::uint64_t>(m);
      }
    }
    return static_cast<std::uint64_t>(m >> 64);
  }

 private:
  static std::uint64_t Rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  static std::uint64_t SplitMix(std::uint64_t& x) {
    std::uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

  std::uint64_t state_[4];
};

std::vector<double> Finite(const std::vector<double>& values) {
  std::vector<double> finite;
  finite.reserve(values.size());
  for (double v : values)
    if (std::isfinite(v)) finite.push_back(v);
  return finite;
}

/// R's quantile type 7 of sorted, non-empty values, computed as R's quantile.default does it
/// (so that it agrees to the last bit): index = 1 + (n - 1) p, interpolated between the order
/// statistics around it.
double SortedQuantile(const std::vector<double>& sorted, double p) {
  const double index = 1 + static_cast<double>(sorted.size() - 1) * p;
  const double lo = std::floor(index), hi = std::ceil(index);
  const double at_lo = sorted[static_cast<std::size_t>(lo) - 1];
  const double at_hi = sorted[static_cast<std::size_t>(hi) - 1];
  if (!(index > lo) || at_hi == at_lo) return at_lo;
  const double h = index - lo;
  return (1 - h) * at_lo + h * at_hi;
}

double SortedMedian(const std::vector<double>& sorted) {
  const std::size_t n = sorted.size();
  return n % 2 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
}

/// Median of non-empty `buffer`, reordering it.
double MedianInPlace(std::vector<double>& buffer) {
  const std::size_t n = buffer.size();
  const auto mid = buffer.begin() + static_cast<std::ptrdiff_t>(n / 2);
  std::nth_element(buffer.begin(), mid, buffer.end());
  if (n % 2) return *mid;
  // After nth_element everything before `mid` is <= *mid; the lower middle is their maximum.
  return (*std::max_element(buffer.begin(), mid) + *mid) / 2;
}

/// Medians of bootstrap resamples of `values`. A resample (n draws with replacement) is kept as
/// how often each of the sorted values was drawn, and its median found by walking those counts:
/// O(n) a resample without moving values, several times faster than nth_element on a gathered
/// copy. The draws go to positions in the sorted values, so the standard library's sort (which
/// may order equal values differently) cannot change the result.
class MedianResampler {
 public:
  explicit MedianResampler(std::vector<double> values)
      : sorted_(std::move(values)), counts_(sorted_.size()) {
    std::sort(sorted_.begin(), sorted_.end());
  }

  const std::vector<double>& sorted() const { return sorted_; }

  /// Draws a resample, n > 0, and returns its median.
  double Draw(Random& random) {
    const std::size_t n = sorted_.size();
    std::fill(counts_.begin(), counts_.end(), 0);
    for (std::size_t i = 0; i < n; ++i) ++counts_[random.Below(n)];
    // The median is the mean of the resample's order statistics (n - 1) / 2 and n / 2 (0-based).
    const std::size_t lower = (n - 1) / 2, upper = n / 2;
    std::size_t below = 0, k = 0;  // draws of sorted_[0 .. k)
    while (below + counts_[k] <= lower) below += counts_[k++];
    const double low = sorted_[k];
    if (upper == lower || below + counts_[k] > upper) return low;
    do ++k;
    while (counts_[k] == 0);
    return (low + sorted_[k]) / 2;
  }

 private:
  std::vector<double> sorted_;
  std::vector<std::uint32_t> counts_;
};

bool ValidBootstrap(const StatisticsOptions& options) {
  return options.confidence > 0 && options.confidence < 1 && options.bootstrap_resamples > 0;
}

/// The percentile interval of `estimates` at `confidence` (type 7 quantiles); NaN when empty.
void PercentileInterval(std::vector<double> estimates, double confidence, double& low,
                        double& high) {
  const double alpha = (1 - confidence) / 2;
  low = Quantile(estimates, alpha);
  high = Quantile(std::move(estimates), 1 - alpha);
}

std::string Number(double v, int precision, std::chars_format format) {
  char buffer[64];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, v, format, precision);
  if (ec != std::errc()) return "?";
  return std::string(buffer, end);
}

std::string General(double v) { return Number(v, 6, std::chars_format::general); }

void AddNonfiniteWarning(Statistics& s) {
  if (s.nonfinite == 0) return;
  s.warnings.push_back(std::to_string(s.nonfinite) + " non-finite value" +
                       (s.nonfinite == 1 ? "" : "s") + " left out");
}

/// pnorm(z) = P(Z <= z) for a standard normal Z.
double NormalCdf(double z) { return 0.5 * std::erfc(-z / std::sqrt(2.0)); }

/// Counts of the Mann-Whitney U of a sample of m against one of n without ties: counts[u] is the
/// number of the C(m + n, m) rank assignments whose U is u, for u in [0, m n]. The ranks are
/// given out one at a time, smallest first; a rank given to the first sample adds to U the number
/// of second-sample ranks below it. (R's cwilcox counts the same distribution by recursion.)
std::vector<double> MannWhitneyCounts(std::size_t m, std::size_t n) {
  const std::size_t width = m * n + 1;
  // ways[k * width + u]: assignments of the ranks so far, k of them to the first sample.
  std::vector<double> ways((m + 1) * width, 0.0);
  ways[0] = 1;
  for (std::size_t j = 0; j < m + n; ++j) {  // ranks given out so far; now rank j + 1
    const std::size_t k_high = std::min(j + 1, m);
    const std::size_t k_low = j + 1 > n ? j + 1 - n : 0;
    // Largest k first: row k - 1 still holds the counts before this rank when row k reads it.
    // Rows k >= k_low keep their counts (the rank goes to the second sample, which has room).
    for (std::size_t k = k_high; k >= std::max<std::size_t>(k_low, 1); --k) {
      const std::size_t below = j - (k - 1);  // second-sample ranks below this one
      const double* from = &ways[(k - 1) * width];
      double* to = &ways[k * width];
      for (std::size_t u = 0; u <= (k - 1) * below; ++u) to[u + below] += from[u];
    }
  }
  return std::vector<double>(ways.begin() + static_cast<std::ptrdiff_t>(m * width), ways.end());
}

}  // namespace

double Quantile(std::vector<double> values, double p) {
  values.erase(
      std::remove_if(values.begin(), values.end(), [](double v) { return !std::isfinite(v); }),
      values.end());
  if (values.empty() || !(p >= 0 && p <= 1)) return kNaN;
  std::sort(values.begin(), values.end());
  return SortedQuantile(values, p);
}

Statistics Summarize(const std::vector<double>& values, const StatisticsOptions& options) {
  Statistics s;
  const std::vector<double> finite = Finite(values);
  s.count = finite.size();
  s.nonfinite = values.size() - finite.size();
  s.median_ci_low = s.median_ci_high = kNaN;
  if (finite.empty()) {
    s.median = s.mean = s.stddev = s.min = s.max = s.rsd = s.p5 = s.p95 = kNaN;
    AddNonfiniteWarning(s);
    return s;
  }
  const std::size_t n = finite.size();
  const auto dn = static_cast<double>(n);

  std::vector<double> sorted = finite;
  std::sort(sorted.begin(), sorted.end());
  s.min = sorted.front();
  s.max = sorted.back();
  s.median = SortedMedian(sorted);
  s.p5 = SortedQuantile(sorted, 0.05);
  s.p95 = SortedQuantile(sorted, 0.95);

  // Mean with R's second pass, which takes back most of the first sum's rounding.
  double sum = 0;
  for (double v : finite) sum += v;
  s.mean = sum / dn;
  double residual = 0;
  for (double v : finite) residual += v - s.mean;
  s.mean += residual / dn;
  if (n > 1) {
    double squares = 0;
    for (double v : finite) squares += (v - s.mean) * (v - s.mean);
    s.stddev = std::sqrt(squares / (dn - 1));
  }
  s.rsd = s.mean == 0 ? kNaN : s.stddev / std::fabs(s.mean);

  // Bootstrap interval of the median.
  if (n >= 2 && ValidBootstrap(options)) {
    Random random(options.seed);
    MedianResampler resampler(sorted);
    std::vector<double> medians;
    medians.reserve(static_cast<std::size_t>(options.bootstrap_resamples));
    for (int b = 0; b < options.bootstrap_resamples; ++b) medians.push_back(resampler.Draw(random));
    PercentileInterval(std::move(medians), options.confidence, s.median_ci_low, s.median_ci_high);
  }

  // Outliers, by index into `values` as given.
  if (n >= 3) {
    std::vector<double> deviations(n);
    for (std::size_t i = 0; i < n; ++i) deviations[i] = std::fabs(finite[i] - s.median);
    double scale = 0;  // z = (x - median) / scale
    double mad = MedianInPlace(deviations);
    if (mad > 0) {
      scale = mad / 0.6745;
    } else {
      // More than half the values equal the median: the mean absolute deviation (about the
      // median) stands in, scaled as IBM SPSS does (1.253314 = 1 / 0.7979).
      double mean_ad = 0;
      for (double v : finite) mean_ad += std::fabs(v - s.median);
      mean_ad /= dn;
      scale = 1.253314 * mean_ad;
    }
    const double q1 = SortedQuantile(sorted, 0.25), q3 = SortedQuantile(sorted, 0.75);
    const double iqr = q3 - q1;
    const double low_fence = q1 - options.tukey_k * iqr;
    const double high_fence = q3 + options.tukey_k * iqr;
    bool first = true;
    for (std::size_t i = 0; i < values.size(); ++i) {
      const double v = values[i];
      if (!std::isfinite(v)) continue;
      const bool mad_outlier =
          scale > 0 && std::fabs((v - s.median) / scale) > options.mad_threshold;
      const bool tukey_outlier = v < low_fence || v > high_fence;
      if (mad_outlier) s.mad_outliers.push_back(i);
      if (tukey_outlier) s.tukey_outliers.push_back(i);
      if (first) s.first_is_outlier = mad_outlier || tukey_outlier;
      first = false;
    }
  }

  if (s.first_is_outlier) {
    s.warnings.push_back("the first run is an outlier (" + General(finite[0]) + " vs median " +
                         General(s.median) + "): add a warm-up run");
  }
  if (n >= 2 && s.rsd >= options.high_rsd) {  // false when the RSD is NaN
    s.warnings.push_back(
        "relative standard deviation " + Number(100 * s.rsd, 1, std::chars_format::fixed) +
        " % is high (>= " + General(100 * options.high_rsd) + " %): results are noisy");
  }
  AddNonfiniteWarning(s);
  return s;
}

MannWhitneyResult MannWhitneyU(const std::vector<double>& x, const std::vector<double>& y) {
  MannWhitneyResult result;
  const std::vector<double> xs = Finite(x), ys = Finite(y);
  const std::size_t nx = xs.size(), ny = ys.size();
  if (nx == 0 || ny == 0) {
    result.p_value = kNaN;
    return result;
  }
  // Midranks of the pooled values, as R's rank(); sizes of the tie groups for the variance.
  const std::size_t total = nx + ny;
  std::vector<std::pair<double, bool>> pooled;  // value, from x
  pooled.reserve(total);
  for (double v : xs) pooled.emplace_back(v, true);
  for (double v : ys) pooled.emplace_back(v, false);
  std::sort(pooled.begin(), pooled.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  double rank_sum_x = 0, tie_term = 0;
  bool ties = false;
  for (std::size_t i = 0; i < total;) {
    std::size_t j = i + 1;
    while (j < total && pooled[j].first == pooled[i].first) ++j;
    const double group = static_cast<double>(j - i);
    const double midrank = (static_cast<double>(i + 1) + static_cast<double>(j)) / 2;
    for (std::size_t k = i; k < j; ++k)
      if (pooled[k].second) rank_sum_x += midrank;
    if (j - i > 1) {
      ties = true;
      tie_term += group * group * group - group;
    }
    i = j;
  }
  const double dx = static_cast<double>(nx), dy = static_cast<double>(ny);
  result.u = rank_sum_x - dx * (dx + 1) / 2;

  if (nx < 50 && ny < 50 && !ties) {
    result.exact = true;
    const std::vector<double> counts = MannWhitneyCounts(nx, ny);
    double all = 0;
    for (double c : counts) all += c;
    const auto w = static_cast<std::size_t>(result.u);
    // As R: the tail on the side of W, P(W <= w) below the middle, else P(W >= w).
    double tail = 0;
    if (result.u > dx * dy / 2) {
      for (std::size_t u = w; u < counts.size(); ++u) tail += counts[u];
    } else {
      for (std::size_t u = 0; u <= w; ++u) tail += counts[u];
    }
    result.p_value = std::min(1.0, 2 * tail / all);
    return result;
  }

  const double dt = dx + dy;
  const double z = result.u - dx * dy / 2;
  const double sigma = std::sqrt(dx * dy / 12 * ((dt + 1) - tie_term / (dt * (dt - 1))));
  if (!(sigma > 0)) {
    // Every value equal: W is its mean whatever the order. R answers NaN (0 / 0); there is no
    // evidence of a difference.
    result.p_value = 1;
    return result;
  }
  const double correction = z > 0 ? 0.5 : (z < 0 ? -0.5 : 0.0);
  const double zc = (z - correction) / sigma;
  result.p_value = std::min(1.0, 2 * std::min(NormalCdf(zc), NormalCdf(-zc)));
  return result;
}

SampleComparison CompareSamples(const std::vector<double>& baseline,
                                const std::vector<double>& candidate,
                                const StatisticsOptions& options) {
  SampleComparison c;
  MedianResampler base(Finite(baseline)), cand(Finite(candidate));
  c.baseline_median = base.sorted().empty() ? kNaN : SortedMedian(base.sorted());
  c.candidate_median = cand.sorted().empty() ? kNaN : SortedMedian(cand.sorted());
  c.change = c.baseline_median == 0 ? kNaN : c.candidate_median / c.baseline_median - 1;
  c.change_ci_low = c.change_ci_high = kNaN;
  c.test = MannWhitneyU(base.sorted(), cand.sorted());
  if (base.sorted().size() < 2 || cand.sorted().size() < 2) {
    c.test.p_value = kNaN;
    return c;
  }
  if (std::isfinite(c.change) && ValidBootstrap(options)) {
    Random random(options.seed);
    std::vector<double> changes;
    changes.reserve(static_cast<std::size_t>(options.bootstrap_resamples));
    for (int b = 0; b < options.bootstrap_resamples; ++b) {
      const double base_median = base.Draw(random);
      const double cand_median = cand.Draw(random);
      // A resample whose baseline median is 0 has no change; Quantile leaves it out.
      changes.push_back(base_median == 0 ? kNaN : cand_median / base_median - 1);
    }
    PercentileInterval(std::move(changes), options.confidence, c.change_ci_low, c.change_ci_high);
  }
  return c;
}

}  // namespace bitfusion
