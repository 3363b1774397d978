#include "metrics/null_source.h"

#include "bitfusion/registry.h"

namespace bitfusion {

Result<NullSourceOptions> NullSourceOptions::FromUri(const Uri& uri) {
  BITFUSION_RETURN_IF_ERROR(uri.CheckQueryKeys({}));
  return NullSourceOptions{};
}

Result<std::shared_ptr<NullSource>> NullSource::Make(const NullSourceOptions&) {
  return std::make_shared<NullSource>();
}

Status NullSource::Collect(Timestamp, SampleBatch&) { return Status::OK(); }

BITFUSION_REGISTER(MetricSource, "null", NullSourceOptions, NullSource);

}  // namespace bitfusion
