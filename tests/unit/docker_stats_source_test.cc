// The docker-stats:ID source against a runner whose stats stream the test drives: readings
// queued between ticks and moved by Collect, their timestamps, labels and units, and how the
// source ends. tests/integration/docker_stats_source_test.cc runs it on a real dockerd.
#include "metrics/docker_stats_source.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <mutex>
#include <string>

namespace bitfusion {
namespace {

using ::testing::HasSubstr;

// What the fake engine says about its one container, shared by runner and handles.
struct FakeEngine {
  std::mutex mu;
  std::string state = "running";
  int exit_code = 0;
  StatsCallback callback;
  bool subscribed = false;
};

class FakeContainer final : public Container {
 public:
  explicit FakeContainer(std::shared_ptr<FakeEngine> engine) : engine_(std::move(engine)) {}
  const std::string& id() const override { return id_; }
  Status Start() override { return FailedPreconditionError("opened"); }
  Result<ExitStatus> Wait(Deadline) override { return UnimplementedError("wait"); }
  Status Stop(std::chrono::nanoseconds) override { return Status::OK(); }
  Status Kill(int) override { return Status::OK(); }
  Subscription Logs(LogCallback) override { return Subscription(); }
  void Keep() override {}
  Result<ContainerInfo> Inspect() override {
    std::lock_guard lock(engine_->mu);
    ContainerInfo info;
    info.id = id_;
    info.name = "bench-1";
    info.state = engine_->state;
    info.exit_code = engine_->exit_code;
    return info;
  }
  Result<Subscription> Stats(StatsCallback callback, std::chrono::nanoseconds) override {
    std::lock_guard lock(engine_->mu);
    engine_->callback = std::move(callback);
    engine_->subscribed = true;
    auto engine = engine_;
    return Subscription([engine] {
      std::lock_guard lock(engine->mu);
      engine->subscribed = false;
    });
  }

 private:
  std::shared_ptr<FakeEngine> engine_;
  const std::string id_ = "0123456789abcdef0123";
};

class FakeRunner final : public ContainerRunner {
 public:
  std::shared_ptr<FakeEngine> engine = std::make_shared<FakeEngine>();
  Result<RunnerCapabilities> Capabilities() override { return RunnerCapabilities{}; }
  Status EnsureImage(const std::string&, Deadline) override { return Status::OK(); }
  Result<std::unique_ptr<Container>> Create(const ContainerSpec&) override {
    return UnimplementedError("create");
  }
  Result<std::unique_ptr<Container>> OpenContainer(const std::string& id) override {
    if (id != "bench-1" && id != "0123456789ab") return NotFoundError("no container " + id);
    return std::unique_ptr<Container>(new FakeContainer(engine));
  }
};

ContainerStats Reading(std::int64_t time_ns, std::int64_t cpu_ns) {
  ContainerStats s;
  s.time_ns = time_ns;
  s.cpu_ns = cpu_ns;
  s.memory_bytes = 5 << 20;
  s.memory_limit_bytes = 64 << 20;
  s.pids = 3;
  s.rx_bytes = 100;
  s.tx_bytes = 200;
  s.read_bytes = 4096;
  s.write_bytes = 8192;
  return s;
}

double ValueOf(const SampleBatch& batch, std::size_t reading, const std::string& metric) {
  std::size_t seen = 0;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    if (batch.series[batch.series_index[i]].metric != metric) continue;
    if (seen++ == reading) return batch.value[i];
  }
  ADD_FAILURE() << "no reading " << reading << " of " << metric;
  return -1;
}

std::shared_ptr<DockerStatsSource> Make(const std::shared_ptr<FakeRunner>& runner) {
  DockerStatsSourceOptions options;
  options.id = "bench-1";
  auto made = DockerStatsSource::Make(runner, options);
  EXPECT_TRUE(made.ok()) << made.status().ToString();
  return made.ok() ? *made : nullptr;
}

TEST(DockerStatsSourceUnitTest, ReadingsBetweenTicksKeepTheirOwnTimes) {
  auto runner = std::make_shared<FakeRunner>();
  auto source = Make(runner);
  ASSERT_NE(source, nullptr);
  EXPECT_EQ(source->uri(), "docker-stats:bench-1");
  ASSERT_TRUE(runner->engine->subscribed);

  SampleBatch batch;
  ASSERT_TRUE(source->Collect(Now(), batch).ok());
  EXPECT_EQ(batch.series.size(), 8u);
  EXPECT_TRUE(batch.empty()) << "nothing received yet";

  const std::int64_t wall = WallNowNs();
  runner->engine->callback(Reading(wall - 2'000'000'000, 1'500'000'000));
  runner->engine->callback(Reading(wall - 1'000'000'000, 2'250'000'000));
  const std::int64_t after = MonoNowNs();
  ASSERT_TRUE(source->Collect(Now(), batch).ok());
  ASSERT_EQ(batch.size(), 16u);
  EXPECT_EQ(ValueOf(batch, 0, "cgroup.cpu.usage"), 1.5) << "ns -> s";
  EXPECT_EQ(ValueOf(batch, 1, "cgroup.cpu.usage"), 2.25);
  EXPECT_EQ(ValueOf(batch, 0, "cgroup.memory.limit"), 64 << 20);
  EXPECT_EQ(ValueOf(batch, 0, "cgroup.memory.usage"), 5 << 20);
  EXPECT_EQ(ValueOf(batch, 0, "cgroup.pids.current"), 3);
  EXPECT_EQ(ValueOf(batch, 0, "cgroup.io.read_bytes"), 4096);
  EXPECT_EQ(ValueOf(batch, 0, "cgroup.io.write_bytes"), 8192);
  EXPECT_EQ(ValueOf(batch, 0, "net.rx_bytes"), 100);
  EXPECT_EQ(ValueOf(batch, 0, "net.tx_bytes"), 200);
  for (std::size_t i = 0; i < 8; ++i) {
    EXPECT_EQ(batch.timestamp_ns[i], wall - 2'000'000'000) << "the engine's read time";
    EXPECT_EQ(batch.timestamp_ns[8 + i], wall - 1'000'000'000);
    // One second apart on the monotonic clock too, about two seconds before they arrived.
    EXPECT_NEAR(static_cast<double>(batch.monotonic_ns[8 + i] - batch.monotonic_ns[i]), 1e9, 1e6);
    EXPECT_LT(batch.monotonic_ns[i], after - 1'900'000'000);
  }
  for (const Series& s : batch.series) {
    EXPECT_EQ(s.labels.at("container"), "0123456789ab");
    EXPECT_EQ(s.labels.at("container_name"), "bench-1");
    EXPECT_EQ(s.counter, s.metric == "cgroup.cpu.usage" || s.metric.find("bytes") != s.metric.npos)
        << s.metric;
    if (s.metric.rfind("net.", 0) == 0) EXPECT_EQ(s.labels.at("iface"), "all");
  }
  EXPECT_EQ(batch.series[0].unit, "s");
  EXPECT_GT(source->BackgroundCpuNs(), 0) << "the receiving thread's CPU clock";

  // An engine clock ahead of ours: the monotonic time is not put in the future.
  batch.ClearSamples();
  runner->engine->callback(Reading(WallNowNs() + 5'000'000'000, 3'000'000'000));
  ASSERT_TRUE(source->Collect(Now(), batch).ok());
  ASSERT_EQ(batch.size(), 8u);
  EXPECT_LE(batch.monotonic_ns[0], MonoNowNs());
  batch.ClearSamples();
  ASSERT_TRUE(source->Collect(Now(), batch).ok());
  EXPECT_TRUE(batch.empty()) << "each reading is delivered once";

  source.reset();
  EXPECT_FALSE(runner->engine->subscribed) << "the subscription ends with the source";
}

TEST(DockerStatsSourceUnitTest, ExitEndsTheSourceAfterWhatWasQueued) {
  auto runner = std::make_shared<FakeRunner>();
  runner->engine->state = "created";
  auto source = Make(runner);
  ASSERT_NE(source, nullptr);
  ContainerStats empty;
  empty.running = false;
  empty.time_ns = WallNowNs();
  runner->engine->callback(empty);  // not started yet: wait
  SampleBatch batch;
  EXPECT_TRUE(source->Collect(Now(), batch).ok());

  runner->engine->state = "running";
  runner->engine->callback(Reading(WallNowNs(), 1'000'000'000));
  runner->engine->state = "exited";
  runner->engine->exit_code = 3;
  runner->engine->callback(empty);
  runner->engine->callback(empty);
  Status ended = source->Collect(Now(), batch);
  EXPECT_EQ(ended.code(), StatusCode::kNotFound);
  EXPECT_THAT(ended.message(), HasSubstr("container 0123456789ab exited (code 3)"));
  EXPECT_EQ(batch.size(), 8u) << "the last reading is delivered with the end";
}

TEST(DockerStatsSourceUnitTest, ASilentEngineOrAnExitedContainerIsNotSampled) {
  auto runner = std::make_shared<FakeRunner>();
  auto source = Make(runner);
  ASSERT_NE(source, nullptr);
  SampleBatch batch;
  Timestamp later = Now();
  later.mono_ns += 11'000'000'000;
  Status silent = source->Collect(later, batch);
  EXPECT_EQ(silent.code(), StatusCode::kNotFound);
  EXPECT_THAT(silent.message(), HasSubstr("for 10 s"));

  runner->engine->state = "exited";
  DockerStatsSourceOptions options;
  options.id = "bench-1";
  auto exited = DockerStatsSource::Make(runner, options);
  EXPECT_EQ(exited.status().code(), StatusCode::kFailedPrecondition);
  options.id = "nope";
  EXPECT_EQ(DockerStatsSource::Make(runner, options).status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace bitfusion
