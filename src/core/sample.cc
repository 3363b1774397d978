#include "bitfusion/sample.h"

#include <map>
#include <utility>

namespace bitfusion {

std::uint32_t SampleBatch::AddSeries(Series s) {
  series.push_back(std::move(s));
  return static_cast<std::uint32_t>(series.size() - 1);
}

void SampleBatch::Reserve(std::size_t n) {
  const std::size_t want = size() + n;
  series_index.reserve(want);
  timestamp_ns.reserve(want);
  monotonic_ns.reserve(want);
  value.reserve(want);
}

void SampleBatch::ClearSamples() {
  series_index.clear();
  timestamp_ns.clear();
  monotonic_ns.clear();
  value.clear();
}

Sample SampleBatch::At(std::size_t i) const {
  const Series& s = series.at(series_index.at(i));
  Sample out;
  out.metric = s.metric;
  out.unit = s.unit;
  out.value = value[i];
  out.timestamp_ns = timestamp_ns[i];
  out.monotonic_ns = monotonic_ns[i];
  out.metadata = labels;
  for (const auto& [key, v] : s.labels) out.metadata[key] = v;
  return out;
}

void SampleBatch::AppendBatch(const SampleBatch& other) {
  if (empty() && series.empty()) labels = other.labels;
  // Shared labels that `other` does not carry with the same value stop being shared: they move
  // into this batch's own series (whose labels win over shared ones anyway), so they never
  // reach the samples appended below.
  for (auto it = labels.begin(); it != labels.end();) {
    auto theirs = other.labels.find(it->first);
    if (theirs != other.labels.end() && theirs->second == it->second) {
      ++it;
      continue;
    }
    for (Series& s : series) s.labels.emplace(it->first, it->second);
    it = labels.erase(it);
  }
  // Labels of `other` that are not shared here become labels of the copied series.
  Labels extra;
  for (const auto& [key, v] : other.labels) {
    if (labels.count(key) == 0) extra[key] = v;
  }
  std::vector<std::uint32_t> remap(other.series.size());
  for (std::size_t i = 0; i < other.series.size(); ++i) {
    Series s = other.series[i];
    for (const auto& [key, v] : extra) s.labels.emplace(key, v);
    remap[i] = AddSeries(std::move(s));
  }
  Reserve(other.size());
  for (std::size_t i = 0; i < other.size(); ++i) {
    Append(remap[other.series_index[i]], other.timestamp_ns[i], other.monotonic_ns[i],
           other.value[i]);
  }
}

}  // namespace bitfusion
