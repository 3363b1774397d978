#include "bitfusion/metric_stream.h"
#include "bitfusion/registry.h"

namespace bitfusion {

MetricSource::~MetricSource() = default;

Result<std::shared_ptr<MetricSource>> MetricSourceFromUri(std::string_view uri) {
  return Registry<MetricSource>::Instance().Make(uri);
}

}  // namespace bitfusion
