// Reference values come from R 4.2.2; each is next to the expression that printed it. The tests
// never run R.
#include "bitfusion/statistics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace bitfusion {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
const double kNaN = std::nan("");

// R's values agree to about 1e-9 relative (R's own arithmetic differs in the last bits); exact
// p-values are sums of the same integer counts, so they agree to 1e-12.
void ExpectRelNear(double actual, double expected, double rel = 1e-9) {
  EXPECT_NEAR(actual, expected, std::fabs(expected) * rel) << "expected " << expected;
}

// Odd and even sizes for the quantiles.
const std::vector<double> kOdd = {3.1, 1.4, 15.9, 2.6, 5.3, 5.8, 9.7};
const std::vector<double> kEven = {2.7, 1.8, 2.8, 18.2, 8.4, 5.9};

// The same values as R's `a:b`.
std::vector<double> Range(int from, int to) {
  std::vector<double> v;
  for (int i = from; i <= to; ++i) v.push_back(i);
  return v;
}

// R's `scale * ((1:n * step) %% mod) + offset`.
std::vector<double> Permuted(int n, int step, int mod, double scale, double offset) {
  std::vector<double> v;
  for (int i = 1; i <= n; ++i) v.push_back(scale * ((i * step) % mod) + offset);
  return v;
}

// Deterministic noise in [-1, 1] (a small LCG), for the tests that need no R.
std::vector<double> Noisy(std::size_t n, double center, double spread, std::uint32_t seed) {
  std::vector<double> v;
  std::uint32_t state = seed;
  for (std::size_t i = 0; i < n; ++i) {
    state = state * 1664525u + 1013904223u;
    const double u = static_cast<double>(state >> 8) / static_cast<double>(1u << 24);  // [0, 1)
    v.push_back(center * (1 + spread * (2 * u - 1)));
  }
  return v;
}

TEST(QuantileTest, MatchesRType7OnOddSize) {
  // Rscript -e 'print(quantile(c(3.1, 1.4, 15.9, 2.6, 5.3, 5.8, 9.7), P, type=7), digits=17)'
  const double p[] = {0, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 1, 1.0 / 3};
  const double r[] = {1.3999999999999999,
                      1.76,
                      2.1200000000000001,
                      2.8500000000000001,
                      5.2999999999999998,
                      7.75,
                      12.180000000000001,
                      14.039999999999996,
                      15.9,
                      3.1000000000000001};
  for (std::size_t i = 0; i < std::size(p); ++i) {
    SCOPED_TRACE(p[i]);
    ExpectRelNear(Quantile(kOdd, p[i]), r[i]);
  }
}

TEST(QuantileTest, MatchesRType7OnEvenSize) {
  // Rscript -e 'print(quantile(c(2.7, 1.8, 2.8, 18.2, 8.4, 5.9), P, type=7), digits=17)'
  const double p[] = {0, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 1, 1.0 / 3};
  const double r[] = {1.8,
                      2.0250000000000004,
                      2.25,
                      2.7250000000000005,
                      4.3499999999999996,
                      7.7750000000000004,
                      13.300000000000001,
                      15.749999999999998,
                      18.199999999999999,
                      2.7666666666666666};
  for (std::size_t i = 0; i < std::size(p); ++i) {
    SCOPED_TRACE(p[i]);
    ExpectRelNear(Quantile(kEven, p[i]), r[i]);
  }
}

TEST(QuantileTest, NonFiniteLeftOutAndNoneIsNaN) {
  EXPECT_DOUBLE_EQ(Quantile({kNaN, 3, kInf, 1, -kInf, 2}, 0.5), 2);
  EXPECT_DOUBLE_EQ(Quantile({5}, 0.3), 5);
  EXPECT_TRUE(std::isnan(Quantile({}, 0.5)));
  EXPECT_TRUE(std::isnan(Quantile({kNaN, kInf}, 0.5)));
  EXPECT_TRUE(std::isnan(Quantile({1, 2}, 1.5)));
  EXPECT_TRUE(std::isnan(Quantile({1, 2}, kNaN)));
}

TEST(SummarizeTest, MatchesR) {
  const Statistics s = Summarize(kOdd);
  EXPECT_EQ(s.count, 7u);
  EXPECT_EQ(s.nonfinite, 0u);
  EXPECT_DOUBLE_EQ(s.median, 5.3);
  EXPECT_DOUBLE_EQ(s.min, 1.4);
  EXPECT_DOUBLE_EQ(s.max, 15.9);
  // Rscript -e 'print(mean(c(3.1, 1.4, 15.9, 2.6, 5.3, 5.8, 9.7)), digits=17)'
  ExpectRelNear(s.mean, 6.2571428571428571);
  // Rscript -e 'print(sd(c(3.1, 1.4, 15.9, 2.6, 5.3, 5.8, 9.7)), digits=17)'
  ExpectRelNear(s.stddev, 5.0480547880205444);
  ExpectRelNear(s.rsd, 5.0480547880205444 / 6.2571428571428571);
  // Rscript -e 'print(quantile(c(3.1, 1.4, 15.9, 2.6, 5.3, 5.8, 9.7), c(0.05, 0.95)), digits=17)'
  ExpectRelNear(s.p5, 1.76);
  ExpectRelNear(s.p95, 14.039999999999996);

  const Statistics e = Summarize(kEven);
  // Rscript -e 'print(median(c(2.7, 1.8, 2.8, 18.2, 8.4, 5.9)), digits=17)'
  ExpectRelNear(e.median, 4.3499999999999996);
  // Rscript -e 'print(mean(c(2.7, 1.8, 2.8, 18.2, 8.4, 5.9)), digits=17)'
  ExpectRelNear(e.mean, 6.6333333333333337);
  // Rscript -e 'print(sd(c(2.7, 1.8, 2.8, 18.2, 8.4, 5.9)), digits=17)'
  ExpectRelNear(e.stddev, 6.1801833845499008);
  // Rscript -e 'print(quantile(c(2.7, 1.8, 2.8, 18.2, 8.4, 5.9), c(0.05, 0.95)), digits=17)'
  ExpectRelNear(e.p5, 2.0250000000000004);
  ExpectRelNear(e.p95, 15.749999999999998);

  // Rscript -e 'print(sd(c(4, 1, 3, 2)), digits=17)'
  ExpectRelNear(Summarize({4, 1, 3, 2}).stddev, 1.2909944487358056);
}

TEST(SummarizeTest, HighRsdWarns) {
  const Statistics s = Summarize(kOdd);  // RSD 80.7 %
  ASSERT_EQ(s.warnings.size(), 1u);
  EXPECT_EQ(s.warnings[0],
            "relative standard deviation 80.7 % is high (>= 10 %): results are noisy");
  StatisticsOptions lenient;
  lenient.high_rsd = 0.9;
  EXPECT_TRUE(Summarize(kOdd, lenient).warnings.empty());
  EXPECT_TRUE(Summarize({100, 101, 99, 100.5, 99.5}).warnings.empty());
}

TEST(SummarizeTest, OneValue) {
  const Statistics s = Summarize({7});
  EXPECT_EQ(s.count, 1u);
  EXPECT_EQ(s.median, 7);
  EXPECT_EQ(s.mean, 7);
  EXPECT_EQ(s.stddev, 0);
  EXPECT_EQ(s.rsd, 0);
  EXPECT_EQ(s.p5, 7);
  EXPECT_EQ(s.p95, 7);
  EXPECT_TRUE(std::isnan(s.median_ci_low));
  EXPECT_TRUE(std::isnan(s.median_ci_high));
  EXPECT_TRUE(s.mad_outliers.empty());
  EXPECT_FALSE(s.first_is_outlier);
  EXPECT_TRUE(s.warnings.empty());
  EXPECT_TRUE(std::isnan(Summarize({0}).rsd));
  EXPECT_TRUE(std::isnan(Summarize({-1, 1}).rsd));  // mean 0
}

TEST(SummarizeTest, NoValues) {
  const Statistics s = Summarize({});
  EXPECT_EQ(s.count, 0u);
  EXPECT_TRUE(std::isnan(s.median));
  EXPECT_TRUE(std::isnan(s.median_ci_low));
  EXPECT_TRUE(s.warnings.empty());
  const Statistics n = Summarize({kNaN, kInf});
  EXPECT_EQ(n.count, 0u);
  EXPECT_EQ(n.nonfinite, 2u);
  ASSERT_EQ(n.warnings.size(), 1u);
  EXPECT_EQ(n.warnings[0], "2 non-finite values left out");
}

TEST(SummarizeTest, NonFiniteLeftOut) {
  const Statistics s = Summarize({1, kNaN, 3, kInf, -kInf, 2});
  EXPECT_EQ(s.count, 3u);
  EXPECT_EQ(s.nonfinite, 3u);
  EXPECT_EQ(s.median, 2);
  EXPECT_EQ(s.mean, 2);
  EXPECT_EQ(s.stddev, 1);
  EXPECT_EQ(s.min, 1);
  EXPECT_EQ(s.max, 3);
  EXPECT_TRUE(std::isfinite(s.median_ci_low));
  EXPECT_TRUE(std::isfinite(s.median_ci_high));
  ASSERT_FALSE(s.warnings.empty());
  EXPECT_EQ(s.warnings.back(), "3 non-finite values left out");
  EXPECT_EQ(Summarize({1, kNaN, 1}).warnings,
            std::vector<std::string>{"1 non-finite value left out"});
}

TEST(SummarizeTest, MadAndTukeyOutliers) {
  // Median 10.05, MAD 0.05: 25 has a modified z-score of 201.7. Rscript -e 'print(quantile(c(10,
  // 10.1, 9.9, 10.05, 25), c(0.25, 0.75)))' gives Q1 10, Q3 10.1: the fences are 9.85 and 10.25.
  const Statistics s = Summarize({10, 10.1, 9.9, 10.05, 25});
  EXPECT_EQ(s.mad_outliers, std::vector<std::size_t>{4});
  EXPECT_EQ(s.tukey_outliers, std::vector<std::size_t>{4});
  EXPECT_FALSE(s.first_is_outlier);

  // Indices count the non-finite values too.
  const Statistics n = Summarize({10, kNaN, 10.1, 9.9, kInf, 10.05, 25});
  EXPECT_EQ(n.mad_outliers, std::vector<std::size_t>{6});
  EXPECT_EQ(n.tukey_outliers, std::vector<std::size_t>{6});

  // A low threshold flags 9.9 too (z = 2.02), wide fences flag nothing.
  StatisticsOptions options;
  options.mad_threshold = 2;
  options.tukey_k = 200;
  const Statistics o = Summarize({10, 10.1, 9.9, 10.05, 25}, options);
  EXPECT_EQ(o.mad_outliers, (std::vector<std::size_t>{2, 4}));
  EXPECT_TRUE(o.tukey_outliers.empty());

  // Fewer than 3 values flag nothing.
  EXPECT_TRUE(Summarize({10, 25}).mad_outliers.empty());
  EXPECT_TRUE(Summarize({10, 25}).tukey_outliers.empty());
}

TEST(SummarizeTest, FirstRunOutlierWarns) {
  const Statistics s = Summarize({25, 10, 10.1, 9.9, 10.05});
  EXPECT_EQ(s.mad_outliers, std::vector<std::size_t>{0});
  EXPECT_EQ(s.tukey_outliers, std::vector<std::size_t>{0});
  EXPECT_TRUE(s.first_is_outlier);
  ASSERT_FALSE(s.warnings.empty());
  EXPECT_EQ(s.warnings[0], "the first run is an outlier (25 vs median 10.05): add a warm-up run");

  // The first finite value counts; its index is as given.
  const Statistics n = Summarize({kNaN, 25, 10, 10.1, 9.9, 10.05});
  EXPECT_TRUE(n.first_is_outlier);
  EXPECT_EQ(n.mad_outliers, std::vector<std::size_t>{1});
  EXPECT_EQ(n.warnings.back(), "1 non-finite value left out");
}

TEST(SummarizeTest, ZeroMadFallsBackToMeanAbsoluteDeviation) {
  // MAD 0; mean absolute deviation 16 / 7: z of 20 is 15 / (1.253314 * 16 / 7) = 5.24.
  const Statistics s = Summarize({5, 5, 5, 5, 5, 6, 20});
  EXPECT_EQ(s.mad_outliers, std::vector<std::size_t>{6});
  // MAD 0; mean absolute deviation 6 / 7: z of 8 is 2.79, not an outlier; Q3 + 1.5 IQR = 8.75.
  const Statistics t = Summarize({5, 5, 5, 5, 6, 7, 8});
  EXPECT_TRUE(t.mad_outliers.empty());
  EXPECT_TRUE(t.tukey_outliers.empty());
  // Both deviations 0: nothing is an outlier.
  const Statistics c = Summarize({5, 5, 5, 5});
  EXPECT_TRUE(c.mad_outliers.empty());
  EXPECT_TRUE(c.tukey_outliers.empty());
  EXPECT_FALSE(c.first_is_outlier);
  EXPECT_TRUE(c.warnings.empty());
}

TEST(SummarizeTest, BootstrapIsDeterministicAndNarrowsWithMoreData) {
  const std::vector<double> small = Noisy(20, 100, 0.1, 1);
  const Statistics a = Summarize(small), b = Summarize(small);
  EXPECT_EQ(a.median_ci_low, b.median_ci_low);
  EXPECT_EQ(a.median_ci_high, b.median_ci_high);
  EXPECT_LE(a.median_ci_low, a.median);
  EXPECT_GE(a.median_ci_high, a.median);
  EXPECT_LT(a.median_ci_low, a.median_ci_high);
  EXPECT_GE(a.median_ci_low, a.min);
  EXPECT_LE(a.median_ci_high, a.max);

  const Statistics large = Summarize(Noisy(2000, 100, 0.1, 2));
  EXPECT_LE(large.median_ci_low, large.median);
  EXPECT_GE(large.median_ci_high, large.median);
  EXPECT_LT(large.median_ci_high - large.median_ci_low, (a.median_ci_high - a.median_ci_low) / 3);

  // Another seed draws other resamples (with 20 values the medians of the resamples take few
  // distinct values, so two seeds may well give the same interval: use the larger sample).
  StatisticsOptions other;
  other.seed = 42;
  const Statistics c = Summarize(Noisy(2000, 100, 0.1, 2), other);
  EXPECT_TRUE(c.median_ci_low != large.median_ci_low || c.median_ci_high != large.median_ci_high);
  // A higher confidence gives a wider interval.
  StatisticsOptions wide;
  wide.confidence = 0.99;
  const Statistics w = Summarize(small, wide);
  EXPECT_LE(w.median_ci_low, a.median_ci_low);
  EXPECT_GE(w.median_ci_high, a.median_ci_high);
}

TEST(SummarizeTest, NoBootstrapWithoutResamplesOrConfidence) {
  StatisticsOptions none;
  none.bootstrap_resamples = 0;
  EXPECT_TRUE(std::isnan(Summarize({1, 2, 3}, none).median_ci_low));
  StatisticsOptions bad;
  bad.confidence = 1;
  EXPECT_TRUE(std::isnan(Summarize({1, 2, 3}, bad).median_ci_high));
  EXPECT_TRUE(std::isnan(CompareSamples({1, 2, 3}, {2, 3, 4}, bad).change_ci_low));
}

TEST(SummarizeTest, TenThousandValues) {
  const std::vector<double> values = Noisy(10000, 50, 0.2, 3);
  const Statistics s = Summarize(values);
  EXPECT_EQ(s.count, 10000u);
  EXPECT_LE(s.median_ci_low, s.median);
  EXPECT_GE(s.median_ci_high, s.median);
  EXPECT_LT(s.median_ci_high - s.median_ci_low, 1.0);
}

TEST(MannWhitneyTest, ExactFullySeparated) {
  // Rscript -e 'print(wilcox.test(1:5, 6:10)$p.value, digits=17)'
  MannWhitneyResult r = MannWhitneyU(Range(1, 5), Range(6, 10));
  EXPECT_TRUE(r.exact);
  EXPECT_EQ(r.u, 0);
  EXPECT_NEAR(r.p_value, 0.0079365079365079361, 1e-12);
  // Rscript -e 'print(wilcox.test(6:10, 1:5), digits=17)' gives W = 25 and the same p-value.
  r = MannWhitneyU(Range(6, 10), Range(1, 5));
  EXPECT_EQ(r.u, 25);
  EXPECT_NEAR(r.p_value, 0.0079365079365079361, 1e-12);
  // Non-finite values are left out.
  r = MannWhitneyU({1, 2, kNaN, 3, 4, 5}, {6, 7, 8, kInf, 9, 10});
  EXPECT_EQ(r.u, 0);
  EXPECT_NEAR(r.p_value, 0.0079365079365079361, 1e-12);
}

TEST(MannWhitneyTest, ExactSmall) {
  // Rscript -e 'print(wilcox.test(c(0.8, 1.2, 3.4, 2.2, 1.9, 4.1), c(2.5, 3.7, 4.4, 5.0, 2.9,
  //   3.3, 6.1)), digits=17)': W = 7, p-value = 0.05128205128205128
  const MannWhitneyResult r =
      MannWhitneyU({0.8, 1.2, 3.4, 2.2, 1.9, 4.1}, {2.5, 3.7, 4.4, 5.0, 2.9, 3.3, 6.1});
  EXPECT_TRUE(r.exact);
  EXPECT_EQ(r.u, 7);
  EXPECT_NEAR(r.p_value, 0.05128205128205128, 1e-12);
  // Rscript -e 'print(wilcox.test(c(4, 1, 3), c(2, 6))$p.value, digits=17)'
  EXPECT_NEAR(MannWhitneyU({4, 1, 3}, {2, 6}).p_value, 0.80000000000000004, 1e-12);
  // Rscript -e 'print(wilcox.test(1, 2)$p.value, digits=17)'
  EXPECT_NEAR(MannWhitneyU({1}, {2}).p_value, 1, 1e-12);
  // Rscript -e 'print(wilcox.test(c(10.5, 30.5, 70.5), 1:40)$p.value, digits=17)'
  EXPECT_NEAR(MannWhitneyU({10.5, 30.5, 70.5}, Range(1, 40)).p_value, 0.36982416335791257, 1e-12);
}

TEST(MannWhitneyTest, ExactUpTo49) {
  // Rscript -e 'print(wilcox.test(2*((1:49*37) %% 101), 2*((1:49*53) %% 97) + 1)$p.value,
  //   digits=17)'
  MannWhitneyResult r = MannWhitneyU(Permuted(49, 37, 101, 2, 0), Permuted(49, 53, 97, 2, 1));
  EXPECT_TRUE(r.exact);
  EXPECT_EQ(r.u, 1310);  // Rscript -e 'print(wilcox.test(...)$statistic)'
  EXPECT_NEAR(r.p_value, 0.44035264566740023, 1e-12);
  // Rscript -e 'print(wilcox.test(2*(1:49), 2*(1:49) + 41), digits=17)': W = 406
  std::vector<double> x = Range(1, 49), y = Range(1, 49);
  for (double& v : x) v *= 2;
  for (double& v : y) v = 2 * v + 41;
  r = MannWhitneyU(x, y);
  EXPECT_TRUE(r.exact);
  EXPECT_EQ(r.u, 406);
  ExpectRelNear(r.p_value, 2.6341334724381895e-09, 1e-12);
  // Rscript -e 'print(wilcox.test(1:49, 50:98)$p.value, digits=17)'
  r = MannWhitneyU(Range(1, 49), Range(50, 98));
  EXPECT_TRUE(r.exact);
  ExpectRelNear(r.p_value, 7.8500291929632906e-29, 1e-12);
}

TEST(MannWhitneyTest, NormalApproximationWithTies) {
  // Rscript -e 'print(wilcox.test(c(1,2,2,3,4,5,5,6), c(3,4,4,5,6,7,7,8,9)), digits=17)':
  // W = 14, p-value = 0.037140126234395311
  const MannWhitneyResult r = MannWhitneyU({1, 2, 2, 3, 4, 5, 5, 6}, {3, 4, 4, 5, 6, 7, 7, 8, 9});
  EXPECT_FALSE(r.exact);
  EXPECT_EQ(r.u, 14);
  ExpectRelNear(r.p_value, 0.037140126234395311);
}

TEST(MannWhitneyTest, NormalApproximationFrom50) {
  // Rscript -e 'print(wilcox.test((1:60*37) %% 101, (1:55*53) %% 97 + 5), digits=17)':
  // W = 1631, p-value = 0.91749737942264886 (ties)
  MannWhitneyResult r = MannWhitneyU(Permuted(60, 37, 101, 1, 0), Permuted(55, 53, 97, 1, 5));
  EXPECT_FALSE(r.exact);
  EXPECT_EQ(r.u, 1631);
  ExpectRelNear(r.p_value, 0.91749737942264886);
  // Rscript -e 'print(wilcox.test(2*((1:60*37) %% 101), 2*((1:55*53) %% 97) + 1), digits=17)':
  // W = 1786, p-value = 0.44805934997959396 (no ties)
  r = MannWhitneyU(Permuted(60, 37, 101, 2, 0), Permuted(55, 53, 97, 2, 1));
  EXPECT_FALSE(r.exact);
  EXPECT_EQ(r.u, 1786);
  ExpectRelNear(r.p_value, 0.44805934997959396);
  // Rscript -e 'print(wilcox.test(1:60, 61:120)$p.value, digits=17)'
  r = MannWhitneyU(Range(1, 60), Range(61, 120));
  EXPECT_EQ(r.u, 0);
  ExpectRelNear(r.p_value, 3.5565709749847715e-21);
}

TEST(MannWhitneyTest, TenPercentShift) {
  // Rscript -e 'print(wilcox.test(c(100, 93, 104, 97, 108, 95, 101, 99, 106, 92, 103, 98),
  //   c(105, 111, 99.5, 114, 108.5, 102, 117, 110, 107, 112.5, 104.5, 109)), digits=17)':
  // W = 15, p-value = 0.00049553354170395495
  const MannWhitneyResult r =
      MannWhitneyU({100, 93, 104, 97, 108, 95, 101, 99, 106, 92, 103, 98},
                   {105, 111, 99.5, 114, 108.5, 102, 117, 110, 107, 112.5, 104.5, 109});
  EXPECT_TRUE(r.exact);
  EXPECT_EQ(r.u, 15);
  EXPECT_NEAR(r.p_value, 0.00049553354170395495, 1e-12);
  EXPECT_LT(r.p_value, 0.05);
}

TEST(MannWhitneyTest, IdenticalSamples) {
  // Rscript -e 'print(wilcox.test(c(1.5, 2.5, 3.5, 4.5, 5.5), c(1.5, 2.5, 3.5, 4.5, 5.5))$p.value)'
  const MannWhitneyResult r = MannWhitneyU({1.5, 2.5, 3.5, 4.5, 5.5}, {1.5, 2.5, 3.5, 4.5, 5.5});
  EXPECT_FALSE(r.exact);
  EXPECT_EQ(r.u, 12.5);
  EXPECT_EQ(r.p_value, 1);
  // All values equal: R answers NaN (0 / 0); we answer 1.
  EXPECT_EQ(MannWhitneyU({5, 5, 5}, {5, 5}).p_value, 1);
}

TEST(MannWhitneyTest, EmptySampleIsNaN) {
  EXPECT_TRUE(std::isnan(MannWhitneyU({}, {1, 2}).p_value));
  EXPECT_TRUE(std::isnan(MannWhitneyU({1, 2}, {}).p_value));
  EXPECT_TRUE(std::isnan(MannWhitneyU({1, 2}, {kNaN}).p_value));
}

TEST(CompareSamplesTest, TenPercentShift) {
  const std::vector<double> base = Noisy(30, 100, 0.03, 7), cand = Noisy(30, 110, 0.03, 8);
  const SampleComparison c = CompareSamples(base, cand);
  EXPECT_EQ(c.baseline_median, Summarize(base).median);
  EXPECT_EQ(c.candidate_median, Summarize(cand).median);
  EXPECT_DOUBLE_EQ(c.change, c.candidate_median / c.baseline_median - 1);
  EXPECT_GT(c.change, 0.05);
  EXPECT_LT(c.change_ci_low, 0.10);
  EXPECT_GT(c.change_ci_high, 0.10);
  EXPECT_GT(c.change_ci_low, 0);
  EXPECT_LE(c.change_ci_low, c.change);
  EXPECT_GE(c.change_ci_high, c.change);
  EXPECT_LT(c.test.p_value, 1e-6);

  // Seeded: the same interval again.
  const SampleComparison again = CompareSamples(base, cand);
  EXPECT_EQ(again.change_ci_low, c.change_ci_low);
  EXPECT_EQ(again.change_ci_high, c.change_ci_high);

  // The other way round the change is negative (1 / 1.1 - 1 = -0.0909).
  const SampleComparison back = CompareSamples(cand, base);
  EXPECT_LT(back.change, 0);
  EXPECT_LT(back.change_ci_low, -0.0909);
  EXPECT_GT(back.change_ci_high, -0.0909);
  EXPECT_LT(back.change_ci_high, 0);
}

TEST(CompareSamplesTest, RTenPercentShift) {
  // Medians 99.5 and 108.75 (Rscript -e 'print(median(...))').
  const SampleComparison c =
      CompareSamples({100, 93, 104, 97, 108, 95, 101, 99, 106, 92, 103, 98},
                     {105, 111, 99.5, 114, 108.5, 102, 117, 110, 107, 112.5, 104.5, 109});
  EXPECT_EQ(c.baseline_median, 99.5);
  EXPECT_EQ(c.candidate_median, 108.75);
  EXPECT_DOUBLE_EQ(c.change, 108.75 / 99.5 - 1);
  EXPECT_LT(c.change_ci_low, c.change);
  EXPECT_GT(c.change_ci_high, c.change);
  // Same p-value as MannWhitneyTest.TenPercentShift.
  EXPECT_NEAR(c.test.p_value, 0.00049553354170395495, 1e-12);
}

TEST(CompareSamplesTest, FewerThanTwoValues) {
  const SampleComparison c = CompareSamples({4, kNaN}, {5, 6});
  EXPECT_EQ(c.baseline_median, 4);
  EXPECT_EQ(c.candidate_median, 5.5);
  EXPECT_DOUBLE_EQ(c.change, 0.375);
  EXPECT_TRUE(std::isnan(c.change_ci_low));
  EXPECT_TRUE(std::isnan(c.change_ci_high));
  EXPECT_TRUE(std::isnan(c.test.p_value));

  const SampleComparison e = CompareSamples({1, 2, 3}, {});
  EXPECT_EQ(e.baseline_median, 2);
  EXPECT_TRUE(std::isnan(e.candidate_median));
  EXPECT_TRUE(std::isnan(e.change));
  EXPECT_TRUE(std::isnan(e.test.p_value));
}

TEST(CompareSamplesTest, ZeroBaselineMedian) {
  const SampleComparison c = CompareSamples({0, 0, 0, 1}, {1, 2, 3});
  EXPECT_EQ(c.baseline_median, 0);
  EXPECT_TRUE(std::isnan(c.change));
  EXPECT_TRUE(std::isnan(c.change_ci_low));
  EXPECT_TRUE(std::isnan(c.change_ci_high));
  EXPECT_FALSE(std::isnan(c.test.p_value));
}

}  // namespace
}  // namespace bitfusion
