// Plans on machine groups against real hosts: static:// inventories of test sshds (one on
// 127.0.0.1 under two names, one in a network namespace as another host), reached by the plan's
// runner over SSH (process+ssh://), next to a group on this host. Every machine runs its
// benchmarks, each machine's results are summarised apart, every lease is released, and a
// machine that stops answering mid-plan fails only its own runs.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <string>

#include "bitfusion/clock.h"
#include "bitfusion/device_allocator.h"
#include "bitfusion/experiment.h"
#include "integration/sshd_server.h"

namespace bitfusion {
namespace {

namespace fs = std::filesystem;
using testing::NetnsHost;
using testing::SshClientFiles;
using testing::TestSshd;

std::string Host(const std::string& name, const std::string& address, int port) {
  return "{\"name\": \"" + name + "\", \"address\": \"" + address +
         "\", \"port\": " + std::to_string(port) + ", \"user\": \"root\", \"key\": \"client_key\"}";
}

class PlanFleetTest : public testing::TwoSshHostsTest {
 protected:
  PlanFleetTest() : TwoSshHostsTest("plan-fleet") {}

  std::string Inventory(const std::string& file, const std::vector<std::string>& hosts) {
    std::string text = "{\"hosts\": [";
    for (std::size_t i = 0; i < hosts.size(); ++i) text += (i ? ", " : "") + hosts[i];
    std::ofstream(dir_ / file) << text << "]}";
    return "static://" + (dir_ / file).string() + "?lease_dir=" + (dir_ / "leases").string() +
           "&ssh_config=" + client_.config.string() + "&connect_timeout=5";
  }

  // A held lease is a KEY.lease file (the KEY.lock files beside them stay).
  bool NoLeases() {
    std::error_code ec;
    if (!fs::exists(dir_ / "leases", ec)) return true;
    for (const auto& e : fs::directory_iterator(dir_ / "leases", ec)) {
      if (e.path().extension() == ".lease") return false;
    }
    return true;
  }
};

TEST_F(PlanFleetTest, EveryMachineOfABenchmarksGroupsRunsItAndAllAreReleased) {
  // lo-a and lo-b are the loopback sshd under two names (leased apart).
  const std::string lab = Inventory(
      "lab.json", {Host("lo-a", "127.0.0.1", lo_->port()), Host("lo-b", "localhost", lo_->port())});
  auto plan = ParsePlan(R"({"name": "fleet",
    "machines": {"lab": {"provisioner": ")" +
                            lab + R"(", "count": 2},
                 "here": {"provisioner": "local://"}},
    "benchmarks": [
      {"name": "everywhere", "command": ["sh", "-c", "echo BITFUSION_RESULT answer 42 units"],
       "repetitions": 2, "warmup": 0},
      {"name": "lab-only", "command": ["sh", "-c", "echo BITFUSION_RESULT env_leak ${BF_SECRET:-0} n"],
       "repetitions": 1, "warmup": 0, "on": ["lab"]}]})",
                        (dir_ / "fleet.json").string());
  ASSERT_TRUE(plan.ok()) << plan.error().ToString();
  ::setenv("BF_SECRET", "1", 1);  // the controller's environment never reaches a remote run
  std::atomic<bool> leased_during_run{false};
  ExperimentOptions options;
  options.on_run = [&](const RunRecord&) {
    if (!NoLeases()) leased_during_run = true;
  };
  auto result = RunPlan(*plan, options);
  ::unsetenv("BF_SECRET");
  ASSERT_TRUE(result.ok()) << result.error().ToString();
  EXPECT_EQ(result->failed_runs, 0);
  EXPECT_TRUE(result->machine_errors.empty());
  std::map<std::string, int> runs_on;
  for (const auto& r : result->runs) {
    EXPECT_EQ(r.status, kRunOk) << r.labels.at("machine") << ": " << r.error;
    const std::string machine = r.labels.at("machine");
    ++runs_on[r.benchmark + "@" + machine];
    if (machine.rfind("lab-", 0) == 0) {
      EXPECT_EQ(r.runner.rfind("process+ssh://root@", 0), 0u) << r.runner;
      EXPECT_EQ(r.labels.at("machine_group"), "lab");
      EXPECT_EQ(r.machine.provider, "static");
    } else {
      EXPECT_EQ(machine, "here-1");
      EXPECT_EQ(r.runner, "process://");
    }
  }
  EXPECT_EQ(runs_on, (std::map<std::string, int>{{"everywhere@here-1", 2},
                                                 {"everywhere@lab-1", 2},
                                                 {"everywhere@lab-2", 2},
                                                 {"lab-only@lab-1", 1},
                                                 {"lab-only@lab-2", 1}}));
  std::set<std::string> rows;
  for (const auto& m : result->summary) {
    rows.insert(m.benchmark + " " + m.metric);
    if (m.metric == "env_leak") EXPECT_EQ(m.stats.max, 0) << m.benchmark;
  }
  EXPECT_TRUE(rows.count("everywhere@lab-1 answer") && rows.count("everywhere@lab-2 answer") &&
              rows.count("everywhere@here-1 answer"))
      << "each machine's results apart";
  EXPECT_EQ(result->machines.size(), 3u);
  EXPECT_TRUE(leased_during_run) << "the lab hosts were leased while the plan ran";
  EXPECT_TRUE(NoLeases()) << "every lease is released at the end";
}

TEST_F(PlanFleetTest, AMachineThatStopsAnsweringFailsOnlyItsOwnRuns) {
  StartFarHost();
  const std::string near = Inventory("near.json", {Host("near", "127.0.0.1", lo_->port())});
  const std::string far = Inventory("far.json", {Host("far", ns_->address(), 22)});
  auto plan = ParsePlan(R"({"name": "lossy",
    "machines": {"near": {"provisioner": ")" +
                            near + R"("},
                 "far": {"provisioner": ")" +
                            far + R"("}},
    "benchmarks": [
      {"name": "tick", "command": ["sh", "-c", "sleep 0.2"], "repetitions": 4, "warmup": 0},
      {"name": "after", "command": ["true"], "repetitions": 1, "warmup": 0}]})",
                        (dir_ / "lossy.json").string());
  ASSERT_TRUE(plan.ok()) << plan.error().ToString();
  std::mutex mu;
  std::vector<Event> down;
  std::atomic<bool> killed{false};
  ExperimentOptions options;
  options.on_event = [&](const Event& e) {
    if (e.type != EventType::kMachineDown) return;
    std::lock_guard lock(mu);
    down.push_back(e);
  };
  options.on_run = [&](const RunRecord& r) {
    // After far's first run, everything in its namespace (sshd and what runs there) dies.
    if (r.labels.at("machine") == "far-1" && !killed.exchange(true)) {
      testing::Shell("ip netns pids " + ns_->name() + " | xargs -r kill -9");
    }
  };
  auto result = RunPlan(*plan, options);
  ASSERT_TRUE(result.ok()) << result.error().ToString();
  ASSERT_TRUE(killed);
  int near_ok = 0, far_ok = 0, far_failed = 0;
  bool named = false, not_run = false;
  for (const auto& r : result->runs) {
    const std::string machine = r.labels.at("machine");
    if (machine == "near-1") {
      EXPECT_EQ(r.status, kRunOk) << r.error;
      near_ok += r.status == kRunOk;
    } else if (r.status == kRunOk) {
      ++far_ok;
    } else {
      ++far_failed;
      named = named || r.error.find("machine far-1 (" + ns_->address() + ")") != std::string::npos;
      not_run = not_run || (r.benchmark == "after" &&
                            r.error.find("not run: machine far-1") != std::string::npos);
    }
  }
  EXPECT_EQ(near_ok, 5) << "the other machine went on";
  EXPECT_EQ(far_ok, 1);
  EXPECT_GE(far_failed, 2);
  EXPECT_TRUE(named) << "far's failures name it";
  EXPECT_TRUE(not_run) << "its remaining benchmark is recorded as not run";
  EXPECT_GT(result->failed_runs, 0) << "so the plan exits 1";
  std::lock_guard lock(mu);
  ASSERT_EQ(down.size(), 1u);
  EXPECT_EQ(down[0].subject, "far-1");
  EXPECT_EQ(down[0].attributes.at("reason"), "unreachable");
  EXPECT_TRUE(NoLeases());
}

// The plan's "host" source on a remote machine is that machine's (host+ssh://: a probe started
// there over SSH), on this host's timeline; a local machine's stays the local host source. Its
// "gpu" source is that machine's nvidia-smi (gpu+ssh://; the far host has tests/fakes/nvidia-smi
// on its PATH), on the same timeline.
TEST_F(PlanFleetTest, RemoteRunsCarryTheirOwnHostsSamples) {
  StartFarHost();
  fs::copy_file(fs::path(BITFUSION_SOURCE_DIR) / "tests/fakes/nvidia-smi", far_bin_ / "nvidia-smi");
  ::setenv("BITFUSION_PROBE", (std::string(BITFUSION_BIN_DIR) + "/bitfusion-probe").c_str(), 1);
  const std::string far = Inventory("far.json", {Host("far", ns_->address(), 22)});
  const std::string out = (dir_ / "samples.jsonl").string();
  auto plan = ParsePlan(R"({"name": "observed",
    "machines": {"far": {"provisioner": ")" +
                            far + R"("}, "here": {"provisioner": "local://"}},
    "metrics": {"sources": ["host", "gpu"], "interval": "20ms"},
    "sinks": ["jsonl://)" + out +
                            R"("],
    "benchmarks": [{"name": "nap", "command": ["sh", "-c", "sleep 0.5"], "repetitions": 2,
                    "warmup": 0}]})",
                        (dir_ / "observed.json").string());
  ASSERT_TRUE(plan.ok()) << plan.error().ToString();
  const std::int64_t before = WallNowNs();
  auto result = RunPlan(*plan, {});
  const std::int64_t after = WallNowNs();
  ::unsetenv("BITFUSION_PROBE");
  ASSERT_TRUE(result.ok()) << result.error().ToString();
  EXPECT_EQ(result->failed_runs, 0);
  std::map<std::string, const RunRecord*> far_runs;
  for (const auto& r : result->runs) {
    EXPECT_EQ(r.status, kRunOk) << r.error;
    if (r.labels.at("machine") == "far-1") far_runs[r.run_id] = &r;
  }
  ASSERT_EQ(far_runs.size(), 2u);
  // Each remote run's record says where its samples sit on this host's clock: the same kernel,
  // so the true offset is 0 and the estimate must hold it within its bound.
  for (const auto& [id, r] : far_runs) {
    ASSERT_TRUE(r->labels.count("clock_offset_ns") && r->labels.count("clock_uncertainty_ns"))
        << id;
    const std::int64_t offset = std::stoll(r->labels.at("clock_offset_ns"));
    const std::int64_t bound = std::stoll(r->labels.at("clock_uncertainty_ns"));
    EXPECT_GT(bound, 0) << id;
    EXPECT_LE(std::llabs(offset), bound) << id;
  }
  for (const auto& r : result->runs) {
    if (r.labels.at("machine") == "here-1") EXPECT_EQ(r.labels.count("clock_offset_ns"), 0u);
  }
  std::ifstream in(out);
  std::map<std::string, int> remote_samples;  // by run
  std::map<std::string, int> remote_gpu;      // by run
  int local_cpu = 0;
  // A far sample: on this host's timeline (within the plan's run as this host's clock saw it),
  // with the clock estimate, counted for its run.
  const auto far_sample = [&](const std::string& line, std::map<std::string, int>& count) {
    EXPECT_NE(line.find("\"clock_uncertainty_ns\""), std::string::npos) << line;
    const auto at = line.find("\"timestamp_ns\":");
    ASSERT_NE(at, std::string::npos) << line;
    const std::int64_t ts = std::stoll(line.substr(at + 15));
    EXPECT_GE(ts, before);
    EXPECT_LE(ts, after);
    for (const auto& [id, r] : far_runs) {
      if (line.find(id) != std::string::npos) ++count[id];
    }
  };
  for (std::string line; std::getline(in, line);) {
    const bool far = line.find("\"machine\":\"far-1\"") != std::string::npos;
    if (line.find("\"metric\":\"gpu.utilization.gpu\"") != std::string::npos && far) {
      EXPECT_NE(line.find("\"pci_bus_id\":\"0000:0"), std::string::npos) << line;
      far_sample(line, remote_gpu);
    }
    if (line.find("\"metric\":\"cpu.user\"") == std::string::npos) continue;
    if (!far) {
      local_cpu += line.find("clock_offset_ns") == std::string::npos;
      continue;
    }
    EXPECT_NE(line.find("\"view\":\"host\""), std::string::npos) << line;
    far_sample(line, remote_samples);
  }
  EXPECT_GT(local_cpu, 0) << "the local machine's runs keep the local host source";
  ASSERT_EQ(remote_samples.size(), 2u) << "every remote run carries its host's samples; " << out;
  for (const auto& [id, n] : remote_samples) EXPECT_GE(n, 5) << id;
  ASSERT_EQ(remote_gpu.size(), 2u) << "every remote run carries its machine's GPUs; " << out;
  // 0.5 s at nvidia-smi's 100 ms (the plan's 20 ms is raised to it), two GPUs.
  for (const auto& [id, n] : remote_gpu) EXPECT_GE(n, 4) << id;
  EXPECT_TRUE(NoLeases());
}

// A remote machine's devices are its own: read over SSH (sysfs+ssh://, here a recorded DGX
// A100 tree on the far host, as the plan's sysfs:///ROOT names it), leased in a lock directory
// of that machine's, and handed to the command run there (CUDA_VISIBLE_DEVICES and
// BITFUSION_DEVICES), while this host's machine leases from its own tree. A device request the
// far machine cannot meet fails that benchmark there, naming the machine.
TEST_F(PlanFleetTest, ARemoteMachinesDevicesAreLeasedThereAndReachItsCommands) {
  StartFarHost();
  const std::string tree =
      (fs::path(BITFUSION_TEST_FIXTURES) / "sysfs" / "dgx-a100").lexically_normal().string();
  const std::string far = Inventory("far.json", {Host("far", ns_->address(), 22)});
  auto plan = ParsePlan(R"({"name": "gpus",
    "machines": {"far": {"provisioner": ")" +
                            far + R"("}, "here": {"provisioner": "local://"}},
    "device_allocator": "sysfs://)" +
                            tree + R"(?lock_dir=)" + (dir_ / "locks").string() + R"(",
    "benchmarks": [
      {"name": "two", "devices": {"kind": "gpu", "vendor": "nvidia", "count": 2},
       "command": ["sh", "-c", "echo BITFUSION_RESULT cuda $(echo $CUDA_VISIBLE_DEVICES | tr , '\\n' | wc -l) n; echo BITFUSION_RESULT ids $(echo $BITFUSION_DEVICES | tr , '\\n' | wc -l) n"],
       "repetitions": 1, "warmup": 0},
      {"name": "too-many", "devices": {"kind": "gpu", "vendor": "nvidia", "count": 9},
       "command": ["true"], "repetitions": 1, "warmup": 0, "on": ["far"]}]})",
                        (dir_ / "gpus.json").string());
  ASSERT_TRUE(plan.ok()) << plan.error().ToString();
  auto result = RunPlan(*plan, {});
  ASSERT_TRUE(result.ok()) << result.error().ToString();
  int ran = 0;
  bool refused = false;
  for (const auto& r : result->runs) {
    const std::string machine = r.labels.at("machine");
    if (r.benchmark == "too-many") {
      EXPECT_NE(r.status, kRunOk);
      refused = r.error.find("machine root@" + ns_->address()) != std::string::npos &&
                r.error.find("9") != std::string::npos;
      EXPECT_TRUE(refused) << r.error;
      continue;
    }
    EXPECT_EQ(r.status, kRunOk) << machine << ": " << r.error;
    ASSERT_TRUE(r.labels.count("devices")) << machine;
    // Two of the tree's A100s, by PCI address.
    const std::string ids = r.labels.at("devices");
    EXPECT_EQ(std::count(ids.begin(), ids.end(), ','), 1) << ids;
    EXPECT_NE(ids.find(":00.0"), std::string::npos) << ids;
    ++ran;
  }
  EXPECT_EQ(ran, 2) << "one run on each machine";
  for (const auto& m : result->summary) {
    if (m.metric == "cuda" || m.metric == "ids") {
      EXPECT_EQ(m.stats.min, 2) << m.benchmark << " " << m.metric << ": the command saw both";
    }
  }
  std::set<std::string> rows;
  for (const auto& m : result->summary) rows.insert(m.benchmark + " " + m.metric);
  EXPECT_TRUE(rows.count("two@far-1 cuda") && rows.count("two@here-1 cuda"))
      << "results from both machines";
  EXPECT_TRUE(refused);
  EXPECT_TRUE(NoLeases());
}

// sysfs+ssh:// itself, against the far host and the recorded "mixed" tree there: its devices
// are found as sysfs:// finds them here, and a lease turns into what each runner there takes:
// environment for a command, an NVIDIA device request for an engine with the NVIDIA runtime, a
// clear refusal for one without it, and another vendor's device nodes at their paths there.
TEST_F(PlanFleetTest, ASshAllocatorReadsAnotherMachinesDevicesAndSaysWhatEachRunnerGets) {
  StartFarHost();
  const std::string tree =
      (fs::path(BITFUSION_TEST_FIXTURES) / "sysfs" / "mixed").lexically_normal().string();
  auto made = DeviceAllocatorFromUri("sysfs+ssh://root@" + ns_->address() +
                                     "?identity=" + client_.key.string() +
                                     "&ssh_config=" + client_.config.string() + "&root=" + tree +
                                     "&lock_dir=" + (dir_ / "far-locks").string());
  ASSERT_TRUE(made.ok()) << made.error().ToString();
  DeviceAllocator& far = **made;
  auto here = DeviceAllocatorFromUri(
      "sysfs://" + tree + "?lock_dir=" + (dir_ / "here-locks").string() + "&enrich=false");
  ASSERT_TRUE(here.ok()) << here.error().ToString();
  auto remote = far.Discover();
  auto local = (*here)->Discover();
  ASSERT_TRUE(remote.ok() && local.ok());
  std::set<std::string> remote_ids, local_ids;
  for (const auto& d : *remote) remote_ids.insert(d.id + " " + d.vendor + " " + d.model);
  for (const auto& d : *local) local_ids.insert(d.id + " " + d.vendor + " " + d.model);
  EXPECT_EQ(remote_ids, local_ids) << "the same devices as the tree read here";

  DeviceRequest nvidia;
  nvidia.vendor = "nvidia";
  nvidia.count = 2;
  auto lease = far.Acquire(nvidia, DeadlineAfter(std::chrono::seconds(5)));
  ASSERT_TRUE(lease.ok()) << lease.error().ToString();
  RunnerCapabilities engine;
  engine.containers = engine.images = true;
  engine.gpu_runtime = true;
  auto gpus = far.EditsFor(**lease, engine);
  ASSERT_TRUE(gpus.ok()) << gpus.error().ToString();
  ASSERT_EQ(gpus->device_requests.size(), 1u);
  EXPECT_EQ(gpus->device_requests[0].driver, "nvidia");
  EXPECT_EQ(gpus->device_requests[0].device_ids.size(), 2u);
  EXPECT_TRUE(gpus->devices.empty()) << "no device node of that machine mapped from here";
  engine.gpu_runtime = false;
  auto no_runtime = far.EditsFor(**lease, engine);
  ASSERT_FALSE(no_runtime.ok());
  EXPECT_EQ(no_runtime.error().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(no_runtime.error().message().find("NVIDIA Container Toolkit"), std::string::npos);
  RunnerCapabilities process;
  auto env = far.EditsFor(**lease, process);
  ASSERT_TRUE(env.ok()) << env.error().ToString();
  EXPECT_TRUE(env->env.count("CUDA_VISIBLE_DEVICES"));

  DeviceRequest amd;
  amd.vendor = "amd";
  auto amd_lease = far.Acquire(amd, DeadlineAfter(std::chrono::seconds(5)));
  ASSERT_TRUE(amd_lease.ok()) << amd_lease.error().ToString();
  engine.gpu_runtime = true;
  // Its nodes, at their paths on that machine (where the tree is), not the private copy's here.
  auto nodes = far.EditsFor(**amd_lease, engine);
  ASSERT_TRUE(nodes.ok()) << nodes.error().ToString();
  ASSERT_FALSE(nodes->devices.empty());
  std::set<std::string> inside;
  for (const DeviceMapping& m : nodes->devices) {
    EXPECT_EQ(m.path_on_host, tree + m.path_in_container) << m.path_on_host;
    inside.insert(m.path_in_container);
  }
  EXPECT_TRUE(inside.count("/dev/kfd")) << "ROCm's compute node";
  EXPECT_TRUE(nodes->device_requests.empty());

  // A third NVIDIA GPU is not there: the refusal names the machine.
  nvidia.count = 1;
  auto none = far.Acquire(nvidia, DeadlineAfter(std::chrono::milliseconds(300)));
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.error().message().find("root@" + ns_->address()), std::string::npos)
      << none.error().message();
}

TEST_F(PlanFleetTest, SetupRunsOnEveryMachineAndOneThatFailsItsPreflightRunsNothing) {
  StartFarHost();
  const std::string near = Inventory("near.json", {Host("near", "127.0.0.1", lo_->port())});
  const std::string far = Inventory("far.json", {Host("far", ns_->address(), 22)});
  // Both hosts share this file system (the namespace has only a network of its own): each setup
  // step leaves a line with the addresses of the host it ran on.
  const std::string marker = (dir_ / "setup.log").string();
  const std::string setup = "\"echo $(hostname -I) >> " + marker + "\"";
  auto plan = ParsePlan(R"({"name": "prepared",
    "machines": {"near": {"provisioner": ")" +
                            near + R"(", "setup": [)" + setup + R"(]},
                 "far": {"provisioner": ")" +
                            far + R"(", "setup": [)" + setup +
                            R"(], "preflight": {"min_free_space": "1000TiB"}}},
    "benchmarks": [{"name": "b", "command": ["true"], "repetitions": 2, "warmup": 0}]})",
                        (dir_ / "prepared.json").string());
  ASSERT_TRUE(plan.ok()) << plan.error().ToString();
  auto result = RunPlan(*plan, {});
  ASSERT_TRUE(result.ok()) << result.error().ToString();
  std::ifstream in(marker);
  std::vector<std::string> ran;
  for (std::string line; std::getline(in, line);) ran.push_back(line);
  ASSERT_EQ(ran.size(), 2u) << "one setup step on each machine";
  EXPECT_EQ(std::count_if(
                ran.begin(), ran.end(),
                [&](const std::string& l) { return l.find(ns_->address()) != std::string::npos; }),
            1)
      << "one of them on the host in the namespace";
  int near_ok = 0, far_not_run = 0;
  for (const auto& r : result->runs) {
    if (r.labels.at("machine") == "near-1") {
      near_ok += r.status == kRunOk;
    } else if (r.error.find("not run: machine far-1 failed its setup or preflight: preflight: ") !=
               std::string::npos) {
      ++far_not_run;
    }
  }
  EXPECT_EQ(near_ok, 2);
  EXPECT_EQ(far_not_run, 1) << "one record for far's one benchmark";
  const MachinePreflight& n = result->preflight.at("near-1");
  EXPECT_EQ(n.error, "");
  EXPECT_EQ(n.engine, "process+ssh");
  EXPECT_EQ(n.setup_steps, 1);
  EXPECT_FALSE(n.kernel.empty());
  EXPECT_EQ(n.data_root, "/root") << "a process runner's login directory there";
  EXPECT_GT(n.free_inodes, 0u);
  const MachinePreflight& f = result->preflight.at("far-1");
  EXPECT_EQ(f.setup_steps, 1);
  EXPECT_NE(f.error.find("min_free_space"), std::string::npos) << f.error;
  EXPECT_EQ(f.kernel, n.kernel) << "the same kernel: a namespace, not a VM";
  EXPECT_TRUE(NoLeases());
}

// A machine that fails its setup is exchanged for another of its group: the inventory's first
// host (in the namespace) fails the step, the second (loopback) takes its benchmarks; the first
// is reported, announced as machine.down, and released with the rest.
TEST_F(PlanFleetTest, AMachineThatFailsItsSetupIsReplacedByAnotherOfItsGroup) {
  StartFarHost();
  const std::string lab = Inventory(
      "lab.json", {Host("far", ns_->address(), 22), Host("near", "127.0.0.1", lo_->port())});
  // Fails where the host's addresses include the namespace's.
  const std::string setup = "\"hostname -I | grep -qvw " + ns_->address() + "\"";
  auto plan = ParsePlan(R"({"name": "replaced",
    "machines": {"lab": {"provisioner": ")" +
                            lab + R"(", "count": 1, "setup": [)" + setup + R"(]}},
    "benchmarks": [{"name": "b", "command": ["true"], "repetitions": 2, "warmup": 0}]})",
                        (dir_ / "replaced.json").string());
  ASSERT_TRUE(plan.ok()) << plan.error().ToString();
  std::vector<Event> down;
  std::mutex mu;
  ExperimentOptions options;
  options.on_event = [&](const Event& e) {
    std::lock_guard lock(mu);
    if (e.type == EventType::kMachineDown) down.push_back(e);
  };
  auto result = RunPlan(*plan, options);
  ASSERT_TRUE(result.ok()) << result.error().ToString();
  EXPECT_EQ(result->failed_runs, 0);
  ASSERT_EQ(result->runs.size(), 2u);
  for (const auto& r : result->runs) {
    EXPECT_EQ(r.status, kRunOk) << r.error;
    EXPECT_EQ(r.labels.at("machine"), "lab-2");
  }
  ASSERT_EQ(result->machines.count("lab-1"), 1u);
  ASSERT_EQ(result->machines.count("lab-2"), 1u);
  EXPECT_EQ(result->machines.at("lab-1").ssh.host, ns_->address());
  EXPECT_EQ(result->machines.at("lab-2").ssh.host, "127.0.0.1");
  const MachinePreflight& failed = result->preflight.at("lab-1");
  EXPECT_NE(failed.error.find("setup step 1"), std::string::npos) << failed.error;
  EXPECT_NE(failed.error.find("replaced by machine lab-2"), std::string::npos) << failed.error;
  EXPECT_EQ(result->preflight.at("lab-2").error, "");
  std::lock_guard lock(mu);
  ASSERT_EQ(down.size(), 1u);
  EXPECT_EQ(down[0].subject, "lab-1");
  EXPECT_EQ(down[0].attributes.at("reason"), "preflight");
  EXPECT_TRUE(NoLeases()) << "both machines were handed back";
}

}  // namespace
}  // namespace bitfusion
