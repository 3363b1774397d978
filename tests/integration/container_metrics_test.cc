// container:ID and the plan source "container" against a real dockerd this test starts: a busybox
// container burning CPU under a memory limit is sampled through its cgroup (here cgroup v1,
// where the host runs it), a container created before the source waits for it to start, and a
// container exiting ends its source with one kMetricSourceEnded event.
#include <signal.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

#include "bitfusion/event.h"
#include "bitfusion/experiment.h"
#include "bitfusion/metric_stream.h"
#include "integration/docker_daemon.h"

namespace bitfusion {
namespace {

using namespace std::chrono_literals;
using testing::DockerDaemon;
using testing::kBusyboxImage;

struct Shared {
  std::unique_ptr<DockerDaemon> daemon;
  std::string unavailable = "the docker test environment did not start";
};
Shared& State() {
  static Shared s;
  return s;
}

class DockerEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    auto& s = State();
    s.unavailable = testing::WhyNoDocker();
    if (!s.unavailable.empty()) return;
    s.daemon = std::make_unique<DockerDaemon>("cgm");
    s.unavailable = s.daemon->Start();
    if (!s.unavailable.empty()) return;
    if (Status imported = testing::ImportBusybox(s.daemon->uri()); !imported.ok()) {
      s.unavailable = "importing the busybox image failed: " + imported.ToString();
    }
  }
  void TearDown() override { State().daemon.reset(); }
};
[[maybe_unused]] const auto* const kEnvironment =
    ::testing::AddGlobalTestEnvironment(new DockerEnvironment);

#define REQUIRE_DOCKER() BITFUSION_REQUIRE_SERVICE(State().unavailable.empty(), State().unavailable)

constexpr std::int64_t kMemoryLimit = 48ll << 20;

std::shared_ptr<ContainerRunner> Runner() {
  auto runner = ContainerRunnerFromUri(State().daemon->uri());
  EXPECT_TRUE(runner.ok()) << runner.status().ToString();
  return runner.ok() ? *runner : nullptr;
}

ContainerSpec Burner() {
  ContainerSpec spec;
  spec.image = kBusyboxImage;
  spec.command = {"sh", "-c", "while :; do :; done"};
  spec.memory_bytes = kMemoryLimit;
  return spec;
}

std::optional<double> ValueOf(const SampleBatch& batch, const std::string& metric,
                              std::size_t from = 0) {
  std::optional<double> found;
  for (std::size_t i = from; i < batch.size(); ++i) {
    if (batch.series[batch.series_index[i]].metric == metric) found = batch.value[i];
  }
  return found;
}

bool WaitUntil(const std::function<bool()>& done, std::chrono::milliseconds limit = 10s) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (done()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return done();
}

TEST(ContainerMetrics, SamplesARunningContainerThroughItsCgroup) {
  REQUIRE_DOCKER();
  auto runner = Runner();
  ASSERT_TRUE(runner);
  auto container = runner->Create(Burner());
  ASSERT_TRUE(container.ok()) << container.status().ToString();
  ASSERT_TRUE((*container)->Start().ok());
  const std::string id = (*container)->id();

  auto source = MetricSourceFromUri("container:" + id + "?runner=" + State().daemon->uri());
  ASSERT_TRUE(source.ok()) << source.status().ToString();
  SampleBatch batch;
  ASSERT_TRUE((*source)->Collect(Now(), batch).ok());
  const std::size_t first = batch.size();
  const auto cpu0 = ValueOf(batch, "cgroup.cpu.usage");
  std::this_thread::sleep_for(300ms);
  ASSERT_TRUE((*source)->Collect(Now(), batch).ok());
  const auto cpu1 = ValueOf(batch, "cgroup.cpu.usage", first);
  ASSERT_TRUE(cpu0 && cpu1);
  EXPECT_GT(*cpu1, *cpu0 + 0.05) << "a busy loop for 300 ms";
  EXPECT_EQ(ValueOf(batch, "cgroup.memory.limit", first), static_cast<double>(kMemoryLimit));
  EXPECT_GT(*ValueOf(batch, "cgroup.memory.usage", first), 0);
  EXPECT_GE(*ValueOf(batch, "cgroup.pids.current", first), 1);
  EXPECT_GT(*ValueOf(batch, "cgroup.cpu.user", first), 0);
  const Series& s = batch.series[batch.series_index[0]];
  EXPECT_EQ(s.labels.at("container"), id.substr(0, 12));
  EXPECT_FALSE(s.labels.at("container_name").empty());
  EXPECT_NE(s.labels.at("cgroup").find(id), std::string::npos) << s.labels.at("cgroup");
}

TEST(ContainerMetrics, ExitEndsTheSourceWithOneEvent) {
  REQUIRE_DOCKER();
  auto runner = Runner();
  ASSERT_TRUE(runner);
  auto container = runner->Create(Burner());
  ASSERT_TRUE(container.ok()) << container.status().ToString();
  ASSERT_TRUE((*container)->Start().ok());
  auto source = ContainerMetricSource(runner, (*container)->id());
  ASSERT_TRUE(source.ok()) << source.status().ToString();

  MetricStreamOptions o;
  o.interval = 10ms;
  o.delivery_interval = 0ms;
  std::mutex mu;
  std::vector<Event> events;
  o.on_event = [&](const Event& e) {
    std::lock_guard lock(mu);
    events.push_back(e);
  };
  std::atomic<std::int64_t> cpu_samples{0};
  auto stream = MetricStream::Make(o);
  ASSERT_TRUE(stream.ok());
  ASSERT_TRUE((*stream)->Add(*source).ok());
  ASSERT_TRUE((*stream)->Add("null").ok());
  auto sub = (*stream)->Subscribe([&](const SampleBatch& b) {
    if (ValueOf(b, "cgroup.cpu.usage")) ++cpu_samples;
  });
  ASSERT_TRUE((*stream)->Start().ok());
  ASSERT_TRUE(WaitUntil([&] { return cpu_samples.load() >= 5; }));
  ASSERT_TRUE((*container)->Kill(SIGKILL).ok());
  ASSERT_TRUE((*container)->Wait(DeadlineAfter(30s)).ok());
  EXPECT_TRUE(WaitUntil([&] { return (*stream)->Overhead().sources_dropped == 1; }));
  std::this_thread::sleep_for(50ms);
  ASSERT_TRUE((*stream)->Stop().ok());
  const StreamOverhead over = (*stream)->Overhead();
  EXPECT_EQ(over.sources_dropped, 1);
  EXPECT_EQ(over.source_errors, 0) << "no error storm while the container goes";
  std::lock_guard lock(mu);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].type, EventType::kMetricSourceEnded);
  EXPECT_EQ(events[0].subject, "container:" + (*container)->id());
}

TEST(ContainerMetrics, CreatedContainerIsSampledOnceItStarts) {
  REQUIRE_DOCKER();
  auto runner = Runner();
  ASSERT_TRUE(runner);
  ContainerSpec spec = Burner();
  spec.command = {"sh", "-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done"};
  auto container = runner->Create(spec);
  ASSERT_TRUE(container.ok()) << container.status().ToString();
  auto source = ContainerMetricSource(runner, (*container)->id());
  ASSERT_TRUE(source.ok()) << source.status().ToString();

  SampleBatch batch;
  ASSERT_TRUE((*source)->Collect(Now(), batch).ok());
  EXPECT_EQ(batch.size(), 0u) << "nothing to sample before it starts";
  ASSERT_TRUE((*container)->Start().ok());
  Status last;
  ASSERT_TRUE(WaitUntil([&] {
    last = (*source)->Collect(Now(), batch);
    return !last.ok() || ValueOf(batch, "cgroup.cpu.usage").has_value();
  })) << last.ToString();
  ASSERT_TRUE(last.ok()) << last.ToString();
  EXPECT_GT((*source)->BackgroundCpuNs(), 0) << "the waiting thread's CPU is reported";
  // It runs to its end; then the source ends.
  ASSERT_TRUE((*container)->Wait(DeadlineAfter(60s)).ok());
  EXPECT_TRUE(WaitUntil([&] {
    last = (*source)->Collect(Now(), batch);
    return !last.ok();
  }));
  EXPECT_EQ(last.code(), StatusCode::kNotFound) << last.ToString();
}

TEST(ContainerMetrics, MissingOrExitedContainersAreRefusedClearly) {
  REQUIRE_DOCKER();
  auto runner = Runner();
  ASSERT_TRUE(runner);
  auto missing = ContainerMetricSource(runner, "no-such-container");
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("no-such-container"), std::string::npos);

  ContainerSpec spec = Burner();
  spec.command = {"true"};
  auto container = runner->Create(spec);
  ASSERT_TRUE(container.ok());
  ASSERT_TRUE((*container)->Start().ok());
  ASSERT_TRUE((*container)->Wait(DeadlineAfter(30s)).ok());
  auto exited = ContainerMetricSource(runner, (*container)->id());
  EXPECT_EQ(exited.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(exited.status().message().find("exited"), std::string::npos)
      << exited.status().ToString();
}

TEST(ContainerMetrics, PlanSourceContainerSamplesEachRunsContainer) {
  REQUIRE_DOCKER();
  const std::string out = "/tmp/bf-cgm-plan-" + std::to_string(::getpid()) + ".jsonl";
  std::filesystem::remove(out);
  PlanSpec plan;
  plan.name = "container-source";
  plan.runner = State().daemon->uri();
  plan.sources = {"container?detail_every=2"};
  plan.interval = 10ms;
  BenchmarkSpec b;
  b.name = "spin";
  b.image = kBusyboxImage;
  b.command = {"sh", "-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done"};
  b.repetitions = 1;
  b.warmup = 0;
  plan.benchmarks.push_back(b);
  ExperimentOptions options;
  options.sinks = {"jsonl://" + out};
  auto result = RunPlan(plan, options);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  ASSERT_EQ(result->runs.size(), 1u);
  EXPECT_EQ(result->runs[0].status, "ok") << result->runs[0].error;
  std::ifstream in(out);
  std::string line;
  int cpu = 0;
  while (std::getline(in, line)) {
    if (line.find("\"cgroup.cpu.usage\"") != std::string::npos &&
        line.find("\"container\"") != std::string::npos) {
      ++cpu;
    }
  }
  EXPECT_GT(cpu, 0) << "no cgroup.cpu.usage sample with a container label in " << out;
  std::filesystem::remove(out);
}

}  // namespace
}  // namespace bitfusion
