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
  // Labels of `other` that this batch does not share become labels of the copied series.
  Labels extra;
  for (const auto& [key, v] : other.labels) {
    auto it = labels.find(key);
    if (it == labels.end() || it->second != v) extra[key] = v;
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
