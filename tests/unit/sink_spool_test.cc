// What ResultSink's base does for every durable (network) backend, checked with an in-memory
// store that can be made to fail: the spool, background retries with backoff, replay after a
// crash, damaged spool files, the spool's size limit and lock, degraded/recovered events; and
// the fan-out sink.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "bitfusion/log.h"
#include "bitfusion/result_sink.h"
#include "sinks/spool_internal.h"

namespace bitfusion {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

constexpr std::int64_t kT0 = 1'700'000'000'000'000'000;

// A store that keeps how often it got each sample and run, and fails while `down` is set.
struct MemoryStore {
  std::mutex mu;
  std::map<std::string, int> samples;
  std::map<std::string, int> runs;
  std::atomic<bool> down{false};
  std::atomic<int> calls{0};

  int Distinct() {
    std::lock_guard lock(mu);
    return static_cast<int>(samples.size());
  }
  bool EachOnce() {
    std::lock_guard lock(mu);
    for (const auto& [k, n] : samples) {
      if (n != 1) return false;
    }
    for (const auto& [k, n] : runs) {
      if (n != 1) return false;
    }
    return true;
  }
};

// A durable backend over MemoryStore. Samples whose metric is "poison" are refused for good.
class MemorySink final : public ResultSink {
 public:
  static Result<std::shared_ptr<MemorySink>> Make(const ResultSinkOptions& options,
                                                  std::shared_ptr<MemoryStore> store) {
    auto sink = std::shared_ptr<MemorySink>(new MemorySink(options, std::move(store)));
    BITFUSION_RETURN_IF_ERROR(sink->OpenSpool());
    return sink;
  }
  ~MemorySink() override { CloseOnDestroy(); }
  using ResultSink::RetryBackoff;

 private:
  MemorySink(const ResultSinkOptions& options, std::shared_ptr<MemoryStore> store)
      : ResultSink("memory://test", options), store_(std::move(store)) {}

  Status WriteSamples(const std::vector<SampleBatch>& batches) override {
    ++store_->calls;
    if (store_->down) return UnavailableError("store is down");
    std::int64_t poison = 0;
    std::lock_guard lock(store_->mu);
    for (const SampleBatch& b : batches) {
      for (std::size_t i = 0; i < b.size(); ++i) {
        const Sample s = b.At(i);
        if (s.metric == "poison") {
          ++poison;
          continue;
        }
        std::string key = s.metric + "|" + std::to_string(s.timestamp_ns);
        for (const auto& [k, v] : s.metadata) key += "|" + k + "=" + v;
        ++store_->samples[key];
      }
    }
    RecordDropped(poison, "poison is refused");
    return Status::OK();
  }
  Status WriteRun(const RunRecord& record) override {
    ++store_->calls;
    if (store_->down) return UnavailableError("store is down");
    std::lock_guard lock(store_->mu);
    ++store_->runs[record.run_id];
    return Status::OK();
  }

  std::shared_ptr<MemoryStore> store_;
};

SampleBatch Batch(int first, int count, const std::string& metric = "m") {
  SampleBatch b;
  b.labels = {{"run", "r1"}};
  const auto s = b.AddSeries({metric, "1", {{"k", "v"}}});
  for (int i = first; i < first + count; ++i) b.Append(s, kT0 + i, i, i * 0.5);
  return b;
}

RunRecord MakeRun(const std::string& id) {
  RunRecord r;
  r.run_id = id;
  r.benchmark = "b";
  return r;
}

template <class F>
bool WaitFor(F done, std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(milliseconds(2));
  }
  return true;
}

std::vector<fs::path> Segments(const fs::path& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().filename().string().rfind("segment-", 0) == 0) out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Captures log lines for the duration of a test.
class LogCapture {
 public:
  LogCapture() {
    SetLogHandler([this](LogLevel, std::string_view m) {
      std::lock_guard lock(mu_);
      lines_.emplace_back(m);
    });
  }
  ~LogCapture() { SetLogHandler(nullptr); }
  int Count(const std::string& needle) {
    std::lock_guard lock(mu_);
    int n = 0;
    for (const auto& l : lines_) n += l.find(needle) != std::string::npos;
    return n;
  }

 private:
  std::mutex mu_;
  std::vector<std::string> lines_;
};

class SpoolTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        fs::temp_directory_path() / ("bitfusion-spool-test-" + std::to_string(::getpid()) + "-" +
                                     testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    options_.spool = dir_ / "spool";
    options_.batch_samples = 10;
    options_.max_delay = std::chrono::hours(1);
    options_.retry_initial = milliseconds(5);
    options_.retry_max = milliseconds(40);
    options_.flush_timeout = std::chrono::seconds(20);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  std::shared_ptr<MemorySink> Make() {
    auto sink = MemorySink::Make(options_, store_);
    EXPECT_TRUE(sink.ok()) << sink.status().ToString();
    return sink.ok() ? *sink : nullptr;
  }

  fs::path dir_;
  ResultSinkOptions options_;
  std::shared_ptr<MemoryStore> store_ = std::make_shared<MemoryStore>();
};

TEST_F(SpoolTest, HealthyStoreGetsEverythingOnceAndTheSpoolEmpties) {
  auto sink = Make();
  ASSERT_TRUE(sink);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(sink->Write(Batch(i * 10, 10)).ok());
  ASSERT_TRUE(sink->Write(MakeRun("run-1")).ok());
  ASSERT_TRUE(sink->Close().ok());
  EXPECT_EQ(store_->Distinct(), 50);
  EXPECT_TRUE(store_->EachOnce());
  const SinkCounters c = sink->counters();
  EXPECT_EQ(c.samples_spooled, 50);
  EXPECT_EQ(c.samples_written, 50);
  EXPECT_EQ(c.runs_written, 1);
  EXPECT_EQ(c.spool_bytes, 0);
  EXPECT_TRUE(Segments(options_.spool).empty()) << "delivered segments are removed";
}

TEST_F(SpoolTest, OutageIsSpooledRetriedInTheBackgroundAndRecovered) {
  LogCapture log;
  auto sink = Make();
  ASSERT_TRUE(sink);
  std::vector<Event> events;
  std::mutex events_mu;
  sink->SetEventCallback([&](const Event& e) {
    std::lock_guard lock(events_mu);
    events.push_back(e);
  });
  store_->down = true;
  for (int i = 0; i < 8; ++i) {
    EXPECT_TRUE(sink->Write(Batch(i * 10, 10)).ok()) << "a durable sink holds what fails";
  }
  ASSERT_TRUE(sink->Write(MakeRun("run-1")).ok());
  SinkCounters c = sink->counters();
  EXPECT_TRUE(c.degraded);
  EXPECT_EQ(c.samples_pending, 80);
  EXPECT_GT(c.spool_bytes, 0);
  EXPECT_EQ(store_->Distinct(), 0);
  EXPECT_EQ(log.Count("memory://test degraded: store is down"), 1) << "said once";

  // The sink's own thread keeps trying; no write or flush is needed once the store is back.
  ASSERT_TRUE(WaitFor([&] { return store_->calls >= 4; })) << "retries in the background";
  store_->down = false;
  ASSERT_TRUE(WaitFor([&] {
    const SinkCounters now = sink->counters();
    return now.samples_written == 80 && now.runs_written == 1;
  }));
  ASSERT_TRUE(WaitFor([&] { return !sink->counters().degraded; }));
  // Said once, right after the state changes (the log line may trail the counter a moment).
  ASSERT_TRUE(WaitFor([&] { return log.Count("memory://test recovered after") > 0; }));
  EXPECT_EQ(log.Count("memory://test recovered after"), 1);
  c = sink->counters();
  EXPECT_GT(c.retries, 0);
  EXPECT_GT(c.errors, 0);
  EXPECT_EQ(c.runs_written, 1);
  ASSERT_TRUE(sink->Close().ok());
  EXPECT_EQ(store_->Distinct(), 80);
  EXPECT_TRUE(store_->EachOnce());
  std::lock_guard lock(events_mu);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].type, EventType::kSinkDegraded);
  EXPECT_EQ(events[0].attributes.at("reason"), "store is down");
  EXPECT_EQ(events[1].type, EventType::kSinkRecovered);
}

TEST_F(SpoolTest, FlushGivesUpAtItsDeadlineSayingWhereTheDataIs) {
  options_.flush_timeout = milliseconds(50);  // what Close waits without a deadline
  auto sink = Make();
  ASSERT_TRUE(sink);
  store_->down = true;
  ASSERT_TRUE(sink->Write(Batch(0, 3)).ok());
  const Status flushed = sink->Flush(DeadlineAfter(milliseconds(100)));
  EXPECT_EQ(flushed.code(), StatusCode::kUnavailable) << flushed.ToString();
  EXPECT_NE(flushed.message().find("3 samples unsent"), std::string::npos) << flushed.ToString();
  EXPECT_NE(flushed.message().find(options_.spool.string()), std::string::npos);
  const Status closed = sink->Close();
  EXPECT_FALSE(closed.ok());
  EXPECT_NE(closed.message().find("sent when a sink with that spool opens again"),
            std::string::npos)
      << closed.ToString();
  EXPECT_EQ(Segments(options_.spool).size(), 1u) << "kept for the next sink";

  store_->down = false;
  auto next = Make();
  ASSERT_TRUE(next);
  ASSERT_TRUE(next->Close().ok());
  EXPECT_EQ(store_->Distinct(), 3);
  EXPECT_EQ(next->counters().samples_replayed, 3);
}

TEST_F(SpoolTest, FlushesWithoutADeadlineShareOneBudgetPerOutage) {
  // A plan flushes after every run; a store that is down must cost it flush_timeout once, not
  // per flush. Once the outage's budget is spent, a flush tries at most once and returns.
  options_.flush_timeout = std::chrono::seconds(1);
  auto sink = Make();
  ASSERT_TRUE(sink);
  store_->down = true;
  ASSERT_TRUE(sink->Write(Batch(0, 3)).ok());
  const Status first = sink->Flush();
  EXPECT_EQ(first.code(), StatusCode::kUnavailable) << first.ToString();
  EXPECT_EQ(first.message().find("after 1 attempt,"), std::string::npos)
      << "the first flush retries within its budget: " << first.ToString();
  for (int i = 1; i <= 4; ++i) {
    ASSERT_TRUE(sink->Write(Batch(i * 10, 3)).ok());
    const Status later = sink->Flush();
    EXPECT_EQ(later.code(), StatusCode::kUnavailable) << later.ToString();
    EXPECT_NE(later.message().find("after 1 attempt,"), std::string::npos) << later.ToString();
    EXPECT_NE(later.message().find(std::to_string(3 * (i + 1)) + " samples unsent"),
              std::string::npos)
        << later.ToString();
    EXPECT_NE(later.message().find("store is down"), std::string::npos)
        << "names the store's error: " << later.ToString();
  }
  // The store comes back: the background retry sends everything and the outage ends...
  store_->down = false;
  ASSERT_TRUE(WaitFor([&] { return !sink->counters().degraded; }));
  EXPECT_EQ(store_->Distinct(), 15);
  // ... so the next outage has a whole budget again.
  store_->down = true;
  ASSERT_TRUE(sink->Write(Batch(100, 3)).ok());
  const Status next = sink->Flush();
  EXPECT_EQ(next.code(), StatusCode::kUnavailable);
  EXPECT_EQ(next.message().find("after 1 attempt,"), std::string::npos) << next.ToString();
  store_->down = false;
  ASSERT_TRUE(sink->Close().ok());
  EXPECT_EQ(store_->Distinct(), 18);
  EXPECT_TRUE(store_->EachOnce());
}

TEST_F(SpoolTest, DestroyingWithoutCloseWhileTheStoreIsDownTakesAboutASecond) {
  options_.flush_timeout = std::chrono::seconds(10);
  options_.retry_max = milliseconds(100);
  auto sink = Make();
  ASSERT_TRUE(sink);
  store_->down = true;
  ASSERT_TRUE(sink->Write(Batch(0, 5)).ok());
  const auto start = std::chrono::steady_clock::now();
  sink.reset();  // no Close: the destructor closes, and must not wait out flush_timeout
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_LT(took, std::chrono::seconds(3))
      << std::chrono::duration_cast<milliseconds>(took).count() << " ms";

  store_->down = false;
  auto next = Make();
  ASSERT_TRUE(next);
  ASSERT_TRUE(next->Close().ok());
  EXPECT_EQ(store_->Distinct(), 5) << "the spool kept what the destroyed sink could not send";
}

TEST_F(SpoolTest, AKilledWriterLosesNothingItAcknowledged) {
  // The child writes while the store is down, acknowledges each batch after Write returns, and
  // is killed without closing anything.
  int ack[2];
  ASSERT_EQ(::pipe(ack), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(ack[0]);
    auto store = std::make_shared<MemoryStore>();
    store->down = true;
    auto sink = MemorySink::Make(options_, store);
    if (!sink.ok()) ::_exit(2);
    for (int i = 0;; ++i) {
      if (!(*sink)->Write(Batch(i * 7, 7)).ok()) ::_exit(3);
      if (i % 5 == 4 && !(*sink)->Write(MakeRun("run-" + std::to_string(i))).ok()) ::_exit(4);
      const int acked = i;
      if (::write(ack[1], &acked, sizeof acked) != sizeof acked) ::_exit(5);
    }
  }
  ::close(ack[1]);
  int last = -1;
  int got = 0;
  while (last < 40 && ::read(ack[0], &got, sizeof got) == sizeof got) last = got;
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  // What it acknowledged between our last read and the kill is in the pipe still.
  while (::read(ack[0], &got, sizeof got) == sizeof got) last = got;
  ::close(ack[0]);
  ASSERT_TRUE(WIFSIGNALED(status)) << "child exited with " << WEXITSTATUS(status);
  ASSERT_GE(last, 40);

  auto sink = Make();
  ASSERT_TRUE(sink);
  ASSERT_TRUE(sink->Close().ok());
  // Everything acknowledged arrived; a batch being written at the kill may have too.
  EXPECT_GE(store_->Distinct(), (last + 1) * 7);
  EXPECT_LE(store_->Distinct(), (last + 2) * 7);
  EXPECT_EQ(store_->Distinct() % 7, 0) << "batches arrive whole";
  EXPECT_TRUE(store_->EachOnce());
  EXPECT_GE(store_->runs.size(), static_cast<std::size_t>((last + 1) / 5));
  EXPECT_EQ(sink->counters().samples_replayed, store_->Distinct());
  EXPECT_TRUE(Segments(options_.spool).empty());
}

TEST_F(SpoolTest, CutShortAndDamagedSegmentsDeliverWhatCanBeRead) {
  LogCapture log;
  {
    store_->down = true;
    options_.flush_timeout = milliseconds(10);
    auto sink = Make();
    ASSERT_TRUE(sink);
    ASSERT_TRUE(sink->Write(Batch(0, 5)).ok());
    ASSERT_TRUE(sink->Flush(DeadlineAfter(milliseconds(1))).code() == StatusCode::kUnavailable);
    ASSERT_TRUE(sink->Write(Batch(5, 5)).ok());
    ASSERT_TRUE(sink->Flush(DeadlineAfter(milliseconds(1))).code() == StatusCode::kUnavailable);
    ASSERT_FALSE(sink->Close().ok());
  }
  std::vector<fs::path> segments = Segments(options_.spool);
  ASSERT_EQ(segments.size(), 2u);
  // The first: a crash cut off a record being appended: its header (kind 1, 5 samples, 1000
  // bytes of payload, little-endian) and 10 of the 1000 bytes.
  {
    std::string header(24, '\0');
    header[0] = 1;
    header[4] = 5;
    header[8] = static_cast<char>(0xe8);
    header[9] = 3;
    std::ofstream(segments[0], std::ios::app | std::ios::binary) << header << std::string(10, 'x');
  }
  // The second: a byte of its only record's payload flipped on disk.
  {
    std::fstream f(segments[1], std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-3, std::ios::end);
    f.put('\x7f');
  }
  store_->down = false;
  options_.flush_timeout = std::chrono::seconds(20);
  auto sink = Make();
  ASSERT_TRUE(sink);
  ASSERT_TRUE(sink->Close().ok());
  EXPECT_EQ(store_->Distinct(), 5) << "the cut-off tail is ignored, the damaged record lost";
  EXPECT_EQ(log.Count("(cut short by a crash)"), 1);
  EXPECT_EQ(log.Count("(damaged)"), 1);
  EXPECT_TRUE(fs::exists(segments[1].string() + ".corrupt")) << "kept for a post-mortem";
  EXPECT_FALSE(fs::exists(segments[0]));
}

TEST_F(SpoolTest, ASpoolServesOneSinkAtATime) {
  auto first = Make();
  ASSERT_TRUE(first);
  auto second = MemorySink::Make(options_, store_);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(second.error().message().find("spool=DIR"), std::string::npos);
  ASSERT_TRUE(first->Close().ok());
  auto third = MemorySink::Make(options_, store_);
  EXPECT_TRUE(third.ok()) << "Close releases the spool";
}

TEST_F(SpoolTest, SinksOnOneDefaultSpoolEachGetASlotAndAdoptWhatStoppedOnesLeft) {
  // Two processes writing to one store both pick the default spool: each gets a slot.
  const fs::path base = dir_ / "default";
  auto a = internal::Spool::Open(base, /*shared=*/true);
  ASSERT_TRUE(a.ok()) << a.error().ToString();
  auto b = internal::Spool::Open(base, /*shared=*/true);
  ASSERT_TRUE(b.ok()) << b.error().ToString();
  EXPECT_EQ((*a)->dir(), base);
  EXPECT_EQ((*b)->dir(), fs::path(base.string() + ".2"));
  EXPECT_FALSE(internal::Spool::Open(base).ok()) << "a spool named by the user stays exclusive";
  // b's writer stops with a segment unsent (as a crash leaves it), then a's.
  ASSERT_TRUE((*b)->AppendBatch(Batch(0, 3)).ok());
  internal::SpoolSegment sealed;
  (*b)->Seal(sealed);
  ASSERT_TRUE((*b)->SyncSealed().at(0).second.ok());
  b->reset();
  ASSERT_TRUE((*a)->AppendBatch(Batch(100, 2)).ok());
  a->reset();
  // The next opening takes slot 1 and what slot 2's writer left, oldest of its own first.
  auto c = internal::Spool::Open(base, /*shared=*/true);
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  EXPECT_EQ((*c)->dir(), base);
  auto leftovers = (*c)->TakeLeftovers();
  ASSERT_EQ(leftovers.size(), 2u);
  EXPECT_EQ(leftovers[0]->samples, 2);
  EXPECT_EQ(leftovers[1]->samples, 3);
  for (const auto& l : leftovers) EXPECT_EQ(l->file.parent_path(), base);
  EXPECT_TRUE(Segments(fs::path(base.string() + ".2")).empty());
  // A sink on that store, through the default spool, sends them.
  c->reset();
  ::setenv("XDG_STATE_HOME", dir_.c_str(), 1);
  options_.spool.clear();
  auto first = Make();
  auto second = Make();
  ::unsetenv("XDG_STATE_HOME");
  ASSERT_TRUE(first && second) << "a second sink on one store gets a spool of its own";
  EXPECT_NE(first->spool_dir(), second->spool_dir());
  ASSERT_TRUE(first->Write(Batch(0, 10)).ok());
  ASSERT_TRUE(second->Write(Batch(10, 10)).ok());
  ASSERT_TRUE(first->Close().ok());
  ASSERT_TRUE(second->Close().ok());
  EXPECT_EQ(store_->Distinct(), 20);
}

TEST_F(SpoolTest, AFullSpoolRefusesWritesAndQueuesNothing) {
  options_.spool_max_bytes = 2000;
  options_.flush_timeout = milliseconds(10);
  auto sink = Make();
  ASSERT_TRUE(sink);
  store_->down = true;
  Status status;
  int accepted = 0;
  for (int i = 0; i < 100 && status.ok(); ++i) {
    status = sink->Write(Batch(i * 10, 10));
    if (status.ok()) ++accepted;
  }
  EXPECT_EQ(status.code(), StatusCode::kResourceExhausted) << status.ToString();
  EXPECT_NE(status.message().find("spool_max_bytes"), std::string::npos);
  EXPECT_EQ(sink->counters().samples_pending, accepted * 10);
  store_->down = false;
  ASSERT_TRUE(sink->Flush().ok());
  EXPECT_EQ(store_->Distinct(), accepted * 10);
  ASSERT_TRUE(sink->Write(Batch(5000, 10)).ok()) << "room again once sent";
  ASSERT_TRUE(sink->Close().ok());
}

TEST_F(SpoolTest, RefusedSamplesAreCountedAsDroppedAndDoNotBlockTheirNeighbours) {
  LogCapture log;
  auto sink = Make();
  ASSERT_TRUE(sink);
  SampleBatch b = Batch(0, 4);
  const auto poison = b.AddSeries({"poison", "1", {}});
  b.Append(poison, kT0, 0, 1);
  b.Append(poison, kT0 + 1, 1, 2);
  ASSERT_TRUE(sink->Write(b).ok());
  ASSERT_TRUE(sink->Close().ok());
  EXPECT_EQ(store_->Distinct(), 4);
  const SinkCounters c = sink->counters();
  EXPECT_EQ(c.samples_dropped, 2);
  EXPECT_EQ(c.samples_written, 4);
  EXPECT_EQ(c.samples_pending, 0);
  EXPECT_EQ(log.Count("refused 2 samples for good"), 1);
}

TEST_F(SpoolTest, BackoffGrowsWithJitterUpToItsLimit) {
  auto sink = Make();
  ASSERT_TRUE(sink);
  for (int attempt = 1; attempt < 12; ++attempt) {
    const auto bound = std::min<std::chrono::nanoseconds>(
        options_.retry_max, options_.retry_initial * (1 << (attempt - 1)));
    // Full jitter: every wait within [0, bound], and the draws spread over it (the chance
    // that 200 uniform draws all fall in one half is 2^-199).
    std::chrono::nanoseconds lowest = bound;
    std::chrono::nanoseconds highest{0};
    for (int k = 0; k < 200; ++k) {
      const auto wait = sink->RetryBackoff(attempt);
      EXPECT_GE(wait.count(), 0) << "attempt " << attempt;
      EXPECT_LE(wait, bound) << "attempt " << attempt;
      lowest = std::min(lowest, wait);
      highest = std::max(highest, wait);
    }
    EXPECT_LT(lowest, bound / 2) << "attempt " << attempt;
    EXPECT_GT(highest, bound / 2) << "attempt " << attempt;
  }
}

TEST_F(SpoolTest, DefaultSpoolIsUnderTheStateDirAndNamedByTheUri) {
  const fs::path a = *internal::DefaultSpoolDir("es", "es://h:9200/a");
  EXPECT_EQ(a, *internal::DefaultSpoolDir("es", "es://h:9200/a"));
  EXPECT_NE(a, *internal::DefaultSpoolDir("es", "es://h:9200/b"));
  EXPECT_EQ(a.parent_path().filename(), "spool");
  EXPECT_EQ(a.filename().string().rfind("es-", 0), 0u);
  ::setenv("XDG_STATE_HOME", dir_.c_str(), 1);
  EXPECT_EQ(internal::DefaultSpoolDir("es", "x")->string().rfind(dir_.string(), 0), 0u);
  ::unsetenv("XDG_STATE_HOME");
}

TEST_F(SpoolTest, WithoutAHomeThereIsNoGuessableDefaultSpool) {
  const char* home = std::getenv("HOME");
  const std::string saved = home != nullptr ? home : "";
  const char* state = std::getenv("XDG_STATE_HOME");
  const std::string saved_state = state != nullptr ? state : "";
  ::unsetenv("HOME");
  ::unsetenv("XDG_STATE_HOME");
  auto dir = internal::DefaultSpoolDir("es", "es://h:9200/a");
  options_.spool.clear();
  auto sink = MemorySink::Make(options_, store_);
  if (home != nullptr) ::setenv("HOME", saved.c_str(), 1);
  if (state != nullptr) ::setenv("XDG_STATE_HOME", saved_state.c_str(), 1);
  ASSERT_FALSE(dir.ok());
  EXPECT_EQ(dir.error().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(dir.error().message().find("spool=DIR"), std::string::npos) << dir.error().message();
  ASSERT_FALSE(sink.ok());
  EXPECT_NE(sink.error().message().find("memory://test"), std::string::npos);
}

TEST_F(SpoolTest, ASpoolDirectoryOthersMayWriteIsRefused) {
  fs::create_directories(options_.spool);
  ::chmod(options_.spool.c_str(), 0777);
  auto sink = MemorySink::Make(options_, store_);
  ASSERT_FALSE(sink.ok());
  EXPECT_EQ(sink.error().code(), StatusCode::kPermissionDenied);
  EXPECT_NE(sink.error().message().find("chmod go-w"), std::string::npos);
  // A link to a directory is refused too: the link could be swapped for another's.
  fs::create_directories(dir_ / "real");
  ::chmod((dir_ / "real").c_str(), 0700);
  fs::create_directory_symlink(dir_ / "real", dir_ / "link");
  options_.spool = dir_ / "link";
  sink = MemorySink::Make(options_, store_);
  ASSERT_FALSE(sink.ok());
  EXPECT_EQ(sink.error().code(), StatusCode::kPermissionDenied);
  // A new directory is made 0700.
  options_.spool = dir_ / "fresh";
  sink = MemorySink::Make(options_, store_);
  ASSERT_TRUE(sink.ok()) << sink.error().ToString();
  EXPECT_EQ(fs::status(options_.spool).permissions() & fs::perms::all, fs::perms::owner_all);
  ASSERT_TRUE((*sink)->Close().ok());
}

TEST_F(SpoolTest, AReplayedBatchWhoseColumnsDisagreeIsNotSent) {
  LogCapture log;
  {
    auto spool = internal::Spool::Open(options_.spool);
    ASSERT_TRUE(spool.ok()) << spool.error().ToString();
    SampleBatch bad = Batch(0, 3);
    bad.series_index[1] = 7;  // names a series the batch does not have
    ASSERT_TRUE((*spool)->AppendBatch(bad).ok());
    internal::SpoolSegment segment;
    (*spool)->Seal(segment);
    ASSERT_TRUE((*spool)->SyncSealed().at(0).second.ok());
    ASSERT_TRUE((*spool)->AppendBatch(Batch(10, 4)).ok());
    internal::SpoolSegment good;
    (*spool)->Seal(good);
    ASSERT_TRUE((*spool)->SyncSealed().at(0).second.ok());
  }
  auto sink = Make();
  ASSERT_TRUE(sink);
  ASSERT_TRUE(sink->Close().ok());
  EXPECT_EQ(store_->Distinct(), 4) << "the good segment is delivered, the malformed one is not";
  EXPECT_EQ(log.Count("(damaged)"), 1);
}

// ---- fan-out -------------------------------------------------------------------------------

TEST_F(SpoolTest, FanoutGivesEveryChildEverythingAndAFailingChildHoldsUpNoOne) {
  auto healthy_store = std::make_shared<MemoryStore>();
  auto healthy = *MemorySink::Make(options_, healthy_store);
  ResultSinkOptions other = options_;
  other.spool = dir_ / "other-spool";
  other.flush_timeout = milliseconds(30);
  auto failing_store = std::make_shared<MemoryStore>();
  failing_store->down = true;
  auto failing = *MemorySink::Make(other, failing_store);
  auto fanout = MakeFanoutSink({healthy, failing});
  ASSERT_TRUE(fanout.ok()) << fanout.status().ToString();
  EXPECT_EQ((*fanout)->uri(), "fanout://?sink=memory://test&sink=memory://test");
  for (int i = 0; i < 3; ++i) ASSERT_TRUE((*fanout)->Write(Batch(i * 10, 10)).ok());
  ASSERT_TRUE((*fanout)->Write(MakeRun("run-1")).ok());
  const Status flushed = (*fanout)->Flush();
  EXPECT_EQ(flushed.code(), StatusCode::kUnavailable) << "the failing child's error comes back";
  EXPECT_EQ(healthy_store->Distinct(), 30);
  failing_store->down = false;
  ASSERT_TRUE((*fanout)->Close().ok());
  EXPECT_EQ(failing_store->Distinct(), 30);
  EXPECT_TRUE(healthy_store->EachOnce()) << "nothing is sent twice to a child that took it";
  EXPECT_TRUE(failing_store->EachOnce());
  EXPECT_EQ(healthy_store->runs.size(), 1u);
  EXPECT_EQ(failing_store->runs.size(), 1u);
  EXPECT_EQ(healthy->Write(Batch(0, 1)).code(), StatusCode::kFailedPrecondition)
      << "closing the fan-out closes its children";
}

TEST_F(SpoolTest, FanoutFromUriWritesEachFile) {
  const fs::path a = dir_ / "a.jsonl";
  const fs::path b = dir_ / "b.csv";
  auto sink = ResultSinkFromUri("fanout://?sink=jsonl%3A%2F%2F" + a.string() +
                                "&sink=csv%3A%2F%2F" + b.string());
  ASSERT_TRUE(sink.ok()) << sink.status().ToString();
  ASSERT_TRUE((*sink)->Write(Batch(0, 3)).ok());
  ASSERT_TRUE((*sink)->Close().ok());
  std::ifstream ja(a);
  std::ifstream cb(b);
  int lines_a = 0;
  int lines_b = 0;
  for (std::string line; std::getline(ja, line);) ++lines_a;
  for (std::string line; std::getline(cb, line);) ++lines_b;
  EXPECT_EQ(lines_a, 3);
  EXPECT_EQ(lines_b, 4) << "header and three rows";

  auto empty = ResultSinkFromUri("fanout://");
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.error().message().find("fanout://?sink="), std::string::npos);
  auto bad_child = ResultSinkFromUri("fanout://?sink=nope%3A%2F%2Fx");
  ASSERT_FALSE(bad_child.ok());
  EXPECT_NE(bad_child.error().message().find("fanout:// child nope://x"), std::string::npos)
      << bad_child.error().ToString();
}

}  // namespace
}  // namespace bitfusion
