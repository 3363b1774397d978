// Statistics as JSON, the one shape every --json and Python dict uses: numbers, with null for a
// non-finite value (JSON has no NaN).
#pragma once

#include <boost/json.hpp>

#include "bitfusion/statistics.h"

namespace bitfusion::internal {

/// `v`, or null when it is NaN or infinite.
boost::json::value FiniteOrNull(double v);

/// count, nonfinite, median, mean, stddev, rsd, min, max, p5, p95, median_ci [low, high],
/// mad_outliers, tukey_outliers, first_is_outlier, warnings.
boost::json::object StatisticsJson(const Statistics& s);

}  // namespace bitfusion::internal
