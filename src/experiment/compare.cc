// `bitfusion compare`: two plan runs' repetitions, per benchmark and metric, with the change of
// the median, its bootstrap interval, a Mann-Whitney U test and a verdict that knows which
// direction is better.
#include <boost/json.hpp>

#include <algorithm>
#include <cmath>
#include <map>
#include <sstream>

#include "bitfusion/results.h"
#include "experiment/number_format.h"
#include "experiment/repetitions.h"
#include "experiment/statistics_json.h"

namespace bitfusion {
namespace {

using internal::FormatNumber;
using internal::FormatPercent;
using Key = internal::RepetitionKey;

bool EndsWith(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

const char* BetterName(Better b) {
  switch (b) {
    case Better::kLower: return "lower";
    case Better::kHigher: return "higher";
    default: return "unknown";
  }
}

}  // namespace

Better BetterFromUnit(const std::string& metric, const std::string& unit) {
  static const char* const kTimes[] = {"s",   "ms", "us",  "µs",      "ns",    "ps",
                                       "min", "h",  "sec", "seconds", "cycles"};
  for (const char* t : kTimes) {
    if (unit == t) return Better::kLower;
  }
  if (EndsWith(unit, "/s") || EndsWith(unit, "/sec") || EndsWith(unit, "bps") ||
      EndsWith(unit, "Bps") || EndsWith(unit, "ops") || EndsWith(unit, "OPS") ||
      EndsWith(unit, "FLOPS") || unit == "Hz") {
    return Better::kHigher;
  }
  if (metric == "wall_time" || EndsWith(metric, "_time") || EndsWith(metric, ".latency") ||
      EndsWith(metric, "latency")) {
    return Better::kLower;
  }
  return Better::kUnknown;
}

ComparisonResult CompareRuns(const std::vector<RunRecord>& baseline,
                             const std::vector<RunRecord>& candidate,
                             const CompareOptions& options) {
  ComparisonResult out;
  const internal::Repetitions base = internal::CollectRepetitions(baseline);
  const internal::Repetitions cand = internal::CollectRepetitions(candidate);
  for (const Key& key : cand.order) {
    auto b = base.values.find(key);
    if (b == base.values.end()) continue;
    const internal::RepetitionValues& c = cand.values.at(key);
    MetricComparison m;
    m.benchmark = key.benchmark;
    m.metric = key.metric;
    m.unit = c.unit;
    m.baseline = Summarize(b->second.values, options.statistics);
    m.candidate = Summarize(c.values, options.statistics);
    m.comparison = CompareSamples(b->second.values, c.values, options.statistics);
    auto over = options.better.find(key.metric);
    m.better = over != options.better.end() ? over->second : BetterFromUnit(key.metric, c.unit);
    if (b->second.unit != c.unit) {
      m.verdict = "";
      m.note = "units differ (baseline " + b->second.unit + ", candidate " + c.unit +
               "): not comparable";
      out.metrics.push_back(std::move(m));
      continue;
    }
    const double change = m.comparison.change;
    const double p = m.comparison.test.p_value;
    if (m.baseline.count < 2 || m.candidate.count < 2) {
      m.note = "one repetition on a side (" + std::to_string(m.baseline.count) + " vs " +
               std::to_string(m.candidate.count) +
               "): no test is possible; the change is shown without a verdict";
    } else if (!std::isfinite(change)) {
      m.note = "the baseline median is 0: no relative change";
    } else if (std::isnan(p) || p >= options.alpha || std::fabs(change) < options.threshold) {
      m.verdict = "no change";
      if (!std::isnan(p) && p < options.alpha) {
        m.note = "significant but within the noise threshold of " +
                 FormatPercent(options.threshold, false);
      }
    } else if (m.better == Better::kUnknown) {
      m.note = std::string("changed significantly (") + FormatPercent(change) +
               ", p=" + FormatNumber(p) + ") but unit \"" + m.unit +
               "\" does not say which way is better; pass --better " + m.metric + "=lower|higher";
    } else {
      const bool worse = (m.better == Better::kLower) == (change > 0);
      m.verdict = worse ? "slower" : "faster";
      if (worse) out.regression = true;
    }
    if (m.baseline.nonfinite + m.candidate.nonfinite > 0) {
      m.note += std::string(m.note.empty() ? "" : "; ") +
                std::to_string(m.baseline.nonfinite + m.candidate.nonfinite) +
                " non-finite value(s) left out";
    }
    out.metrics.push_back(std::move(m));
  }
  std::set<std::string> cand_benchmarks, base_benchmarks;
  for (const Key& k : cand.order) cand_benchmarks.insert(k.benchmark);
  for (const Key& k : base.order) base_benchmarks.insert(k.benchmark);
  for (const auto& name : base_benchmarks) {
    if (!cand_benchmarks.count(name)) out.notes.push_back("only in the baseline: " + name);
  }
  for (const auto& name : cand_benchmarks) {
    if (!base_benchmarks.count(name)) out.notes.push_back("only in the candidate: " + name);
  }
  for (const Key& k : cand.order) {
    if (base_benchmarks.count(k.benchmark) && !base.values.count(k)) {
      out.notes.push_back("metric only in the candidate: " + k.benchmark + " " + k.metric);
    }
  }
  for (const Key& k : base.order) {
    if (cand_benchmarks.count(k.benchmark) && !cand.values.count(k)) {
      out.notes.push_back("metric only in the baseline: " + k.benchmark + " " + k.metric);
    }
  }
  return out;
}

Result<ComparisonResult> CompareResults(const std::string& baseline, const std::string& candidate,
                                        const CompareOptions& options) {
  BITFUSION_ASSIGN_OR_RETURN(ResultsSelection base, SelectResults(baseline));
  BITFUSION_ASSIGN_OR_RETURN(ResultsSelection cand, SelectResults(candidate));
  ComparisonResult out = CompareRuns(base.runs, cand.runs, options);
  out.baseline = base.store->location() + "@" + base.plan_run.plan_run_id;
  out.candidate = cand.store->location() + "@" + cand.plan_run.plan_run_id;
  if (out.metrics.empty()) {
    return InvalidArgumentError("nothing to compare: baseline " + out.baseline + " (plan " +
                                base.plan_run.plan + ") and candidate " + out.candidate +
                                " (plan " + cand.plan_run.plan +
                                ") share no benchmark with a measured, successful run; pick "
                                "plan runs of the same plan with STORE@PLAN_RUN_ID");
  }
  return out;
}

std::string FormatComparisonTable(const ComparisonResult& result) {
  const std::vector<std::string> header = {"benchmark", "metric", "unit",   "n", "baseline", "n",
                                           "candidate", "change", "95% CI", "p", "verdict"};
  std::vector<std::vector<std::string>> rows;
  for (const auto& m : result.metrics) {
    const auto& c = m.comparison;
    std::string ci = "n/a";
    if (std::isfinite(c.change_ci_low) && std::isfinite(c.change_ci_high)) {
      ci = FormatPercent(c.change_ci_low) + ".." + FormatPercent(c.change_ci_high);
    }
    rows.push_back({m.benchmark, m.metric, m.unit, std::to_string(m.baseline.count),
                    FormatNumber(c.baseline_median), std::to_string(m.candidate.count),
                    FormatNumber(c.candidate_median), FormatPercent(c.change), ci,
                    std::isnan(c.test.p_value) ? "n/a" : FormatNumber(c.test.p_value),
                    m.verdict.empty() ? "n/a" : m.verdict});
  }
  std::ostringstream out;
  out << "baseline:  " << result.baseline << "\ncandidate: " << result.candidate << "\n\n";
  std::vector<bool> left(header.size(), false);
  left[0] = left[1] = left[2] = left.back() = true;
  out << internal::FormatTextTable(header, rows, left);
  bool any_note = false;
  for (const auto& m : result.metrics) {
    if (m.note.empty()) continue;
    if (!any_note) out << "\n";
    any_note = true;
    out << "note: " << m.benchmark << " " << m.metric << ": " << m.note << "\n";
  }
  for (const auto& n : result.notes) out << "note: " << n << "\n";
  return out.str();
}

std::string FormatComparisonJson(const ComparisonResult& result) {
  boost::json::object out;
  out["baseline"] = result.baseline;
  out["candidate"] = result.candidate;
  out["regression"] = result.regression;
  boost::json::array metrics;
  for (const auto& m : result.metrics) {
    const auto& c = m.comparison;
    metrics.push_back(
        {{"benchmark", m.benchmark},
         {"metric", m.metric},
         {"unit", m.unit},
         {"better", BetterName(m.better)},
         {"baseline", internal::StatisticsJson(m.baseline)},
         {"candidate", internal::StatisticsJson(m.candidate)},
         {"change", internal::FiniteOrNull(c.change)},
         {"change_ci",
          {internal::FiniteOrNull(c.change_ci_low), internal::FiniteOrNull(c.change_ci_high)}},
         {"p_value", internal::FiniteOrNull(c.test.p_value)},
         {"u", c.test.u},
         {"exact_test", c.test.exact},
         {"verdict",
          m.verdict.empty() ? boost::json::value(nullptr) : boost::json::value(m.verdict)},
         {"note", m.note}});
  }
  out["metrics"] = std::move(metrics);
  boost::json::array notes;
  for (const auto& n : result.notes) notes.push_back(boost::json::string(n));
  out["notes"] = std::move(notes);
  return boost::json::serialize(out);
}

}  // namespace bitfusion
