// Results read back from a store that `bitfusion run` or `bitfusion import` wrote: the plan runs
// it holds, their comparison with a baseline (with a verdict that knows which way is better),
// and a self-contained HTML report.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "bitfusion/export.h"
#include "bitfusion/run_record.h"
#include "bitfusion/sample.h"
#include "bitfusion/statistics.h"
#include "bitfusion/status.h"

namespace bitfusion {

/// One execution of a plan (or one import) held in a store.
struct StoredPlanRun {
  std::string plan;
  std::string plan_run_id;
  std::int64_t start_ns = 0;  ///< earliest start of its runs (wall clock)
  std::size_t runs = 0;       ///< run records, warm-ups included
};

/// One metric's samples during one run, as a store holds them.
struct StoredSeries {
  std::string run_id;
  std::string metric;
  std::string unit;
  Labels labels;  ///< the sample's labels (run labels included)
  /// A cumulative counter (CPU seconds, bytes since boot), as its source declared it; stores
  /// written before bitfusion kept this flag say false.
  bool counter = false;
  std::vector<std::int64_t> timestamp_ns;  ///< wall clock, in the order stored
  std::vector<double> value;
};

/// A results store opened for reading. Not thread-safe.
class BITFUSION_EXPORT ResultsStore {
 public:
  /// `location`: "sqlite://PATH", "jsonl://PATH", or a bare path (a SQLite file is recognised by
  /// its header, anything else is read as JSON lines). The file must exist.
  static Result<std::unique_ptr<ResultsStore>> Open(const std::string& location);
  virtual ~ResultsStore() = default;

  /// Where it was opened from, passwords redacted.
  virtual const std::string& location() const = 0;
  /// Every plan run the store holds, oldest first.
  virtual Result<std::vector<StoredPlanRun>> PlanRuns() = 0;
  /// The run records of one plan run, in the order they started.
  virtual Result<std::vector<RunRecord>> Runs(const std::string& plan_run_id) = 0;
  /// Calls `on_series` once per stored series of each run in `run_ids`.
  virtual Status ForEachSeries(const std::set<std::string>& run_ids,
                               const std::function<void(StoredSeries&&)>& on_series) = 0;
};

/// "STORE" or "STORE@PLAN_RUN_ID": the store, and the plan run (default: the latest it holds).
struct ResultsSelection {
  std::unique_ptr<ResultsStore> store;
  StoredPlanRun plan_run;
  std::vector<RunRecord> runs;
};
BITFUSION_EXPORT Result<ResultsSelection> SelectResults(const std::string& location_at_id);

/// Which way a metric improves.
enum class Better { kUnknown, kLower, kHigher };
/// From the unit: times ("s", "ms", "ns", …) lower; rates ("…/s", "GFLOP/s", "MB/s", "ops") higher;
/// anything else unknown.
BITFUSION_EXPORT Better BetterFromUnit(const std::string& metric, const std::string& unit);

struct CompareOptions {
  double threshold = 0.01;  ///< |change of the median| below this is "no change" (noise)
  double alpha = 0.05;      ///< significance level of the Mann-Whitney U test
  /// Per metric name, overrides BetterFromUnit.
  std::map<std::string, Better> better;
  StatisticsOptions statistics;
};

struct MetricComparison {
  std::string benchmark;
  std::string metric;
  std::string unit;
  Statistics baseline;  ///< over the baseline's measured, successful repetitions
  Statistics candidate;
  SampleComparison comparison;
  Better better = Better::kUnknown;
  /// "faster" (improved), "slower" (worse), "no change", or "" when no verdict is possible.
  std::string verdict;
  std::string note;  ///< why there is no verdict, or what else a reader should know
};

struct ComparisonResult {
  std::string baseline;  ///< store location and plan run id, for people
  std::string candidate;
  std::vector<MetricComparison> metrics;
  /// Benchmarks or metrics only one side holds, and other remarks.
  std::vector<std::string> notes;
  bool regression = false;  ///< a metric got significantly worse
};

/// Compares the measured, successful runs of two sets of records, per (benchmark, metric) that
/// both hold. Samples are the repetitions.
BITFUSION_EXPORT ComparisonResult CompareRuns(const std::vector<RunRecord>& baseline,
                                              const std::vector<RunRecord>& candidate,
                                              const CompareOptions& options = {});
/// The same for two selections ("STORE[@PLAN_RUN_ID]"); an error when they share no benchmark.
BITFUSION_EXPORT Result<ComparisonResult> CompareResults(const std::string& baseline,
                                                         const std::string& candidate,
                                                         const CompareOptions& options = {});

BITFUSION_EXPORT std::string FormatComparisonTable(const ComparisonResult& result);
BITFUSION_EXPORT std::string FormatComparisonJson(const ComparisonResult& result);

struct ReportOptions {
  std::string baseline;  ///< "STORE[@PLAN_RUN_ID]" to show deltas against; empty for none
  std::string title;     ///< default: the plan's name
  int plot_width = 960;  ///< CSS pixels; series are drawn downsampled to min/max per pixel
  CompareOptions compare;
};

/// One self-contained HTML page (inline SVG and CSS, no script, nothing fetched) for the plan
/// run `results` ("STORE[@PLAN_RUN_ID]") names.
BITFUSION_EXPORT Result<std::string> RenderReport(const std::string& results,
                                                  const ReportOptions& options = {});

}  // namespace bitfusion
