// The HTML report's page: everything already loaded from the stores goes in, one
// self-contained HTML document (inline CSS and SVG, no script, nothing fetched) comes out.
// No I/O here; RenderReport (results.h) loads the data and calls this.
#pragma once

#include <string>
#include <vector>

#include "bitfusion/experiment.h"
#include "bitfusion/results.h"
#include "bitfusion/run_record.h"

namespace bitfusion::internal {

/// One run with the samples its metric streams took while it ran.
struct ReportRun {
  RunRecord record;
  std::vector<StoredSeries> series;
};

struct ReportInput {
  std::string title;
  std::string source;  ///< where the results came from (already redacted)
  std::string plan;
  std::string plan_run_id;
  std::vector<ReportRun> runs;  ///< in start order, warm-ups included
  /// Per benchmark and metric, over measured successful runs (computed by the caller).
  std::vector<MetricSummary> summary;
  std::string baseline_source;  ///< empty without a baseline
  std::vector<MetricComparison> comparison;
};

/// The page. `plot_width` (CSS pixels) is also the number of buckets a series is downsampled
/// to for drawing (min and max per bucket); statistics never see downsampled data.
std::string RenderHtmlReport(const ReportInput& input, int plot_width = 960);

}  // namespace bitfusion::internal
