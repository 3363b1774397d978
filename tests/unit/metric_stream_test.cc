// MetricStream: ticking on absolute deadlines, delivery, overflow policies, subscriptions, sinks,
// source failures and the overhead it reports. Timing checks are bounds that hold however
// loaded the machine is, never thresholds on how fast it is.
#include "bitfusion/metric_stream.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "bitfusion/log.h"
#include "bitfusion/result_sink.h"
#include "scoped_signal.h"

namespace bitfusion {
namespace {

using namespace std::chrono_literals;

// Appends `per_tick` samples with increasing values; optionally fails from some call on.
class FakeSource final : public MetricSource {
 public:
  explicit FakeSource(std::string uri, int per_tick = 1, bool buffers = false)
      : uri_(std::move(uri)), per_tick_(per_tick), buffers_(buffers) {}

  const std::string& uri() const override { return uri_; }
  bool BuffersBetweenTicks() const override { return buffers_; }

  Status Collect(Timestamp now, SampleBatch& batch) override {
    const std::int64_t call = calls_.fetch_add(1) + 1;
    {
      std::lock_guard lock(mu_);
      tick_mono_ns_.push_back(now.mono_ns);
    }
    if (fail_after_ >= 0 && call > fail_after_) return failure_;
    if (!declared_) {
      batch.AddSeries({"fake.value", "1", {{"source", uri_}}});
      declared_ = true;
    } else if (batch.series.size() != 1 || batch.series[0].metric != "fake.value") {
      series_mismatches_.fetch_add(1);
    }
    for (int i = 0; i < per_tick_; ++i) {
      batch.Append(0, now.wall_ns, now.mono_ns, static_cast<double>(next_value_++));
    }
    return Status::OK();
  }

  // From call number `after` + 1 on, Collect returns `failure` without sampling.
  void FailAfter(std::int64_t after, Status failure) {
    fail_after_ = after;
    failure_ = std::move(failure);
  }

  std::int64_t calls() const { return calls_.load(); }
  std::int64_t series_mismatches() const { return series_mismatches_.load(); }
  std::vector<std::int64_t> tick_mono_ns() const {
    std::lock_guard lock(mu_);
    return tick_mono_ns_;
  }

 private:
  const std::string uri_;
  const int per_tick_;
  const bool buffers_;
  std::atomic<std::int64_t> calls_{0};
  std::atomic<std::int64_t> series_mismatches_{0};
  bool declared_ = false;
  std::int64_t next_value_ = 0;
  std::int64_t fail_after_ = -1;
  Status failure_;
  mutable std::mutex mu_;
  std::vector<std::int64_t> tick_mono_ns_;
};

// What a subscriber saw, for checks after Stop.
struct Received {
  std::mutex mu;
  std::vector<double> values;
  std::vector<std::size_t> batch_sizes;
  std::vector<Labels> batch_labels;
  void Add(const SampleBatch& batch) {
    std::lock_guard lock(mu);
    values.insert(values.end(), batch.value.begin(), batch.value.end());
    batch_sizes.push_back(batch.size());
    batch_labels.push_back(batch.labels);
  }
  std::size_t samples() {
    std::lock_guard lock(mu);
    return values.size();
  }
};

// A one-shot gate a callback can wait on.
class Gate {
 public:
  void Open() {
    std::lock_guard lock(mu_);
    open_ = true;
    cv_.notify_all();
  }
  void Wait() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [this] { return open_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
};

template <class Pred>
bool WaitUntil(Pred pred, std::chrono::milliseconds limit = 20s) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

class LogCapture {
 public:
  explicit LogCapture(LogLevel level = LogLevel::kWarning) : old_level_(GetLogLevel()) {
    SetLogLevel(level);
    SetLogHandler([this](LogLevel at, std::string_view m) {
      std::lock_guard lock(mu_);
      lines_.emplace_back(m);
      levels_.push_back(at);
    });
  }
  ~LogCapture() {
    SetLogHandler(nullptr);
    SetLogLevel(old_level_);
  }
  int Count(const std::string& needle) {
    std::lock_guard lock(mu_);
    int n = 0;
    for (const auto& l : lines_) n += l.find(needle) != std::string::npos ? 1 : 0;
    return n;
  }
  /// Lines holding `needle` logged at `level` or above.
  int CountAtLeast(LogLevel level, const std::string& needle) {
    std::lock_guard lock(mu_);
    int n = 0;
    for (std::size_t i = 0; i < lines_.size(); ++i) {
      n += levels_[i] >= level && lines_[i].find(needle) != std::string::npos ? 1 : 0;
    }
    return n;
  }

 private:
  LogLevel old_level_;
  std::mutex mu_;
  std::vector<std::string> lines_;
  std::vector<LogLevel> levels_;
};

std::unique_ptr<MetricStream> MakeStream(const MetricStreamOptions& options) {
  auto stream = MetricStream::Make(options);
  EXPECT_TRUE(stream.ok()) << stream.status().ToString();
  return stream.ok() ? std::move(*stream) : nullptr;
}

TEST(MetricStreamTest, RejectsBadOptions) {
  MetricStreamOptions o;
  o.interval = 999us;
  EXPECT_EQ(MetricStream::Make(o).status().code(), StatusCode::kInvalidArgument);
  o.interval = 1h + 1ns;
  EXPECT_EQ(MetricStream::Make(o).status().code(), StatusCode::kInvalidArgument);
  o.interval = 1ms;
  EXPECT_TRUE(MetricStream::Make(o).ok());
  o.interval = 1h;
  EXPECT_TRUE(MetricStream::Make(o).ok());
  o.delivery_interval = -1ms;
  EXPECT_EQ(MetricStream::Make(o).status().code(), StatusCode::kInvalidArgument);
  o.delivery_interval = 0ms;
  o.queue_batches = 0;
  auto empty_queue = MetricStream::Make(o);
  ASSERT_FALSE(empty_queue.ok());
  EXPECT_NE(empty_queue.error().message().find("queue_batches"), std::string::npos);
  o.queue_batches = (1u << 20) + 1;
  EXPECT_EQ(MetricStream::Make(o).status().code(), StatusCode::kInvalidArgument);
  o.queue_batches = 1;
  o.overflow = static_cast<OverflowPolicy>(7);
  EXPECT_EQ(MetricStream::Make(o).status().code(), StatusCode::kInvalidArgument);
}

TEST(MetricStreamTest, LifecycleRules) {
  auto stream = MakeStream({});
  ASSERT_NE(stream, nullptr);
  EXPECT_EQ(stream->Start().code(), StatusCode::kFailedPrecondition) << "no sources";
  EXPECT_EQ(stream->Add(std::shared_ptr<MetricSource>()).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(stream->Add("nosuchscheme").code(), StatusCode::kInvalidArgument);
  auto source = std::make_shared<FakeSource>("fake");
  ASSERT_TRUE(stream->Add(source).ok());
  EXPECT_EQ(stream->Add(source).code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(stream->Attach(nullptr).code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(stream->Subscribe(BatchCallback()).active());

  ASSERT_TRUE(stream->Start().ok());
  EXPECT_EQ(stream->Start().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(stream->Add(std::make_shared<FakeSource>("late")).code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(stream->Attach(*ResultSinkFromUri("null://")).code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(stream->Stop().ok());
  EXPECT_TRUE(stream->Stop().ok()) << "Stop is idempotent";
  EXPECT_EQ(stream->Start().code(), StatusCode::kFailedPrecondition) << "a stream runs once";

  auto never_started = MakeStream({});
  EXPECT_TRUE(never_started->Stop().ok());
}

TEST(MetricStreamTest, FirstTickIsImmediateAndStopIsPromptWithLongInterval) {
  MetricStreamOptions o;
  o.interval = 1h;
  auto stream = MakeStream(o);
  auto source = std::make_shared<FakeSource>("fake");
  ASSERT_TRUE(stream->Add(source).ok());
  ASSERT_TRUE(stream->Start().ok());
  ASSERT_TRUE(WaitUntil([&] { return source->calls() >= 1; }));
  const auto before_stop = std::chrono::steady_clock::now();
  ASSERT_TRUE(stream->Stop().ok());
  EXPECT_LT(std::chrono::steady_clock::now() - before_stop, 30s) << "not an hour";
  EXPECT_EQ(source->calls(), 1);
  EXPECT_EQ(stream->Overhead().ticks, 1);
  EXPECT_EQ(stream->Overhead().ticks_missed, 0);
}

TEST(MetricStreamTest, TicksFollowAbsoluteDeadlinesWithoutDrift) {
  MetricStreamOptions o;
  o.interval = 5ms;
  auto stream = MakeStream(o);
  auto source = std::make_shared<FakeSource>("fake");
  ASSERT_TRUE(stream->Add(source).ok());
  const std::int64_t before_start = MonoNowNs();
  ASSERT_TRUE(stream->Start().ok());
  std::this_thread::sleep_for(300ms);
  ASSERT_TRUE(stream->Stop().ok());
  const std::int64_t after_stop = MonoNowNs();

  const auto ticks = source->tick_mono_ns();
  const StreamOverhead o2 = stream->Overhead();
  ASSERT_GE(ticks.size(), 2u);
  EXPECT_EQ(static_cast<std::int64_t>(ticks.size()), o2.ticks);
  const std::int64_t iv = o.interval.count();
  // Every deadline up to the last tick was either taken or counted as missed; none after Stop
  // returned can have been. With relative sleeps the overhead of each tick would accumulate and
  // the last tick would land past more deadlines than were accounted for.
  const std::int64_t accounted = o2.ticks + o2.ticks_missed;
  EXPECT_GE(accounted, (ticks.back() - ticks.front()) / iv + 1);
  EXPECT_LE(accounted, (after_stop - before_start) / iv + 1);
  for (std::size_t i = 1; i < ticks.size(); ++i) EXPECT_GT(ticks[i], ticks[i - 1]);
}

TEST(MetricStreamTest, NullSourceWithSeriesGeneratesOneSamplePerSeriesPerTick) {
  MetricStreamOptions o;
  o.interval = 1ms;
  auto stream = MakeStream(o);
  ASSERT_TRUE(stream->Add("null?series=50").ok());
  Received received;
  std::set<std::string> series;
  Subscription sub = stream->Subscribe([&](const SampleBatch& batch) {
    received.Add(batch);
    for (std::uint32_t i : batch.series_index)
      series.insert(batch.series.at(i).labels.at("series"));
  });
  ASSERT_TRUE(stream->Start().ok());
  ASSERT_TRUE(WaitUntil([&] { return received.samples() >= 500; }));
  ASSERT_TRUE(stream->Stop().ok());
  const StreamOverhead over = stream->Overhead();
  EXPECT_EQ(over.samples, 50 * over.ticks);
  EXPECT_EQ(static_cast<std::int64_t>(received.samples()), over.samples);
  EXPECT_EQ(series.size(), 50u);
  // Tick k's 50 samples all carry the value k.
  for (std::size_t i = 0; i < received.values.size(); ++i) {
    ASSERT_EQ(received.values[i], static_cast<double>(i / 50 + 1)) << i;
  }
  EXPECT_EQ(MetricSourceFromUri("null?series=-1").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(MetricSourceFromUri("null?rows=5").status().code(), StatusCode::kInvalidArgument);
}

TEST(MetricStreamTest, StopDeliversEverythingInOneBatchPerSource) {
  MetricStreamOptions o;
  o.interval = 1ms;
  o.delivery_interval = 1h;  // only Stop hands batches over
  o.labels = {{"run", "r1"}};
  auto stream = MakeStream(o);
  auto a = std::make_shared<FakeSource>("a", 3);
  auto b = std::make_shared<FakeSource>("b", 2);
  ASSERT_TRUE(stream->Add(a).ok());
  ASSERT_TRUE(stream->Add(b).ok());
  Received received;
  std::vector<std::string> sources;
  Subscription sub = stream->Subscribe([&](const SampleBatch& batch) {
    received.Add(batch);
    sources.push_back(batch.series.at(0).labels.at("source"));
  });
  ASSERT_TRUE(stream->Start().ok());
  ASSERT_TRUE(WaitUntil([&] { return a->calls() >= 20; }));
  ASSERT_TRUE(stream->Stop().ok());

  const StreamOverhead over = stream->Overhead();
  EXPECT_EQ(over.samples, 5 * over.ticks);
  EXPECT_EQ(over.samples_dropped, 0);
  EXPECT_EQ(static_cast<std::int64_t>(received.samples()), over.samples);
  ASSERT_EQ(received.batch_sizes.size(), 2u);
  EXPECT_EQ(sources, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(received.batch_sizes[0], static_cast<std::size_t>(3 * a->calls()));
  EXPECT_EQ(received.batch_labels[0], (Labels{{"run", "r1"}}));
  // Source a's values come first, in order, none missing.
  for (std::int64_t i = 0; i < 3 * a->calls(); ++i) {
    ASSERT_EQ(received.values[static_cast<std::size_t>(i)], static_cast<double>(i));
  }
}

TEST(MetricStreamTest, ZeroDeliveryIntervalHandsOverEveryTick) {
  MetricStreamOptions o;
  o.interval = 2ms;
  o.delivery_interval = 0ms;
  auto stream = MakeStream(o);
  auto source = std::make_shared<FakeSource>("fake", 3);
  ASSERT_TRUE(stream->Add(source).ok());
  Received received;
  Subscription sub = stream->Subscribe([&](const SampleBatch& batch) { received.Add(batch); });
  ASSERT_TRUE(stream->Start().ok());
  ASSERT_TRUE(WaitUntil([&] { return received.samples() >= 60; }));
  ASSERT_TRUE(stream->Stop().ok());
  EXPECT_EQ(static_cast<std::int64_t>(received.batch_sizes.size()), stream->Overhead().ticks);
  for (std::size_t size : received.batch_sizes) EXPECT_EQ(size, 3u);
  EXPECT_EQ(source->series_mismatches(), 0) << "recycled batches keep the source's series";
  for (std::size_t i = 0; i < received.values.size(); ++i) {
    ASSERT_EQ(received.values[i], static_cast<double>(i));
  }
}

TEST(MetricStreamTest, DropOldestCountsEveryDroppedSample) {
  LogCapture log;
  MetricStreamOptions o;
  o.interval = 1ms;
  o.delivery_interval = 0ms;
  o.queue_batches = 2;
  o.overflow = OverflowPolicy::kDropOldest;
  auto stream = MakeStream(o);
  auto source = std::make_shared<FakeSource>("fake", 2);
  ASSERT_TRUE(stream->Add(source).ok());
  Gate gate;
  Received received;
  Subscription sub = stream->Subscribe([&](const SampleBatch& batch) {
    gate.Wait();
    received.Add(batch);
  });
  ASSERT_TRUE(stream->Start().ok());
  ASSERT_TRUE(WaitUntil([&] { return source->calls() >= 30; }));
  gate.Open();
  ASSERT_TRUE(stream->Stop().ok());

  const StreamOverhead over = stream->Overhead();
  EXPECT_GT(over.samples_dropped, 0);
  EXPECT_EQ(over.samples_dropped % 2, 0) << "whole batches are dropped";
  EXPECT_EQ(static_cast<std::int64_t>(received.samples()) + over.samples_dropped, over.samples);
  EXPECT_EQ(log.Count("queue full"), 1) << "dropping is logged once";
  EXPECT_EQ(source->series_mismatches(), 0);
  // What arrived is in order: only whole older batches are missing.
  for (std::size_t i = 1; i < received.values.size(); ++i) {
    EXPECT_LT(received.values[i - 1], received.values[i]);
  }
}

TEST(MetricStreamTest, BlockPolicyStallsTheSamplerAndLosesNothing) {
  MetricStreamOptions o;
  o.interval = 1ms;
  o.delivery_interval = 0ms;
  o.queue_batches = 1;
  o.overflow = OverflowPolicy::kBlock;
  auto stream = MakeStream(o);
  auto source = std::make_shared<FakeSource>("fake");
  ASSERT_TRUE(stream->Add(source).ok());
  Gate gate;
  Received received;
  Subscription sub = stream->Subscribe([&](const SampleBatch& batch) {
    gate.Wait();
    received.Add(batch);
  });
  ASSERT_TRUE(stream->Start().ok());
  // One batch in the callback, one in the queue, the third tick waits for room.
  ASSERT_TRUE(WaitUntil([&] { return source->calls() >= 3; }));
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(source->calls(), 3) << "the sampler waits instead of dropping";
  gate.Open();
  ASSERT_TRUE(WaitUntil([&] { return source->calls() >= 10; }));
  ASSERT_TRUE(stream->Stop().ok());

  const StreamOverhead over = stream->Overhead();
  EXPECT_EQ(over.samples_dropped, 0);
  EXPECT_EQ(static_cast<std::int64_t>(received.samples()), over.samples);
  EXPECT_GT(over.ticks_missed, 0) << "deadlines passed while the sampler waited";
}

TEST(MetricStreamTest, CancelWaitsForARunningCallbackAndStopsIt) {
  MetricStreamOptions o;
  o.interval = 1ms;
  o.delivery_interval = 0ms;
  auto stream = MakeStream(o);
  ASSERT_TRUE(stream->Add(std::make_shared<FakeSource>("fake")).ok());
  std::atomic<bool> in_callback{false};
  std::atomic<int> calls{0};
  Subscription slow = stream->Subscribe([&](const SampleBatch&) {
    in_callback = true;
    std::this_thread::sleep_for(20ms);
    ++calls;
    in_callback = false;
  });
  Received other;
  Subscription keep = stream->Subscribe([&](const SampleBatch& b) { other.Add(b); });
  ASSERT_TRUE(stream->Start().ok());
  ASSERT_TRUE(WaitUntil([&] { return in_callback.load(); }));
  slow.Cancel();
  EXPECT_FALSE(in_callback.load()) << "Cancel returned while the callback was running";
  EXPECT_FALSE(slow.active());
  const int calls_at_cancel = calls.load();
  const std::size_t other_at_cancel = other.samples();
  ASSERT_TRUE(WaitUntil([&] { return other.samples() > other_at_cancel + 5; }));
  ASSERT_TRUE(stream->Stop().ok());
  EXPECT_EQ(calls.load(), calls_at_cancel) << "a cancelled callback never runs again";
  EXPECT_EQ(static_cast<std::int64_t>(other.samples()), stream->Overhead().samples);
}

TEST(MetricStreamTest, CallbackMayCancelItself) {
  MetricStreamOptions o;
  o.interval = 1ms;
  o.delivery_interval = 0ms;
  auto stream = MakeStream(o);
  ASSERT_TRUE(stream->Add(std::make_shared<FakeSource>("fake")).ok());
  int self_calls = 0;
  Subscription self;
  self = stream->Subscribe([&](const SampleBatch&) {
    ++self_calls;
    self.Cancel();
  });
  std::atomic<int> batches{0};
  Subscription count = stream->Subscribe([&](const SampleBatch&) { ++batches; });
  ASSERT_TRUE(stream->Start().ok());
  ASSERT_TRUE(WaitUntil([&] { return batches.load() >= 5; }));
  ASSERT_TRUE(stream->Stop().ok());
  EXPECT_EQ(self_calls, 1);
}

TEST(MetricStreamTest, SubscriptionMayOutliveTheStream) {
  MetricStreamOptions o;
  o.interval = 1ms;
  auto stream = MakeStream(o);
  ASSERT_TRUE(stream->Add(std::make_shared<FakeSource>("fake")).ok());
  std::atomic<int> batches{0};
  Subscription sub = stream->Subscribe([&](const SampleBatch&) { ++batches; });
  ASSERT_TRUE(stream->Start().ok());
  // At least one batch first: on a loaded machine 5 ms of sleep could pass before the sampler's
  // first tick, and a stream stopped before it has nothing to deliver.
  ASSERT_TRUE(WaitUntil([&] { return batches.load() >= 1; }));
  stream.reset();  // stops and delivers
  EXPECT_GE(batches.load(), 1);
  EXPECT_TRUE(sub.active());
  sub.Cancel();
  EXPECT_FALSE(sub.active());
}

TEST(MetricStreamTest, StopFromACallbackIsRefused) {
  MetricStreamOptions o;
  o.interval = 1ms;
  o.delivery_interval = 0ms;
  auto stream = MakeStream(o);
  ASSERT_TRUE(stream->Add(std::make_shared<FakeSource>("fake")).ok());
  std::mutex mu;
  std::optional<Status> inner;
  Subscription sub = stream->Subscribe([&](const SampleBatch&) {
    std::lock_guard lock(mu);
    if (!inner) inner = stream->Stop();
  });
  ASSERT_TRUE(stream->Start().ok());
  ASSERT_TRUE(WaitUntil([&] {
    std::lock_guard lock(mu);
    return inner.has_value();
  }));
  EXPECT_EQ(inner->code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(stream->Stop().ok());
}

// A sink whose backend always fails.
class FailingSink final : public ResultSink {
 public:
  FailingSink() : ResultSink("failing://", Options()) {}
  ~FailingSink() override { CloseOnDestroy(); }

 private:
  static ResultSinkOptions Options() {
    ResultSinkOptions o;
    o.batch_samples = 1;
    return o;
  }
  Status WriteSamples(const std::vector<SampleBatch>&) override {
    return UnavailableError("the test backend is down");
  }
  Status WriteRun(const RunRecord&) override { return Status::OK(); }
};

TEST(MetricStreamTest, AttachedSinksGetEverySampleAndAreFlushedAtStop) {
  MetricStreamOptions o;
  o.interval = 1ms;
  o.delivery_interval = 5ms;
  auto stream = MakeStream(o);
  ASSERT_TRUE(stream->Add(std::make_shared<FakeSource>("fake", 4)).ok());
  auto made = ResultSinkFromUri("null://?batch_samples=100000000&max_delay=1h");
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  auto sink = *made;
  ASSERT_TRUE(stream->Attach(sink).ok());
  ASSERT_TRUE(stream->Start().ok());
  ASSERT_TRUE(WaitUntil([&] { return stream->Overhead().samples >= 200; }));
  ASSERT_TRUE(stream->Stop().ok());
  const SinkCounters counters = sink->counters();
  EXPECT_EQ(counters.samples_written, stream->Overhead().samples);
  EXPECT_EQ(counters.samples_pending, 0) << "Stop flushes the sink";
  EXPECT_EQ(stream->Overhead().delivery_errors, 0);
}

TEST(MetricStreamTest, SinkErrorsAreCountedLoggedOnceAndNotFatal) {
  LogCapture log;
  MetricStreamOptions o;
  o.interval = 1ms;
  o.delivery_interval = 0ms;
  auto stream = MakeStream(o);
  auto source = std::make_shared<FakeSource>("fake");
  ASSERT_TRUE(stream->Add(source).ok());
  auto sink = std::make_shared<FailingSink>();
  ASSERT_TRUE(stream->Attach(sink).ok());
  Received received;
  Subscription sub = stream->Subscribe([&](const SampleBatch& b) { received.Add(b); });
  ASSERT_TRUE(stream->Start().ok());
  ASSERT_TRUE(WaitUntil([&] { return received.samples() >= 10; }));
  ASSERT_TRUE(stream->Stop().ok());
  const StreamOverhead over = stream->Overhead();
  EXPECT_GE(over.delivery_errors, 10);
  // One failed backend call per Write, plus the final Flush.
  EXPECT_EQ(over.delivery_errors, sink->counters().errors);
  EXPECT_EQ(log.Count("failing://"), 1);
  EXPECT_EQ(static_cast<std::int64_t>(received.samples()), over.samples);
}

// `bitfusion metrics | head`: a sink whose pipe's reader has gone is counted and said once at
// info level, not warned about (it printed "Broken pipe" as a warning after head's lines).
TEST(MetricStreamTest, ASinkWhoseReaderLeftIsCountedWithoutAWarning) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const testing::ScopedIgnoreSignal no_sigpipe(SIGPIPE);
  {
    LogCapture log(LogLevel::kInfo);
    auto sink = ResultSinkFromUri("jsonl:///proc/self/fd/" + std::to_string(fds[1]) +
                                  "?batch_samples=1&memory_max_bytes=65536");
    ASSERT_TRUE(sink.ok()) << sink.status().ToString();
    ::close(fds[1]);
    ::close(fds[0]);
    MetricStreamOptions o;
    o.interval = 1ms;
    o.delivery_interval = 0ms;
    auto stream = MakeStream(o);
    ASSERT_TRUE(stream->Add(std::make_shared<FakeSource>("fake")).ok());
    ASSERT_TRUE(stream->Attach(*sink).ok());
    ASSERT_TRUE(stream->Start().ok());
    ASSERT_TRUE(WaitUntil([&] { return stream->Overhead().delivery_errors >= 5; }));
    (void)stream->Stop();
    (void)(*sink)->Close();
    EXPECT_EQ(log.CountAtLeast(LogLevel::kWarning, "jsonl://"), 0);
    EXPECT_EQ(log.CountAtLeast(LogLevel::kInfo, "has gone"), 1);
  }
}

TEST(MetricStreamTest, GoneSourceIsDroppedOthersContinue) {
  LogCapture log(LogLevel::kInfo);
  MetricStreamOptions o;
  o.interval = 1ms;
  o.delivery_interval = 0ms;
  std::mutex events_mu;
  std::vector<Event> events;
  o.on_event = [&](const Event& e) {
    std::lock_guard lock(events_mu);
    events.push_back(e);
  };
  auto stream = MakeStream(o);
  auto gone = std::make_shared<FakeSource>("process:gone");
  gone->FailAfter(3, NotFoundError("process 1 is gone"));
  auto flaky = std::make_shared<FakeSource>("flaky");
  flaky->FailAfter(0, IOError("disk on fire"));
  auto steady = std::make_shared<FakeSource>("steady");
  ASSERT_TRUE(stream->Add(gone).ok());
  ASSERT_TRUE(stream->Add(flaky).ok());
  ASSERT_TRUE(stream->Add(steady).ok());
  ASSERT_TRUE(stream->Start().ok());
  ASSERT_TRUE(WaitUntil([&] { return steady->calls() >= 20; }));
  ASSERT_TRUE(stream->Stop().ok());
  const StreamOverhead over = stream->Overhead();

  EXPECT_EQ(gone->calls(), 4) << "asked once more, then never again";
  EXPECT_EQ(over.sources_dropped, 1);
  EXPECT_EQ(log.Count("process:gone"), 1);
  EXPECT_EQ(flaky->calls(), over.ticks) << "other errors are retried every tick";
  EXPECT_EQ(over.source_errors, over.ticks);
  EXPECT_EQ(log.Count("disk on fire"), 1);
  EXPECT_EQ(steady->calls(), over.ticks);
  EXPECT_EQ(over.samples, 3 + over.ticks);

  // One event for the source that ended; none for the one that keeps failing.
  std::lock_guard lock(events_mu);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].type, EventType::kMetricSourceEnded);
  EXPECT_STREQ(EventTypeName(events[0].type), "metric_source.ended");
  EXPECT_EQ(events[0].subject, "process:gone");
  EXPECT_EQ(events[0].attributes.at("reason"), "process 1 is gone");
  EXPECT_GT(events[0].time_ns, 0);
}

// Replays scripted ticks: each call appends one sample per series from the script, stamped with
// the script's monotonic time. Series 0 is a counter, series 1 a gauge.
class ScriptedSource final : public MetricSource {
 public:
  struct Tick {
    std::int64_t mono_ns;
    double counter, gauge;
  };
  explicit ScriptedSource(std::vector<Tick> ticks) : ticks_(std::move(ticks)) {}
  const std::string& uri() const override { return uri_; }
  std::int64_t BackgroundCpuNs() const override { return 1234; }
  std::int64_t SamplesDropped() const override { return 56; }
  Status Collect(Timestamp, SampleBatch& batch) override {
    if (batch.series.empty()) {
      batch.AddSeries({"bytes.read", "bytes", {}, true});
      batch.AddSeries({"queue.depth", "1", {}});
    }
    const Tick& t = ticks_.at(next_++);
    batch.Append(0, t.mono_ns + 1, t.mono_ns, t.counter);
    batch.Append(1, t.mono_ns + 1, t.mono_ns, t.gauge);
    return Status::OK();
  }

 private:
  std::string uri_ = "scripted";
  std::vector<Tick> ticks_;
  std::size_t next_ = 0;
};

TEST(CountersAsRatesTest, CountersBecomePerSecondRatesAndGaugesPassThrough) {
  auto rates = CountersAsRates(std::make_shared<ScriptedSource>(std::vector<ScriptedSource::Tick>{
      {1'000'000'000, 100, 7},
      {1'500'000'000, 150, 8},  // +50 in 0.5 s
      {3'500'000'000, 250, 9},  // +100 in 2 s
      {4'000'000'000, 20, 10},  // reset (a restarted container): no rate
      {5'000'000'000, 50, 11},  // +30 in 1 s after the reset
  }));
  EXPECT_EQ(rates->uri(), "scripted?rate=true");
  EXPECT_EQ(rates->BackgroundCpuNs(), 1234) << "the wrapped source's own CPU shows through";
  SampleBatch batch;
  std::vector<std::vector<double>> counter, gauge;
  for (int tick = 0; tick < 5; ++tick) {
    batch.ClearSamples();
    ASSERT_TRUE(rates->Collect(Timestamp{}, batch).ok());
    counter.emplace_back();
    gauge.emplace_back();
    for (std::size_t i = 0; i < batch.size(); ++i) {
      (batch.series_index[i] == 0 ? counter : gauge).back().push_back(batch.value[i]);
      EXPECT_EQ(batch.timestamp_ns[i], batch.monotonic_ns[i] + 1) << "stamps are kept";
    }
  }
  EXPECT_EQ(counter, (std::vector<std::vector<double>>{{}, {100.0}, {50.0}, {}, {30.0}}));
  EXPECT_EQ(gauge, (std::vector<std::vector<double>>{{7}, {8}, {9}, {10}, {11}}));
  ASSERT_EQ(batch.series.size(), 2u);
  EXPECT_EQ(batch.series[0].unit, "bytes/s");
  EXPECT_FALSE(batch.series[0].counter) << "a rate is no longer a counter";
  EXPECT_EQ(batch.series[1].unit, "1");
}

TEST(CountersAsRatesTest, EverySourceTakesTheRateKey) {
  auto host = MetricSourceFromUri("host?rate=true");
  ASSERT_TRUE(host.ok()) << host.status().ToString();
  EXPECT_EQ((*host)->uri(), "host?rate=true");
  SampleBatch batch;
  ASSERT_TRUE((*host)->Collect(Now(), batch).ok());
  for (std::size_t i = 0; i < batch.size(); ++i) {
    EXPECT_FALSE(batch.series[batch.series_index[i]].metric.starts_with("cpu.user"))
        << "the first tick has no rate yet";
  }
  std::this_thread::sleep_for(20ms);
  batch.ClearSamples();
  ASSERT_TRUE((*host)->Collect(Now(), batch).ok());
  bool saw_cpu_rate = false;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const Series& s = batch.series[batch.series_index[i]];
    if (s.metric != "cpu.user" || s.labels.at("cpu") != "all") continue;
    saw_cpu_rate = true;
    EXPECT_EQ(s.unit, "s/s");
    EXPECT_GE(batch.value[i], 0.0);
  }
  EXPECT_TRUE(saw_cpu_rate);

  auto plain = MetricSourceFromUri("host?rate=false");
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  EXPECT_EQ((*plain)->uri(), "host");
  auto bad = MetricSourceFromUri("host?rate=maybe");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.error().message().find("rate"), std::string::npos) << bad.error().message();
}

TEST(CountersAsRatesTest, StreamOptionConvertsEverySourceAndCountsBackgroundCpu) {
  MetricStreamOptions o;
  o.interval = 1ms;
  o.rates = true;
  auto stream = MakeStream(o);
  std::vector<ScriptedSource::Tick> ticks;
  for (int i = 0; i < 100000; ++i) ticks.push_back({i * 1'000'000'000LL, 10.0 * i, 1});
  ASSERT_TRUE(stream->Add(std::make_shared<ScriptedSource>(ticks)).ok());
  Received received;
  std::atomic<int> rate_batches{0};
  Subscription sub = stream->Subscribe([&](const SampleBatch& b) {
    received.Add(b);
    if (!b.series.empty() && b.series[0].unit == "bytes/s") ++rate_batches;
  });
  EXPECT_EQ(stream->Overhead().source_cpu_ns, 0) << "sources are not asked before Start";
  ASSERT_TRUE(stream->Start().ok());
  ASSERT_TRUE(WaitUntil([&] { return stream->Overhead().ticks >= 5; }));
  ASSERT_TRUE(stream->Stop().ok());
  const StreamOverhead over = stream->Overhead();
  EXPECT_EQ(over.source_cpu_ns, 1234);
  // What the source dropped before collection is counted with the queue's drops (none here),
  // through the rate wrapper.
  EXPECT_EQ(over.samples_dropped, 56);
  EXPECT_GT(rate_batches.load(), 0);
  std::lock_guard lock(received.mu);
  for (double v : received.values) EXPECT_TRUE(v == 10.0 || v == 1.0) << v;
}

TEST(MetricStreamTest, OverheadIsLiveThenFinal) {
  MetricStreamOptions o;
  o.interval = 2ms;
  o.delivery_interval = 10ms;
  auto stream = MakeStream(o);
  ASSERT_TRUE(stream->Add("host").ok());
  Received received;
  std::atomic<bool> saw_cpu{false};
  Subscription sub = stream->Subscribe([&](const SampleBatch& b) {
    received.Add(b);
    for (const Series& s : b.series) saw_cpu = saw_cpu || s.metric == "cpu.user";
  });
  const auto started = std::chrono::steady_clock::now();
  ASSERT_TRUE(stream->Start().ok());
  ASSERT_TRUE(WaitUntil([&] { return stream->Overhead().ticks >= 20; }));
  const StreamOverhead live = stream->Overhead();
  EXPECT_GT(live.sampler_cpu_ns, 0);
  ASSERT_TRUE(stream->Stop().ok());
  const auto wall_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                           std::chrono::steady_clock::now() - started)
                           .count();
  const StreamOverhead done = stream->Overhead();
  EXPECT_GE(done.sampler_cpu_ns, live.sampler_cpu_ns);
  EXPECT_GT(done.delivery_cpu_ns, 0);
  // A thread cannot use more CPU than the time it existed (small slack for clock granularity).
  EXPECT_LT(done.sampler_cpu_ns, wall_ns + 10'000'000);
  EXPECT_LT(done.delivery_cpu_ns, wall_ns + 10'000'000);
  EXPECT_GE(done.ticks, 20);
  EXPECT_GT(done.samples, done.ticks) << "host gives many samples per tick";
  EXPECT_EQ(static_cast<std::int64_t>(received.samples()), done.samples);
  EXPECT_TRUE(saw_cpu.load());
  const StreamOverhead again = stream->Overhead();
  EXPECT_EQ(again.sampler_cpu_ns, done.sampler_cpu_ns) << "final after Stop";
  EXPECT_EQ(again.delivery_cpu_ns, done.delivery_cpu_ns);
}

TEST(MetricStreamTest, StopCollectsBufferingSourcesOnceMoreAndOnlyThem) {
  MetricStreamOptions o;
  o.interval = 1h;  // one tick at Start, none after
  auto stream = MakeStream(o);
  auto reads = std::make_shared<FakeSource>("reads");
  auto buffers = std::make_shared<FakeSource>("buffers", 1, /*buffers=*/true);
  ASSERT_TRUE(stream->Add(reads).ok());
  ASSERT_TRUE(stream->Add(buffers).ok());
  Received received;
  Subscription sub = stream->Subscribe([&](const SampleBatch& b) { received.Add(b); });
  ASSERT_TRUE(stream->Start().ok());
  ASSERT_TRUE(WaitUntil([&] { return stream->Overhead().ticks >= 1; }));
  ASSERT_TRUE(stream->Stop().ok());
  EXPECT_EQ(reads->calls(), 1);
  EXPECT_EQ(buffers->calls(), 2) << "what a buffering source got after the last tick is taken";
  const StreamOverhead over = stream->Overhead();
  EXPECT_EQ(over.ticks, 1);
  EXPECT_EQ(over.samples, 3);
  EXPECT_EQ(static_cast<std::int64_t>(received.samples()), 3);
}

}  // namespace
}  // namespace bitfusion
