// How many measured runs a benchmark gets: a fixed count, or adaptive repetitions that go on
// until the metric's relative standard deviation is under the target or a cap is reached.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "bitfusion/clock.h"
#include "bitfusion/experiment.h"
#include "bitfusion/statistics.h"

namespace bitfusion::internal {

// Whether another measured run of a benchmark follows: a fixed count, or adaptive repetitions
// that go on until the metric's RSD is under the target or a cap is reached.
class RepetitionPolicy {
 public:
  explicit RepetitionPolicy(const BenchmarkSpec& b) : b_(b) {}

  const std::string& metric() const {
    static const std::string kWallTime = "wall_time";
    return b_.adaptive.enabled ? b_.adaptive.metric : kWallTime;
  }
  double last() const { return last_; }
  double rsd() const { return rsd_; }
  const char* stop_kind() const { return kind_; }

  // Takes a measured run; returns why no run follows, or "" to go on. `elapsed`: since the
  // benchmark's first run started.
  std::string Add(const RunRecord& r, std::chrono::nanoseconds elapsed) {
    ++made_;
    last_ = std::nan("");
    if (r.status == kRunOk) {
      for (const auto& s : r.results) {
        if (s.metric != metric()) continue;
        last_ = s.value;
        if (std::isfinite(s.value)) values_.push_back(s.value);
        break;
      }
    }
    rsd_ = values_.size() >= 2 ? Summarize(values_).rsd : std::nan("");
    if (!b_.adaptive.enabled) {
      kind_ = "count";
      return made_ >= b_.repetitions ? std::to_string(made_) + (made_ == 1 ? " run" : " runs") : "";
    }
    const std::string rsd_text = std::isnan(rsd_) ? "no RSD" : "RSD " + Percent(rsd_);
    const std::string target = Percent(b_.adaptive.target_rsd);
    if (made_ >= b_.adaptive.min && values_.size() >= 2 && rsd_ < b_.adaptive.target_rsd) {
      kind_ = "target_rsd";
      return rsd_text + " < " + target + " after " + std::to_string(made_) + " runs";
    }
    std::string missing;
    if (values_.empty()) missing = "; no successful run reported " + metric();
    if (made_ >= b_.repetitions) {
      kind_ = "max";
      return "max of " + std::to_string(made_) + " runs reached with " + rsd_text + " (target " +
             target + ")" + missing;
    }
    if (b_.adaptive.max_time.count() > 0 && elapsed >= b_.adaptive.max_time) {
      kind_ = "max_time";
      return "max_time " + FormatDuration(b_.adaptive.max_time) + " reached after " +
             std::to_string(made_) + " runs with " + rsd_text + " (target " + target + ")" +
             missing;
    }
    return "";
  }

  // This benchmark's time left after `runs` runs (warm-ups included) took `elapsed`: the mean
  // run times the runs still planned (at most, when adaptive); capped by max_time.
  std::int64_t EtaNs(int runs, std::chrono::nanoseconds elapsed) const {
    if (runs <= 0) return -1;
    const int left = b_.warmup + b_.repetitions - runs;
    if (left <= 0) return 0;
    std::int64_t eta = elapsed.count() / runs * left;
    if (b_.adaptive.enabled && b_.adaptive.max_time.count() > 0) {
      eta = std::min<std::int64_t>(
          eta, std::max<std::int64_t>(0, (b_.adaptive.max_time - elapsed).count()));
    }
    return eta;
  }

 private:
  static std::string Percent(double fraction) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2f %%", fraction * 100);
    return buf;
  }

  const BenchmarkSpec& b_;
  int made_ = 0;
  std::vector<double> values_;
  double last_ = std::nan("");
  double rsd_ = std::nan("");
  const char* kind_ = "";
};

}  // namespace bitfusion::internal
