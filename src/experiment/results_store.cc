// Opening a results store for reading, and the pieces both readers share.
#include <boost/json.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>

#include "bitfusion/log.h"
#include "bitfusion/serialize.h"
#include "experiment/jsonl_results.h"
#include "experiment/results_store_internal.h"
#include "experiment/sqlite_results.h"

namespace bitfusion {
namespace internal {
namespace {

double NonFinite(const boost::json::value* text) {
  if (text != nullptr && text->is_string()) {
    if (text->get_string() == "Infinity") return std::numeric_limits<double>::infinity();
    if (text->get_string() == "-Infinity") return -std::numeric_limits<double>::infinity();
  }
  return std::numeric_limits<double>::quiet_NaN();
}

// Fills what `stored` lacks from `defaults`, recursively; arrays of objects take their first
// default element as the template for every stored element. Records written by an older
// bitfusion lack fields added since (a machine's zone, say), and cereal's reader refuses a
// missing field.
void MergeDefaults(boost::json::value& stored, const boost::json::value& defaults) {
  if (stored.is_object() && defaults.is_object()) {
    auto& object = stored.get_object();
    for (const auto& member : defaults.get_object()) {
      auto* have = object.if_contains(member.key());
      if (have == nullptr) {
        object.emplace(member.key(), member.value());
      } else {
        MergeDefaults(*have, member.value());
      }
    }
  } else if (stored.is_array() && defaults.is_array() && !defaults.get_array().empty()) {
    for (auto& element : stored.get_array()) MergeDefaults(element, defaults.get_array().front());
  }
}

// A RunRecord of defaults as JSON, with one element in each array so arrays get a template.
const boost::json::value& DefaultRecordJson() {
  static const boost::json::value tree = [] {
    RunRecord record;
    record.results.emplace_back();
    record.machine.accelerators.emplace_back();
    record.machine.cpu.caches.emplace_back();
    return boost::json::parse(ToJson(record));
  }();
  return tree;
}

}  // namespace

Result<RunRecord> RunRecordFromStoredJson(std::string_view json) {
  boost::system::error_code ec;
  boost::json::value tree = boost::json::parse(json, ec);
  if (ec || !tree.is_object()) {
    return InvalidArgumentError("a stored run record is not a JSON object (" +
                                (ec ? ec.message() : std::string("wrong type")) + ")");
  }
  auto& object = tree.get_object();
  object.erase("type");
  MergeDefaults(tree, DefaultRecordJson());
  // cereal reads numbers only: null stands for a non-finite value the sinks could not write.
  std::vector<std::pair<std::size_t, double>> non_finite;
  if (auto* results = object.if_contains("results"); results && results->is_array()) {
    auto& array = results->get_array();
    for (std::size_t i = 0; i < array.size(); ++i) {
      if (!array[i].is_object()) continue;
      auto& result = array[i].get_object();
      if (auto* value = result.if_contains("value"); value && value->is_null()) {
        non_finite.emplace_back(i, NonFinite(result.if_contains("value_text")));
        *value = 0.0;
      }
      result.erase("value_text");
    }
  }
  double max_mhz = 0;
  bool max_mhz_nan = false;
  if (auto* machine = object.if_contains("machine"); machine && machine->is_object()) {
    if (auto* cpu = machine->get_object().if_contains("cpu"); cpu && cpu->is_object()) {
      if (auto* mhz = cpu->get_object().if_contains("max_mhz"); mhz && mhz->is_null()) {
        max_mhz_nan = true;
        *mhz = max_mhz;
      }
    }
  }
  RunRecord record;
  BITFUSION_RETURN_IF_ERROR(FromJson(boost::json::serialize(tree), record));
  for (const auto& [i, v] : non_finite) {
    if (i < record.results.size()) record.results[i].value = v;
  }
  if (max_mhz_nan) record.machine.cpu.max_mhz = std::numeric_limits<double>::quiet_NaN();
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
