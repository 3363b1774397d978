// Reading back what the sqlite:// sink wrote (docs/sqlite-schema.md), read-only.
#pragma once

#include <memory>
#include <string>

#include "bitfusion/results.h"

struct sqlite3;

namespace bitfusion::internal {

class SqliteResults final : public ResultsStore {
 public:
  static Result<std::unique_ptr<ResultsStore>> Open(const std::string& path);
  ~SqliteResults() override;

  const std::string& location() const override { return location_; }
  Result<std::vector<StoredPlanRun>> PlanRuns() override;
  Result<std::vector<RunRecord>> Runs(const std::string& plan_run_id) override;
  Status ForEachSeries(const std::set<std::string>& run_ids,
                       const std::function<void(StoredSeries&&)>& on_series) override;

 private:
  SqliteResults(sqlite3* db, std::string path);
  Status Error(const char* what) const;

  sqlite3* db_;
  std::string location_;
  int version_ = 0;  // the file's user_version
};

}  // namespace bitfusion::internal
