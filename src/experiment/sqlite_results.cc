#include "experiment/sqlite_results.h"

#include <sqlite3.h>

#include <boost/json.hpp>

#include <algorithm>
#include <limits>
#include <unordered_map>

#include "experiment/results_store_internal.h"

namespace bitfusion::internal {
namespace {

// The schema this reader understands (docs/sqlite-schema.md).
constexpr int kApplicationId = 0x42467573;
constexpr int kUserVersion = 2;  // 2 added series.counter

class Statement {
 public:
  Statement(sqlite3* db, const char* sql) {
    rc_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr);
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  bool ok() const { return rc_ == SQLITE_OK; }
  sqlite3_stmt* get() { return stmt_; }
  void Bind(int index, const std::string& text) {
    sqlite3_bind_text(stmt_, index, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
  }
  std::string Text(int column) {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, column));
    return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, column)))
             : std::string();
  }

 private:
  sqlite3_stmt* stmt_ = nullptr;
  int rc_ = SQLITE_OK;
};

Labels ParseLabels(const std::string& text) {
  Labels labels;
  boost::system::error_code ec;
  auto tree = boost::json::parse(text, ec);
  if (ec || !tree.is_object()) return labels;
  for (const auto& member : tree.get_object()) {
    if (member.value().is_string()) {
      labels.emplace(member.key(), member.value().get_string());
    } else {
      labels.emplace(member.key(), boost::json::serialize(member.value()));
    }
  }
  return labels;
}

}  // namespace

SqliteResults::SqliteResults(sqlite3* db, std::string path)
    : db_(db), location_("sqlite://" + std::move(path)) {}

SqliteResults::~SqliteResults() { sqlite3_close_v2(db_); }

Status SqliteResults::Error(const char* what) const {
  return InternalError(std::string(what) + " in " + location_ + ": " + sqlite3_errmsg(db_));
}

Result<std::unique_ptr<ResultsStore>> SqliteResults::Open(const std::string& path) {
  sqlite3* db = nullptr;
  const int rc =
      sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, nullptr);
  std::unique_ptr<SqliteResults> store(new SqliteResults(db, path));
  if (rc != SQLITE_OK) return store->Error("opening");
  sqlite3_busy_timeout(db, 5000);
  Statement pragma(db,
                   "SELECT (SELECT application_id FROM pragma_application_id), "
                   "(SELECT user_version FROM pragma_user_version)");
  if (!pragma.ok() || sqlite3_step(pragma.get()) != SQLITE_ROW) {
    return InvalidArgumentError(path + " is not a readable SQLite database (" + sqlite3_errmsg(db) +
                                ")");
  }
  const int app = sqlite3_column_int(pragma.get(), 0);
  const int version = sqlite3_column_int(pragma.get(), 1);
  if (app != kApplicationId) {
    return InvalidArgumentError(path +
                                " is a SQLite database that bitfusion did not write (no "
                                "application_id 0x42467573); give a file a sqlite:// sink made");
  }
  if (version > kUserVersion) {
    return InvalidArgumentError(path + " has results schema version " + std::to_string(version) +
                                ", newer than this bitfusion reads (" +
                                std::to_string(kUserVersion) + "); use a newer bitfusion");
  }
  store->version_ = version;
  return std::unique_ptr<ResultsStore>(std::move(store));
}

Result<std::vector<StoredPlanRun>> SqliteResults::PlanRuns() {
  // Imports have no plan run: each is its own, named by its run id and benchmark.
  Statement q(db_,
              "SELECT CASE WHEN plan_run_id = '' THEN run_id ELSE plan_run_id END AS id, "
              "       CASE WHEN plan = '' THEN benchmark ELSE plan END, min(start_ns), count(*) "
              "FROM runs GROUP BY id ORDER BY min(start_ns), min(rowid)");
  if (!q.ok()) return Error("listing plan runs");
  std::vector<StoredPlanRun> out;
  int rc;
  while ((rc = sqlite3_step(q.get())) == SQLITE_ROW) {
    StoredPlanRun p;
    p.plan_run_id = q.Text(0);
    p.plan = q.Text(1);
    p.start_ns = sqlite3_column_int64(q.get(), 2);
    p.runs = static_cast<std::size_t>(sqlite3_column_int64(q.get(), 3));
    out.push_back(std::move(p));
  }
  if (rc != SQLITE_DONE) return Error("listing plan runs");
  return out;
}

Result<std::vector<RunRecord>> SqliteResults::Runs(const std::string& plan_run_id) {
  Statement q(db_,
              "SELECT record FROM runs WHERE plan_run_id = ?1 OR (plan_run_id = '' AND run_id = "
              "?1) ORDER BY start_ns, rowid");
  if (!q.ok()) return Error("reading runs");
  q.Bind(1, plan_run_id);
  std::vector<RunRecord> out;
  int rc;
  while ((rc = sqlite3_step(q.get())) == SQLITE_ROW) {
    auto record = RunRecordFromStoredJson(q.Text(0));
    if (!record) return record.error().WithContext(location_);
    out.push_back(std::move(*record));
  }
  if (rc != SQLITE_DONE) return Error("reading runs");
  return out;
}

Status SqliteResults::ForEachSeries(const std::set<std::string>& run_ids,
                                    const std::function<void(StoredSeries&&)>& on_series) {
  if (run_ids.empty()) return Status::OK();
  // Series are few; their labels say which run they belong to.
  std::unordered_map<std::int64_t, StoredSeries> wanted;
  {
    // Version 1 files have no counter column.
    Statement q(db_, version_ >= 2 ? "SELECT series_id, metric, unit, labels, counter FROM series"
                                   : "SELECT series_id, metric, unit, labels, 0 FROM series");
    if (!q.ok()) return Error("reading series");
    int rc;
    while ((rc = sqlite3_step(q.get())) == SQLITE_ROW) {
      Labels labels = ParseLabels(q.Text(3));
      std::string run = RunOfLabels(labels);
      if (!run_ids.count(run)) continue;
      StoredSeries s;
      s.run_id = std::move(run);
      s.metric = q.Text(1);
      s.unit = q.Text(2);
      s.labels = std::move(labels);
      s.counter = sqlite3_column_int(q.get(), 4) != 0;
      wanted.emplace(sqlite3_column_int64(q.get(), 0), std::move(s));
    }
    if (rc != SQLITE_DONE) return Error("reading series");
  }
  if (wanted.empty()) return Status::OK();
  // One pass over the samples (the optional samples_series_time index serves the IN list).
  std::string ids;
  std::vector<std::int64_t> sorted;
  for (const auto& [id, s] : wanted) sorted.push_back(id);
  std::sort(sorted.begin(), sorted.end());
  for (std::int64_t id : sorted) ids += (ids.empty() ? "" : ",") + std::to_string(id);
  const std::string sql =
      "SELECT series_id, timestamp_ns, value FROM samples WHERE series_id IN (" + ids +
      ") ORDER BY rowid";
  Statement q(db_, sql.c_str());
  if (!q.ok()) return Error("reading samples");
  int rc;
  while ((rc = sqlite3_step(q.get())) == SQLITE_ROW) {
    auto it = wanted.find(sqlite3_column_int64(q.get(), 0));
    if (it == wanted.end()) continue;
    it->second.timestamp_ns.push_back(sqlite3_column_int64(q.get(), 1));
    it->second.value.push_back(sqlite3_column_type(q.get(), 2) == SQLITE_NULL
                                   ? std::numeric_limits<double>::quiet_NaN()
                                   : sqlite3_column_double(q.get(), 2));
  }
  if (rc != SQLITE_DONE) return Error("reading samples");
  for (std::int64_t id : sorted) on_series(std::move(wanted[id]));
  return Status::OK();
}

}  // namespace bitfusion::internal
