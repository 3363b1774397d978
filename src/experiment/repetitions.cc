#include "experiment/repetitions.h"

#include "bitfusion/experiment.h"

namespace bitfusion::internal {

Repetitions CollectRepetitions(const std::vector<RunRecord>& runs) {
  Repetitions out;
  auto add = [&out](RepetitionKey key, const std::string& unit, double value) {
    auto [it, added] = out.values.try_emplace(key);
    if (added) {
      out.order.push_back(std::move(key));
      it->second.unit = unit;
    }
    it->second.values.push_back(value);
  };
  for (const auto& r : runs) {
    if (r.warmup || r.status != kRunOk) continue;
    // A plan on machine groups runs each benchmark on several machines: their repetitions are
    // not one sample, so each machine's count apart ("stream@office-1").
    std::string benchmark = r.benchmark;
    if (r.labels.count("machine_group") != 0) {
      if (auto m = r.labels.find("machine"); m != r.labels.end()) benchmark += "@" + m->second;
    }
    for (const auto& s : r.results) {
      auto type = s.metadata.find("run_type");
      if (type == s.metadata.end()) {
        add({benchmark, s.metric}, s.unit, s.value);
        continue;
      }
      if (type->second != "iteration" || s.metric == "gbench.iterations" ||
          s.metric == "gbench.error") {
        continue;
      }
      auto name = s.metadata.find("benchmark");
      add({benchmark + ":" + (name == s.metadata.end() ? "" : name->second), s.metric}, s.unit,
          s.value);
    }
  }
  return out;
}

}  // namespace bitfusion::internal

namespace bitfusion {

std::vector<MetricSummary> SummarizeRuns(const std::vector<RunRecord>& runs,
                                         const StatisticsOptions& options) {
  const internal::Repetitions repetitions = internal::CollectRepetitions(runs);
  std::vector<MetricSummary> out;
  for (const auto& key : repetitions.order) {
    const auto& values = repetitions.values.at(key);
    MetricSummary m;
    m.benchmark = key.benchmark;
    m.metric = key.metric;
    m.unit = values.unit;
    m.stats = Summarize(values.values, options);
    out.push_back(std::move(m));
  }
  return out;
}

}  // namespace bitfusion
