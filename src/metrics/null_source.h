// "null" metric source: samples nothing. Lets a plan say "no metrics" explicitly.
// "null?series=N" is a load generator instead: N series, one sample each per tick (the value is
// the tick count), for measuring what delivery and sinks cost without reading any file.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "bitfusion/metric_stream.h"

namespace bitfusion {

struct NullSourceOptions {
  std::int64_t series = 0;
  static Result<NullSourceOptions> FromUri(const Uri& uri);
};

class NullSource final : public MetricSource {
 public:
  static Result<std::shared_ptr<NullSource>> Make(const NullSourceOptions& options);
  explicit NullSource(const NullSourceOptions& options);
  const std::string& uri() const override { return uri_; }
  Status Collect(Timestamp now, SampleBatch& batch) override;

 private:
  std::string uri_;
  std::uint32_t series_ = 0;
  std::uint32_t first_series_ = 0;
  std::size_t series_end_ = 0;  // batch.series.size() once ours are declared; 0: not yet
  double ticks_ = 0;
};

}  // namespace bitfusion
