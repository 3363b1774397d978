// bitfusion-probe inside a real container: a dockerd of the test's own, the probe bind-mounted
// into a busybox container and wrapping a CPU-burning shell loop, the "probe:NAME" source in a
// MetricStream. The samples must come over the socket with the probe's own stamps, lie between
// the container's start and end as this host saw them (one timeline: the container shares the
// host's clocks), show the container's own cgroup CPU usage growing, pass the loop's exit code
// through, and end the source with kMetricSourceEnded.
#include <signal.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>

#include "bitfusion/events.h"
#include "bitfusion/experiment.h"
#include "bitfusion/probe.h"
#include "integration/docker_daemon.h"

namespace bitfusion {
namespace {

using namespace std::chrono_literals;
using testing::kBusyboxImage;

struct Output {
  std::mutex mu;
  std::string out, err;
  LogCallback Callback() {
    return [this](LogStream s, std::string_view line) {
      std::lock_guard lock(mu);
      (s == LogStream::kStdout ? out : err).append(line).append("\n");
    };
  }
};

class ProbeDockerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string why = testing::WhyNoDocker();
    BITFUSION_REQUIRE_SERVICE(why.empty(), why);
    daemon_ = std::make_unique<testing::DockerDaemon>("probe");
    const std::string down = daemon_->Start();
    BITFUSION_REQUIRE_SERVICE(down.empty(), down);
    const Status imported = testing::ImportBusybox(daemon_->uri());
    ASSERT_TRUE(imported.ok()) << imported.ToString();
    auto runner = ContainerRunnerFromUri(daemon_->uri());
    ASSERT_TRUE(runner.ok()) << runner.error().ToString();
    runner_ = *runner;
  }
  void TearDown() override { daemon_.reset(); }

  std::unique_ptr<testing::DockerDaemon> daemon_;
  std::shared_ptr<ContainerRunner> runner_;
};

TEST_F(ProbeDockerTest, AWrappedBusyboxLoopIsSampledFromInsideOnTheHostsTimeline) {
  ContainerSpec spec;
  spec.image = kBusyboxImage;
  spec.network_mode = "none";
  // About half a second of CPU, then a distinctive exit code.
  spec.command = {"sh", "-c", "i=0; while [ $i -lt 150000 ]; do i=$((i+1)); done; exit 7"};
  ContainerProbeOptions po;
  po.name = "burn";
  po.interval = 10ms;
  po.probe_path = std::string(BITFUSION_BIN_DIR) + "/bitfusion-probe";
  auto probe = ProbeContainer(po, spec);
  ASSERT_TRUE(probe.ok()) << probe.error().ToString();

  std::mutex mu;
  SampleBatch got;
  std::vector<Event> ended;
  MetricStreamOptions so;
  so.interval = 10ms;
  so.delivery_interval = 50ms;
  so.on_event = [&](const Event& e) {
    std::lock_guard lock(mu);
    if (e.type == EventType::kMetricSourceEnded) ended.push_back(e);
  };
  auto stream = MetricStream::Make(so);
  ASSERT_TRUE(stream.ok()) << stream.error().ToString();
  ASSERT_TRUE((*stream)->Add(probe->source).ok());
  auto sub = (*stream)->Subscribe([&](const SampleBatch& b) {
    std::lock_guard lock(mu);
    got.AppendBatch(b);
  });
  ASSERT_TRUE((*stream)->Start().ok());

  auto c = runner_->Create(spec);
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  Output out;
  auto logs = (*c)->Logs(out.Callback());
  const Timestamp before = Now();
  ASSERT_TRUE((*c)->Start().ok());
  auto exit = (*c)->Wait(DeadlineAfter(120s));
  const Timestamp after = Now();
  ASSERT_TRUE(exit.ok()) << exit.error().ToString();
  EXPECT_EQ(exit->exit_code, 7) << "the loop's exit code did not pass through; stderr:\n"
                                << out.err;

  const auto give_up = std::chrono::steady_clock::now() + 10s;
  for (;;) {
    {
      std::lock_guard lock(mu);
      if (!ended.empty()) break;
    }
    if (std::chrono::steady_clock::now() > give_up) break;
    std::this_thread::sleep_for(20ms);
  }
  ASSERT_TRUE((*stream)->Stop().ok());
  const StreamOverhead overhead = (*stream)->Overhead();

  std::lock_guard lock(mu);
  ASSERT_EQ(ended.size(), 1u) << "no kMetricSourceEnded after the container exited";
  EXPECT_EQ(ended[0].subject, probe->source->uri());
  EXPECT_NE(ended[0].attributes["reason"].find("exited with code 7"), std::string::npos)
      << ended[0].attributes["reason"];
  EXPECT_EQ(overhead.sources_dropped, 1);
  EXPECT_EQ(overhead.source_errors, 0);
  EXPECT_GT(overhead.source_cpu_ns, 0) << "the probe's own CPU is not counted";

  ASSERT_GT(got.size(), 0u) << "no samples came over the socket; container stderr:\n" << out.err;
  const std::int64_t offset = after.wall_ns - after.mono_ns;
  double usage_first = -1, usage_last = -1;
  std::int64_t usage_first_ns = 0, usage_last_ns = 0;
  bool saw_sh = false;
  for (std::size_t i = 0; i < got.size(); ++i) {
    // Between the container's start and end as this host saw them, on both clocks.
    ASSERT_GE(got.timestamp_ns[i], before.wall_ns) << i;
    ASSERT_LE(got.timestamp_ns[i], after.wall_ns) << i;
    ASSERT_GE(got.monotonic_ns[i], before.mono_ns) << i;
    ASSERT_LE(got.monotonic_ns[i], after.mono_ns) << i;
    // The container's wall - monotonic offset is the host's: the same clocks.
    ASSERT_LT(std::llabs(got.timestamp_ns[i] - got.monotonic_ns[i] - offset), 5'000'000) << i;
    const Sample s = got.At(i);
    EXPECT_EQ(s.metadata.at("view"), "inside");
    EXPECT_EQ(s.metadata.at("container"), "burn");
    if (s.metric == "cgroup.cpu.usage") {
      if (usage_first < 0 || s.monotonic_ns < usage_first_ns) {
        usage_first = s.value;
        usage_first_ns = s.monotonic_ns;
      }
      if (s.monotonic_ns >= usage_last_ns) {
        usage_last = s.value;
        usage_last_ns = s.monotonic_ns;
      }
    }
    if (s.metric == "proc.cpu.user" && s.metadata.at("comm") == "sh") saw_sh = true;
  }
  // The container's own cgroup, read from inside, counts the loop's CPU.
  ASSERT_GE(usage_first, 0) << "no cgroup.cpu.usage from inside";
  EXPECT_GT(usage_last - usage_first, 0.1) << usage_first << " -> " << usage_last;
  EXPECT_TRUE(saw_sh) << "the wrapped shell was not among the container's processes";
  std::printf(
      "probe in container: %zu samples, first %.1f ms after start, last %.1f ms before "
      "the end; cgroup CPU %.3f s -> %.3f s; observer CPU %.2f ms\n",
      got.size(), (usage_first_ns - before.mono_ns) / 1e6, (after.mono_ns - usage_last_ns) / 1e6,
      usage_first, usage_last, overhead.source_cpu_ns / 1e6);
}

}  // namespace
}  // namespace bitfusion

namespace bitfusion {
namespace {

// `bitfusion run`'s engine: a plan whose sources name "probe" gets bitfusion-probe in each
// benchmark's container, and its samples reach the plan's sink beside the host's.
TEST_F(ProbeDockerTest, APlanSourceProbeSamplesEveryRunsContainerFromInside) {
  const std::string dir = "/tmp/bfprobe-plan-" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  PlanSpec plan;
  plan.name = "probed";
  plan.runner = daemon_->uri();
  plan.sources = {"probe?processes=false", "null"};
  plan.interval = 10ms;
  plan.sinks = {"jsonl://" + dir + "/out.jsonl"};
  BenchmarkSpec b;
  b.name = "loop";
  b.image = kBusyboxImage;
  b.command = {"sh", "-c", "i=0; while [ $i -lt 50000 ]; do i=$((i+1)); done"};
  b.repetitions = 2;
  b.warmup = 0;
  plan.benchmarks = {b};
  ExperimentOptions options;
  options.program_dirs = {BITFUSION_BIN_DIR};
  auto result = RunPlan(plan, options);
  ASSERT_TRUE(result.ok()) << result.error().ToString();
  ASSERT_EQ(result->runs.size(), 2u);
  for (const RunRecord& r : result->runs) {
    EXPECT_EQ(r.status, kRunOk) << r.error;
    EXPECT_GT(r.overhead.samples, 0);
  }
  std::ifstream in(dir + "/out.jsonl");
  std::string line;
  std::set<std::string> runs_seen;
  int inside = 0;
  while (std::getline(in, line)) {
    if (line.find("\"view\":\"inside\"") == std::string::npos) continue;
    ++inside;
    EXPECT_NE(line.find("\"container\":\"loop\""), std::string::npos) << line;
    for (const RunRecord& r : result->runs) {
      if (line.find(r.run_id) != std::string::npos) runs_seen.insert(r.run_id);
    }
  }
  EXPECT_GT(inside, 0) << "no inside samples in " << dir << "/out.jsonl";
  EXPECT_EQ(runs_seen.size(), 2u) << "every run's container is probed";
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

// An image with an ENTRYPOINT keeps it under the probe: the probe runs ENTRYPOINT + command, as
// the engine would have (here `sh -c "echo ..."`), instead of trying to run the command alone.
TEST_F(ProbeDockerTest, APlanProbeKeepsTheImagesEntrypoint) {
  const std::string tag = "bitfusion-test/busybox-entrypoint:1";
  const auto rootfs = std::filesystem::temp_directory_path() /
                      ("bf-entrypoint-" + std::to_string(::getpid()) + ".tar");
  {
    std::ofstream out(rootfs, std::ios::binary);
    out << testing::BusyboxRootfs();
  }
  ImportSpec image;
  image.rootfs = rootfs;
  image.tag = tag;
  image.changes = {"ENV PATH=/bin", "ENTRYPOINT [\"/bin/sh\", \"-c\"]"};
  auto imported = runner_->ImportImage(image, DeadlineAfter(std::chrono::minutes(2)));
  std::filesystem::remove(rootfs);
  ASSERT_TRUE(imported.ok()) << imported.error().ToString();
  auto info = runner_->InspectImage(tag);
  ASSERT_TRUE(info.ok()) << info.error().ToString();
  EXPECT_EQ(info->entrypoint, (std::vector<std::string>{"/bin/sh", "-c"}));

  PlanSpec plan;
  plan.name = "entrypoint";
  plan.runner = daemon_->uri();
  plan.sources = {"probe?processes=false"};
  plan.interval = 10ms;
  plan.sinks = {"null://"};
  BenchmarkSpec b;
  b.name = "echo";
  b.image = tag;
  b.command = {"echo BITFUSION_RESULT answer 42"};  // one argument for sh -c
  b.repetitions = 1;
  b.warmup = 0;
  plan.benchmarks = {b};
  ExperimentOptions options;
  options.program_dirs = {BITFUSION_BIN_DIR};
  auto result = RunPlan(plan, options);
  ASSERT_TRUE(result.ok()) << result.error().ToString();
  ASSERT_EQ(result->runs.size(), 1u);
  const RunRecord& r = result->runs[0];
  EXPECT_EQ(r.status, kRunOk) << r.error;
  EXPECT_EQ(r.exit.exit_code, 0);
  const auto answer = std::find_if(r.results.begin(), r.results.end(),
                                   [](const Sample& s) { return s.metric == "answer"; });
  ASSERT_NE(answer, r.results.end()) << "the command ran under sh -c, the image's entrypoint";
  EXPECT_EQ(answer->value, 42);
  EXPECT_GT(r.overhead.samples, 0);
}

// Sample-only: the container is only given the mounts, and `docker exec` starts the probe in
// it later; it samples the container's processes (its pid namespace) and stops after --count.
TEST_F(ProbeDockerTest, ASampleOnlyProbeStartedByExecSeesTheContainersProcesses) {
  ContainerSpec spec;
  spec.image = kBusyboxImage;
  spec.network_mode = "none";
  spec.command = {"sleep", "30"};
  ContainerProbeOptions po;
  po.name = "idle";
  po.interval = 5ms;
  po.wrap = false;
  po.probe_path = std::string(BITFUSION_BIN_DIR) + "/bitfusion-probe";
  auto probe = ProbeContainer(po, spec);
  ASSERT_TRUE(probe.ok()) << probe.error().ToString();
  EXPECT_TRUE(spec.entrypoint.empty()) << "sample-only leaves the command alone";
  auto c = runner_->Create(spec);
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  ASSERT_TRUE((*c)->Start().ok());

  ExecSpec exec;
  exec.command = probe->exec_command;
  exec.command.insert(exec.command.end(), {"--count", "10"});
  auto ran = (*c)->Exec(exec, DeadlineAfter(60s));
  ASSERT_TRUE(ran.ok()) << ran.error().ToString();
  EXPECT_EQ(ran->exit_code, 0) << ran->errors;

  SampleBatch batch;
  Status end;
  const auto give_up = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < give_up) {
    end = probe->source->Collect(Now(), batch);
    if (!end.ok()) break;
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_EQ(end.code(), StatusCode::kNotFound) << end.ToString();
  EXPECT_NE(end.message().find("the probe was stopped"), std::string::npos) << end.ToString();
  bool saw_sleep = false;
  std::set<std::int64_t> ticks;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const Sample s = batch.At(i);
    ticks.insert(s.monotonic_ns);
    if (s.metric == "proc.threads" && s.metadata.at("comm") == "sleep") {
      saw_sleep = true;
    }
  }
  EXPECT_EQ(ticks.size(), 10u);
  std::string processes;
  for (const Series& s : batch.series) {
    if (s.metric == "proc.threads")
      processes += " " + s.labels.at("pid") + ":" + s.labels.at("comm");
  }
  EXPECT_TRUE(saw_sleep) << "the container's sleep was not sampled; seen:" << processes;
  EXPECT_TRUE((*c)->Kill(SIGKILL).ok());
}

TEST_F(ProbeDockerTest, APlanProbeOnARunnerWithoutContainersIsRefused) {
  PlanSpec plan;
  plan.name = "p";
  plan.runner = "process://";
  plan.sources = {"probe"};
  BenchmarkSpec b;
  b.name = "x";
  b.command = {"true"};
  plan.benchmarks = {b};
  auto result = RunPlan(plan, {});
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.error().message().find("mounts bitfusion-probe"), std::string::npos)
      << result.error().ToString();
}

}  // namespace
}  // namespace bitfusion
