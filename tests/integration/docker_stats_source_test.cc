// The docker-stats:ID metric source on a dockerd of the test's own: a busybox container burning
// CPU under a memory limit, sampled through the engine's stats stream inside a MetricStream
// until the container exits and the source ends with kMetricSourceEnded.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "bitfusion/container_runner.h"
#include "bitfusion/metric_stream.h"
#include "integration/docker_daemon.h"
#include "integration/service.h"
#include "metrics/docker_stats_source.h"

namespace bitfusion {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

constexpr std::int64_t kMemoryLimit = 48ll << 20;

TEST(DockerStatsSourceTest, CpuGrowsLimitMatchesAndExitEndsTheSource) {
  const std::string why = testing::WhyNoDocker();
  BITFUSION_REQUIRE_SERVICE(why.empty(), why);
  testing::DockerDaemon daemon("dstats");
  const std::string up = daemon.Start();
  ASSERT_TRUE(up.empty()) << up;
  ASSERT_TRUE(testing::ImportBusybox(daemon.uri()).ok());
  auto runner = ContainerRunnerFromUri(daemon.uri());
  ASSERT_TRUE(runner.ok()) << runner.error().ToString();

  // Burns CPU for about 4 s, then exits: the engine sends about one reading a second.
  ContainerSpec spec;
  spec.image = testing::kBusyboxImage;
  spec.command = {"sh", "-c",
                  "end=$(( $(date +%s) + 4 )); while [ $(date +%s) -lt $end ]; do :; done"};
  spec.memory_bytes = kMemoryLimit;
  auto container = (*runner)->Create(spec);
  ASSERT_TRUE(container.ok()) << container.error().ToString();
  ASSERT_TRUE((*container)->Start().ok());
  const std::string id = (*container)->id();

  // Another handle on the same container, by short id: it follows the container's end but never
  // starts or removes it.
  auto opened = (*runner)->OpenContainer(id.substr(0, 12));
  ASSERT_TRUE(opened.ok()) << opened.error().ToString();
  EXPECT_EQ((*opened)->id(), id);
  EXPECT_EQ((*opened)->Start().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ((*runner)->OpenContainer("no-such-container").status().code(), StatusCode::kNotFound);

  // Made from its URI, naming the test's engine, as `bitfusion metrics --source` would.
  auto source = MetricSourceFromUri("docker-stats:" + id.substr(0, 12) + "?runner=" + daemon.uri());
  ASSERT_TRUE(source.ok()) << source.error().ToString();

  std::mutex mu;
  std::condition_variable cv;
  std::vector<Sample> samples;
  std::vector<Event> events;
  MetricStreamOptions options;
  options.interval = 50ms;
  options.delivery_interval = 0ms;
  options.on_event = [&](const Event& e) {
    std::lock_guard lock(mu);
    events.push_back(e);
    cv.notify_all();
  };
  auto stream = MetricStream::Make(options);
  ASSERT_TRUE(stream.ok());
  Subscription sub = (*stream)->Subscribe([&](const SampleBatch& batch) {
    std::lock_guard lock(mu);
    for (std::size_t i = 0; i < batch.size(); ++i) samples.push_back(batch.At(i));
  });
  ASSERT_TRUE((*stream)->Add(*source).ok());
  ASSERT_TRUE((*stream)->Start().ok());
  {
    std::unique_lock lock(mu);
    EXPECT_TRUE(cv.wait_for(lock, 30s, [&] { return !events.empty(); }))
        << "the source did not end after the container exited";
  }
  ASSERT_TRUE((*stream)->Stop().ok());
  const StreamOverhead overhead = (*stream)->Overhead();

  std::lock_guard lock(mu);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].type, EventType::kMetricSourceEnded);
  EXPECT_EQ(events[0].subject, (*source)->uri());
  EXPECT_THAT(events[0].attributes["reason"], HasSubstr("exited (code 0)"));
  EXPECT_EQ(overhead.sources_dropped, 1);
  EXPECT_EQ(overhead.source_errors, 0);
  EXPECT_GT(overhead.source_cpu_ns, 0) << "the stats thread's CPU time is reported";

  std::vector<const Sample*> cpu, limit;
  for (const Sample& s : samples) {
    EXPECT_EQ(s.metadata.at("container"), id.substr(0, 12));
    if (s.metric == "cgroup.cpu.usage") cpu.push_back(&s);
    if (s.metric == "cgroup.memory.limit") limit.push_back(&s);
  }
  std::printf(
      "docker-stats: %zu readings; stats thread %.2f ms of CPU in all, sampling thread "
      "%.1f us per tick over %lld ticks\n",
      cpu.size(), static_cast<double>(overhead.source_cpu_ns) / 1e6,
      static_cast<double>(overhead.sampler_cpu_ns) / 1e3 /
          static_cast<double>(std::max<std::int64_t>(1, overhead.ticks)),
      static_cast<long long>(overhead.ticks));
  ASSERT_GE(cpu.size(), 2u) << "about one reading a second for ~4 s";
  EXPECT_EQ(cpu[0]->unit, "s");
  EXPECT_GT(cpu.back()->value - cpu.front()->value, 0.5)
      << "a CPU-bound container uses most of a CPU";
  for (std::size_t i = 1; i < cpu.size(); ++i) {
    EXPECT_GE(cpu[i]->value, cpu[i - 1]->value);
    EXPECT_GT(cpu[i]->timestamp_ns, cpu[i - 1]->timestamp_ns) << "each reading has its own time";
    EXPECT_GT(cpu[i]->monotonic_ns, cpu[i - 1]->monotonic_ns);
  }
  EXPECT_LE(cpu.back()->monotonic_ns, MonoNowNs());
  ASSERT_FALSE(limit.empty());
  for (const Sample* s : limit) EXPECT_EQ(s->value, static_cast<double>(kMemoryLimit));

  auto exit = (*opened)->Wait(DeadlineAfter(30s));
  ASSERT_TRUE(exit.ok()) << exit.error().ToString();
  EXPECT_EQ(exit->exit_code, 0);
  opened->reset();
  EXPECT_TRUE((*container)->Inspect().ok()) << "an opened handle leaves the container in place";

  // What cannot be sampled is refused when the source is made.
  auto gone = MetricSourceFromUri("docker-stats:no-such-container?runner=" + daemon.uri());
  EXPECT_EQ(gone.status().code(), StatusCode::kNotFound) << gone.status().ToString();
  auto exited = MetricSourceFromUri("docker-stats:" + id + "?runner=" + daemon.uri());
  EXPECT_EQ(exited.status().code(), StatusCode::kFailedPrecondition) << exited.status().ToString();
  EXPECT_THAT(exited.status().message(), HasSubstr("exited"));
}

TEST(DockerStatsSourceTest, RunnersWithoutContainersAndBadUrisAreRefused) {
  auto process = MetricSourceFromUri("docker-stats:abc?runner=process://");
  EXPECT_EQ(process.status().code(), StatusCode::kUnimplemented) << process.status().ToString();
  EXPECT_THAT(process.status().message(), HasSubstr("docker://"));
  EXPECT_EQ(MetricSourceFromUri("docker-stats:").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(MetricSourceFromUri("docker-stats:abc?interval=1s").status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(MetricSourceFromUri("docker-stats:abc?runner=").status().code(),
            StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace bitfusion
