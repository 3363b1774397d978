// ResultSink: where samples and run records go. The public methods are non-virtual and hold the
// policy (locking, batching, the durable spool, retries, counters); a backend implements only
// the hooks that encode and send.
#pragma once

#include <any>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "bitfusion/clock.h"
#include "bitfusion/event.h"
#include "bitfusion/export.h"
#include "bitfusion/registry.h"
#include "bitfusion/run_record.h"
#include "bitfusion/sample.h"
#include "bitfusion/status.h"
#include "bitfusion/uri.h"

namespace bitfusion {

namespace internal {
class Spool;
struct SpoolSegment;
}  // namespace internal

/// Batching, spool and retry policy shared by every sink; read from query keys of any sink URI
/// ("sqlite://r.db?batch_samples=50000&max_delay=2s").
struct BITFUSION_EXPORT ResultSinkOptions {
  /// Hand pending samples to the backend once at least this many are queued (`batch_samples`).
  std::size_t batch_samples = 16384;
  /// ... or once they take about this many bytes in memory (`batch_bytes`, default 8 MiB).
  std::size_t batch_bytes = std::size_t{8} << 20;
  /// ... or once the oldest pending sample is this old (`max_delay`). Checked on every Write and
  /// by the sink's own thread, so a quiet stream is still sent.
  std::chrono::nanoseconds max_delay = std::chrono::seconds(1);
  /// A sink without a spool (files, SQLite) whose backend keeps failing (a full disk, a pipe
  /// nobody reads) holds what it could not write in memory, up to about this many bytes
  /// (`memory_max_bytes`, default 256 MiB); beyond it Write is ResourceExhausted and queues
  /// nothing, so an outage costs samples it says it refused, not all of the host's memory.
  std::int64_t memory_max_bytes = std::int64_t{256} << 20;

  // Network sinks only (the keys DurableQueryKeysWith adds):

  /// Spool directory (`spool`); empty means
  /// $XDG_STATE_HOME/bitfusion/spool/SCHEME-HASH (~/.local/state/... without XDG_STATE_HOME),
  /// HASH being derived from the redacted URI without its options, so restarting with the
  /// same store replays.
  std::filesystem::path spool;
  /// Largest the spool may grow while the store is down (`spool_max_bytes`, default 1 GiB);
  /// beyond it Write is ResourceExhausted and queues nothing.
  std::int64_t spool_max_bytes = std::int64_t{1} << 30;
  /// How long Flush and Close, when given no deadline, wait for a store that fails: once per
  /// outage, not per call (`flush_timeout`, default 1s). What is not sent by then stays in the
  /// spool; later calls in the same outage try at most once and return, and the sink's own
  /// thread keeps retrying. A plan that flushes after each run so pays about a second for a
  /// store that is down, not a timeout per run.
  std::chrono::nanoseconds flush_timeout = std::chrono::seconds(1);
  /// Backoff between retries of a failing store: the bound doubles from `retry_initial` (100ms)
  /// up to `retry_max` (30s), each wait drawn at random between 0 and the bound (full jitter,
  /// the formula every retry loop of the library uses).
  std::chrono::nanoseconds retry_initial = std::chrono::milliseconds(100);
  std::chrono::nanoseconds retry_max = std::chrono::seconds(30);

  static Result<ResultSinkOptions> FromUri(const Uri& uri);
  /// `backend_keys` plus the batching keys FromUri reads: the list for a file or local backend's
  /// Uri::CheckQueryKeys.
  static std::vector<std::string_view> QueryKeysWith(
      std::initializer_list<std::string_view> backend_keys) {
    std::vector<std::string_view> keys(backend_keys);
    keys.insert(keys.end(), {"batch_samples", "batch_bytes", "max_delay", "memory_max_bytes"});
    return keys;
  }
  /// QueryKeysWith plus the spool and retry keys: the list for a network backend.
  static std::vector<std::string_view> DurableQueryKeysWith(
      std::initializer_list<std::string_view> backend_keys) {
    std::vector<std::string_view> keys = QueryKeysWith(backend_keys);
    keys.insert(keys.end(),
                {"spool", "spool_max_bytes", "flush_timeout", "retry_initial", "retry_max"});
    return keys;
  }
};

struct SinkCounters {
  std::int64_t samples_written = 0;  ///< accepted by the backend (the store)
  std::int64_t samples_pending = 0;  ///< held by the sink (memory or spool), not yet accepted
  std::int64_t runs_pending = 0;     ///< run records held, not yet accepted
  std::int64_t runs_written = 0;
  std::int64_t backend_calls = 0;
  std::int64_t errors = 0;            ///< failed backend calls (their data stays pending)
  std::int64_t retries = 0;           ///< backend calls that repeated a failed one
  std::int64_t samples_spooled = 0;   ///< written to the durable spool (network sinks)
  std::int64_t samples_replayed = 0;  ///< found in the spool at start, left by an earlier run
  /// Refused by the store for good (see each backend for what it refuses); logged, not retried.
  std::int64_t samples_dropped = 0;
  std::int64_t spool_bytes = 0;  ///< size of the spool files now
  bool degraded = false;         ///< the store is failing; data is held and retried
};

/// Concurrency: every public method may be called from several threads at once. Hooks are never
/// called concurrently (the sink serialises them), from the caller's thread or from the sink's
/// own thread (max_delay, retries).
///
/// Delivery: the samples of a run always precede its record. A file or local backend
/// (jsonl://, csv://, sqlite://) keeps what failed in memory and returns the error from Write,
/// Flush or Close; the next call retries it. A network backend is durable: Write first appends
/// the batch to a spool of fsync'd segment files, so once Write returns, the batch survives a
/// crash of the process; a failed send is not an error of Write but turns the sink `degraded`
/// (a warning is logged once, and again when it recovers), and the sink retries in the
/// background with exponential backoff and jitter. A spool left by a crashed process is sent
/// first when a sink with the same spool opens. That is at-least-once delivery; network backends
/// give every sample a deterministic identity (series and timestamp), so the store keeps each
/// sample exactly once.
class BITFUSION_EXPORT ResultSink {
 public:
  virtual ~ResultSink();
  ResultSink(const ResultSink&) = delete;
  ResultSink& operator=(const ResultSink&) = delete;

  /// Queues a copy of `batch`; sends when the batch policy says so. A malformed batch (columns
  /// of different lengths, a series index out of range) is InvalidArgument and is not queued.
  /// See the class comment for what a failed send does.
  Status Write(const SampleBatch& batch);
  /// Sends pending samples, then the record.
  Status Write(const RunRecord& record);
  /// Sends everything pending and makes it durable as the backend can (fsync, commit). A durable
  /// sink retries a failing store until `deadline` (kNoDeadline: options.flush_timeout, once
  /// per outage), then
  /// says how much is still held in its spool.
  Status Flush(Deadline deadline = kNoDeadline);
  /// Flush, then release the backend. Later writes are FailedPrecondition. Idempotent.
  Status Close(Deadline deadline = kNoDeadline);

  /// The URI it was made from, password redacted.
  const std::string& uri() const { return uri_; }
  SinkCounters counters() const;
  /// Where a durable sink spools what the store has not taken ("" for other sinks); it stays
  /// named after Close, for the caller's summary.
  std::string spool_dir() const;
  /// Called with kSinkDegraded when the store starts failing and kSinkRecovered when it works
  /// again, from whichever thread noticed, outside the sink's locks.
  void SetEventCallback(std::function<void(const Event&)> callback);

 protected:
  ResultSink(std::string redacted_uri, ResultSinkOptions options);

  /// Encode and send these batches (never empty). A partial failure that the store reports per
  /// sample is the backend's to retry (for what may be retried) or to report with
  /// RecordDropped (for what never can be).
  virtual Status WriteSamples(const std::vector<SampleBatch>& batches) = 0;
  /// Encode and send one run record.
  virtual Status WriteRun(const RunRecord& record) = 0;
  /// Make what was sent durable (fsync, COMMIT).
  virtual Status SyncBackend(Deadline deadline);
  /// Release files and connections. Called once, after a final sync.
  virtual Status CloseBackend(Deadline deadline);

  /// Network backends call this at the end of Make: opens (and locks) the spool named by the
  /// options, or the default one for this URI, and starts replaying what an earlier process
  /// left in it. From then on the sink is durable.
  Status OpenSpool();
  /// For WriteSamples: `samples` were refused by the store for good (`why`, from the store).
  void RecordDropped(std::int64_t samples, std::string_view why);
  /// Inside WriteSamples and WriteRun: a slot that lives as long as the data being sent is not
  /// delivered, for the backend to note what of it the store already took (a partial success),
  /// so that the retry of the same data sends only the rest. Empty on the first attempt.
  std::any& DeliveryProgress();
  /// Backoff before retry number `attempt` (1-based): at random up to
  /// min(retry_max, retry_initial * 2^(attempt-1)).
  std::chrono::nanoseconds RetryBackoff(int attempt) const;
  const ResultSinkOptions& sink_options() const { return options_; }
  /// Close has begun: for hooks that do something else when called from Close.
  bool closing() const {
    std::lock_guard lock(mu_);
    return closing_;
  }

  /// Backends call this first thing in their destructors: closes the sink if the owner did
  /// not, while the backend's hooks still exist, retrying a failing store for at most 1 s
  /// (what is unsent stays in the spool). Errors are logged.
  void CloseOnDestroy();

 private:
  using Segment = internal::SpoolSegment;

  Status AppendLocked(const SampleBatch* batch, const RunRecord* run);
  bool SealLocked();
  /// backlog_.push_back and pop_front, keeping backlog_memory_bytes_ in step.
  void PushBacklogLocked(std::unique_ptr<Segment> segment);
  void PopBacklogLocked();
  /// Fsyncs what SealLocked sealed and marks those segments synced; called without mu_.
  void FinishSeals();
  Status Drain(bool stop_on_degraded);
  Status DrainUntil(Deadline deadline, bool closing);
  Status SendSegment(Segment& segment);
  void StartWorkerLocked();
  void StopWorker();
  void WorkerLoop();
  void SetDegraded(const Status& why);
  void SetRecovered();
  void Emit(EventType type, const std::string& detail);
  std::int64_t HeldSamplesLocked() const;
  std::int64_t HeldRunsLocked() const;
  std::string HeldMessageLocked() const;

  const std::string uri_;
  const ResultSinkOptions options_;

  mutable std::mutex mu_;  // everything below, except what send_mu_ guards
  bool closing_ = false;
  bool closed_ = false;
  std::vector<SampleBatch> pending_;  // not yet sealed into a segment
  std::size_t pending_samples_ = 0;
  std::size_t pending_bytes_ = 0;
  std::int64_t oldest_pending_mono_ns_ = 0;
  // The sum of backlog_'s memory_bytes, so that a Write need not walk a long backlog to check
  // memory_max_bytes. Changed with every segment pushed, popped, loaded or unloaded.
  std::int64_t backlog_memory_bytes_ = 0;
  std::deque<std::unique_ptr<Segment>> backlog_;  // sealed, unsent, in order; popped by Drain
  std::unique_ptr<internal::Spool> spool_;        // null for sinks that are not durable
  bool durable_ = false;                          // set once, by OpenSpool in Make
  SinkCounters counters_;
  bool degraded_ = false;
  int failures_ = 0;  // consecutive failed sends
  std::int64_t degraded_since_mono_ns_ = 0;
  std::int64_t last_degraded_log_mono_ns_ = 0;
  bool degraded_said_ = false;  // this outage was logged as a warning
  std::int64_t next_retry_mono_ns_ = 0;
  std::string last_failure_;        // the store's last error, for messages
  bool outage_wait_spent_ = false;  // a Flush or Close waited out flush_timeout this outage
  std::string spool_dir_;
  std::function<void(const Event&)> on_event_;

  std::mutex send_mu_;           // serialises hooks; taken before mu_, never while holding it
  Segment* sending_ = nullptr;   // the segment the hooks are sending; guarded by send_mu_
  bool backend_closed_ = false;  // CloseBackend ran; guarded by send_mu_

  std::thread worker_;
  std::condition_variable wake_;
  bool stop_worker_ = false;
};

/// "jsonl://PATH", "csv://PATH", "sqlite://PATH", "es://HOST:PORT/INDEX", "influx://HOST:PORT/DB",
/// "postgres://USER@HOST:PORT/DB", "fanout://?sink=URI&sink=URI", "null://". An unknown scheme
/// lists the known ones; a path that cannot be written fails here, before any run starts.
BITFUSION_EXPORT Result<std::shared_ptr<ResultSink>> ResultSinkFromUri(
    std::string_view uri, const BackendContext& context = {});

/// One sink that hands every batch and run record to each of `sinks` (fanout:// as an object).
/// Each child batches, spools and retries on its own; one that fails does not hold up the others,
/// and Flush and Close report every child's error.
BITFUSION_EXPORT Result<std::shared_ptr<ResultSink>> MakeFanoutSink(
    std::vector<std::shared_ptr<ResultSink>> sinks);

}  // namespace bitfusion
