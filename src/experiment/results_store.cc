// Opening a results store for reading, and the pieces both readers share.
#include <boost/json.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>

#include "bitfusion/log.h"
#include "core/json_codec.h"
#include "experiment/jsonl_results.h"
#include "experiment/results_store_internal.h"
#include "experiment/sqlite_results.h"

namespace bitfusion {
namespace internal {

Result<RunRecord> RunRecordFromStoredJson(std::string_view json) {
  auto tree = ParseJsonExactly(json);
  if (!tree || !tree->is_object()) {
    return InvalidArgumentError("a stored run record is not a JSON object (" +
                                (tree ? std::string("wrong type") : tree.error().message()) + ")");
  }
  // A JSONL run line says what it is; the rest is the record as ToJson writes it, null plus
  // "value_text" for what was not finite, members added since it was written left at their
  // defaults.
  tree->get_object().erase("type");
  RunRecord record;
  BITFUSION_RETURN_IF_ERROR(FromJsonValue(*tree, record));
  if (record.plan_run_id.empty()) record.plan_run_id = record.run_id;
  if (record.plan.empty()) record.plan = record.benchmark;
  return record;
}

std::string RunOfLabels(const Labels& labels) {
  if (auto it = labels.find("run_id"); it != labels.end()) return it->second;
  if (auto it = labels.find("run"); it != labels.end()) return it->second;
  return {};
}

void CountPlanRun(const RunRecord& record, std::vector<StoredPlanRun>& plan_runs) {
  auto it = std::find_if(plan_runs.begin(), plan_runs.end(), [&](const StoredPlanRun& p) {
    return p.plan_run_id == record.plan_run_id;
  });
  if (it == plan_runs.end()) {
    plan_runs.push_back({record.plan, record.plan_run_id, record.exit.start_ns, 0});
    it = std::prev(plan_runs.end());
  }
  ++it->runs;
  if (record.exit.start_ns != 0 && (it->start_ns == 0 || record.exit.start_ns < it->start_ns)) {
    it->start_ns = record.exit.start_ns;
  }
}

}  // namespace internal

namespace {

// "sqlite://PATH" / "jsonl://PATH" / PATH: the path, and whether it names SQLite (nullopt: by
// its header).
struct Location {
  std::string path;
  std::optional<bool> sqlite;
};

Result<Location> ParseLocation(const std::string& location) {
  Location out;
  std::string rest = location;
  for (const auto& [scheme, sqlite] :
       {std::pair{"sqlite://", true}, std::pair{"jsonl://", false}}) {
    if (location.rfind(scheme, 0) == 0) {
      rest = location.substr(std::string_view(scheme).size());
      out.sqlite = sqlite;
    }
  }
  if (!out.sqlite && location.find("://") != std::string::npos) {
    return InvalidArgumentError("results store \"" + Redact(location) +
                                "\": only sqlite://PATH, jsonl://PATH or a file path can be read "
                                "back; copy the results into one of those");
  }
  if (auto q = rest.find('?'); q != std::string::npos && out.sqlite) rest.resize(q);
  if (rest.empty()) return InvalidArgumentError("results store \"" + location + "\" names no file");
  out.path = rest;
  return out;
}

}  // namespace

Result<std::unique_ptr<ResultsStore>> ResultsStore::Open(const std::string& location) {
  BITFUSION_ASSIGN_OR_RETURN(Location where, ParseLocation(location));
  std::ifstream in(where.path, std::ios::binary);
  if (!in) {
    return NotFoundError("results store " + where.path +
                         " cannot be read: no such file (or no permission); give the file a "
                         "`bitfusion run --sink sqlite://…` or `jsonl://…` wrote");
  }
  if (!where.sqlite) {
    char header[16] = {};
    in.read(header, sizeof header);
    where.sqlite = std::string_view(header, static_cast<std::size_t>(in.gcount())) ==
                   std::string_view("SQLite format 3\0", 16);
  }
  in.close();
  if (*where.sqlite) return internal::SqliteResults::Open(where.path);
  return internal::JsonlResults::Open(where.path);
}

Result<ResultsSelection> SelectResults(const std::string& location_at_id) {
  std::string location = location_at_id;
  std::string id;
  // The last '@' that is not part of credentials ("sqlite://a@b" has none: the files here are
  // paths). A run id is 32 hex digits or an import's id; a path may hold '@' too, so only a
  // suffix without '/' counts.
  if (auto at = location.rfind('@');
      at != std::string::npos && location.find('/', at) == std::string::npos && at > 0) {
    id = location.substr(at + 1);
    location.resize(at);
    if (id.empty()) {
      return InvalidArgumentError("\"" + location_at_id +
                                  "\": nothing after '@'; write STORE@PLAN_RUN_ID, or STORE "
                                  "alone for its latest plan run");
    }
  }
  ResultsSelection out;
  BITFUSION_ASSIGN_OR_RETURN(out.store, ResultsStore::Open(location));
  BITFUSION_ASSIGN_OR_RETURN(auto plan_runs, out.store->PlanRuns());
  if (plan_runs.empty()) {
    return NotFoundError("results store " + out.store->location() +
                         " holds no run records; run a plan with --sink pointing at it first");
  }
  if (id.empty()) {
    out.plan_run = plan_runs.back();
  } else {
    auto it = std::find_if(plan_runs.begin(), plan_runs.end(),
                           [&](const StoredPlanRun& p) { return p.plan_run_id == id; });
    if (it == plan_runs.end()) {
      std::string known;
      for (std::size_t i = plan_runs.size(); i-- > 0 && plan_runs.size() - i <= 5;) {
        known +=
            (known.empty() ? "" : ", ") + plan_runs[i].plan_run_id + " (" + plan_runs[i].plan + ")";
      }
      return NotFoundError("results store " + out.store->location() + " holds no plan run " + id +
                           "; the latest: " + known);
    }
    out.plan_run = *it;
  }
  BITFUSION_ASSIGN_OR_RETURN(out.runs, out.store->Runs(out.plan_run.plan_run_id));
  return out;
}

}  // namespace bitfusion
