// Reading back what the jsonl:// sink wrote: one JSON object per line, "type" "run" or
// "sample" (docs/sinks.md).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "bitfusion/results.h"

namespace bitfusion::internal {

class JsonlResults final : public ResultsStore {
 public:
  /// Reads the run records at once; samples are read when asked for.
  static Result<std::unique_ptr<ResultsStore>> Open(const std::string& path);

  const std::string& location() const override { return location_; }
  Result<std::vector<StoredPlanRun>> PlanRuns() override;
  Result<std::vector<RunRecord>> Runs(const std::string& plan_run_id) override;
  Status ForEachSeries(const std::set<std::string>& run_ids,
                       const std::function<void(StoredSeries&&)>& on_series) override;

 private:
  explicit JsonlResults(std::string path);

  std::string path_;
  std::string location_;
  std::vector<RunRecord> records_;  // as stored; a run stored twice keeps its last record
};

}  // namespace bitfusion::internal
