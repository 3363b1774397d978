// Plans on machine groups without a remote host: the "machines" and "on" fields, the runner a
// remote machine gets, a group on this host (local://) run end to end, and a plan whose
// hardware no provisioner offers failing before anything is made. Remote machines (static://
// hosts reached over SSH) are exercised in tests/integration/plan_fleet_test.cc.
#include "experiment/plan_machines.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>

#include "bitfusion/device_allocator.h"
#include "bitfusion/experiment.h"
#include "bitfusion/provisioner.h"
#include "bitfusion/registry.h"
#include "runners/docker_runner.h"

namespace bitfusion {
namespace {

namespace fs = std::filesystem;
using internal::RunnerUriFor;
using namespace std::chrono_literals;

std::string ErrorOf(std::string_view json) {
  auto plan = ParsePlan(json, "plan.json");
  EXPECT_FALSE(plan.ok()) << json;
  return plan.ok() ? "" : plan.error().message();
}

TEST(PlanMachinesTest, GroupsAndWhereBenchmarksRunAreRead) {
  auto plan = ParsePlan(R"({"name": "fleet",
    "machines": {
      "office": {"provisioner": "static://inventory.json", "count": 2},
      "gpu": {"provisioner": "aws://us-east-1", "gpu": "nvidia:1", "count": 4, "ttl": "2h",
              "zone": "us-east-1a", "image": "ami-1"},
      "big": {"provisioner": "aws://us-east-1", "min_vcpus": 64, "min_memory": "256GiB",
              "arch": "arm64"},
      "typed": {"provisioner": "softlayer://dal13", "type": "B1_4X8X100"}},
    "runner": "docker",
    "benchmarks": [{"name": "stream", "image": "bitfusion/quickstart:0.1", "program": "bf-stream",
                    "on": ["office", "gpu"]},
                   {"name": "all", "command": ["true"]},
                   {"name": "one", "command": ["true"], "on": "big"}]})",
                        "plan.json");
  ASSERT_TRUE(plan.ok()) << plan.error().ToString();
  ASSERT_EQ(plan->machines.size(), 4u);
  // In name order.
  EXPECT_EQ(plan->machines[0].name, "big");
  EXPECT_EQ(plan->machines[0].requirements.min_vcpus, 64);
  EXPECT_EQ(plan->machines[0].requirements.min_memory_bytes, 256ull << 30);
  EXPECT_EQ(plan->machines[0].requirements.cpu_architecture, "arm64");
  const MachineGroupSpec& gpu = plan->machines[1];
  EXPECT_EQ(gpu.name, "gpu");
  EXPECT_EQ(gpu.count, 4);
  EXPECT_EQ(gpu.ttl, std::chrono::hours(2));
  EXPECT_EQ(gpu.requirements.accelerator_kind, "gpu");
  EXPECT_EQ(gpu.requirements.accelerator_vendor, "nvidia");
  EXPECT_EQ(gpu.requirements.accelerator_count, 1);
  EXPECT_EQ(gpu.zone, "us-east-1a");
  EXPECT_EQ(gpu.image, "ami-1");
  EXPECT_EQ(plan->machines[2].name, "office");
  EXPECT_EQ(plan->machines[2].count, 2);
  EXPECT_EQ(plan->machines[2].ttl, std::chrono::hours(4)) << "the default expiry";
  EXPECT_EQ(plan->machines[3].type, "B1_4X8X100");
  EXPECT_EQ(plan->benchmarks[0].on, (std::vector<std::string>{"office", "gpu"}));
  EXPECT_TRUE(plan->benchmarks[1].on.empty());
  EXPECT_EQ(plan->benchmarks[2].on, (std::vector<std::string>{"big"}));
}

TEST(PlanMachinesTest, BadGroupsAreNamedWithTheirField) {
  const std::string ok_benchmarks = R"("benchmarks": [{"command": ["true"]}])";
  auto plan = [&](const std::string& machines) {
    return R"({"machines": )" + machines + ", " + ok_benchmarks + "}";
  };
  EXPECT_NE(ErrorOf(plan(R"({"a": {"count": 1}})")).find("machines.a.provisioner: missing"),
            std::string::npos);
  EXPECT_NE(ErrorOf(plan(R"({"a": {"provisioner": "local://", "cuont": 1}})"))
                .find("machines.a.cuont: unknown field"),
            std::string::npos);
  EXPECT_NE(ErrorOf(plan(R"({"a": {"provisioner": "local://", "gpu": "a100:0"}})"))
                .find("machines.a.gpu a100:0: COUNT must be a whole number 1..64"),
            std::string::npos);
  EXPECT_NE(ErrorOf(plan(R"({"a": {"provisioner": "local://", "gpu": "x", "fpga": "y"}})"))
                .find("not both"),
            std::string::npos);
  EXPECT_NE(ErrorOf(plan(R"({"a": {"provisioner": "local://", "type": "t", "min_vcpus": 2}})"))
                .find("machines.a: give a \"type\" or requirements"),
            std::string::npos);
  EXPECT_NE(ErrorOf(plan(R"({"a b": {"provisioner": "local://"}})")).find("machines.a b: a group"),
            std::string::npos);
  EXPECT_NE(
      ErrorOf(plan(R"({"a": {"provisioner": "local://", "count": 0}})")).find("machines.a.count"),
      std::string::npos);
  EXPECT_NE(ErrorOf(plan(R"({"a": {"provisioner": "local://", "ttl": "10s"}})"))
                .find("machines.a.ttl: at least 1m"),
            std::string::npos);
  EXPECT_NE(ErrorOf(plan("{}")).find("machines: expected an object of machine groups"),
            std::string::npos);
  EXPECT_NE(
      ErrorOf(R"({"machines": {"a": {"provisioner": "local://"}}, "provisioner": "local://",)" +
              ok_benchmarks + "}")
          .find("not both"),
      std::string::npos);
  EXPECT_NE(ErrorOf(R"({"machines": {"a": {"provisioner": "local://"}},
                        "benchmarks": [{"command": ["true"], "on": ["a", "b"]}]})")
                .find("benchmarks[0].on[1]: no machine group \"b\"; groups: a"),
            std::string::npos);
  EXPECT_NE(ErrorOf(R"({"benchmarks": [{"command": ["true"], "on": "a"}]})")
                .find("benchmarks[0].on[0]: the plan has no \"machines\" groups"),
            std::string::npos);
}

// Every SSH option a static:// provisioner passes on is one its docker machines' engine takes:
// a plan's runner URI that docker+ssh:// refused would fail the plan before it started.
TEST(PlanMachinesTest, ADockerMachineTakesEverySshOptionOfItsProvisioner) {
  const fs::path dir = fs::path(::testing::TempDir()) / ("bf-pm-ssh-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "config") << "Host *\n";
  std::ofstream(dir / "key") << "not a key\n";
  MachineGroupSpec group;
  group.name = "office";
  group.provisioner = "static:///etc/inv.json?ssh_config=" + (dir / "config").string() +
                      "&connect_timeout=5&ssh_option=Ciphers%3Daes128-ctr&runtime_dir=%2Frun%2Fbf";
  MachineInfo m;
  m.id = "lab-1";
  m.provider = "static";
  m.ssh.host = "10.0.0.5";
  m.ssh.user = "bench";
  m.ssh.key_name = (dir / "key").string();
  auto docker = RunnerUriFor("docker://", group, m);
  ASSERT_TRUE(docker.ok()) << docker.error().ToString();
  auto options = DockerRunnerOptions::FromUri(*Uri::Parse(*docker));
  ASSERT_TRUE(options.ok()) << *docker << ": " << options.error().ToString();
  EXPECT_EQ(options->ssh.config_file, (dir / "config").string());
  EXPECT_EQ(options->ssh.identity_file, (dir / "key").string());
  EXPECT_EQ(options->ssh.options, std::vector<std::string>{"Ciphers=aes128-ctr"});
  EXPECT_EQ(options->ssh.runtime_dir, "/run/bf");
  EXPECT_EQ(options->connect_timeout, std::chrono::seconds(5));
  fs::remove_all(dir);
}

TEST(PlanMachinesTest, ARemoteMachineIsReachedByThePlansRunnerOverSsh) {
  MachineGroupSpec group;
  group.name = "office";
  group.provisioner = "static:///etc/inv.json?ssh_config=/tmp/ssh%20cfg&lease_dir=/tmp/l";
  MachineInfo m;
  m.id = "lab-1";
  m.provider = "static";
  m.ssh.host = "10.0.0.5";
  m.ssh.port = 2222;
  m.ssh.user = "bench";
  auto uri = RunnerUriFor("process://", group, m);
  ASSERT_TRUE(uri.ok()) << uri.error().ToString();
  EXPECT_EQ(*uri, "process+ssh://bench@10.0.0.5:2222?ssh_config=%2Ftmp%2Fssh%20cfg");
  m.ssh.key_name = "/keys/lab 1";
  EXPECT_EQ(
      *RunnerUriFor("process://", group, m),
      "process+ssh://bench@10.0.0.5:2222?ssh_config=%2Ftmp%2Fssh%20cfg&identity=%2Fkeys%2Flab%201");
  // The provisioner's other SSH options too: the same way in, so one master serves all.
  group.provisioner += "&connect_timeout=5&ssh_option=Ciphers%3Daes128-ctr";
  EXPECT_EQ(*RunnerUriFor("process://", group, m),
            "process+ssh://bench@10.0.0.5:2222?ssh_config=%2Ftmp%2Fssh%20cfg&connect_timeout=5"
            "&ssh_option=Ciphers%3Daes128-ctr&identity=%2Fkeys%2Flab%201");
  m.ssh.key_name = "team-key";  // a cloud's key pair: not a file
  m.ssh.port = 22;
  m.ssh.user.clear();
  group.provisioner = "aws://us-east-1";
  EXPECT_EQ(*RunnerUriFor("docker://", group, m), "docker+ssh://10.0.0.5");
  m.ssh.host = "fd00::5";
  EXPECT_EQ(*RunnerUriFor("docker", group, m), "docker+ssh://[fd00::5]");
  // This host: the runner as the plan names it.
  MachineInfo here;
  here.provider = "local";
  EXPECT_EQ(*RunnerUriFor("docker+tls://engine:2376", group, here), "docker+tls://engine:2376");
  // A runner bound to one engine cannot follow the plan elsewhere; nor can a machine without
  // an address.
  auto bound = RunnerUriFor("docker+tls://engine:2376", group, m);
  ASSERT_FALSE(bound.ok());
  EXPECT_EQ(bound.error().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bound.error().message().find("reaches only its own engine"), std::string::npos);
  m.ssh.host.clear();
  auto unreachable = RunnerUriFor("process://", group, m);
  ASSERT_FALSE(unreachable.ok());
  EXPECT_NE(unreachable.error().message().find("machine lab-1 of group office (static) has no "
                                               "SSH address"),
            std::string::npos);
}

// Every plan in examples/specs reads, and the fleet ones have the groups their README names.
// A Slurm node runs the plan's process:// benchmarks as jobs of the group's own slurm:// URI,
// pinned to it (a partition or nodelist in the group's URI is replaced, not doubled).
TEST(PlanMachinesTest, ASlurmNodeRunsThePlansCommandsAsJobsPinnedToIt) {
  MachineGroupSpec group;
  group.name = "cluster";
  group.provisioner = "slurm:///run/slurmrestd.sock?partition=old&output_dir=/shared/out";
  MachineInfo m;
  m.id = "node7";
  m.provider = "slurm";
  m.type = "gpu";
  auto uri = RunnerUriFor("process://", group, m);
  ASSERT_TRUE(uri.ok()) << uri.error().ToString();
  EXPECT_EQ(*uri,
            "slurm:///run/slurmrestd.sock?output_dir=/shared/out&partition=gpu"
            "&nodelist=node7");
  auto docker = RunnerUriFor("docker://", group, m);
  ASSERT_FALSE(docker.ok());
  EXPECT_EQ(docker.error().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(docker.error().message().find("Slurm runs host commands"), std::string::npos);
  // The provisioner's keys for logging in to its nodes stay out of the runner's URI, and give
  // the node's host source the same way in.
  group.provisioner += "&ssh_user=bench&ssh_config=/etc/bf.conf&connect_timeout=3";
  m.ssh.host = "10.1.0.7";
  m.ssh.user = "bench";
  m.ssh.key_name = "/keys/bench";
  EXPECT_EQ(*RunnerUriFor("process://", group, m),
            "slurm:///run/slurmrestd.sock?output_dir=/shared/out&partition=gpu"
            "&nodelist=node7");
  // The GPUs the group asks its nodes for, each job asks for too (by GRES type when named).
  group.requirements.accelerator_kind = "gpu";
  group.requirements.accelerator_count = 2;
  EXPECT_EQ(*RunnerUriFor("process://", group, m),
            "slurm:///run/slurmrestd.sock?output_dir=/shared/out&partition=gpu"
            "&nodelist=node7&gres=gpu:2");
  group.requirements.accelerator_model = "a100";
  EXPECT_NE(RunnerUriFor("process://", group, m)->find("&gres=gpu:a100:2"), std::string::npos);
  group.requirements = {};
  EXPECT_EQ(*internal::HostSourceUriFor(group, m, "cluster-1"),
            "host+ssh://bench@10.1.0.7?ssh_config=%2Fetc%2Fbf.conf&connect_timeout=3&identity=%"
            "2Fkeys%2Fbench&machine=cluster-1");
}

// A remote machine's device allocator is the plan's, read there over SSH with the runner's login.
TEST(PlanMachinesTest, ARemoteMachinesDevicesAreReadThereWithTheSameLogin) {
  MachineGroupSpec group;
  group.name = "lab";
  group.provisioner = "static:///etc/inv.json?ssh_config=/etc/bf.conf";
  MachineInfo m;
  m.id = "gpu1";
  m.provider = "static";
  m.ssh.host = "10.0.0.9";
  m.ssh.user = "bench";
  m.ssh.port = 2222;
  EXPECT_EQ(*internal::DeviceAllocatorUriFor("local://", group, m),
            "sysfs+ssh://bench@10.0.0.9:2222?ssh_config=%2Fetc%2Fbf.conf");
  EXPECT_EQ(
      *internal::DeviceAllocatorUriFor("sysfs:///srv/trees/dgx", group, m),
      "sysfs+ssh://bench@10.0.0.9:2222?ssh_config=%2Fetc%2Fbf.conf&root=%2Fsrv%2Ftrees%2Fdgx");
  EXPECT_EQ(*internal::DeviceAllocatorUriFor("null://", group, m), "null://");
  auto other = internal::DeviceAllocatorUriFor("sysfs+ssh://x@y", group, m);
  ASSERT_FALSE(other.ok());
  EXPECT_NE(other.error().message().find("reads this host only"), std::string::npos);
  for (const std::string bad :
       {"sysfs+ssh://u@h?root=relative", "sysfs+ssh://u@h?colour=red", "sysfs+ssh:///no/host"}) {
    auto made = DeviceAllocatorFromUri(bad);
    ASSERT_FALSE(made.ok()) << bad;
    EXPECT_EQ(made.error().code(), StatusCode::kInvalidArgument) << made.error().ToString();
  }
}

TEST(PlanMachinesTest, TheExamplePlansRead) {
  const std::filesystem::path specs =
      std::filesystem::path(BITFUSION_TEST_FIXTURES) / ".." / ".." / "examples" / "specs";
  int plans = 0;
  for (const auto& e : std::filesystem::directory_iterator(specs)) {
    const std::string name = e.path().filename().string();
    if (e.path().extension() != ".json" || name.rfind("inventory", 0) == 0) continue;
    auto plan = LoadPlan(e.path().string());
    EXPECT_TRUE(plan.ok()) << name << ": " << plan.error().ToString();
    ++plans;
  }
  EXPECT_GE(plans, 5);
  auto fleet = LoadPlan((specs / "fleet-baremetal.json").string());
  ASSERT_TRUE(fleet.ok());
  ASSERT_EQ(fleet->machines.size(), 2u);
  EXPECT_EQ(fleet->machines[0].type, "fpga=xilinx-u250");
  EXPECT_EQ(fleet->machines[1].preflight.min_engine_version, "20.10");
  auto aws = LoadPlan((specs / "aws-gpu.json").string());
  ASSERT_TRUE(aws.ok());
  EXPECT_EQ(aws->machines.at(0).requirements.accelerator_vendor, "nvidia");
  EXPECT_EQ(aws->machines.at(0).ttl, std::chrono::hours(2));
  auto slurm = LoadPlan((specs / "slurm.json").string());
  ASSERT_TRUE(slurm.ok());
  EXPECT_EQ(slurm->runner.rfind("slurm:///", 0), 0u);
}

// A provisioner whose machines never become ready until destroyed (WaitReady gives up after
// 20 s), for Ctrl-C during acquisition.
struct SlowTestProvisionerOptions {
  static Result<SlowTestProvisionerOptions> FromUri(const Uri&) {
    return SlowTestProvisionerOptions{};
  }
};
class SlowTestProvisioner final : public Provisioner {
 public:
  static Result<std::shared_ptr<SlowTestProvisioner>> Make(const SlowTestProvisionerOptions&) {
    return std::make_shared<SlowTestProvisioner>();
  }
  static inline std::atomic<int> made{0}, destroyed{0};
  Result<std::vector<MachineInfo>> Create(const MachineRequest&) override {
    MachineInfo m;
    m.id = "slow-" + std::to_string(++made);
    m.provider = "slow-test";
    m.type = "slow";
    m.state = "pending";
    return std::vector<MachineInfo>{m};
  }
  Result<MachineInfo> WaitReady(const std::string& id, Deadline) override {
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, std::chrono::seconds(20), [&] { return gone_.count(id) > 0; })) {
      return DeadlineExceededError("slow-test machine " + id + " never got ready");
    }
    return NotFoundError("slow-test machine " + id + " was destroyed");
  }
  Result<std::vector<MachineInfo>> List() override { return std::vector<MachineInfo>{}; }
  Status Destroy(const std::vector<std::string>& ids) override {
    std::lock_guard lock(mu_);
    for (const auto& id : ids) gone_.insert(id);
    destroyed += static_cast<int>(ids.size());
    cv_.notify_all();
    return Status::OK();
  }
  Result<std::vector<MachineType>> Types() override {
    MachineType t;
    t.name = "slow";
    t.vcpus = 1;
    return std::vector<MachineType>{t};
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::set<std::string> gone_;
};
BITFUSION_REGISTER(Provisioner, "slow-test", SlowTestProvisionerOptions, SlowTestProvisioner);

TEST(PlanMachinesTest, CtrlCWhileMachinesAreMadeDestroysThemAndStopsThePlan) {
  auto plan = ParsePlan(R"({"machines": {"slow": {"provisioner": "slow-test://", "count": 1}},
                            "benchmarks": [{"command": ["true"]}]})",
                        "plan.json");
  ASSERT_TRUE(plan.ok()) << plan.error().ToString();
  std::atomic<bool> cancel{false};
  ExperimentOptions options;
  options.cancel = &cancel;
  std::thread ctrl_c([&] {
    while (SlowTestProvisioner::made.load() == 0) std::this_thread::sleep_for(10ms);
    cancel = true;
  });
  auto result = RunPlan(*plan, options);
  ctrl_c.join();
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code(), StatusCode::kCancelled) << result.error().ToString();
  EXPECT_NE(result.error().message().find(
                "machines.slow: interrupted while its machines were being made"),
            std::string::npos)
      << result.error().ToString();
  EXPECT_EQ(SlowTestProvisioner::destroyed.load(), 1) << "what was made is destroyed";
}

// A provisioner with two hosts that knows which it handed out only per object, as slurm:// knows
// its nodes: each object hands out "h1" first.
struct TwoHostTestProvisionerOptions {
  static Result<TwoHostTestProvisionerOptions> FromUri(const Uri&) {
    return TwoHostTestProvisionerOptions{};
  }
};
class TwoHostTestProvisioner final : public Provisioner {
 public:
  static Result<std::shared_ptr<TwoHostTestProvisioner>> Make(
      const TwoHostTestProvisionerOptions&) {
    return std::make_shared<TwoHostTestProvisioner>();
  }
  Result<std::vector<MachineInfo>> Create(const MachineRequest& request) override {
    std::lock_guard lock(mu_);
    std::vector<MachineInfo> out;
    for (const char* id : {"h1", "h2"}) {
      if (static_cast<int>(out.size()) == request.count) break;
      if (!handed_out_.insert(id).second) continue;
      MachineInfo m;
      m.id = id;
      m.provider = "two-host-test";
      m.type = "t";
      m.state = "running";
      m.ssh.host = std::string("10.9.9.") + id[1];
      m.ssh.user = "bench";
      out.push_back(m);
    }
    if (static_cast<int>(out.size()) < request.count) {
      for (const auto& m : out) handed_out_.erase(m.id);
      return ResourceExhaustedError("two-host-test: both hosts are handed out");
    }
    return out;
  }
  Result<MachineInfo> WaitReady(const std::string& id, Deadline) override {
    MachineInfo m;
    m.id = id;
    m.provider = "two-host-test";
    m.type = "t";
    m.state = "running";
    m.ssh.host = "10.9.9." + id.substr(1);
    m.ssh.user = "bench";
    return m;
  }
  Result<std::vector<MachineInfo>> List() override { return std::vector<MachineInfo>{}; }
  Status Destroy(const std::vector<std::string>& ids) override {
    std::lock_guard lock(mu_);
    for (const auto& id : ids) handed_out_.erase(id);
    return Status::OK();
  }
  Result<std::vector<MachineType>> Types() override {
    MachineType t;
    t.name = "t";
    t.vcpus = 1;
    return std::vector<MachineType>{t};
  }

 private:
  std::mutex mu_;
  std::set<std::string> handed_out_;
};
BITFUSION_REGISTER(Provisioner, "two-host-test", TwoHostTestProvisionerOptions,
                   TwoHostTestProvisioner);

// Two groups on one Slurm partition each got the partition's first idle node from a provisioner
// of their own, and the plan failed ("its machine a1 is also machine ... of another group").
TEST(PlanMachinesTest, GroupsOfOneProvisionerShareItAndGetDifferentMachines) {
  auto plan = ParsePlan(R"({"machines": {"a": {"provisioner": "two-host-test://"},
                                         "b": {"provisioner": "two-host-test://"}},
                            "runner": "process://",
                            "benchmarks": [{"command": ["true"]}]})",
                        "plan.json");
  ASSERT_TRUE(plan.ok()) << plan.error().ToString();
  auto machines = internal::PlanMachines::Acquire(*plan, "run-shared");
  ASSERT_TRUE(machines.ok()) << machines.error().ToString();
  ASSERT_EQ((*machines)->machines().size(), 2u);
  EXPECT_EQ((*machines)->machines()[0].info.id, "h1");
  EXPECT_EQ((*machines)->machines()[1].info.id, "h2");
  EXPECT_TRUE((*machines)->Release().ok());
}

class PlanGroupsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           ("bf-groups-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path dir_;
};

TEST_F(PlanGroupsTest, AGroupOnThisHostRunsItsBenchmarksAndNamesTheMachine) {
  auto plan = ParsePlan(R"({"name": "here",
    "machines": {"here": {"provisioner": "local://"}},
    "benchmarks": [{"name": "b", "command": ["sh", "-c", "echo 'BITFUSION_RESULT score 7 points'"],
                    "repetitions": 2, "warmup": 0}]})",
                        (dir_ / "plan.json").string());
  ASSERT_TRUE(plan.ok()) << plan.error().ToString();
  auto result = RunPlan(*plan, {});
  ASSERT_TRUE(result.ok()) << result.error().ToString();
  ASSERT_EQ(result->runs.size(), 2u);
  for (const auto& r : result->runs) {
    EXPECT_EQ(r.status, kRunOk) << r.error;
    EXPECT_EQ(r.labels.at("machine"), "here-1");
    EXPECT_EQ(r.labels.at("machine_group"), "here");
    EXPECT_FALSE(r.machine.hostname.empty());
    EXPECT_EQ(r.runner, "process://");
  }
  ASSERT_EQ(result->machines.count("here-1"), 1u);
  EXPECT_EQ(result->machines.at("here-1").provider, "local");
  ASSERT_EQ(result->summary.size(), 2u);
  EXPECT_EQ(result->summary[0].benchmark, "b@here-1") << "each machine's runs summarised apart";
  EXPECT_EQ(result->summary[1].metric, "score");
  EXPECT_DOUBLE_EQ(result->summary[1].stats.median, 7);
  EXPECT_TRUE(result->machine_errors.empty());
}

TEST_F(PlanGroupsTest, HardwareNoProvisionerOffersFailsBeforeAnythingIsMade) {
  // Group "a" (acquired first) leases hosts of an inventory; group "b" asks this host for 64
  // FPGAs. Nothing may be leased: the check comes before any group is acquired.
  std::ofstream(dir_ / "inventory.json")
      << R"({"hosts": [{"name": "h1", "address": "127.0.0.1", "port": 1}]})";
  const std::string leases = (dir_ / "leases").string();
  auto plan = ParsePlan(R"({"machines": {
      "a": {"provisioner": "static://)" +
                            (dir_ / "inventory.json").string() + "?lease_dir=" + leases + R"("},
      "b": {"provisioner": "local://", "fpga": "xilinx:64"}},
    "benchmarks": [{"command": ["true"]}]})",
                        (dir_ / "plan.json").string());
  ASSERT_TRUE(plan.ok()) << plan.error().ToString();
  auto result = RunPlan(*plan, {});
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.error().message().find("machines.b: no machine type of local:// meets"),
            std::string::npos)
      << result.error().ToString();
  std::error_code ec;
  const bool any_lease =
      std::filesystem::exists(leases, ec) && !std::filesystem::is_empty(leases, ec);
  EXPECT_FALSE(any_lease) << "a host was leased before the plan was known to be satisfiable";

  // A type the provisioner does not offer, likewise.
  plan->machines[1].requirements = {};
  plan->machines[1].type = "big";
  result = RunPlan(*plan, {});
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.error().message().find("machines.b.type: local:// offers no type \"big\"; it "
                                          "offers: local"),
            std::string::npos)
      << result.error().ToString();
}

TEST_F(PlanGroupsTest, OneMachineInTwoGroupsIsRefused) {
  auto plan = ParsePlan(R"({"machines": {"a": {"provisioner": "local://"},
                                         "b": {"provisioner": "local://"}},
                            "benchmarks": [{"command": ["true"]}]})",
                        (dir_ / "plan.json").string());
  ASSERT_TRUE(plan.ok());
  auto result = RunPlan(*plan, {});
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.error().message().find("is also machine a-1 of another group"),
            std::string::npos)
      << result.error().ToString();
}

}  // namespace
}  // namespace bitfusion
