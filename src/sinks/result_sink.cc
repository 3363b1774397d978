#include "bitfusion/result_sink.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "bitfusion/log.h"
#include "bitfusion/registry.h"
#include "core/backoff.h"
#include "sinks/spool_internal.h"

namespace bitfusion {

namespace {

Result<std::int64_t> PositiveInt(const Uri& uri, std::string_view key, std::int64_t fallback) {
  BITFUSION_ASSIGN_OR_RETURN(const std::int64_t v, uri.QueryInt(key, fallback));
  if (v < 1) {
    return InvalidArgumentError("option " + std::string(key) + " in " + uri.ToString() +
                                " must be at least 1");
  }
  return v;
}

// Segments kept in memory behind the one being sent are dropped from memory (they are in the
// spool) beyond this many bytes, so a long outage costs disk, not memory.
constexpr std::int64_t kBacklogMemoryBytes = std::int64_t{64} << 20;

}  // namespace

Result<ResultSinkOptions> ResultSinkOptions::FromUri(const Uri& uri) {
  ResultSinkOptions options;
  BITFUSION_ASSIGN_OR_RETURN(
      const std::int64_t batch,
      PositiveInt(uri, "batch_samples", static_cast<std::int64_t>(options.batch_samples)));
  options.batch_samples = static_cast<std::size_t>(batch);
  BITFUSION_ASSIGN_OR_RETURN(
      const std::int64_t bytes,
      PositiveInt(uri, "batch_bytes", static_cast<std::int64_t>(options.batch_bytes)));
  options.batch_bytes = static_cast<std::size_t>(bytes);
  BITFUSION_ASSIGN_OR_RETURN(options.max_delay, uri.QueryDuration("max_delay", options.max_delay));
  BITFUSION_ASSIGN_OR_RETURN(options.memory_max_bytes,
                             PositiveInt(uri, "memory_max_bytes", options.memory_max_bytes));
  if (auto spool = uri.Query("spool")) options.spool = *spool;
  BITFUSION_ASSIGN_OR_RETURN(options.spool_max_bytes,
                             PositiveInt(uri, "spool_max_bytes", options.spool_max_bytes));
  BITFUSION_ASSIGN_OR_RETURN(options.flush_timeout,
                             uri.QueryDuration("flush_timeout", options.flush_timeout));
  BITFUSION_ASSIGN_OR_RETURN(options.retry_initial,
                             uri.QueryDuration("retry_initial", options.retry_initial));
  BITFUSION_ASSIGN_OR_RETURN(options.retry_max, uri.QueryDuration("retry_max", options.retry_max));
  if (options.retry_initial.count() <= 0 || options.retry_max < options.retry_initial) {
    return InvalidArgumentError("options retry_initial and retry_max in " + uri.ToString() +
                                " must be positive, with retry_max >= retry_initial");
  }
  return options;
}

ResultSink::ResultSink(std::string redacted_uri, ResultSinkOptions options)
    : uri_(std::move(redacted_uri)), options_(std::move(options)) {}

ResultSink::~ResultSink() { StopWorker(); }

Status ResultSink::SyncBackend(Deadline) { return Status::OK(); }
Status ResultSink::CloseBackend(Deadline) { return Status::OK(); }

void ResultSink::CloseOnDestroy() {
  // A destructor is no place to wait out flush_timeout for a store that is down: a durable
  // sink's spool keeps what is unsent for the next sink with that spool.
  constexpr auto kDestroyWait = std::chrono::seconds(1);
  Status status = Close(
      DeadlineAfter(std::min<std::chrono::nanoseconds>(kDestroyWait, options_.flush_timeout)));
  if (!status.ok()) LogAt(LogLevel::kError, "closing sink ", uri_, ": ", status.ToString());
}

void ResultSink::SetEventCallback(std::function<void(const Event&)> callback) {
  std::lock_guard lock(mu_);
  on_event_ = std::move(callback);
}

std::chrono::nanoseconds ResultSink::RetryBackoff(int attempt) const {
  return internal::JitteredBackoff(options_.retry_initial, options_.retry_max, attempt);
}

void ResultSink::RecordDropped(std::int64_t samples, std::string_view why) {
  if (samples <= 0) return;
  {
    std::lock_guard lock(mu_);
    counters_.samples_dropped += samples;
  }
  LogAt(LogLevel::kWarning, "sink ", uri_, ": the store refused ", samples,
        " samples for good, they are not retried: ", why);
}

Status ResultSink::OpenSpool() {
  std::filesystem::path dir = options_.spool;
  if (dir.empty()) {
    // Named by where the data goes, not by how it is batched: changing an option must not
    // leave an earlier spool behind.
    const std::string where = uri_.substr(0, uri_.find('?'));
    auto defaulted = internal::DefaultSpoolDir(where.substr(0, where.find(':')), where);
    if (!defaulted) return defaulted.error().WithContext("sink " + uri_);
    dir = std::move(*defaulted);
  }
  // A default spool is shared by every process writing to that store: each gets a slot.
  auto opened = internal::Spool::Open(dir, /*shared=*/options_.spool.empty());
  if (!opened) return opened.error().WithContext("sink " + uri_);
  auto spool = std::move(*opened);
  auto leftovers = spool->TakeLeftovers();
  std::int64_t samples = 0;
  std::lock_guard lock(mu_);
  spool_dir_ = spool->dir().string();
  spool_ = std::move(spool);
  durable_ = true;
  for (auto& segment : leftovers) {
    samples += segment->samples;
    PushBacklogLocked(std::move(segment));
  }
  if (!backlog_.empty()) {
    LogAt(LogLevel::kInfo, "sink ", uri_, ": sending ", samples, " samples in ", backlog_.size(),
          " segments that an earlier process left in spool ", spool_dir_);
    StartWorkerLocked();
    wake_.notify_all();
  }
  return Status::OK();
}

Status ResultSink::AppendLocked(const SampleBatch* batch, const RunRecord* run) {
  if (spool_ != nullptr) {
    const std::int64_t size =
        batch != nullptr ? static_cast<std::int64_t>(internal::ApproxBytes(*batch)) : 4096;
    if (spool_->bytes() + size > options_.spool_max_bytes) {
      return ResourceExhaustedError(
          "sink " + uri_ + ": spool " + spool_->dir().string() + " is full (" +
          std::to_string(spool_->bytes()) + " bytes, spool_max_bytes=" +
          std::to_string(options_.spool_max_bytes) + ") while the store is failing; nothing was " +
          "queued. Bring the store back, or raise spool_max_bytes");
    }
    Status spooled = batch != nullptr ? spool_->AppendBatch(*batch) : spool_->AppendRun(*run);
    BITFUSION_RETURN_IF_ERROR(spooled.WithContext("sink " + uri_ + ": nothing was queued"));
    if (batch != nullptr) counters_.samples_spooled += static_cast<std::int64_t>(batch->size());
  } else if (batch != nullptr) {
    const std::int64_t held = static_cast<std::int64_t>(pending_bytes_) + backlog_memory_bytes_;
    const auto size = static_cast<std::int64_t>(internal::ApproxBytes(*batch));
    if (held > 0 && held + size > options_.memory_max_bytes) {
      return ResourceExhaustedError(
          "sink " + uri_ + ": " + std::to_string(held) +
          " bytes of samples it could not write are held in memory (memory_max_bytes=" +
          std::to_string(options_.memory_max_bytes) + "); nothing was queued. Fix what the " +
          "writes fail on, or raise memory_max_bytes");
    }
  }
  if (batch != nullptr) {
    if (pending_.empty()) oldest_pending_mono_ns_ = MonoNowNs();
    pending_.push_back(*batch);
    pending_samples_ += batch->size();
    pending_bytes_ += internal::ApproxBytes(*batch);
  }
  return Status::OK();
}

bool ResultSink::SealLocked() {
  if (pending_.empty()) return false;
  auto segment = std::make_unique<Segment>();
  segment->batches = std::move(pending_);
  segment->samples = static_cast<std::int64_t>(pending_samples_);
  segment->memory_bytes = static_cast<std::int64_t>(pending_bytes_);
  pending_.clear();
  pending_samples_ = 0;
  pending_bytes_ = 0;
  // Made durable by FinishSeals, outside mu_: an fsync never holds up a writer.
  if (spool_ != nullptr) spool_->Seal(*segment);
  PushBacklogLocked(std::move(segment));
  if (spool_ != nullptr && backlog_.size() > 2) {
    std::int64_t memory = 0;
    for (const auto& s : backlog_) memory += s->memory_bytes;
    // Newest first: the oldest are sent next.
    for (auto it = backlog_.rbegin(); memory > kBacklogMemoryBytes && it + 1 != backlog_.rend();
         ++it) {
      const std::int64_t before = (*it)->memory_bytes;
      memory -= before;
      internal::Spool::Unload(**it);  // a no-op for a segment whose fsync failed
      backlog_memory_bytes_ -= before - (*it)->memory_bytes;
    }
  }
  return true;
}

void ResultSink::PushBacklogLocked(std::unique_ptr<Segment> segment) {
  backlog_memory_bytes_ += segment->memory_bytes;
  backlog_.push_back(std::move(segment));
}

void ResultSink::PopBacklogLocked() {
  backlog_memory_bytes_ -= backlog_.front()->memory_bytes;
  backlog_.pop_front();
}

void ResultSink::FinishSeals() {
  // spool_ is set when the sink opens and stays until it is destroyed.
  if (spool_ == nullptr || !spool_->HasUnsynced()) return;
  auto synced = spool_->SyncSealed();
  std::lock_guard lock(mu_);
  for (auto& [seq, status] : synced) {
    auto it = std::find_if(backlog_.begin(), backlog_.end(),
                           [&](const auto& s) { return s->seq == seq && !s->file.empty(); });
    if (status.ok()) {
      if (it != backlog_.end()) (*it)->synced = true;
      continue;
    }
    // The file may not hold the records (after a failed fsync the kernel may have dropped
    // them): they stay in memory, never unloaded, and are delivered from there; only a crash
    // before then would lose them, which the message says.
    LogAt(LogLevel::kError, "sink ", uri_, ": ", status.message(), "; its ",
          it != backlog_.end() ? (*it)->samples : 0,
          " samples are kept in memory until sent, and would not survive a crash");
  }
}

std::int64_t ResultSink::HeldSamplesLocked() const {
  auto held = static_cast<std::int64_t>(pending_samples_);
  for (const auto& segment : backlog_) {
    if (!segment->batches_sent) held += segment->samples;
  }
  return held;
}

std::int64_t ResultSink::HeldRunsLocked() const {
  std::int64_t held = 0;
  for (const auto& segment : backlog_) {
    if (segment->has_run) ++held;
  }
  return held;
}

std::string ResultSink::HeldMessageLocked() const {
  std::string held = std::to_string(HeldSamplesLocked()) + " samples";
  if (const std::int64_t runs = HeldRunsLocked(); runs > 0) {
    held += " and " + std::to_string(runs) + (runs == 1 ? " run record" : " run records");
  }
  if (spool_ == nullptr) return held + " unsent";
  return held + " unsent; they stay in spool " + spool_->dir().string() +
         " and are sent when a sink with that spool opens again";
}

std::any& ResultSink::DeliveryProgress() {
  // Only called from hooks, which run under send_mu_ with sending_ set.
  static thread_local std::any outside;
  return sending_ != nullptr ? sending_->backend_progress : outside;
}

Status ResultSink::SendSegment(Segment& segment) {
  struct Sending {
    Segment*& slot;
    ~Sending() { slot = nullptr; }
  } sending{sending_ = &segment};
  if (!segment.batches_sent && !segment.batches.empty()) {
    std::int64_t dropped_before = 0;
    {
      std::lock_guard lock(mu_);
      ++counters_.backend_calls;
      if (failures_ > 0) ++counters_.retries;
      dropped_before = counters_.samples_dropped;
    }
    Status status = WriteSamples(segment.batches);
    std::lock_guard lock(mu_);
    if (!status.ok()) {
      ++counters_.errors;
      return status;
    }
    const std::int64_t dropped = counters_.samples_dropped - dropped_before;
    counters_.samples_written += segment.samples - dropped;
    if (segment.replayed) counters_.samples_replayed += segment.samples;
    segment.batches_sent = true;
  }
  if (segment.run) {
    {
      std::lock_guard lock(mu_);
      ++counters_.backend_calls;
      if (failures_ > 0) ++counters_.retries;
    }
    Status status = WriteRun(*segment.run);
    std::lock_guard lock(mu_);
    if (!status.ok()) {
      ++counters_.errors;
      return status.WithContext("run " + segment.run->run_id);
    }
    ++counters_.runs_written;
  }
  return Status::OK();
}

// Sends the backlog in order until it is empty or a send fails. Returns the backend's own error;
// callers add the "sink URI" context once.
Status ResultSink::Drain(bool stop_on_degraded) {
  std::lock_guard send(send_mu_);
  // A Write that raced a Close: its batch is held (in the spool, for a durable sink) but the
  // backend is gone.
  if (backend_closed_) return FailedPreconditionError("the sink was closed meanwhile");
  for (;;) {
    Segment* segment = nullptr;
    Status loaded;
    {
      std::lock_guard lock(mu_);
      if (backlog_.empty()) return Status::OK();
      if (stop_on_degraded && degraded_ && MonoNowNs() < next_retry_mono_ns_) {
        return UnavailableError(last_failure_ + " (retried in the background)");
      }
      segment = backlog_.front().get();
      if (!segment->loaded) {
        const std::int64_t before = segment->memory_bytes;
        loaded = spool_->Load(*segment);
        backlog_memory_bytes_ += segment->memory_bytes - before;
      }
      if (!loaded.ok() && loaded.code() == StatusCode::kNotFound) {
        // Someone removed the file: nothing is left to deliver from it.
        LogAt(LogLevel::kError, "sink ", uri_, ": ", loaded.message(), "; its ", segment->samples,
              " samples are lost");
        PopBacklogLocked();
        continue;
      }
    }
    if (!loaded.ok()) {
      SetDegraded(loaded);
      return loaded;
    }
    // The front segment is only popped here, under send_mu_, so it stays put while it is sent.
    Status status = SendSegment(*segment);
    if (!status.ok()) {
      SetDegraded(status);
      return status;
    }
    bool empty = false;
    {
      std::lock_guard lock(mu_);
      if (spool_ != nullptr) spool_->Remove(*segment);
      PopBacklogLocked();
      failures_ = 0;  // the store works: the next failure starts the backoff afresh
      empty = backlog_.empty();
    }
    // Recovered means nothing is held back any more, not merely that one send worked.
    if (empty) SetRecovered();
  }
}

Status ResultSink::DrainUntil(Deadline deadline, bool closing) {
  // Given no deadline, Flush and Close wait out flush_timeout once per outage, not per call:
  // what is unsent is durable in the spool, and a plan that flushes after every run must not
  // wait out a timeout each time for a store that is down.
  const bool budgeted = deadline == kNoDeadline;
  bool spent = false;
  if (budgeted) {
    std::lock_guard lock(mu_);
    spent = outage_wait_spent_;
    deadline = DeadlineAfter(options_.flush_timeout);
  }
  for (int attempt = 1;; ++attempt) {
    // Once spent, a failing store is left to the sink's own thread and its backoff: a flush
    // tries only if the next retry is due; a close tries once, as it is the last chance.
    Status status = Drain(spent && !closing);
    if (status.ok()) return status;
    const auto wait = RetryBackoff(attempt);
    if (spent || std::chrono::steady_clock::now() + wait >= deadline) {
      std::lock_guard lock(mu_);
      if (budgeted && degraded_) outage_wait_spent_ = true;
      return status.WithContext("after " + std::to_string(attempt) +
                                (attempt == 1 ? " attempt, " : " attempts, ") +
                                HeldMessageLocked());
    }
    std::this_thread::sleep_for(wait);
  }
}

void ResultSink::SetDegraded(const Status& why) {
  bool first = false;
  bool say = false;
  std::int64_t held = 0;
  std::chrono::nanoseconds wait{0};
  {
    std::lock_guard lock(mu_);
    ++failures_;
    last_failure_ = why.message();
    wait = RetryBackoff(failures_);
    const std::int64_t now = MonoNowNs();
    next_retry_mono_ns_ = now + wait.count();
    if (!degraded_) {
      degraded_ = true;
      first = true;
      degraded_since_mono_ns_ = now;
      held = HeldSamplesLocked();
      // A store that keeps failing and recovering is said to do so once a minute, not at
      // every turn.
      say = last_degraded_log_mono_ns_ == 0 ||
            now - last_degraded_log_mono_ns_ >= std::int64_t{60'000'000'000};
      if (say) last_degraded_log_mono_ns_ = now;
      degraded_said_ = say;
    }
  }
  wake_.notify_all();  // the worker has a retry to schedule
  if (!first) return;
  // A sink that is not durable returns its errors to the caller, who decides what to say.
  if (durable_) {
    LogAt(say ? LogLevel::kWarning : LogLevel::kDebug, "sink ", uri_, " degraded: ", why.message(),
          "; ", held, " samples are held in its spool and retried with backoff (next in ",
          FormatDuration(wait), "); nothing is lost");
  }
  Emit(EventType::kSinkDegraded, why.message());
}

void ResultSink::SetRecovered() {
  std::int64_t outage_ns = 0;
  bool say = false;
  {
    std::lock_guard lock(mu_);
    if (!degraded_) return;
    degraded_ = false;
    outage_wait_spent_ = false;
    say = degraded_said_;
    outage_ns = MonoNowNs() - degraded_since_mono_ns_;
  }
  if (durable_) {
    LogAt(say ? LogLevel::kWarning : LogLevel::kDebug, "sink ", uri_, " recovered after ",
          FormatDuration(std::chrono::nanoseconds(outage_ns)),
          "; what its spool held has been sent");
  }
  Emit(EventType::kSinkRecovered, "after " + FormatDuration(std::chrono::nanoseconds(outage_ns)));
}

void ResultSink::Emit(EventType type, const std::string& detail) {
  std::function<void(const Event&)> callback;
  {
    std::lock_guard lock(mu_);
    callback = on_event_;
  }
  if (!callback) return;
  Event event;
  event.type = type;
  event.source = uri_;
  event.subject = uri_;
  event.attributes["reason"] = detail;
  event.time_ns = WallNowNs();
  callback(event);
}

void ResultSink::StartWorkerLocked() {
  if (!worker_.joinable() && !stop_worker_) worker_ = std::thread([this] { WorkerLoop(); });
}

void ResultSink::StopWorker() {
  {
    std::lock_guard lock(mu_);
    stop_worker_ = true;
  }
  wake_.notify_all();
  if (worker_.joinable()) worker_.join();
}

// The sink's own thread: seals pending samples once max_delay has passed, so a quiet stream is
// still sent, and (for durable sinks) retries a failing store and replays a leftover spool.
void ResultSink::WorkerLoop() {
  std::unique_lock lock(mu_);
  while (!stop_worker_) {
    if (spool_ != nullptr && spool_->HasUnsynced()) {
      lock.unlock();
      FinishSeals();
      lock.lock();
      continue;
    }
    const std::int64_t now = MonoNowNs();
    std::int64_t wake = std::numeric_limits<std::int64_t>::max();
    bool send = false;
    if (!pending_.empty()) {
      const std::int64_t due = oldest_pending_mono_ns_ + options_.max_delay.count();
      if (now >= due) {
        SealLocked();
        send = true;
      } else {
        wake = due;
      }
    }
    if (durable_ && !backlog_.empty()) {
      if (!degraded_ || now >= next_retry_mono_ns_) {
        send = true;
      } else {
        wake = std::min(wake, next_retry_mono_ns_);
      }
    }
    if (send) {
      lock.unlock();
      Status status = Drain(true);
      lock.lock();
      if (!status.ok() && !durable_) {
        // Retried by the caller's next Write or Flush, not here: wait for new work.
        wake_.wait(lock, [&] { return stop_worker_ || !pending_.empty(); });
      }
      continue;
    }
    if (wake == std::numeric_limits<std::int64_t>::max()) {
      wake_.wait(lock);
    } else {
      wake_.wait_for(lock, std::chrono::nanoseconds(wake - now));
    }
  }
}

Status ResultSink::Write(const SampleBatch& batch) {
  bool send_now = false;
  {
    std::lock_guard lock(mu_);
    if (closing_) return FailedPreconditionError("sink " + uri_ + " is closed; make a new one");
    if (batch.empty()) return Status::OK();
    // A malformed batch is refused before it is queued: once pending, it would fail (or crash)
    // every later send, as backends index the columns without checking.
    BITFUSION_RETURN_IF_ERROR(internal::CheckBatch(batch).WithContext("sink " + uri_));
    StartWorkerLocked();
    const bool was_empty = pending_.empty();
    BITFUSION_RETURN_IF_ERROR(AppendLocked(&batch, nullptr));
    const std::int64_t now = MonoNowNs();
    if (pending_samples_ >= options_.batch_samples || pending_bytes_ >= options_.batch_bytes ||
        now - oldest_pending_mono_ns_ >= options_.max_delay.count()) {
      SealLocked();
      // A durable sink sends in the caller's thread only when the store is healthy and nothing
      // older waits; otherwise its thread does, and the caller goes on. Its thread also
      // fsyncs what was sealed.
      send_now = !durable_ || (!degraded_ && backlog_.size() == 1);
      if (!send_now || spool_ != nullptr) wake_.notify_all();
    } else if (was_empty) {
      wake_.notify_all();  // the worker now has a max_delay deadline to keep
    }
  }
  if (!send_now) return Status::OK();
  Status status = Drain(false);
  if (!status.ok() && durable_) return Status::OK();  // held in the spool, retried
  return status.WithContext("sink " + uri_);
}

Status ResultSink::Write(const RunRecord& record) {
  bool send_now = false;
  {
    std::lock_guard lock(mu_);
    if (closing_) return FailedPreconditionError("sink " + uri_ + " is closed; make a new one");
    BITFUSION_RETURN_IF_ERROR(AppendLocked(nullptr, &record).WithContext("run " + record.run_id));
    StartWorkerLocked();
    // The run's pending samples and the run travel in one segment, samples first (the spool
    // file holds them in that order too).
    if (!SealLocked()) {
      PushBacklogLocked(std::make_unique<Segment>());
      if (spool_ != nullptr) spool_->Seal(*backlog_.back());
    }
    Segment& last = *backlog_.back();
    last.has_run = true;
    // A segment already unloaded (its samples only in the spool file, where AppendLocked just
    // wrote the run too) reads the run back with them when it is loaded to be sent: memory
    // stays bounded.
    if (last.loaded) last.run = record;
    send_now = !durable_ || (!degraded_ && backlog_.size() == 1);
    if (!send_now || spool_ != nullptr) wake_.notify_all();
  }
  if (!send_now) return Status::OK();
  Status status = Drain(false);
  if (!status.ok() && durable_) return Status::OK();  // held in the spool, retried
  return status.WithContext("sink " + uri_);
}

Status ResultSink::Flush(Deadline deadline) {
  {
    std::lock_guard lock(mu_);
    if (closing_) return Status::OK();
    SealLocked();
  }
  FinishSeals();  // what Flush returns after is on disk
  BITFUSION_RETURN_IF_ERROR(
      (durable_ ? DrainUntil(deadline, false) : Drain(false)).WithContext("sink " + uri_));
  std::lock_guard send(send_mu_);
  if (backend_closed_) return Status::OK();  // a Close ran meanwhile, and synced
  return SyncBackend(deadline).WithContext("sink " + uri_);
}

Status ResultSink::Close(Deadline deadline) {
  {
    std::lock_guard lock(mu_);
    if (closing_) return Status::OK();
    closing_ = true;
    SealLocked();
  }
  StopWorker();
  FinishSeals();
  Status sent = durable_ ? DrainUntil(deadline, true) : Drain(false);
  Status synced = sent;
  Status closed;
  {
    std::lock_guard send(send_mu_);
    if (sent.ok()) synced = SyncBackend(deadline);
    // Close even when the last send failed, so files and connections are not leaked; the error
    // (and how many samples it left unsent) goes to the caller.
    closed = CloseBackend(deadline);
    backend_closed_ = true;
  }
  std::lock_guard lock(mu_);
  closed_ = true;
  const std::int64_t held = HeldSamplesLocked();
  const std::string held_message = HeldMessageLocked();
  if (spool_ != nullptr) {
    counters_.spool_bytes = spool_->bytes();
    spool_.reset();  // unlocks the spool for the next sink
  }
  if (!synced.ok()) {
    if (held == 0) return synced.WithContext("sink " + uri_ + " closed before its data was synced");
    // A durable sink's failed drain already says what is held, and where.
    if (durable_) return synced.WithContext("sink " + uri_ + " closed");
    return synced.WithContext("sink " + uri_ + " closed with " + held_message);
  }
  return closed.WithContext("sink " + uri_);
}

std::string ResultSink::spool_dir() const {
  std::lock_guard lock(mu_);
  return spool_dir_;
}

SinkCounters ResultSink::counters() const {
  std::lock_guard lock(mu_);
  SinkCounters out = counters_;
  out.samples_pending = HeldSamplesLocked();
  out.runs_pending = HeldRunsLocked();
  if (spool_ != nullptr) out.spool_bytes = spool_->bytes();
  out.degraded = degraded_;
  return out;
}

Result<std::shared_ptr<ResultSink>> ResultSinkFromUri(std::string_view uri,
                                                      const BackendContext& context) {
  return Registry<ResultSink>::Instance().Make(uri, context);
}

}  // namespace bitfusion
