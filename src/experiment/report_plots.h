// The report's plots, each one section of the page: the repetitions as strip plots (one strip
// per machine, the median with its confidence interval), the metric streams as time series over
// the runs' phases (downsampled to pixel resolution), and the comparison with a baseline as a
// forest plot of changes with their intervals.
#pragma once

#include <string>

#include "experiment/html_report.h"

namespace bitfusion::internal::report {

void Distributions(std::string& out, const ReportInput& in, int width);
void TimeSeries(std::string& out, const ReportInput& in, int width);
void Baseline(std::string& out, const ReportInput& in, int width);

}  // namespace bitfusion::internal::report
