#include "bitfusion/result_sink.h"

#include "bitfusion/log.h"
#include "bitfusion/registry.h"

namespace bitfusion {

Result<ResultSinkOptions> ResultSinkOptions::FromUri(const Uri& uri) {
  ResultSinkOptions options;
  BITFUSION_ASSIGN_OR_RETURN(
      const std::int64_t batch,
      uri.QueryInt("batch_samples", static_cast<std::int64_t>(options.batch_samples)));
  if (batch < 1) {
    return InvalidArgumentError("option batch_samples in " + uri.ToString() +
                                " must be at least 1");
  }
  options.batch_samples = static_cast<std::size_t>(batch);
  BITFUSION_ASSIGN_OR_RETURN(options.max_delay, uri.QueryDuration("max_delay", options.max_delay));
  return options;
}

ResultSink::ResultSink(std::string redacted_uri, ResultSinkOptions options)
    : uri_(std::move(redacted_uri)), options_(options) {}

ResultSink::~ResultSink() = default;

Status ResultSink::SyncBackend(Deadline) { return Status::OK(); }
Status ResultSink::CloseBackend(Deadline) { return Status::OK(); }

void ResultSink::CloseOnDestroy() {
  Status status = Close(kNoDeadline);
  if (!status.ok()) LogAt(LogLevel::kError, "closing sink ", uri_, ": ", status.ToString());
}

Status ResultSink::SendPendingLocked() {
  if (pending_.empty()) return Status::OK();
  ++counters_.backend_calls;
  Status status = WriteSamples(pending_);
  if (!status.ok()) {
    ++counters_.errors;
    return status.WithContext("sink " + uri_);
  }
  counters_.samples_written += static_cast<std::int64_t>(pending_samples_);
  pending_.clear();
  pending_samples_ = 0;
  return Status::OK();
}

Status ResultSink::Write(const SampleBatch& batch) {
  std::lock_guard lock(mu_);
  if (closed_) return FailedPreconditionError("sink " + uri_ + " is closed; make a new one");
  if (batch.empty()) return Status::OK();
  const std::int64_t now = MonoNowNs();
  if (pending_.empty()) oldest_pending_mono_ns_ = now;
  pending_.push_back(batch);
  pending_samples_ += batch.size();
  if (pending_samples_ >= options_.batch_samples ||
      now - oldest_pending_mono_ns_ >= options_.max_delay.count()) {
    return SendPendingLocked();
  }
  return Status::OK();
}

Status ResultSink::Write(const RunRecord& record) {
  std::lock_guard lock(mu_);
  if (closed_) return FailedPreconditionError("sink " + uri_ + " is closed; make a new one");
  BITFUSION_RETURN_IF_ERROR(SendPendingLocked());
  ++counters_.backend_calls;
  Status status = WriteRun(record);
  if (!status.ok()) {
    ++counters_.errors;
    return status.WithContext("sink " + uri_ + ", run " + record.run_id);
  }
  ++counters_.runs_written;
  return Status::OK();
}

Status ResultSink::Flush(Deadline deadline) {
  std::lock_guard lock(mu_);
  if (closed_) return Status::OK();
  BITFUSION_RETURN_IF_ERROR(SendPendingLocked());
  return SyncBackend(deadline).WithContext("sink " + uri_);
}

Status ResultSink::Close(Deadline deadline) {
  std::lock_guard lock(mu_);
  if (closed_) return Status::OK();
  Status sent = SendPendingLocked();
  Status synced = sent.ok() ? SyncBackend(deadline) : sent;
  // Close even when the last send failed, so files and connections are not leaked; the error
  // (and how many samples it left unsent) goes to the caller.
  Status closed = CloseBackend(deadline);
  closed_ = true;
  if (!synced.ok()) {
    const auto lost = std::to_string(pending_samples_);
    return synced.WithContext("sink " + uri_ + " closed with " + lost + " samples unsent");
  }
  return closed.WithContext("sink " + uri_);
}

SinkCounters ResultSink::counters() const {
  std::lock_guard lock(mu_);
  SinkCounters out = counters_;
  out.samples_pending = static_cast<std::int64_t>(pending_samples_);
  return out;
}

Result<std::shared_ptr<ResultSink>> ResultSinkFromUri(std::string_view uri) {
  return Registry<ResultSink>::Instance().Make(uri);
}

}  // namespace bitfusion
