// The "cgroup" metric source against recorded cgroup v1 (this host's docker) and v2 (kernel
// documentation formats) trees: exact values, the same metric names on both, bad input, missing
// optional files and a group that disappears while sampled.
#include "metrics/cgroup_source.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bitfusion/event.h"
#include "bitfusion/experiment.h"
#include "bitfusion/metric_stream.h"

namespace bitfusion {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

const std::string kFixtures = std::string(BITFUSION_TEST_FIXTURES) + "/cgroup";
const std::string kV1Root = kFixtures + "/v1/sys/fs/cgroup";
const std::string kV2Root = kFixtures + "/v2/sys/fs/cgroup";
const std::string kV1Path =
    "/docker/d1ea754ba61118a0f4682f5fe63cd8b0b9e2b40897436a5a73c41e9bfee9f87c";
const std::string kV2Path =
    "/system.slice/docker-5f2c3a9e7b1d40c6a8e9f0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1.scope";

double Tick() { return 1.0 / static_cast<double>(::sysconf(_SC_CLK_TCK)); }

std::optional<double> ValueOf(const SampleBatch& batch, const std::string& metric,
                              const std::string& device = "") {
  std::optional<double> found;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const Series& s = batch.series[batch.series_index[i]];
    if (s.metric != metric) continue;
    if (!device.empty()) {
      auto it = s.labels.find("device");
      if (it == s.labels.end() || it->second != device) continue;
    }
    EXPECT_FALSE(found.has_value()) << "two samples of " << metric << " " << device;
    found = batch.value[i];
  }
  return found;
}

std::set<std::string> Metrics(const SampleBatch& batch) {
  std::set<std::string> out;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    out.insert(batch.series[batch.series_index[i]].metric);
  }
  return out;
}

std::shared_ptr<MetricSource> Make(const std::string& uri) {
  auto source = MetricSourceFromUri(uri);
  EXPECT_TRUE(source.ok()) << source.status().ToString();
  return source.ok() ? *source : nullptr;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(CgroupSource, V1RecordedFromDockerGivesExactValues) {
  auto source = Make("cgroup:" + kV1Path + "?root=" + kV1Root);
  ASSERT_TRUE(source);
  SampleBatch batch;
  ASSERT_TRUE(source->Collect(Now(), batch).ok());

  EXPECT_DOUBLE_EQ(*ValueOf(batch, "cgroup.cpu.usage"), 4363935826e-9);
  EXPECT_DOUBLE_EQ(*ValueOf(batch, "cgroup.cpu.user"), 432 * Tick());
  EXPECT_DOUBLE_EQ(*ValueOf(batch, "cgroup.cpu.system"), 4 * Tick());
  EXPECT_EQ(*ValueOf(batch, "cgroup.cpu.periods"), 88);
  EXPECT_EQ(*ValueOf(batch, "cgroup.cpu.throttled_periods"), 82);
  EXPECT_DOUBLE_EQ(*ValueOf(batch, "cgroup.cpu.throttled_time"), 3200949938e-9);
  EXPECT_EQ(*ValueOf(batch, "cgroup.memory.usage"), 643072);
  EXPECT_EQ(*ValueOf(batch, "cgroup.memory.limit"), 64 << 20);  // docker run --memory 64m
  EXPECT_EQ(*ValueOf(batch, "cgroup.memory.anon"), 118784);     // total_rss
  EXPECT_EQ(*ValueOf(batch, "cgroup.memory.file"), 4096);       // total_cache
  EXPECT_EQ(*ValueOf(batch, "cgroup.memory.inactive_anon"), 110592);
  EXPECT_EQ(*ValueOf(batch, "cgroup.memory.active_anon"), 8192);
  EXPECT_EQ(*ValueOf(batch, "cgroup.memory.active_file"), 4096);
  EXPECT_EQ(*ValueOf(batch, "cgroup.memory.pgfault"), 1852);
  EXPECT_EQ(*ValueOf(batch, "cgroup.memory.pgmajfault"), 0);
  EXPECT_EQ(*ValueOf(batch, "cgroup.io.read_bytes", "254:0"), 8388608);
  EXPECT_EQ(*ValueOf(batch, "cgroup.io.write_bytes", "254:0"), 8413184);
  EXPECT_EQ(*ValueOf(batch, "cgroup.io.reads", "254:0"), 8);
  EXPECT_EQ(*ValueOf(batch, "cgroup.io.writes", "254:0"), 15);
  EXPECT_EQ(*ValueOf(batch, "cgroup.pids.current"), 2);
  EXPECT_EQ(*ValueOf(batch, "cgroup.pids.max"), 100);  // --pids-limit 100

  const Series& usage = batch.series[batch.series_index[0]];
  EXPECT_EQ(usage.labels.at("cgroup"), kV1Path);
  for (const Series& s : batch.series) {
    EXPECT_EQ(s.counter, s.metric.find("cpu.") != std::string::npos ||
                             s.metric.find("pgfault") != std::string::npos ||
                             s.metric.find("pgmajfault") != std::string::npos ||
                             s.metric.find(".io.") != std::string::npos)
        << s.metric;
  }
}

TEST(CgroupSource, V2FromKernelDocumentationFormatsGivesExactValues) {
  auto source = Make("cgroup:" + kV2Path + "?root=" + kV2Root);
  ASSERT_TRUE(source);
  SampleBatch batch;
  ASSERT_TRUE(source->Collect(Now(), batch).ok());

  EXPECT_DOUBLE_EQ(*ValueOf(batch, "cgroup.cpu.usage"), 8.0);
  EXPECT_DOUBLE_EQ(*ValueOf(batch, "cgroup.cpu.user"), 6.5);
  EXPECT_DOUBLE_EQ(*ValueOf(batch, "cgroup.cpu.system"), 1.5);
  EXPECT_EQ(*ValueOf(batch, "cgroup.cpu.periods"), 120);
  EXPECT_EQ(*ValueOf(batch, "cgroup.cpu.throttled_periods"), 45);
  EXPECT_DOUBLE_EQ(*ValueOf(batch, "cgroup.cpu.throttled_time"), 2.25);
  EXPECT_EQ(*ValueOf(batch, "cgroup.memory.usage"), 52428800);
  EXPECT_EQ(*ValueOf(batch, "cgroup.memory.limit"), 104857600);
  EXPECT_EQ(*ValueOf(batch, "cgroup.memory.anon"), 31457280);
  EXPECT_EQ(*ValueOf(batch, "cgroup.memory.file"), 16777216);
  EXPECT_EQ(*ValueOf(batch, "cgroup.memory.shmem"), 1048576);
  EXPECT_EQ(*ValueOf(batch, "cgroup.memory.file_mapped"), 4194304);
  EXPECT_EQ(*ValueOf(batch, "cgroup.memory.file_dirty"), 8192);
  EXPECT_EQ(*ValueOf(batch, "cgroup.memory.anon_thp"), 2097152);
  EXPECT_EQ(*ValueOf(batch, "cgroup.memory.inactive_file"), 12582912);
  EXPECT_EQ(*ValueOf(batch, "cgroup.memory.pgfault"), 25600);
  EXPECT_EQ(*ValueOf(batch, "cgroup.memory.pgmajfault"), 12);
  EXPECT_EQ(*ValueOf(batch, "cgroup.io.read_bytes", "8:16"), 1459200);
  EXPECT_EQ(*ValueOf(batch, "cgroup.io.write_bytes", "8:16"), 314773504);
  EXPECT_EQ(*ValueOf(batch, "cgroup.io.reads", "8:16"), 192);
  EXPECT_EQ(*ValueOf(batch, "cgroup.io.writes", "8:16"), 353);
  EXPECT_EQ(*ValueOf(batch, "cgroup.io.read_bytes", "8:0"), 90430464);
  EXPECT_EQ(*ValueOf(batch, "cgroup.io.writes", "8:0"), 1252);
  EXPECT_EQ(*ValueOf(batch, "cgroup.pids.current"), 3);
  EXPECT_FALSE(ValueOf(batch, "cgroup.pids.max")) << "\"max\" is no limit: no sample";
}

TEST(CgroupSource, V1AndV2GiveTheSameMetricNames) {
  SampleBatch v1, v2;
  ASSERT_TRUE(Make("cgroup:" + kV1Path + "?root=" + kV1Root)->Collect(Now(), v1).ok());
  ASSERT_TRUE(Make("cgroup:" + kV2Path + "?root=" + kV2Root)->Collect(Now(), v2).ok());
  std::set<std::string> a = Metrics(v1), b = Metrics(v2);
  b.insert("cgroup.pids.max");  // "max" in the v2 tree
  EXPECT_EQ(a, b);
  EXPECT_EQ(a.size(), 28u);
}

TEST(CgroupSource, SteadyStateReusesSeriesAndRatesWork) {
  auto source = Make("cgroup:" + kV2Path + "?root=" + kV2Root + "&rate=true");
  ASSERT_TRUE(source);
  SampleBatch batch;
  Timestamp t = Now();
  ASSERT_TRUE(source->Collect(t, batch).ok());
  const std::size_t series = batch.series.size();
  const std::size_t first = batch.size();
  t.mono_ns += 10'000'000;
  ASSERT_TRUE(source->Collect(t, batch).ok());
  EXPECT_EQ(batch.series.size(), series);
  // Unchanged files: every counter's rate is 0; gauges come through as read.
  std::size_t rates = 0;
  for (std::size_t i = first; i < batch.size(); ++i) {
    const Series& s = batch.series[batch.series_index[i]];
    if (s.unit.ends_with("/s")) {
      ++rates;
      EXPECT_EQ(batch.value[i], 0) << s.metric;
    }
  }
  EXPECT_GE(rates, 14u);
}

TEST(CgroupSource, DetailEveryReadsTheCostlyFilesOnEveryNthSampleOnly) {
  auto source = Make("cgroup:" + kV2Path + "?root=" + kV2Root + "&detail_every=3");
  ASSERT_TRUE(source);
  std::vector<std::size_t> sizes;
  SampleBatch batch;
  for (int i = 0; i < 4; ++i) {
    const std::size_t before = batch.size();
    ASSERT_TRUE(source->Collect(Now(), batch).ok());
    sizes.push_back(batch.size() - before);
  }
  // All 31 values (23 + 8 of io.stat; pids.max is "max"), then cpu.stat's 6 and
  // memory.current twice, then all.
  EXPECT_EQ(sizes, (std::vector<std::size_t>{31, 7, 7, 31}));
  EXPECT_EQ(MetricSourceFromUri("cgroup:/x?detail_every=0").status().code(),
            StatusCode::kInvalidArgument);
}

TEST(CgroupSource, ProcCgroupFilesResolveToTheGroupsDirectories) {
  auto v1 = CgroupDirs::FromProcCgroup(kV1Root, ReadAll(kFixtures + "/v1/proc/1812/cgroup"));
  ASSERT_TRUE(v1.ok()) << v1.status().ToString();
  EXPECT_FALSE(v1->v2);
  EXPECT_EQ(v1->memory, kV1Root + "/memory" + kV1Path);
  EXPECT_EQ(v1->cpuacct, kV1Root + "/cpuacct" + kV1Path);
  EXPECT_EQ(v1->pids, kV1Root + "/pids" + kV1Path);
  EXPECT_EQ(v1->path, kV1Path);

  auto v2 = CgroupDirs::FromProcCgroup(kV2Root, ReadAll(kFixtures + "/v2/proc/4242/cgroup"));
  ASSERT_TRUE(v2.ok()) << v2.status().ToString();
  EXPECT_TRUE(v2->v2);
  EXPECT_EQ(v2->unified, kV2Root + kV2Path);

  auto missing = CgroupDirs::FromProcCgroup(kV2Root, "0::/system.slice/gone.scope\n");
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
}

TEST(CgroupSource, BadInputIsRefusedWithWhatToDo) {
  auto unknown = MetricSourceFromUri("cgroup:/docker/x?roots=/tmp");
  EXPECT_EQ(unknown.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(unknown.status().message().find("roots"), std::string::npos)
      << unknown.status().ToString();

  auto no_path = MetricSourceFromUri("cgroup");
  EXPECT_EQ(no_path.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(no_path.status().message().find("cgroup:PATH"), std::string::npos);

  auto v1 = MetricSourceFromUri("cgroup:/docker/nosuch?root=" + kV1Root);
  EXPECT_EQ(v1.status().code(), StatusCode::kNotFound);
  EXPECT_NE(v1.status().message().find(kV1Root + "/memory/docker/nosuch"), std::string::npos)
      << v1.status().ToString();
  EXPECT_NE(v1.status().message().find("check the path"), std::string::npos);

  auto v2 = MetricSourceFromUri("cgroup:/nosuch.scope?root=" + kV2Root);
  EXPECT_EQ(v2.status().code(), StatusCode::kNotFound);
  EXPECT_NE(v2.status().message().find(kV2Root + "/nosuch.scope"), std::string::npos)
      << v2.status().ToString();
}

TEST(ContainerSource, BadInputIsRefusedWithWhatToDo) {
  auto unknown = MetricSourceFromUri("container:abc?runnr=docker://");
  EXPECT_EQ(unknown.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(unknown.status().message().find("runnr"), std::string::npos);

  auto no_id = MetricSourceFromUri("container");
  EXPECT_EQ(no_id.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(no_id.status().message().find("container:ID"), std::string::npos);

  // process:// has no containers to inspect.
  auto process = MetricSourceFromUri("container:abc?runner=process://");
  EXPECT_EQ(process.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(process.status().message().find("cannot inspect containers"), std::string::npos)
      << process.status().ToString();
  EXPECT_NE(process.status().message().find("process:PID"), std::string::npos);
}

TEST(ContainerSource, PlanSourceContainerIsRefusedForProcessRunners) {
  PlanSpec plan;
  plan.name = "own-container";
  plan.runner = "process://";
  plan.sources = {"host", "container"};
  BenchmarkSpec b;
  b.name = "t";
  b.command = {"true"};
  b.repetitions = 1;
  b.warmup = 0;
  plan.benchmarks.push_back(b);
  auto result = RunPlan(plan, {});
  EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(result.status().message().find("\"container\""), std::string::npos)
      << result.status().ToString();
  EXPECT_NE(result.status().message().find("docker://"), std::string::npos);

  plan.sources = {"container?rat=true"};
  EXPECT_EQ(RunPlan(plan, {}).status().code(), StatusCode::kInvalidArgument);
  plan.sources = {"container?detail_every=0"};
  EXPECT_EQ(RunPlan(plan, {}).status().code(), StatusCode::kInvalidArgument);
}

class CgroupTreeCopy : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("bf-cgroup-test-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::copy(kFixtures + "/v2/sys/fs/cgroup", dir_, fs::copy_options::recursive);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string Uri() const { return "cgroup:" + kV2Path + "?root=" + dir_.string(); }
  fs::path Group() const { return dir_ / kV2Path.substr(1); }
  fs::path dir_;
};

TEST_F(CgroupTreeCopy, MissingOptionalFilesDisableOnlyTheirMetrics) {
  fs::remove(Group() / "pids.current");
  fs::remove(Group() / "pids.max");
  fs::remove(Group() / "io.stat");
  auto source = Make(Uri());
  ASSERT_TRUE(source);
  SampleBatch batch;
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(source->Collect(Now(), batch).ok());
  EXPECT_FALSE(ValueOf(batch, "cgroup.pids.current").has_value());
  for (const Series& s : batch.series) {
    EXPECT_EQ(s.metric.find("pids"), std::string::npos) << s.metric;
    EXPECT_EQ(s.metric.find(".io."), std::string::npos) << s.metric;
  }
  EXPECT_EQ(batch.size(), 3u * 22u);
}

TEST_F(CgroupTreeCopy, GroupVanishingEndsTheSourceWithNotFound) {
  auto source = Make(Uri());
  ASSERT_TRUE(source);
  SampleBatch batch;
  ASSERT_TRUE(source->Collect(Now(), batch).ok());
  fs::remove_all(Group());
  Status gone = source->Collect(Now(), batch);
  EXPECT_EQ(gone.code(), StatusCode::kNotFound) << gone.ToString();
  EXPECT_NE(gone.message().find(kV2Path), std::string::npos) << gone.ToString();
}

TEST_F(CgroupTreeCopy, StreamPublishesOneEndedEventWhenTheGroupGoes) {
  MetricStreamOptions o;
  o.interval = 2ms;
  o.delivery_interval = 0ms;
  std::mutex mu;
  std::vector<Event> events;
  o.on_event = [&](const Event& e) {
    std::lock_guard lock(mu);
    events.push_back(e);
  };
  auto stream = MetricStream::Make(o);
  ASSERT_TRUE(stream.ok());
  ASSERT_TRUE((*stream)->Add(Uri()).ok());
  ASSERT_TRUE((*stream)->Add("null").ok());
  ASSERT_TRUE((*stream)->Start().ok());
  std::this_thread::sleep_for(20ms);
  fs::remove_all(Group());
  for (int i = 0; i < 500; ++i) {
    if ((*stream)->Overhead().sources_dropped > 0) break;
    std::this_thread::sleep_for(2ms);
  }
  std::this_thread::sleep_for(20ms);
  ASSERT_TRUE((*stream)->Stop().ok());
  const StreamOverhead over = (*stream)->Overhead();
  EXPECT_EQ(over.sources_dropped, 1);
  EXPECT_EQ(over.source_errors, 0);
  std::lock_guard lock(mu);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].type, EventType::kMetricSourceEnded);
  EXPECT_EQ(events[0].subject, Uri());
}

}  // namespace
}  // namespace bitfusion
