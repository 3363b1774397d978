// What both results readers (sqlite_results, jsonl_results) share: turning a stored run record
// back into a RunRecord, and a stored sample's labels into the run it belongs to.
#pragma once

#include <string>
#include <string_view>

#include "bitfusion/results.h"
#include "bitfusion/run_record.h"
#include "bitfusion/sample.h"
#include "bitfusion/status.h"

namespace bitfusion::internal {

/// A run record as the sinks store it (results' non-finite values as null + "value_text", a
/// leading "type": "run"), back into a RunRecord. Runs without a plan (imports) get their own
/// run id as plan_run_id and their benchmark as plan, so each is a plan run of its own.
Result<RunRecord> RunRecordFromStoredJson(std::string_view json);

/// The run a stored sample belongs to: its "run_id" label (metric streams of plans), else its
/// "run" label (imports); empty when neither.
std::string RunOfLabels(const Labels& labels);

/// Appends `record` to the plan runs in `plan_runs` (kept in first-seen order).
void CountPlanRun(const RunRecord& record, std::vector<StoredPlanRun>& plan_runs);

}  // namespace bitfusion::internal
