// `bitfusion report`: a plan run read back from its store (with its samples and, optionally, a
// baseline to compare against) rendered as one self-contained HTML page.
#include <algorithm>
#include <limits>

#include "bitfusion/experiment.h"
#include "bitfusion/results.h"
#include "experiment/html_report.h"

namespace bitfusion {
namespace {

// A cumulative counter is read as its rate: the difference between consecutive samples per
// second, at the later sample's time; a drop (a counter reset) gives a gap.
void CounterToRate(StoredSeries& series) {
  if (!series.counter) return;
  std::vector<std::int64_t> t;
  std::vector<double> v;
  for (std::size_t i = 1; i < series.value.size(); ++i) {
    const double dt =
        static_cast<double>(series.timestamp_ns[i] - series.timestamp_ns[i - 1]) / 1e9;
    const double dv = series.value[i] - series.value[i - 1];
    if (dt <= 0) continue;
    t.push_back(series.timestamp_ns[i]);
    v.push_back(dv >= 0 ? dv / dt : std::numeric_limits<double>::quiet_NaN());
  }
  series.timestamp_ns = std::move(t);
  series.value = std::move(v);
  series.unit = (series.unit == "1" ? std::string() : series.unit) + "/s";
  series.counter = false;
}

}  // namespace

Result<std::string> RenderReport(const std::string& results, const ReportOptions& options) {
  if (options.plot_width < 100 || options.plot_width > 10000) {
    return InvalidArgumentError("report plot width " + std::to_string(options.plot_width) +
                                " is out of range; give 100 to 10000 pixels");
  }
  BITFUSION_ASSIGN_OR_RETURN(ResultsSelection selection, SelectResults(results));
  internal::ReportInput input;
  input.title = options.title.empty() ? selection.plan_run.plan : options.title;
  input.source = selection.store->location();
  input.plan = selection.plan_run.plan;
  input.plan_run_id = selection.plan_run.plan_run_id;
  input.summary = SummarizeRuns(selection.runs, options.compare.statistics);
  std::set<std::string> run_ids;
  std::map<std::string, std::size_t> index;
  for (auto& record : selection.runs) {
    run_ids.insert(record.run_id);
    index[record.run_id] = input.runs.size();
    input.runs.push_back({std::move(record), {}});
  }
  BITFUSION_RETURN_IF_ERROR(selection.store->ForEachSeries(run_ids, [&](StoredSeries&& series) {
    auto it = index.find(series.run_id);
    if (it == index.end()) return;
    CounterToRate(series);
    input.runs[it->second].series.push_back(std::move(series));
  }));
  if (!options.baseline.empty()) {
    BITFUSION_ASSIGN_OR_RETURN(ResultsSelection base, SelectResults(options.baseline));
    std::vector<RunRecord> candidate;
    for (const auto& run : input.runs) candidate.push_back(run.record);
    ComparisonResult comparison = CompareRuns(base.runs, candidate, options.compare);
    if (comparison.metrics.empty()) {
      return InvalidArgumentError("baseline " + base.store->location() + "@" +
                                  base.plan_run.plan_run_id +
                                  " shares no benchmark with a measured, successful run with " +
                                  input.source + "@" + input.plan_run_id);
    }
    input.baseline_source = base.store->location() + "@" + base.plan_run.plan_run_id;
    input.comparison = std::move(comparison.metrics);
  }
  return internal::RenderHtmlReport(input, options.plot_width);
}

}  // namespace bitfusion
