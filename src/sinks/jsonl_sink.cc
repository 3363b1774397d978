#include "sinks/jsonl_sink.h"

#include <cmath>
#include <utility>

#include "bitfusion/registry.h"

namespace bitfusion {

Result<JsonlSinkOptions> JsonlSinkOptions::FromUri(const Uri& uri) {
  JsonlSinkOptions options;
  BITFUSION_RETURN_IF_ERROR(
      internal::ReadAppendFileUri(uri, ".jsonl", options.path, options.fsync, options.sink));
  return options;
}

namespace internal {

void JsonlEncoder::Append(const SampleBatch& batch, std::string& out) {
  const std::size_t series_count = batch.series.size();
  if (before_value_.size() < series_count) {
    before_value_.resize(series_count);
    after_value_.resize(series_count);
  }
  // Everything about a series is the same on each of its lines: encode it once per batch.
  for (std::size_t s = 0; s < series_count; ++s) {
    const Series& series = batch.series[s];
    std::string& before = before_value_[s];
    before.assign(R"({"type":"sample","metric":)");
    AppendJsonString(before, series.metric);
    before += R"(,"value":)";
    std::string& after = after_value_[s];
    after.assign(R"(,"unit":)");
    AppendJsonString(after, series.unit);
    after += R"(,"metadata":)";
    if (series.labels.empty()) {
      AppendJsonLabels(after, batch.labels);
    } else {
      merged_ = batch.labels;
      for (const auto& [key, value] : series.labels) merged_[key] = value;
      AppendJsonLabels(after, merged_);
    }
    // Cumulative counters say so, for readers that turn them into rates (bitfusion report).
    if (series.counter) after += R"(,"counter":true)";
    after += R"(,"timestamp":)";
  }
  const std::size_t n = batch.size();
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint32_t s = batch.series_index[i];
    out += before_value_[s];
    AppendJsonSampleValue(out, batch.value[i]);
    out += after_value_[s];
    const std::int64_t wall_ns = batch.timestamp_ns[i];
    AppendDouble(out, static_cast<double>(wall_ns) / 1e9);
    out += R"(,"timestamp_ns":)";
    AppendInt(out, wall_ns);
    out += R"(,"monotonic_ns":)";
    AppendInt(out, batch.monotonic_ns[i]);
    out += "}\n";
  }
}

}  // namespace internal

JsonlSink::JsonlSink(const JsonlSinkOptions& options,
                     std::unique_ptr<internal::AppendOnlyFile> file)
    : AppendFileSink("jsonl://" + options.path.string(), options.sink, options.fsync,
                     std::move(file)) {}

JsonlSink::~JsonlSink() { CloseOnDestroy(); }

Result<std::shared_ptr<JsonlSink>> JsonlSink::Make(const JsonlSinkOptions& options) {
  BITFUSION_ASSIGN_OR_RETURN(auto file,
                             internal::AppendOnlyFile::Open(options.path, "jsonl sink file"));
  return std::shared_ptr<JsonlSink>(new JsonlSink(options, std::move(file)));
}

void JsonlSink::EncodeBatch(const SampleBatch& batch, std::string& out) {
  encoder_.Append(batch, out);
}

void JsonlSink::EncodeRun(const RunRecord& record, std::string& out) {
  out += internal::RunRecordJson(record, true);
  out.push_back('\n');
}

BITFUSION_REGISTER(ResultSink, "jsonl", JsonlSinkOptions, JsonlSink);

}  // namespace bitfusion
