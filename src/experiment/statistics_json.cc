#include "experiment/statistics_json.h"

#include <cmath>

namespace bitfusion::internal {

boost::json::value FiniteOrNull(double v) {
  if (std::isfinite(v)) return v;
  return nullptr;
}

boost::json::object StatisticsJson(const Statistics& s) {
  boost::json::array mad, tukey, warnings;
  for (std::size_t i : s.mad_outliers) mad.push_back(i);
  for (std::size_t i : s.tukey_outliers) tukey.push_back(i);
  for (const auto& w : s.warnings) warnings.push_back(boost::json::string(w));
  return {{"count", s.count},
          {"nonfinite", s.nonfinite},
          {"median", FiniteOrNull(s.median)},
          {"mean", FiniteOrNull(s.mean)},
          {"stddev", FiniteOrNull(s.stddev)},
          {"rsd", FiniteOrNull(s.rsd)},
          {"min", FiniteOrNull(s.min)},
          {"max", FiniteOrNull(s.max)},
          {"p5", FiniteOrNull(s.p5)},
          {"p95", FiniteOrNull(s.p95)},
          {"median_ci", {FiniteOrNull(s.median_ci_low), FiniteOrNull(s.median_ci_high)}},
          {"mad_outliers", std::move(mad)},
          {"tukey_outliers", std::move(tukey)},
          {"first_is_outlier", s.first_is_outlier},
          {"warnings", std::move(warnings)}};
}

}  // namespace bitfusion::internal
