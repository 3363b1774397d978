// ResultSink: where samples and run records go. The public methods are non-virtual and hold the
// policy (locking, batching, counters); a backend implements only the hooks that encode and send.
#pragma once

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "bitfusion/clock.h"
#include "bitfusion/export.h"
#include "bitfusion/run_record.h"
#include "bitfusion/sample.h"
#include "bitfusion/status.h"
#include "bitfusion/uri.h"

namespace bitfusion {

/// Batching policy shared by every sink; read from the query keys `batch_samples` and
/// `max_delay` of any sink URI ("sqlite://r.db?batch_samples=50000&max_delay=2s").
struct ResultSinkOptions {
  /// Hand pending samples to the backend once at least this many are queued.
  std::size_t batch_samples = 16384;
  /// ... or once the oldest pending batch is this old (checked on every Write).
  std::chrono::nanoseconds max_delay = std::chrono::seconds(1);

  static Result<ResultSinkOptions> FromUri(const Uri& uri);
  /// `backend_keys` plus the keys FromUri reads: the list for a backend's Uri::CheckQueryKeys.
  static std::vector<std::string_view> QueryKeysWith(
      std::initializer_list<std::string_view> backend_keys) {
    std::vector<std::string_view> keys(backend_keys);
    keys.insert(keys.end(), {"batch_samples", "max_delay"});
    return keys;
  }
};

struct SinkCounters {
  std::int64_t samples_written = 0;  ///< accepted by the backend
  std::int64_t samples_pending = 0;  ///< queued in the sink, not yet handed to the backend
  std::int64_t runs_written = 0;
  std::int64_t backend_calls = 0;
  std::int64_t errors = 0;  ///< failed backend calls (their data stays pending)
};

/// Concurrency: every public method may be called from several threads at once. Hooks are
/// called with the sink's lock held, so a backend never sees two calls at once.
class BITFUSION_EXPORT ResultSink {
 public:
  virtual ~ResultSink();
  ResultSink(const ResultSink&) = delete;
  ResultSink& operator=(const ResultSink&) = delete;

  /// Queues a copy of `batch`; sends when the batch policy says so. A failed send keeps the
  /// samples queued for the next attempt and returns the backend's error. A malformed batch
  /// (columns of different lengths, a series index out of range) is InvalidArgument and is not
  /// queued.
  Status Write(const SampleBatch& batch);
  /// Sends pending samples, then the record (so samples of a run always precede its record).
  Status Write(const RunRecord& record);
  /// Sends everything pending and makes it durable as the backend can (fsync, commit).
  Status Flush(Deadline deadline = kNoDeadline);
  /// Flush, then release the backend. Later writes are FailedPrecondition. Idempotent.
  Status Close(Deadline deadline = kNoDeadline);

  /// The URI it was made from, password redacted.
  const std::string& uri() const { return uri_; }
  SinkCounters counters() const;

 protected:
  ResultSink(std::string redacted_uri, ResultSinkOptions options);

  /// Encode and send these batches (never empty). Called with the lock held.
  virtual Status WriteSamples(const std::vector<SampleBatch>& batches) = 0;
  /// Encode and send one run record. Called with the lock held.
  virtual Status WriteRun(const RunRecord& record) = 0;
  /// Make what was sent durable (fsync, COMMIT). Called with the lock held.
  virtual Status SyncBackend(Deadline deadline);
  /// Release files and connections. Called once, with the lock held, after a final sync.
  virtual Status CloseBackend(Deadline deadline);

  /// Backends call this first thing in their destructors: closes the sink if the owner did
  /// not, while the backend's hooks still exist. Errors are logged.
  void CloseOnDestroy();

 private:
  Status SendPendingLocked();

  const std::string uri_;
  const ResultSinkOptions options_;
  mutable std::mutex mu_;
  bool closed_ = false;
  std::vector<SampleBatch> pending_;
  std::size_t pending_samples_ = 0;
  std::int64_t oldest_pending_mono_ns_ = 0;
  SinkCounters counters_;
};

/// "jsonl://PATH", "csv://PATH", "sqlite://PATH", "null://". An unknown scheme lists the known
/// ones; a path that cannot be written fails here, before any run starts.
BITFUSION_EXPORT Result<std::shared_ptr<ResultSink>> ResultSinkFromUri(std::string_view uri);

}  // namespace bitfusion
