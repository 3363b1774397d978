// null:// — accepts everything and keeps nothing; the default when no sink is named. Counters
// still count, so it is useful for measuring the cost of everything up to the store.
#pragma once

#include <memory>

#include "bitfusion/result_sink.h"

namespace bitfusion {

struct NullSinkOptions {
  ResultSinkOptions sink;
  static Result<NullSinkOptions> FromUri(const Uri& uri);
};

class NullSink final : public ResultSink {
 public:
  static Result<std::shared_ptr<NullSink>> Make(const NullSinkOptions& options);
  ~NullSink() override;

 private:
  explicit NullSink(const NullSinkOptions& options);
  Status WriteSamples(const std::vector<SampleBatch>& batches) override;
  Status WriteRun(const RunRecord& record) override;
};

}  // namespace bitfusion
