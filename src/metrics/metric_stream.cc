#include "bitfusion/metric_stream.h"

#include <pthread.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "bitfusion/log.h"

namespace bitfusion {
namespace {

constexpr std::chrono::nanoseconds kMinInterval = std::chrono::milliseconds(1);
constexpr std::chrono::nanoseconds kMaxInterval = std::chrono::hours(1);
// clock_nanosleep cannot be woken by Stop, so the sampler never sleeps longer than this between
// looks at the stop flag: Stop stays prompt even with an interval of an hour.
constexpr std::int64_t kStopCheckNs = 20'000'000;
// The queue's slots are allocated at Start; beyond this, memory, not the queue, is the limit.
constexpr std::size_t kMaxQueueBatches = 1 << 20;
// Free lists are reserved up front so recycling a batch never allocates; beyond this many
// batches per source the vector may grow once.
constexpr std::size_t kMaxFreeReserve = 1024;

std::int64_t ReadClockNs(clockid_t clock) {
  timespec ts{};
  if (::clock_gettime(clock, &ts) != 0) return 0;
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// CPU time of one of the stream's threads, readable from any thread while it runs and after it
// has been joined: a joined thread's clock id is dead (and its TID may belong to another thread
// by then), so the thread records its final reading itself on the way out.
class ThreadCpuClock {
 public:
  void Begin() {
    clockid_t id{};
    const bool ok = ::pthread_getcpuclockid(::pthread_self(), &id) == 0;
    std::lock_guard lock(mu_);
    id_ = id;
    live_ = ok;
  }
  void End() {
    const std::int64_t ns = ReadClockNs(CLOCK_THREAD_CPUTIME_ID);
    std::lock_guard lock(mu_);
    final_ns_ = ns;
    live_ = false;
  }
  // The thread cannot pass End() while the lock is held here, so its clock id is still valid.
  std::int64_t Read() const {
    std::lock_guard lock(mu_);
    return live_ ? ReadClockNs(id_) : final_ns_;
  }

 private:
  mutable std::mutex mu_;
  clockid_t id_{};
  bool live_ = false;
  std::int64_t final_ns_ = 0;
};

struct Subscriber {
  explicit Subscriber(BatchCallback cb) : callback(std::move(cb)) {}
  BatchCallback callback;
  std::atomic<bool> cancelled{false};
  bool error_logged = false;  // delivery thread only
};

// Shared with the Subscription handles, which may outlive the stream.
struct SubscriberHub {
  std::mutex mu;  // guards list
  std::vector<std::shared_ptr<Subscriber>> list;
  // Held by the delivery thread while callbacks run, so Cancel can wait for a running callback.
  std::mutex dispatch_mu;
  std::atomic<std::thread::id> dispatcher{};

  void Cancel(const std::shared_ptr<Subscriber>& subscriber) {
    {
      std::lock_guard lock(mu);
      subscriber->cancelled.store(true, std::memory_order_release);
      list.erase(std::remove(list.begin(), list.end(), subscriber), list.end());
    }
    // A callback cancelling itself is running on this very thread: waiting would deadlock, and
    // the flag already keeps it from running again.
    if (dispatcher.load() != std::this_thread::get_id()) {
      std::lock_guard wait_for_running_callback(dispatch_mu);
    }
  }
};

}  // namespace

class MetricStream::Impl {
 public:
  explicit Impl(const MetricStreamOptions& options)
      : options_(options), hub_(std::make_shared<SubscriberHub>()) {}

  ~Impl() {
    Status stopped = Stop();
    if (!stopped.ok()) LogAt(LogLevel::kError, "destroying metric stream: ", stopped.ToString());
  }

  Status Add(std::shared_ptr<MetricSource> source) {
    if (source == nullptr) return InvalidArgumentError("MetricStream::Add was given no source");
    if (state_.load() != State::kIdle) {
      return FailedPreconditionError("cannot add metric source " + source->uri() +
                                     " to a stream that has started; add sources before Start");
    }
    for (const SourceSlot& slot : slots_) {
      if (slot.source == source) {
        return AlreadyExistsError("metric source " + source->uri() +
                                  " is already in this stream; add each source object once");
      }
    }
    SourceSlot slot;
    slot.source = options_.rates ? CountersAsRates(std::move(source)) : std::move(source);
    slots_.push_back(std::move(slot));
    return Status::OK();
  }

  Subscription Subscribe(BatchCallback callback) {
    if (!callback) return Subscription();
    auto subscriber = std::make_shared<Subscriber>(std::move(callback));
    {
      std::lock_guard lock(hub_->mu);
      hub_->list.push_back(subscriber);
    }
    return Subscription([hub = hub_, subscriber] { hub->Cancel(subscriber); });
  }

  Status Attach(std::shared_ptr<ResultSink> sink) {
    if (sink == nullptr) return InvalidArgumentError("MetricStream::Attach was given no sink");
    if (state_.load() != State::kIdle) {
      return FailedPreconditionError("cannot attach sink " + sink->uri() +
                                     " to a stream that has started; attach sinks before Start");
    }
    sinks_.push_back(SinkSlot{std::move(sink), false});
    return Status::OK();
  }

  Status Start() {
    if (state_.load() != State::kIdle) {
      return FailedPreconditionError(
          "metric stream was already started; a stream runs once, make a new one");
    }
    if (slots_.empty()) {
      return FailedPreconditionError(
          "metric stream has no sources; Add one (\"host\", \"process:PID\") before Start");
    }
    ring_.resize(options_.queue_batches);
    const std::size_t reserve = std::min(options_.queue_batches + 2, kMaxFreeReserve);
    for (SourceSlot& slot : slots_) {
      slot.current = NewBatch(slot);
      slot.free.reserve(reserve);
    }
    state_.store(State::kRunning);
    try {
      delivery_ = std::thread([this] { DeliveryMain(); });
    } catch (const std::system_error& e) {
      state_.store(State::kStopped);
      return ResourceExhaustedError(std::string("cannot start the metric delivery thread: ") +
                                    e.what());
    }
    try {
      const std::int64_t start_ns = MonoNowNs();
      sampler_ = std::thread([this, start_ns] { SamplerMain(start_ns); });
    } catch (const std::system_error& e) {
      {
        std::lock_guard lock(mu_);
        sampler_done_ = true;
      }
      queue_cv_.notify_all();
      delivery_.join();
      state_.store(State::kStopped);
      return ResourceExhaustedError(std::string("cannot start the metric sampling thread: ") +
                                    e.what());
    }
    return Status::OK();
  }

  Status Stop() {
    const State state = state_.load();
    if (state == State::kStopped) return Status::OK();
    if (state == State::kIdle) {
      state_.store(State::kStopped);
      return Status::OK();
    }
    const auto self = std::this_thread::get_id();
    if (self == delivery_id_.load() || self == sampler_id_.load()) {
      return FailedPreconditionError(
          "MetricStream::Stop was called from the stream's own thread (a subscriber callback, a "
          "sink or a source); call it from the thread that called Start");
    }
    stop_requested_.store(true, std::memory_order_release);
    sampler_.join();
    delivery_.join();
    state_.store(State::kStopped);
    return Status::OK();
  }

  StreamOverhead Overhead() const {
    StreamOverhead o;
    o.sampler_cpu_ns = sampler_clock_.Read();
    o.delivery_cpu_ns = delivery_clock_.Read();
    // The slots are fixed once started; before that Add may be changing them.
    if (state_.load() != State::kIdle) {
      for (const SourceSlot& slot : slots_) {
        o.source_cpu_ns += slot.source->BackgroundCpuNs();
        o.samples_dropped += slot.source->SamplesDropped();
      }
    }
    o.ticks = ticks_.load(std::memory_order_relaxed);
    o.ticks_missed = ticks_missed_.load(std::memory_order_relaxed);
    o.samples = samples_.load(std::memory_order_relaxed);
    o.samples_dropped += samples_dropped_.load(std::memory_order_relaxed);
    o.delivery_errors = delivery_errors_.load(std::memory_order_relaxed);
    o.source_errors = source_errors_.load(std::memory_order_relaxed);
    o.sources_dropped = sources_dropped_.load(std::memory_order_relaxed);
    return o;
  }

 private:
  enum class State { kIdle, kRunning, kStopped };

  struct SourceSlot {
    std::shared_ptr<MetricSource> source;
    std::unique_ptr<SampleBatch> current;  // sampler thread only
    // The series table every batch of this source carries; series are only ever appended, so a
    // recycled batch is brought up to date by appending the tail it lacks.
    std::vector<Series> series;                      // sampler thread only
    std::vector<std::unique_ptr<SampleBatch>> free;  // guarded by mu_
    bool active = true;                              // sampler thread only
    bool error_logged = false;                       // sampler thread only
  };

  struct SinkSlot {
    std::shared_ptr<ResultSink> sink;
    bool error_logged = false;  // delivery thread only
  };

  struct QueueItem {
    std::size_t source = 0;
    std::unique_ptr<SampleBatch> batch;
  };

  std::unique_ptr<SampleBatch> NewBatch(const SourceSlot& slot) const {
    auto batch = std::make_unique<SampleBatch>();
    batch->labels = options_.labels;
    batch->series = slot.series;
    return batch;
  }

  // Returns false when Stop was asked for before `deadline_ns` came.
  bool SleepUntil(std::int64_t deadline_ns) const {
    for (;;) {
      if (stop_requested_.load(std::memory_order_acquire)) return false;
      const std::int64_t now = MonoNowNs();
      if (now >= deadline_ns) return true;
      const std::int64_t wake = std::min(deadline_ns, now + kStopCheckNs);
      timespec ts{};
      ts.tv_sec = static_cast<time_t>(wake / 1'000'000'000);
      ts.tv_nsec = static_cast<long>(wake % 1'000'000'000);
      while (::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
      }
    }
  }

  void SamplerMain(std::int64_t start_ns) {
    ::pthread_setname_np(::pthread_self(), "bf-sampler");
    sampler_id_.store(std::this_thread::get_id());
    sampler_clock_.Begin();
    const std::int64_t interval = options_.interval.count();
    const std::int64_t delivery_interval = options_.delivery_interval.count();
    std::int64_t last_handoff_ns = start_ns;
    // Tick k is due at start + k * interval: absolute deadlines, so lateness never accumulates.
    for (std::int64_t k = 0; SleepUntil(start_ns + k * interval);) {
      const Timestamp now = Now();
      Tick(now);
      if (delivery_interval == 0 || now.mono_ns - last_handoff_ns >= delivery_interval) {
        for (std::size_t i = 0; i < slots_.size(); ++i) HandOff(i, /*final=*/false);
        last_handoff_ns = now.mono_ns;
      }
      // Deadlines that passed while this tick ran are skipped, not made up in a burst.
      std::int64_t next = k + 1;
      const std::int64_t after = MonoNowNs();
      if (after >= start_ns + next * interval) {
        const std::int64_t first_future = (after - start_ns) / interval + 1;
        ticks_missed_.fetch_add(first_future - next, std::memory_order_relaxed);
        next = first_future;
      }
      k = next;
    }
    // Sources fed by threads of their own may hold what arrived after the last tick.
    const Timestamp last = Now();
    std::int64_t taken = 0;
    for (SourceSlot& slot : slots_) {
      if (slot.active && slot.source->BuffersBetweenTicks()) taken += CollectSlot(slot, last);
    }
    samples_.fetch_add(taken, std::memory_order_relaxed);
    for (std::size_t i = 0; i < slots_.size(); ++i) HandOff(i, /*final=*/true);
    {
      std::lock_guard lock(mu_);
      sampler_done_ = true;
    }
    queue_cv_.notify_all();
    sampler_clock_.End();
  }

  void Tick(const Timestamp& now) {
    std::int64_t taken = 0;
    for (SourceSlot& slot : slots_) {
      if (slot.active) taken += CollectSlot(slot, now);
    }
    samples_.fetch_add(taken, std::memory_order_relaxed);
    ticks_.fetch_add(1, std::memory_order_relaxed);
  }

  // One Collect of one source into its current batch; the samples it added.
  std::int64_t CollectSlot(SourceSlot& slot, const Timestamp& now) {
    SampleBatch& batch = *slot.current;
    const std::size_t before = batch.size();
    Status status = slot.source->Collect(now, batch);
    const auto taken = static_cast<std::int64_t>(batch.size() - before);
    if (batch.series.size() > slot.series.size()) {
      slot.series.insert(slot.series.end(),
                         batch.series.begin() + static_cast<std::ptrdiff_t>(slot.series.size()),
                         batch.series.end());
    }
    if (!status.ok()) SourceFailed(slot, status);
    return taken;
  }

  void SourceFailed(SourceSlot& slot, const Status& status) {
    if (status.code() == StatusCode::kNotFound) {
      slot.active = false;
      sources_dropped_.fetch_add(1, std::memory_order_relaxed);
      LogAt(LogLevel::kInfo, "metric source ", slot.source->uri(), " stopped: ", status.message(),
            "; it is no longer sampled");
      if (options_.on_event) {
        Event event;
        event.type = EventType::kMetricSourceEnded;
        event.source = "metric_stream";
        event.subject = slot.source->uri();
        event.action = "ended";
        event.attributes["reason"] = status.message();
        event.time_ns = WallNowNs();
        try {
          options_.on_event(event);
        } catch (const std::exception& e) {
          LogAt(LogLevel::kWarning, "metric stream: the event callback threw ", e.what());
        }
      }
      return;
    }
    source_errors_.fetch_add(1, std::memory_order_relaxed);
    if (!slot.error_logged) {
      slot.error_logged = true;
      LogAt(LogLevel::kWarning, "metric source ", slot.source->uri(),
            " failed: ", status.ToString(),
            "; it is asked again every tick, further failures are only counted "
            "(Overhead().source_errors)");
    }
  }

  // Queues the source's current batch for delivery and gives the source a recycled one.
  void HandOff(std::size_t index, bool final) {
    SourceSlot& slot = slots_[index];
    if (slot.current->empty()) return;
    std::int64_t dropped_now = 0;
    bool log_drop = false;
    std::unique_lock lock(mu_);
    if (count_ == ring_.size()) {
      if (final || options_.overflow == OverflowPolicy::kBlock) {
        space_cv_.wait(lock, [this] { return count_ < ring_.size(); });
      } else {
        QueueItem oldest = std::move(ring_[head_]);
        head_ = (head_ + 1) % ring_.size();
        --count_;
        dropped_now = static_cast<std::int64_t>(oldest.batch->size());
        samples_dropped_.fetch_add(dropped_now, std::memory_order_relaxed);
        oldest.batch->ClearSamples();
        slots_[oldest.source].free.push_back(std::move(oldest.batch));
        log_drop = !drop_logged_;
        drop_logged_ = true;
      }
    }
    ring_[(head_ + count_) % ring_.size()] = QueueItem{index, std::move(slot.current)};
    ++count_;
    if (!slot.free.empty()) {
      slot.current = std::move(slot.free.back());
      slot.free.pop_back();
    }
    lock.unlock();
    queue_cv_.notify_one();

    if (slot.current == nullptr) {
      slot.current = NewBatch(slot);
    } else if (slot.current->series.size() < slot.series.size()) {
      SampleBatch& batch = *slot.current;
      batch.series.insert(batch.series.end(),
                          slot.series.begin() + static_cast<std::ptrdiff_t>(batch.series.size()),
                          slot.series.end());
    }
    if (log_drop) {
      LogAt(LogLevel::kWarning, "metric stream: delivery queue full (", ring_.size(),
            " batches), dropped the oldest batch (", dropped_now,
            " samples); later drops are only counted (Overhead().samples_dropped). Subscribers "
            "or sinks are too slow: raise queue_batches or delivery_interval, or use "
            "OverflowPolicy::kBlock");
    }
  }

  void DeliveryMain() {
    ::pthread_setname_np(::pthread_self(), "bf-delivery");
    delivery_id_.store(std::this_thread::get_id());
    hub_->dispatcher.store(std::this_thread::get_id());
    delivery_clock_.Begin();
    std::vector<std::shared_ptr<Subscriber>> callbacks;
    callbacks.reserve(16);
    for (;;) {
      QueueItem item;
      {
        std::unique_lock lock(mu_);
        queue_cv_.wait(lock, [this] { return count_ > 0 || sampler_done_; });
        if (count_ == 0) break;
        item = std::move(ring_[head_]);
        head_ = (head_ + 1) % ring_.size();
        --count_;
      }
      space_cv_.notify_one();
      Deliver(*item.batch, callbacks);
      item.batch->ClearSamples();
      std::lock_guard lock(mu_);
      slots_[item.source].free.push_back(std::move(item.batch));
    }
    for (SinkSlot& slot : sinks_) {
      Status status = slot.sink->Flush();
      if (!status.ok()) SinkFailed(slot, status);
    }
    hub_->dispatcher.store(std::thread::id());
    delivery_clock_.End();
  }

  void Deliver(const SampleBatch& batch, std::vector<std::shared_ptr<Subscriber>>& callbacks) {
    {
      std::lock_guard dispatching(hub_->dispatch_mu);
      {
        std::lock_guard lock(hub_->mu);
        callbacks.assign(hub_->list.begin(), hub_->list.end());
      }
      for (const auto& subscriber : callbacks) {
        if (subscriber->cancelled.load(std::memory_order_acquire)) continue;
        try {
          subscriber->callback(batch);
        } catch (const std::exception& e) {
          CallbackFailed(*subscriber, e.what());
        } catch (...) {
          CallbackFailed(*subscriber, "an exception that is not a std::exception");
        }
      }
      callbacks.clear();
    }
    for (SinkSlot& slot : sinks_) {
      Status status = slot.sink->Write(batch);
      if (!status.ok()) SinkFailed(slot, status);
    }
  }

  void CallbackFailed(Subscriber& subscriber, const char* what) {
    delivery_errors_.fetch_add(1, std::memory_order_relaxed);
    if (subscriber.error_logged) return;
    subscriber.error_logged = true;
    LogAt(LogLevel::kWarning, "metric stream: a subscriber callback threw ", what,
          "; the batch is skipped for it, further failures are only counted "
          "(Overhead().delivery_errors)");
  }

  void SinkFailed(SinkSlot& slot, const Status& status) {
    delivery_errors_.fetch_add(1, std::memory_order_relaxed);
    if (slot.error_logged) return;
    slot.error_logged = true;
    // One line per sink and process: a plan makes a stream per run, and a store that is down
    // fails them all for one cause. A consumer that stopped reading (kCancelled: a pipe's
    // reader gone, as in `bitfusion metrics | head`) is no fault: said at info level.
    LogOnceAt(status.code() == StatusCode::kCancelled ? LogLevel::kInfo : LogLevel::kWarning,
              "sink-write " + slot.sink->uri(), "metric stream: writing to sink ", slot.sink->uri(),
              " failed: ", status.ToString(),
              "; sampling goes on, further failures are only counted (Overhead().delivery_errors)");
  }

  const MetricStreamOptions options_;
  std::vector<SourceSlot> slots_;  // fixed once started
  std::vector<SinkSlot> sinks_;    // fixed once started
  std::shared_ptr<SubscriberHub> hub_;

  std::atomic<State> state_{State::kIdle};
  std::atomic<bool> stop_requested_{false};
  std::thread sampler_, delivery_;
  std::atomic<std::thread::id> sampler_id_{}, delivery_id_{};

  std::mutex mu_;  // guards the ring, the free lists, sampler_done_ and drop_logged_
  std::condition_variable queue_cv_;  // delivery waits for a batch (or the end)
  std::condition_variable space_cv_;  // the sampler waits for room (kBlock and Stop)
  std::vector<QueueItem> ring_;
  std::size_t head_ = 0;
  std::size_t count_ = 0;
  bool sampler_done_ = false;
  bool drop_logged_ = false;

  ThreadCpuClock sampler_clock_, delivery_clock_;
  std::atomic<std::int64_t> ticks_{0}, ticks_missed_{0}, samples_{0}, samples_dropped_{0},
      delivery_errors_{0}, source_errors_{0}, sources_dropped_{0};
};

Result<std::unique_ptr<MetricStream>> MetricStream::Make(const MetricStreamOptions& options) {
  if (options.interval < kMinInterval || options.interval > kMaxInterval) {
    return InvalidArgumentError("metric stream interval " + FormatDuration(options.interval) +
                                " is out of range; use 1ms to 1h");
  }
  if (options.delivery_interval.count() < 0) {
    return InvalidArgumentError("metric stream delivery_interval " +
                                FormatDuration(options.delivery_interval) +
                                " is negative; use 0 (every tick) or a positive duration");
  }
  if (options.queue_batches == 0 || options.queue_batches > kMaxQueueBatches) {
    return InvalidArgumentError("metric stream queue_batches is " +
                                std::to_string(options.queue_batches) + "; use 1 to " +
                                std::to_string(kMaxQueueBatches) + " (default 256)");
  }
  if (options.overflow != OverflowPolicy::kDropOldest &&
      options.overflow != OverflowPolicy::kBlock) {
    return InvalidArgumentError("metric stream overflow policy " +
                                std::to_string(static_cast<int>(options.overflow)) +
                                " is unknown; use kDropOldest or kBlock");
  }
  return std::unique_ptr<MetricStream>(new MetricStream(std::make_unique<Impl>(options)));
}

MetricStream::MetricStream(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
MetricStream::~MetricStream() = default;

Status MetricStream::Add(std::shared_ptr<MetricSource> source) {
  return impl_->Add(std::move(source));
}

Status MetricStream::Add(std::string_view source_uri) {
  BITFUSION_ASSIGN_OR_RETURN(auto source, MetricSourceFromUri(source_uri));
  return impl_->Add(std::move(source));
}

Subscription MetricStream::Subscribe(BatchCallback callback) {
  return impl_->Subscribe(std::move(callback));
}

Status MetricStream::Attach(std::shared_ptr<ResultSink> sink) {
  return impl_->Attach(std::move(sink));
}

Status MetricStream::Start() { return impl_->Start(); }
Status MetricStream::Stop() { return impl_->Stop(); }
StreamOverhead MetricStream::Overhead() const { return impl_->Overhead(); }

}  // namespace bitfusion
