// "null" metric source: samples nothing. Lets a plan say "no metrics" explicitly.
#pragma once

#include <memory>
#include <string>

#include "bitfusion/metric_stream.h"

namespace bitfusion {

struct NullSourceOptions {
  static Result<NullSourceOptions> FromUri(const Uri& uri);
};

class NullSource final : public MetricSource {
 public:
  static Result<std::shared_ptr<NullSource>> Make(const NullSourceOptions& options);
  const std::string& uri() const override { return uri_; }
  Status Collect(Timestamp now, SampleBatch& batch) override;

 private:
  std::string uri_ = "null";
};

}  // namespace bitfusion
