#include "experiment/number_format.h"

#include <cmath>
#include <cstdio>

namespace bitfusion::internal {

std::string FormatNumber(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[32];
  const double a = std::fabs(v);
  if (v != 0 && (a >= 1e7 || a < 1e-3)) {
    std::snprintf(buf, sizeof buf, "%.4g", v);
  } else if (a >= 100) {
    std::snprintf(buf, sizeof buf, "%.1f", v);
  } else {
    std::snprintf(buf, sizeof buf, "%.4f", v);
  }
  return buf;
}

std::string FormatPercent(double ratio, bool sign) {
  if (!std::isfinite(ratio)) return "n/a";
  char buf[32];
  const double pct = ratio * 100;
  std::snprintf(buf, sizeof buf, sign ? "%+.*f%%" : "%.*f%%", std::fabs(pct) < 10 ? 2 : 1, pct);
  return buf;
}

}  // namespace bitfusion::internal
