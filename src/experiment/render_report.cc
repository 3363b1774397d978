// `bitfusion report`: a plan run read back from its store (with its samples and, optionally, a
// baseline to compare against) rendered as one self-contained HTML page.
#include <algorithm>

#include "bitfusion/experiment.h"
#include "bitfusion/results.h"
#include "experiment/html_report.h"

namespace bitfusion {

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
    if (it != index.end()) input.runs[it->second].series.push_back(std::move(series));
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
