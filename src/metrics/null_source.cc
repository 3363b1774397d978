#include "metrics/null_source.h"

#include "bitfusion/registry.h"
#include "metrics/batch_writer.h"

namespace bitfusion {

namespace {
constexpr std::int64_t kMaxSeries = 1'000'000;
}

Result<NullSourceOptions> NullSourceOptions::FromUri(const Uri& uri) {
  BITFUSION_RETURN_IF_ERROR(uri.CheckQueryKeys({"series"}));
  NullSourceOptions options;
  BITFUSION_ASSIGN_OR_RETURN(options.series, uri.QueryInt("series", 0));
  if (options.series < 0 || options.series > kMaxSeries) {
    return InvalidArgumentError("null?series=" + std::to_string(options.series) +
                                ": the number of generated series must be 0.." +
                                std::to_string(kMaxSeries));
  }
  return options;
}

Result<std::shared_ptr<NullSource>> NullSource::Make(const NullSourceOptions& options) {
  return std::make_shared<NullSource>(options);
}

NullSource::NullSource(const NullSourceOptions& options)
    : uri_(options.series == 0 ? "null" : "null?series=" + std::to_string(options.series)),
      series_(static_cast<std::uint32_t>(options.series)) {}

Status NullSource::Collect(Timestamp now, SampleBatch& batch) {
  if (series_ == 0) return Status::OK();
  if (series_end_ == 0 || batch.series.size() != series_end_) {
    first_series_ = static_cast<std::uint32_t>(batch.series.size());
    for (std::uint32_t i = 0; i < series_; ++i) {
      batch.AddSeries({"null.value", "1", {{"series", std::to_string(i)}}, false});
    }
    series_end_ = batch.series.size();
  }
  ++ticks_;
  internal::BatchWriter out(batch, now, series_);
  for (std::uint32_t i = 0; i < series_; ++i) out.Append(first_series_ + i, ticks_);
  return Status::OK();
}

BITFUSION_REGISTER(MetricSource, "null", NullSourceOptions, NullSource);

}  // namespace bitfusion
