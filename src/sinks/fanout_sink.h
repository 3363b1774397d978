// fanout://?sink=URI&sink=URI... — one sink that writes everything to several others, e.g. a
// local SQLite file and the team's Elasticsearch. Child URIs are percent-encoded query values
// ("fanout://?sink=sqlite%3A%2F%2Fr.db&sink=es%3A%2F%2Fes%3A9200%2Fbench"); MakeFanoutSink
// (result_sink.h) takes sinks already made.
//
// Every batch and run record is handed on at once (the fan-out itself keeps nothing back: its
// batch_samples is 1); each child applies its own batching, spool and retries. A child that fails
// keeps what it could not send, as it would on its own, and the others go on: the fan-out never
// sends anything twice to a child that took it. Child errors are logged once per child and
// returned by Flush and Close, which flush and close every child.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "bitfusion/result_sink.h"

namespace bitfusion {

struct FanoutSinkOptions {
  /// The children's URIs, in order (query key `sink`, repeated; at least one).
  std::vector<std::string> sinks;

  /// fanout://?sink=URI&sink=URI
  static Result<FanoutSinkOptions> FromUri(const Uri& uri);
};

/// Writes to several sinks; see the top of this header.
class FanoutSink final : public ResultSink {
 public:
  static Result<std::shared_ptr<FanoutSink>> Make(const FanoutSinkOptions& options);
  static Result<std::shared_ptr<FanoutSink>> Make(
      std::vector<std::shared_ptr<ResultSink>> children);
  ~FanoutSink() override;

 private:
  FanoutSink(std::string uri, std::vector<std::shared_ptr<ResultSink>> children);
  Status WriteSamples(const std::vector<SampleBatch>& batches) override;
  Status WriteRun(const RunRecord& record) override;
  Status SyncBackend(Deadline deadline) override;
  Status CloseBackend(Deadline deadline) override;
  void NoteChildError(std::size_t child, const Status& status);

  const std::vector<std::shared_ptr<ResultSink>> children_;
  std::vector<bool> logged_;  // per child: its first error was logged
};

}  // namespace bitfusion
