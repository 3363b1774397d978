// Human and machine summaries of a plan's results.
#include <boost/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "bitfusion/experiment.h"

namespace bitfusion {

namespace {
std::string Number(double v) {
  // About five significant digits whatever the magnitude: 0.1959, 2.8780, 24950.7, 1.2e+09.
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
}  // namespace

std::string FormatSummaryTable(const PlanResult& result) {
  const std::vector<std::string> header = {"benchmark", "metric", "unit", "runs", "median",
                                           "mean",      "stddev", "min",  "max"};
  std::vector<std::vector<std::string>> rows;
  for (const auto& m : result.summary) {
    rows.push_back({m.benchmark, m.metric, m.unit, std::to_string(m.stats.count),
                    Number(m.stats.median), Number(m.stats.mean), Number(m.stats.stddev),
                    Number(m.stats.min), Number(m.stats.max)});
  }
  std::vector<std::size_t> width(header.size());
  for (std::size_t c = 0; c < header.size(); ++c) {
    width[c] = header[c].size();
    for (const auto& row : rows) width[c] = std::max(width[c], row[c].size());
  }
  std::ostringstream out;
  auto line = [&](const std::vector<std::string>& cells) {
    for (std::size_t c = 0; c < cells.size(); ++c) {
      const bool numeric = c >= 3;
      const std::string pad(width[c] - cells[c].size(), ' ');
      out << (c ? "  " : "") << (numeric ? pad + cells[c] : cells[c] + pad);
    }
    out << "\n";
  };
  line(header);
  std::vector<std::string> rule;
  for (std::size_t w : width) rule.push_back(std::string(w, '-'));
  line(rule);
  for (const auto& row : rows) line(row);
  return out.str();
}

std::string FormatSummaryJson(const PlanResult& result) {
  boost::json::object out;
  out["plan"] = result.plan;
  out["plan_run_id"] = result.plan_run_id;
  out["interrupted"] = result.interrupted;
  out["failed_runs"] = result.failed_runs;
  boost::json::array summary;
  for (const auto& m : result.summary) {
    summary.push_back({{"benchmark", m.benchmark},
                       {"metric", m.metric},
                       {"unit", m.unit},
                       {"runs", m.stats.count},
                       {"median", m.stats.median},
                       {"mean", m.stats.mean},
                       {"stddev", m.stats.stddev},
                       {"min", m.stats.min},
                       {"max", m.stats.max}});
  }
  out["summary"] = std::move(summary);
  boost::json::array runs;
  for (const auto& r : result.runs) {
    runs.push_back({{"run_id", r.run_id},
                    {"benchmark", r.benchmark},
                    {"repetition", r.repetition},
                    {"warmup", r.warmup},
                    {"status", r.status},
                    {"error", r.error},
                    {"wall_time_ns", r.exit.wall_time_ns},
                    {"observer_cpu_ns", r.overhead.cpu_ns},
                    {"samples", r.overhead.samples},
                    {"samples_dropped", r.overhead.samples_dropped}});
  }
  out["runs"] = std::move(runs);
  boost::json::array errors;
  for (const auto& e : result.sink_errors) errors.push_back(boost::json::string(e));
  out["sink_errors"] = std::move(errors);
  return boost::json::serialize(out);
}

}  // namespace bitfusion
