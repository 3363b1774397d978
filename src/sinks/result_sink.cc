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

// Returns the backend's own error; callers add the "sink URI" context exactly once.
Status ResultSink::SendPendingLocked() {
  if (pending_.empty()) return Status::OK();
  ++counters_.backend_calls;
  Status status = WriteSamples(pending_);
  if (!status.ok()) {
    ++counters_.errors;
    return status;
  }
  counters_.samples_written += static_cast<std::int64_t>(pending_samples_);
  pending_.clear();
  pending_samples_ = 0;
  return Status::OK();
}

namespace {

// A malformed batch must be refused before it is queued: once pending, it would fail (or crash)
// every later send, and backends index the columns without checking.
Status CheckBatch(const SampleBatch& batch) {
  const std::size_t n = batch.value.size();
  if (batch.series_index.size() != n || batch.timestamp_ns.size() != n ||
      batch.monotonic_ns.size() != n) {
    return InvalidArgumentError(
        "malformed SampleBatch: columns series_index/timestamp_ns/monotonic_ns/value have " +
        std::to_string(batch.series_index.size()) + "/" +
        std::to_string(batch.timestamp_ns.size()) + "/" +
        std::to_string(batch.monotonic_ns.size()) + "/" + std::to_string(n) +
        " entries; fill them with SampleBatch::Append");
  }
  for (std::size_t i = 0; i < n; ++i) {
    if (batch.series_index[i] >= batch.series.size()) {
      return InvalidArgumentError("malformed SampleBatch: sample " + std::to_string(i) +
                                  " names series " + std::to_string(batch.series_index[i]) +
                                  " but the batch has " + std::to_string(batch.series.size()) +
                                  "; add series with SampleBatch::AddSeries");
    }
  }
  return Status::OK();
}

}  // namespace

Status ResultSink::Write(const SampleBatch& batch) {
  std::lock_guard lock(mu_);
  if (closed_) return FailedPreconditionError("sink " + uri_ + " is closed; make a new one");
  if (batch.empty()) return Status::OK();
  BITFUSION_RETURN_IF_ERROR(CheckBatch(batch).WithContext("sink " + uri_));
  const std::int64_t now = MonoNowNs();
  if (pending_.empty()) oldest_pending_mono_ns_ = now;
  pending_.push_back(batch);
  pending_samples_ += batch.size();
  if (pending_samples_ >= options_.batch_samples ||
      now - oldest_pending_mono_ns_ >= options_.max_delay.count()) {
    return SendPendingLocked().WithContext("sink " + uri_);
  }
  return Status::OK();
}

Status ResultSink::Write(const RunRecord& record) {
  std::lock_guard lock(mu_);
  if (closed_) return FailedPreconditionError("sink " + uri_ + " is closed; make a new one");
  BITFUSION_RETURN_IF_ERROR(SendPendingLocked().WithContext("sink " + uri_));
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
  BITFUSION_RETURN_IF_ERROR(SendPendingLocked().WithContext("sink " + uri_));
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
  const std::size_t lost = pending_samples_;
  if (!synced.ok()) {
    if (lost == 0) return synced.WithContext("sink " + uri_ + " closed before its data was synced");
    return synced.WithContext("sink " + uri_ + " closed with " + std::to_string(lost) +
                              " samples unsent");
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
