// slurm:// against a real single-node Slurm the test starts (tests/integration/slurm_cluster.h:
// munged, slurmctld, slurmd, slurmrestd on a unix socket). The runner conformance suite runs on
// it; the tests below check what is particular to Slurm: GRES, the errors for a bad partition,
// GRES or socket, ownership in the job's comment, and Reap after the creator is killed.
#include <gmock/gmock.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bitfusion/experiment.h"
#include "bitfusion/provisioner.h"
#include "conformance/runner_conformance.h"
#include "integration/slurm_cluster.h"
#include "integration/sshd_server.h"
#include "process_status.h"
#include "runners/slurm_runner.h"
#include "scoped_env.h"

namespace bitfusion {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// Where the cluster's socket will be, known before it starts: the suite's URIs are made at
// static initialisation (SlurmCluster uses FreshDir("slurm")).
std::string PlannedSocket() {
  return (fs::path(::testing::TempDir()) / ("bf-slurm-" + std::to_string(::getpid())) / "rest" /
          "slurmrestd.sock")
      .string();
}
std::string OutputDir() {
  return (fs::path(::testing::TempDir()) / ("bf-slurm-out-" + std::to_string(::getpid()))).string();
}
std::string UriWith(const std::string& options) {
  return "slurm://" + PlannedSocket() + "?output_dir=" + OutputDir() + "&poll_max=300ms" +
         (options.empty() ? "" : "&" + options);
}

testing::SlurmCluster* g_cluster = nullptr;
testing::SlurmCluster& TheCluster() {
  static testing::SlurmCluster* cluster = g_cluster = new testing::SlurmCluster();
  return *cluster;
}
struct ClusterShutdown : ::testing::Environment {
  void TearDown() override {
    delete g_cluster;
    fs::remove_all(OutputDir());
  }
};
const auto* const kShutdown = ::testing::AddGlobalTestEnvironment(new ClusterShutdown);

std::vector<RunnerCase> Cases() {
  return {RunnerCase{"single_node", UriWith("partition=debug"), "",
                     [] { return TheCluster().error(); }}};
}
INSTANTIATE_TEST_SUITE_P(Slurm, RunnerConformanceTest, ::testing::ValuesIn(Cases()),
                         [](const auto& info) { return info.param.name; });

class SlurmRunnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    BITFUSION_REQUIRE_SERVICE(TheCluster().error().empty(), TheCluster().error());
    runner_ = Runner("partition=debug");
    ASSERT_NE(runner_, nullptr);
  }
  static std::shared_ptr<ContainerRunner> Runner(const std::string& options) {
    auto r = ContainerRunnerFromUri(UriWith(options));
    EXPECT_TRUE(r.ok()) << r.error().ToString();
    return r.ok() ? *r : nullptr;
  }
  // Runs `script` to its end; its stdout lines.
  static std::vector<std::string> Output(ContainerRunner& runner, ContainerSpec spec,
                                         ExitStatus* status = nullptr) {
    auto c = runner.Create(spec);
    EXPECT_TRUE(c.ok()) << c.error().ToString();
    if (!c.ok()) return {};
    Captured got;
    auto sub = (*c)->Logs([&](LogStream s, std::string_view l) { got.Add(s, l); });
    Status started = (*c)->Start();
    EXPECT_TRUE(started.ok()) << started.ToString();
    if (!started.ok()) return {};
    auto exit = (*c)->Wait(DeadlineAfter(60s));
    EXPECT_TRUE(exit.ok()) << exit.error().ToString();
    if (exit.ok() && status != nullptr) *status = *exit;
    std::lock_guard lock(got.mu);
    return got.out;
  }
  static ContainerSpec Sh(const std::string& script) {
    ContainerSpec spec;
    spec.command = {"/bin/sh", "-c", script};
    return spec;
  }
  std::shared_ptr<ContainerRunner> runner_;
};

TEST_F(SlurmRunnerTest, CapabilitiesNameSlurmAndTheNegotiatedVersion) {
  auto caps = runner_->Capabilities();
  ASSERT_TRUE(caps.ok()) << caps.error().ToString();
  EXPECT_EQ(caps->engine, "slurm");
  EXPECT_EQ(caps->api_version, "v0.0.38");
  EXPECT_THAT(caps->version, HasSubstr("22.05"));
  EXPECT_FALSE(caps->images);
  EXPECT_FALSE(caps->exec);
  EXPECT_TRUE(caps->events);
  EXPECT_TRUE(caps->reap);
}

TEST_F(SlurmRunnerTest, ArgumentsArriveVerbatimAndTheJobSeesSlurmVariables) {
  ContainerSpec spec;
  spec.command = {"/bin/sh", "-c",    "printf '%s\\n' \"$@\"; echo \"job=$SLURM_JOB_ID\"",
                  "sh",      "it's",  "a b",
                  "$HOME",   "\"q\"", ";ls"};
  ExitStatus status;
  auto out = Output(*runner_, spec, &status);
  ASSERT_EQ(out.size(), 6u);
  EXPECT_EQ(std::vector<std::string>(out.begin(), out.begin() + 5),
            (std::vector<std::string>{"it's", "a b", "$HOME", "\"q\"", ";ls"}));
  EXPECT_THAT(out[5], ::testing::MatchesRegex("job=[0-9]+"));
  EXPECT_TRUE(status.success());
}

TEST_F(SlurmRunnerTest, OnlyTheSpecEnvironmentAndADefaultPathArePassed) {
  ::setenv("BF_SLURM_SECRET", "not-for-jobs", 1);
  ContainerSpec spec =
      Sh("echo \"path=$PATH\"; echo \"secret=${BF_SLURM_SECRET:-unset}\"; "
         "echo \"mine=$BF_MINE\"");
  spec.env["BF_MINE"] = "x=1 y";
  auto out = Output(*runner_, spec);
  ::unsetenv("BF_SLURM_SECRET");
  EXPECT_EQ(out, (std::vector<std::string>{"path=/usr/local/bin:/usr/bin:/bin", "secret=unset",
                                           "mine=x=1 y"}));
}

TEST_F(SlurmRunnerTest, GpuDeviceRequestBecomesGresAndSetsCudaVisibleDevices) {
  ContainerSpec spec = Sh("echo \"cvd=$CUDA_VISIBLE_DEVICES\"");
  spec.device_requests.push_back(DeviceRequestEntry{"nvidia", 1, {}, {{"gpu"}}, {}});
  auto out = Output(*runner_, spec);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_THAT(out[0], ::testing::MatchesRegex("cvd=[01]"));

  // Both fake GPUs through the URI's default GRES.
  auto two = Runner("partition=debug&gres=gpu:2");
  ASSERT_NE(two, nullptr);
  out = Output(*two, Sh("echo \"cvd=$CUDA_VISIBLE_DEVICES\""));
  EXPECT_EQ(out, (std::vector<std::string>{"cvd=0,1"}));

  // Without GRES the job sees no GPU.
  out = Output(*runner_, Sh("echo \"cvd=${CUDA_VISIBLE_DEVICES:-none}\""));
  EXPECT_EQ(out, (std::vector<std::string>{"cvd=none"}));
}

TEST_F(SlurmRunnerTest, UnknownPartitionIsAClearError) {
  auto runner = Runner("partition=no-such-partition");
  ASSERT_NE(runner, nullptr);
  auto c = runner->Create(Sh("true"));
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  Status s = (*c)->Start();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  EXPECT_THAT(s.message(), HasSubstr("no partition \"no-such-partition\""));
  EXPECT_THAT(s.message(), HasSubstr("2000"));
  EXPECT_EQ((*c)->Wait(DeadlineAfter(1s)).error().code(), StatusCode::kFailedPrecondition);
}

TEST_F(SlurmRunnerTest, UnknownOrTooMuchGresIsAClearError) {
  for (const std::string gres : {"fpga:1", "gpu:5"}) {
    auto runner = Runner("partition=debug&gres=" + gres);
    ASSERT_NE(runner, nullptr);
    auto c = runner->Create(Sh("true"));
    ASSERT_TRUE(c.ok()) << c.error().ToString();
    Status s = (*c)->Start();
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
    EXPECT_THAT(s.message(), HasSubstr("GRES \"" + gres + "\"")) << s.ToString();
    EXPECT_THAT(s.message(), HasSubstr("partition \"debug\"")) << s.ToString();
  }
}

TEST_F(SlurmRunnerTest, UnreachableSocketNamesIt) {
  auto r =
      ContainerRunnerFromUri("slurm://" + OutputDir() + "/no-such.sock?output_dir=" + OutputDir());
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  auto caps = (*r)->Capabilities();
  ASSERT_FALSE(caps.ok());
  EXPECT_THAT(caps.error().message(), HasSubstr(OutputDir() + "/no-such.sock"));
  auto c = (*r)->Create(Sh("true"));
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  Status s = (*c)->Start();
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr("no-such.sock"));
}

TEST_F(SlurmRunnerTest, JwtOverTcpRunsJobsAsTheTokensUser) {
  BITFUSION_REQUIRE_SERVICE(TheCluster().jwt_error().empty(), TheCluster().jwt_error());
  const std::string token = TheCluster().Token("root");
  ASSERT_FALSE(token.empty());
  testing::ScopedEnv env({{"SLURM_JWT", token.c_str()}});
  const std::string uri = "slurm://root@127.0.0.1:" + std::to_string(TheCluster().jwt_port()) +
                          "?partition=debug&poll_max=300ms&output_dir=" + OutputDir();
  auto runner = ContainerRunnerFromUri(uri);
  ASSERT_TRUE(runner.ok()) << runner.error().ToString();
  auto caps = (*runner)->Capabilities();
  ASSERT_TRUE(caps.ok()) << caps.error().ToString();
  EXPECT_EQ(caps->api_version, "v0.0.38");
  // Over the unix socket (rest_auth/local) jobs run as slurmrestd's user; with a token, as the
  // token's.
  EXPECT_EQ(Output(**runner, Sh("echo \"via jwt as $(id -un)\"")),
            (std::vector<std::string>{"via jwt as root"}));
  EXPECT_EQ(Output(*runner_, Sh("echo \"via socket as $(id -un)\"")),
            (std::vector<std::string>{"via socket as slurm"}));
}

TEST_F(SlurmRunnerTest, ABadJwtIsAClearErrorThatDoesNotShowTheToken) {
  BITFUSION_REQUIRE_SERVICE(TheCluster().jwt_error().empty(), TheCluster().jwt_error());
  const std::string bad = "x" + TheCluster().Token("root");
  testing::ScopedEnv env({{"SLURM_JWT", bad.c_str()}});
  auto runner =
      ContainerRunnerFromUri("slurm://root@127.0.0.1:" + std::to_string(TheCluster().jwt_port()) +
                             "?partition=debug&output_dir=" + OutputDir());
  ASSERT_TRUE(runner.ok()) << runner.error().ToString();
  auto caps = (*runner)->Capabilities();
  ASSERT_FALSE(caps.ok());
  EXPECT_THAT(caps.error().message(), HasSubstr("JWT"));
  EXPECT_THAT(caps.error().message(), ::testing::Not(HasSubstr(bad.substr(1, 40))));
  auto c = (*runner)->Create(Sh("true"));
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  Status s = (*c)->Start();
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr("SLURM_JWT"));
  EXPECT_THAT(s.message(), ::testing::Not(HasSubstr(bad.substr(1, 40))));
}

TEST_F(SlurmRunnerTest, ImagesAndContainerOnlyFieldsAreRefused) {
  ContainerSpec spec = Sh("true");
  spec.image = "busybox:latest";
  auto c = runner_->Create(spec);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(c.error().message(), HasSubstr("no images"));
  EXPECT_THAT(c.error().message(), HasSubstr("busybox:latest"));
  EXPECT_EQ(runner_->EnsureImage("busybox:latest", DeadlineAfter(1s)).code(),
            StatusCode::kInvalidArgument);
  EXPECT_TRUE(runner_->EnsureImage("", DeadlineAfter(1s)).ok());
  spec = Sh("true");
  spec.mounts.push_back(Mount{"bind", "/tmp", "/data", false, 0});
  spec.user = "nobody";
  c = runner_->Create(spec);
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.error().message(), HasSubstr("mounts"));
  EXPECT_THAT(c.error().message(), HasSubstr("user"));
}

TEST_F(SlurmRunnerTest, OwnershipLabelsTravelInTheJobCommentAndAnotherRunnerFindsThem) {
  ContainerSpec spec = Sh("sleep 60");
  const std::string mark = UniqueName("owned");
  spec.labels["bf-test"] = mark;
  auto c = runner_->Create(spec);
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  ASSERT_TRUE((*c)->Start().ok());
  // A second runner has no handle: what it lists comes from slurmrestd.
  auto other = Runner("partition=debug");
  ASSERT_NE(other, nullptr);
  auto listed = other->ListContainers({{"bf-test", mark}});
  ASSERT_TRUE(listed.ok()) << listed.error().ToString();
  ASSERT_EQ(listed->size(), 1u);
  const ContainerInfo& info = listed->front();
  EXPECT_EQ(info.id, (*c)->id());
  EXPECT_EQ(info.labels.at(kLabelCreator), "bitfusion");
  EXPECT_EQ(info.labels.at(kLabelPid), std::to_string(::getpid()));
  EXPECT_FALSE(info.labels.at(kLabelExpires).empty());
  EXPECT_FALSE(info.labels.at("slurm.job_id").empty());
  // Jobs of a live creator are left alone.
  auto report = other->Reap(ReapPolicy{});
  ASSERT_TRUE(report.ok()) << report.error().ToString();
  for (const auto& line : report->containers)
    EXPECT_THAT(line, ::testing::Not(HasSubstr((*c)->id())));
  ASSERT_TRUE((*c)->Kill(SIGKILL).ok());
}

TEST_F(SlurmRunnerTest, ReapCancelsTheJobOfAKilledCreatorAndNothingElse) {
  const std::string mark = UniqueName("orphan");
  // A job that is not bitfusion's: no comment.
  const std::string foreign_script = OutputDir() + "/foreign.sh";
  fs::create_directories(OutputDir());
  { std::ofstream(foreign_script) << "#!/bin/sh\nsleep 120\n"; }
  FILE* sb = ::popen(
      (TheCluster().Env() + "sbatch --parsable -o /dev/null " + foreign_script).c_str(), "r");
  ASSERT_NE(sb, nullptr);
  char buf[64] = {};
  ASSERT_NE(std::fgets(buf, sizeof buf, sb), nullptr);
  ::pclose(sb);
  const std::string foreign = std::string(buf).substr(0, std::string(buf).find_first_of("\n;"));

  // The creator: a separate process, killed with SIGKILL after it has submitted its job.
  const std::string creator_uri = UriWith("partition=debug&ttl=1s");  // names this process
  int out[2];
  ASSERT_EQ(::pipe(out), 0);
  const pid_t creator = ::fork();
  if (creator == 0) {
    ::dup2(out[1], 1);
    ::close(out[0]);
    ::execl(BITFUSION_SLURM_RUNNER_CREATOR, "slurm_runner_creator", creator_uri.c_str(),
            mark.c_str(), nullptr);
    ::_exit(127);
  }
  ::close(out[1]);
  std::string id;
  char ch = 0;
  while (::read(out[0], &ch, 1) == 1 && ch != '\n') id += ch;
  ::close(out[0]);
  ASSERT_FALSE(id.empty()) << "the creator printed no job";
  ::kill(creator, SIGKILL);
  ::waitpid(creator, nullptr, 0);

  auto listed = runner_->ListContainers({{"bf-creator-test", mark}});
  ASSERT_TRUE(listed.ok()) << listed.error().ToString();
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ(listed->front().id, id);

  ReapPolicy dry;
  dry.dry_run = true;
  auto preview = runner_->Reap(dry);
  ASSERT_TRUE(preview.ok()) << preview.error().ToString();
  ASSERT_EQ(preview->containers.size(), 1u) << ::testing::PrintToString(preview->containers);
  EXPECT_THAT(preview->containers[0], HasSubstr(id));
  EXPECT_THAT(preview->containers[0], ::testing::AnyOf(HasSubstr("gone"), HasSubstr("expired")));

  auto report = runner_->Reap(ReapPolicy{});
  ASSERT_TRUE(report.ok()) << report.error().ToString();
  ASSERT_EQ(report->containers.size(), 1u) << ::testing::PrintToString(report->containers);
  EXPECT_THAT(report->containers[0], HasSubstr(id));
  EXPECT_TRUE(report->errors.empty()) << ::testing::PrintToString(report->errors);

  // Cancelled; the foreign job still runs.
  std::string state;
  for (int i = 0; i < 100; ++i) {
    listed = runner_->ListContainers({{"bf-creator-test", mark}});
    ASSERT_TRUE(listed.ok());
    if (listed->size() == 1 && listed->front().state == "exited") break;
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ(listed->front().state, "exited");
  EXPECT_EQ(listed->front().labels.at("slurm.state"), "CANCELLED");
  FILE* sq = ::popen((TheCluster().Env() + "squeue -h -o %T -j " + foreign).c_str(), "r");
  ASSERT_NE(sq, nullptr);
  char st[64] = {};
  std::fgets(st, sizeof st, sq);
  ::pclose(sq);
  EXPECT_THAT(std::string(st), ::testing::AnyOf(HasSubstr("RUNNING"), HasSubstr("PENDING")));
  std::system((TheCluster().Env() + "scancel " + foreign).c_str());
}

TEST_F(SlurmRunnerTest, ExpiredJobsAreReapedEvenWithALiveCreator) {
  auto short_lived = Runner("partition=debug&ttl=1s");
  ASSERT_NE(short_lived, nullptr);
  ContainerSpec spec = Sh("sleep 60");
  const std::string mark = UniqueName("expiring");
  spec.labels["bf-test"] = mark;
  auto c = short_lived->Create(spec);
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  ASSERT_TRUE((*c)->Start().ok());
  std::this_thread::sleep_for(2500ms);
  ReapPolicy policy;
  policy.dead_creators = false;
  auto report = runner_->Reap(policy);
  ASSERT_TRUE(report.ok()) << report.error().ToString();
  ASSERT_EQ(report->containers.size(), 1u) << ::testing::PrintToString(report->containers);
  EXPECT_THAT(report->containers[0], HasSubstr((*c)->id()));
  EXPECT_THAT(report->containers[0], HasSubstr("expired"));
  auto exit = (*c)->Wait(DeadlineAfter(30s));
  ASSERT_TRUE(exit.ok()) << exit.error().ToString();
  EXPECT_FALSE(exit->success());
  // Cancelled by another runner: Slurm's cancel sends SIGTERM first, which ends `sleep`.
  EXPECT_TRUE(exit->signal == SIGTERM || exit->signal == SIGKILL) << exit->signal;
  auto info = (*c)->Inspect();
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->labels.at("slurm.state"), "CANCELLED");
}

TEST_F(SlurmRunnerTest, ManyRunningJobsShareOneWatcherThread) {
  // The client is made and the version negotiated before counting.
  ASSERT_TRUE(runner_->Capabilities().ok());
  constexpr int kJobs = 8;
  std::vector<std::unique_ptr<Container>> jobs;
  for (int i = 0; i < kJobs; ++i) {
    auto c = runner_->Create(Sh("echo up; sleep 3; echo done"));
    ASSERT_TRUE(c.ok()) << c.error().ToString();
    jobs.push_back(std::move(*c));
  }
  const long before = testing::ThreadsOfThisProcess();
  for (auto& c : jobs) ASSERT_TRUE(c->Start().ok());
  // Once every job runs (16 CPUs, one each), each is being followed.
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  int running = 0;
  while (running < kJobs && std::chrono::steady_clock::now() < deadline) {
    running = 0;
    for (auto& c : jobs) {
      auto info = c->Inspect();
      if (info.ok() && info->state == "running") ++running;
    }
    if (running < kJobs) std::this_thread::sleep_for(50ms);
  }
  ASSERT_EQ(running, kJobs);
  const long during = testing::ThreadsOfThisProcess();
  RecordProperty("threads_before", before);
  RecordProperty("threads_during", during);
  EXPECT_LE(during - before, 2) << before << " threads before " << kJobs << " jobs, " << during
                                << " while they run: not one watcher for all of them";
  for (auto& c : jobs) {
    auto exit = c->Wait(DeadlineAfter(60s));
    ASSERT_TRUE(exit.ok()) << exit.error().ToString();
    EXPECT_TRUE(exit->success());
  }
}

TEST_F(SlurmRunnerTest, StopOfAPendingJobCancelsIt) {
  // The first job takes every CPU of the node, so the second stays pending.
  ContainerSpec hog = Sh("sleep 60");
  hog.cpus = 16;
  auto first = runner_->Create(hog);
  ASSERT_TRUE(first.ok()) << first.error().ToString();
  ASSERT_TRUE((*first)->Start().ok());
  auto second = runner_->Create(Sh("echo ran"));
  ASSERT_TRUE(second.ok()) << second.error().ToString();
  ASSERT_TRUE((*second)->Start().ok());
  std::this_thread::sleep_for(1s);
  auto info = (*second)->Inspect();
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->labels.at("slurm.state"), "PENDING");
  ASSERT_TRUE((*second)->Stop(2s).ok());
  auto exit = (*second)->Wait(DeadlineAfter(30s));
  ASSERT_TRUE(exit.ok()) << exit.error().ToString();
  EXPECT_FALSE(exit->success());
  EXPECT_EQ(exit->signal, SIGTERM) << "the signal Stop asked for";
  info = (*second)->Inspect();
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->labels.at("slurm.state"), "CANCELLED");
  Captured got;
  auto sub = (*second)->Logs([&](LogStream s, std::string_view l) { got.Add(s, l); });
  EXPECT_TRUE(got.out.empty()) << "it never ran";
  ASSERT_TRUE((*first)->Kill(SIGKILL).ok());
}

TEST_F(SlurmRunnerTest, NodelistPinsJobsToTheNodeAndAnUnknownNodeIsAClearError) {
  auto pinned = Runner("partition=debug&nodelist=" + TheCluster().node());
  ASSERT_NE(pinned, nullptr);
  ExitStatus status;
  EXPECT_EQ(Output(*pinned, Sh("echo $SLURM_JOB_NODELIST"), &status),
            (std::vector<std::string>{TheCluster().node()}));
  EXPECT_TRUE(status.success());
  auto nowhere = Runner("partition=debug&nodelist=nosuchnode");
  ASSERT_NE(nowhere, nullptr);
  auto c = nowhere->Create(Sh("true"));
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  Status started = (*c)->Start();
  ASSERT_FALSE(started.ok());
  EXPECT_EQ(started.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(started.message(), HasSubstr("no node \"nosuchnode\""));
}

// slurm:// as a provisioner on the real cluster: its partition is a type with the node's
// figures (16 CPUs, 4000 MB, 2 fake GPUs from gres.conf), its node a machine.
TEST_F(SlurmRunnerTest, AsAProvisionerItsPartitionIsATypeAndItsNodeAMachine) {
  auto p = ProvisionerFromUri(UriWith(""));
  ASSERT_TRUE(p.ok()) << p.error().ToString();
  auto types = (*p)->Types();
  ASSERT_TRUE(types.ok()) << types.error().ToString();
  ASSERT_EQ(types->size(), 1u);
  EXPECT_EQ((*types)[0].name, "debug");
  EXPECT_EQ((*types)[0].vcpus, 16);
  EXPECT_EQ((*types)[0].memory_bytes, 4000ull << 20);
  ASSERT_EQ((*types)[0].accelerators.size(), 1u);
  EXPECT_EQ((*types)[0].accelerators[0].count, 2);
  EXPECT_EQ((*types)[0].accelerators[0].model, "fake");

  MachineRequest request;  // the default partition
  auto got = (*p)->Create(request);
  ASSERT_TRUE(got.ok()) << got.error().ToString();
  ASSERT_EQ(got->size(), 1u);
  EXPECT_EQ((*got)[0].id, TheCluster().node());
  EXPECT_EQ((*got)[0].type, "debug");
  EXPECT_EQ((*got)[0].address, "127.0.0.1");
  auto again = (*p)->Create(request);
  ASSERT_FALSE(again.ok());
  EXPECT_THAT(again.error().message(), HasSubstr("already one of this plan's machines"));
  auto ready = (*p)->WaitReady(TheCluster().node(), DeadlineAfter(10s));
  ASSERT_TRUE(ready.ok()) << ready.error().ToString();
  EXPECT_EQ(ready->state, "running");
  EXPECT_TRUE((*p)->Destroy({TheCluster().node()}).ok());
  request.requirements.accelerator_kind = "gpu";
  request.requirements.accelerator_count = 3;
  auto too_many = (*p)->Create(request);
  ASSERT_FALSE(too_many.ok());
  EXPECT_EQ(too_many.error().code(), StatusCode::kResourceExhausted);
  EXPECT_THAT(too_many.error().message(), HasSubstr("0 usable node(s)"));
}

// A plan group on the partition: its benchmark runs as a job pinned to the node, and the record
// says where it ran. A partition the cluster lacks fails before anything runs, and so does a
// runner Slurm cannot be.
TEST_F(SlurmRunnerTest, APlanGroupOnAPartitionRunsItsBenchmarksAsJobsOnItsNodes) {
  auto plan = ParsePlan(R"({"name": "on-slurm",
    "machines": {"cluster": {"provisioner": ")" +
                            UriWith("") + R"(", "type": "debug", "count": 1}},
    "benchmarks": [{"name": "where", "repetitions": 2, "warmup": 0,
      "command": ["sh", "-c", "echo BITFUSION_RESULT cpus $SLURM_CPUS_ON_NODE n; echo $SLURM_JOB_NODELIST"]}]})",
                        "slurm-plan.json");
  ASSERT_TRUE(plan.ok()) << plan.error().ToString();
  auto result = RunPlan(*plan, {});
  ASSERT_TRUE(result.ok()) << result.error().ToString();
  EXPECT_EQ(result->failed_runs, 0);
  ASSERT_EQ(result->runs.size(), 2u);
  for (const auto& r : result->runs) {
    EXPECT_EQ(r.status, kRunOk) << r.error;
    EXPECT_EQ(r.machine.provider, "slurm");
    EXPECT_EQ(r.machine.id, TheCluster().node());
    EXPECT_EQ(r.labels.at("machine"), "cluster-1");
    EXPECT_THAT(r.runner, HasSubstr("nodelist=" + TheCluster().node()));
  }
  const auto cpus = std::find_if(result->summary.begin(), result->summary.end(),
                                 [](const auto& m) { return m.metric == "cpus"; });
  ASSERT_NE(cpus, result->summary.end()) << "the job's result line was read";
  EXPECT_GE(cpus->stats.min, 1);  // SLURM_CPUS_ON_NODE: set only inside a Slurm job

  auto missing = ParsePlan(R"({"name": "nowhere",
    "machines": {"cluster": {"provisioner": ")" +
                               UriWith("") + R"(", "type": "gpu-a100", "count": 1}},
    "benchmarks": [{"name": "b", "command": ["true"]}]})",
                           "missing.json");
  ASSERT_TRUE(missing.ok()) << missing.error().ToString();
  auto refused = RunPlan(*missing, {});
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(refused.error().message(), HasSubstr("no type \"gpu-a100\""));
  EXPECT_THAT(refused.error().message(), HasSubstr("debug"));

  auto docker = ParsePlan(R"({"name": "containers", "runner": "docker://",
    "machines": {"cluster": {"provisioner": ")" +
                              UriWith("") + R"(", "count": 1}},
    "benchmarks": [{"name": "b", "image": "busybox", "command": ["true"]}]})",
                          "docker.json");
  ASSERT_TRUE(docker.ok()) << docker.error().ToString();
  auto not_slurm = RunPlan(*docker, {});
  ASSERT_FALSE(not_slurm.ok());
  EXPECT_THAT(not_slurm.error().message(), HasSubstr("Slurm runs host commands"));
}

// A Slurm group whose provisioner says how to log in to its nodes (?ssh_user=) has them
// sampled by the plan's "host" source, on this host's timeline: a probe started there over SSH
// (here the node's NodeAddr 127.0.0.1, where a test sshd listens). The benchmarks still run as
// jobs, and each run's record carries the node's clock offset.
TEST_F(SlurmRunnerTest, APlanSamplesItsSlurmNodesWhenItsProvisionerLogsInToThem) {
  const fs::path dir = testing::FreshDir("slurm-ssh");
  testing::SshClientFiles client;
  std::string why = testing::IsRoot() ? client.Make(dir) : "sshd for a root login needs root";
  std::unique_ptr<testing::TestSshd> node;
  if (why.empty()) {
    node = std::make_unique<testing::TestSshd>(client, "node", "127.0.0.1", testing::FreePort());
    why = node->error();
  }
  BITFUSION_REQUIRE_SERVICE(why.empty(), why);
  const std::string probe = std::string(BITFUSION_BIN_DIR) + "/bitfusion-probe";
  const testing::ScopedEnv env({{"BITFUSION_PROBE", probe.c_str()}});
  const fs::path samples = dir / "samples.jsonl";
  const std::string provisioner = UriWith(
      "ssh_user=root&ssh_port=" + std::to_string(node->port()) + "&ssh_key=" + client.key.string() +
      "&ssh_config=" + client.config.string() + "&connect_timeout=5");
  auto plan = ParsePlan(R"({"name": "sampled-slurm",
    "machines": {"cluster": {"provisioner": ")" +
                            provisioner + R"(", "type": "debug", "count": 1}},
    "metrics": {"sources": ["host"], "interval": "50ms"},
    "sinks": ["jsonl://)" + samples.string() +
                            R"("],
    "benchmarks": [{"name": "nap", "repetitions": 2, "warmup": 0,
      "command": ["sh", "-c", "sleep 1; echo BITFUSION_RESULT n $SLURM_JOB_ID id"]}]})",
                        "sampled-slurm.json");
  ASSERT_TRUE(plan.ok()) << plan.error().ToString();
  auto result = RunPlan(*plan, {});
  ASSERT_TRUE(result.ok()) << result.error().ToString();
  EXPECT_EQ(result->failed_runs, 0);
  ASSERT_EQ(result->runs.size(), 2u);
  for (const auto& r : result->runs) {
    EXPECT_EQ(r.status, kRunOk) << r.error;
    EXPECT_THAT(r.runner, HasSubstr("nodelist=" + TheCluster().node()));
    EXPECT_THAT(r.runner, ::testing::Not(HasSubstr("ssh_")));
    ASSERT_TRUE(r.labels.count("clock_offset_ns") && r.labels.count("clock_uncertainty_ns"))
        << r.run_id;
    // The node is this host: the true offset is 0, within the estimate's bound.
    EXPECT_LE(std::llabs(std::stoll(r.labels.at("clock_offset_ns"))),
              std::stoll(r.labels.at("clock_uncertainty_ns")));
  }
  EXPECT_GE(node->Logins(), 1) << "the probe was started over SSH on the node";
  std::map<std::string, int> cpu_samples;  // by run
  std::ifstream in(samples);
  for (std::string line; std::getline(in, line);) {
    if (line.find("\"metric\":\"cpu.user\"") == std::string::npos) continue;
    EXPECT_NE(line.find("\"machine\":\"cluster-1\""), std::string::npos) << line;
    EXPECT_NE(line.find("\"view\":\"host\""), std::string::npos) << line;
    for (const auto& r : result->runs) {
      if (line.find(r.run_id) != std::string::npos) ++cpu_samples[r.run_id];
    }
  }
  ASSERT_EQ(cpu_samples.size(), 2u) << "each run carries its node's samples; " << samples;
  for (const auto& [id, n] : cpu_samples) EXPECT_GE(n, 5) << id;
  node.reset();
  std::error_code ec;
  fs::remove_all(dir, ec);
}

}  // namespace
}  // namespace bitfusion
