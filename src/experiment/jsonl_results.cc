#include "experiment/jsonl_results.h"

#include <boost/json.hpp>

#include <algorithm>
#include <fstream>
#include <limits>
#include <map>
#include <tuple>

#include "experiment/results_store_internal.h"

namespace bitfusion::internal {
namespace {

bool Starts(const std::string& line, std::string_view prefix) {
  return line.compare(0, prefix.size(), prefix) == 0;
}

std::string Str(const boost::json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  return v && v->is_string() ? std::string(v->get_string()) : std::string();
}

}  // namespace

JsonlResults::JsonlResults(std::string path)
    : path_(std::move(path)), location_("jsonl://" + path_) {}

Result<std::unique_ptr<ResultsStore>> JsonlResults::Open(const std::string& path) {
  std::unique_ptr<JsonlResults> store(new JsonlResults(path));
  std::ifstream in(path);
  if (!in) return NotFoundError("cannot read " + path);
  std::string line;
  std::size_t number = 0;
  std::map<std::string, std::size_t> by_id;
  while (std::getline(in, line)) {
    ++number;
    if (line.empty() || Starts(line, R"({"type":"sample")")) continue;
    if (!Starts(line, R"({"type":"run")")) {
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      boost::system::error_code ec;
      auto tree = boost::json::parse(line, ec);
      if (ec || !tree.is_object()) {
        return InvalidArgumentError(path + ":" + std::to_string(number) +
                                    ": not a JSON object; is this a file a jsonl:// sink wrote?");
      }
      if (Str(tree.get_object(), "type") != "run") continue;
    }
    auto record = RunRecordFromStoredJson(line);
    if (!record) {
      return record.error().WithContext(path + ":" + std::to_string(number));
    }
    if (auto it = by_id.find(record->run_id); it != by_id.end()) {
      store->records_[it->second] = std::move(*record);
    } else {
      by_id.emplace(record->run_id, store->records_.size());
      store->records_.push_back(std::move(*record));
    }
  }
  return std::unique_ptr<ResultsStore>(std::move(store));
}

Result<std::vector<StoredPlanRun>> JsonlResults::PlanRuns() {
  std::vector<StoredPlanRun> out;
  for (const auto& r : records_) CountPlanRun(r, out);
  std::stable_sort(out.begin(), out.end(), [](const StoredPlanRun& a, const StoredPlanRun& b) {
    return a.start_ns < b.start_ns;
  });
  return out;
}

Result<std::vector<RunRecord>> JsonlResults::Runs(const std::string& plan_run_id) {
  std::vector<RunRecord> out;
  for (const auto& r : records_) {
    if (r.plan_run_id == plan_run_id) out.push_back(r);
  }
  std::stable_sort(out.begin(), out.end(), [](const RunRecord& a, const RunRecord& b) {
    return a.exit.start_ns < b.exit.start_ns;
  });
  return out;
}

Status JsonlResults::ForEachSeries(const std::set<std::string>& run_ids,
                                   const std::function<void(StoredSeries&&)>& on_series) {
  if (run_ids.empty()) return Status::OK();
  std::ifstream in(path_);
  if (!in) return NotFoundError("cannot read " + path_);
  // (run, metric, unit, labels) -> series, in first-seen order.
  std::map<std::tuple<std::string, std::string, std::string, Labels>, std::size_t> index;
  std::vector<StoredSeries> series;
  std::string line;
  while (std::getline(in, line)) {
    if (!Starts(line, R"({"type":"sample")")) continue;
    boost::system::error_code ec;
    auto tree = boost::json::parse(line, ec);
    if (ec || !tree.is_object()) continue;  // a torn last line after a crash
    const auto& o = tree.get_object();
    Labels labels;
    if (const auto* m = o.if_contains("metadata"); m && m->is_object()) {
      for (const auto& member : m->get_object()) {
        if (member.value().is_string()) labels.emplace(member.key(), member.value().get_string());
      }
    }
    std::string run = RunOfLabels(labels);
    if (!run_ids.count(run)) continue;
    auto key = std::make_tuple(run, Str(o, "metric"), Str(o, "unit"), labels);
    auto [it, added] = index.emplace(std::move(key), series.size());
    if (added) {
      StoredSeries s;
      s.run_id = std::move(run);
      s.metric = std::get<1>(it->first);
      s.unit = std::get<2>(it->first);
      s.labels = std::move(labels);
      const auto* counter = o.if_contains("counter");
      s.counter = counter != nullptr && counter->is_bool() && counter->get_bool();
      series.push_back(std::move(s));
    }
    StoredSeries& s = series[it->second];
    const auto* ts = o.if_contains("timestamp_ns");
    s.timestamp_ns.push_back(ts && ts->is_int64() ? ts->get_int64() : 0);
    const auto* v = o.if_contains("value");
    double value = std::numeric_limits<double>::quiet_NaN();
    if (v && v->is_number()) {
      value = v->to_number<double>();
    } else {
      const std::string text = Str(o, "value_text");
      if (text == "Infinity") value = std::numeric_limits<double>::infinity();
      if (text == "-Infinity") value = -std::numeric_limits<double>::infinity();
    }
    s.value.push_back(value);
  }
  for (auto& s : series) on_series(std::move(s));
  return Status::OK();
}

}  // namespace bitfusion::internal
