#include "sinks/null_sink.h"

#include "bitfusion/registry.h"

namespace bitfusion {

Result<NullSinkOptions> NullSinkOptions::FromUri(const Uri& uri) {
  BITFUSION_RETURN_IF_ERROR(uri.CheckQueryKeys(ResultSinkOptions::QueryKeysWith({})));
  NullSinkOptions options;
  BITFUSION_ASSIGN_OR_RETURN(options.sink, ResultSinkOptions::FromUri(uri));
  return options;
}

NullSink::NullSink(const NullSinkOptions& options) : ResultSink("null://", options.sink) {}
NullSink::~NullSink() { CloseOnDestroy(); }

Result<std::shared_ptr<NullSink>> NullSink::Make(const NullSinkOptions& options) {
  return std::shared_ptr<NullSink>(new NullSink(options));
}

Status NullSink::WriteSamples(const std::vector<SampleBatch>&) { return Status::OK(); }
Status NullSink::WriteRun(const RunRecord&) { return Status::OK(); }

BITFUSION_REGISTER(ResultSink, "null", NullSinkOptions, NullSink);

}  // namespace bitfusion
