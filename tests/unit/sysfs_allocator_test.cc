// local:// and sysfs:// allocators on recorded trees: matching, topology, exclusive and
// shared leases across threads and processes, refusals that say who holds what, events, and
// the container edits for every runner flavour.
#include "devices/sysfs_allocator.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "bitfusion/log.h"
#include "bitfusion/registry.h"
#include "devices/device_lease.h"
#include "scratch_dir.h"

extern char** environ;

namespace bitfusion {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

const std::string kFixtures = BITFUSION_TEST_FIXTURES;
const std::string kTrees = kFixtures + "/sysfs";

// Each test gets its own lock directory, so tests never see each other's leases. They are
// removed when the test program ends (a test's allocators may hold locks there until then).
std::string FreshLockDir(const std::string& name) {
  struct Made {
    std::vector<std::string> dirs;
    ~Made() {
      std::error_code ec;
      for (const auto& d : dirs) fs::remove_all(d, ec);
    }
  };
  static Made made;
  const std::string dir =
      ::testing::TempDir() + "/bf-locks-" + name + "-" + std::to_string(::getpid());
  fs::remove_all(dir);
  made.dirs.push_back(dir);
  return dir;
}

std::shared_ptr<SysfsAllocator> Tree(const std::string& host, const std::string& test,
                                     std::function<void(SysfsAllocatorOptions&)> tweak = {}) {
  auto uri = Uri::Parse("sysfs://" + kTrees + "/" + host + "?lock_dir=" + FreshLockDir(test) +
                        "&run_id=r-" + test + "&poll_interval=20ms");
  EXPECT_TRUE(uri.ok());
  auto options = SysfsAllocatorOptions::FromUri(*uri);
  EXPECT_TRUE(options.ok()) << options.error().ToString();
  if (tweak) tweak(*options);
  auto allocator = SysfsAllocator::Make(*options);
  EXPECT_TRUE(allocator.ok()) << allocator.error().ToString();
  return *allocator;
}

DeviceRequest Gpus(int count) {
  DeviceRequest r;
  r.kind = DeviceKind::kGpu;
  r.count = count;
  return r;
}

std::vector<std::string> Ids(const DeviceLease& lease) {
  std::vector<std::string> out;
  for (const auto& d : lease.devices()) out.push_back(d.id);
  return out;
}

Deadline Soon() { return DeadlineAfter(std::chrono::milliseconds(100)); }

class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    ::setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() { ::unsetenv(name_); }

 private:
  const char* name_;
};

// ---- options and registration ------------------------------------------------------------

TEST(SysfsAllocatorTest, SchemesAndUriOptions) {
  const auto schemes = Registry<DeviceAllocator>::Instance().Schemes();
  EXPECT_NE(std::find(schemes.begin(), schemes.end(), "local"), schemes.end());
  EXPECT_NE(std::find(schemes.begin(), schemes.end(), "sysfs"), schemes.end());

  auto local = SysfsAllocatorOptions::FromUri(*Uri::Parse("local://?lock_dir=/x/y&enrich=false"));
  ASSERT_TRUE(local.ok());
  EXPECT_EQ(local->root, "/");
  EXPECT_EQ(local->lock_dir, "/x/y");
  EXPECT_FALSE(local->enrich);
  EXPECT_EQ(local->nvml_library, "libnvidia-ml.so.1");

  auto tree = SysfsAllocatorOptions::FromUri(*Uri::Parse("sysfs:///srv/tree"));
  ASSERT_TRUE(tree.ok());
  EXPECT_EQ(tree->root, "/srv/tree");
  EXPECT_TRUE(tree->nvml_library.empty()) << "a recorded tree is not this host's NVML's";

  EXPECT_EQ(DeviceAllocatorFromUri("local://gpu-host").error().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(DeviceAllocatorFromUri("sysfs://").error().code(), StatusCode::kInvalidArgument);
  auto typo = DeviceAllocatorFromUri("local://?lockdir=/tmp");
  ASSERT_FALSE(typo.ok());
  EXPECT_THAT(typo.error().message(), HasSubstr("lock_dir"));
  auto missing = DeviceAllocatorFromUri("sysfs:///nonexistent/tree");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code(), StatusCode::kNotFound);
  EXPECT_EQ(DeviceAllocatorFromUri("local://?poll_interval=0s").error().code(),
            StatusCode::kInvalidArgument);
}

TEST(SysfsAllocatorTest, RecordedTreesGetTheirOwnDefaultLockDirectory) {
  SysfsAllocatorOptions options;
  options.root = kTrees + "/alveo-u250";
  auto a = SysfsAllocator::Make(options);
  ASSERT_TRUE(a.ok()) << a.error().ToString();
  EXPECT_NE((*a)->lock_dir(), DefaultLockDir());
  EXPECT_EQ((*a)->lock_dir().parent_path(), DefaultLockDir());
  EXPECT_THAT((*a)->lock_dir().filename().string(), HasSubstr("sysfs-"));
}

TEST(SysfsAllocatorTest, DiscoverEnrichesOnlyWithLibrariesNamedForATree) {
  ScopedEnv env("BITFUSION_FAKE_NVML_CONFIG", kFixtures + "/vendor/nvml-dgx-a100.json");
  auto plain = DeviceAllocatorFromUri("sysfs://" + kTrees +
                                      "/dgx-a100?lock_dir=" + FreshLockDir("discover-plain"));
  ASSERT_TRUE(plain.ok());
  auto devices = (*plain)->Discover();
  ASSERT_TRUE(devices.ok());
  ASSERT_EQ(devices->size(), 8u);
  EXPECT_EQ(devices->at(0).memory_bytes, 0u);

  auto enriched = DeviceAllocatorFromUri("sysfs://" + kTrees +
                                         "/dgx-a100?lock_dir=" + FreshLockDir("discover-nvml") +
                                         "&nvml=" + BITFUSION_FAKE_NVML);
  ASSERT_TRUE(enriched.ok());
  devices = (*enriched)->Discover();
  ASSERT_TRUE(devices.ok());
  EXPECT_EQ(devices->at(0).memory_bytes, 42949672960u);
  EXPECT_EQ(devices->at(0).properties.at("cuda_version"), "12.2");
}

TEST(SysfsAllocatorTest, ThisHostDiscoversWithoutError) {
  auto local = DeviceAllocatorFromUri("local://?lock_dir=" + FreshLockDir("this-host"));
  ASSERT_TRUE(local.ok()) << local.error().ToString();
  auto devices = (*local)->Discover();
  ASSERT_TRUE(devices.ok());
  // Whatever this host has, every listed device is an accelerator with a PCI address.
  for (const auto& d : *devices) {
    EXPECT_FALSE(d.pci_address.empty());
    EXPECT_NE(d.kind, DeviceKind::kAny);
  }
}

// ---- matching -----------------------------------------------------------------------------

TEST(SysfsAllocatorTest, LeasesByKindVendorModelAndCount) {
  auto mixed = Tree("mixed", "match");
  auto two = mixed->Acquire(Gpus(2), Soon());
  ASSERT_TRUE(two.ok()) << two.error().ToString();
  EXPECT_THAT(Ids(**two), ElementsAre("0000:17:00.0", "0000:33:00.0")) << "PCI address order";
  two->reset();

  DeviceRequest amd = Gpus(1);
  amd.vendor = "amd";
  auto radeon = mixed->Acquire(amd, Soon());
  ASSERT_TRUE(radeon.ok());
  EXPECT_THAT(Ids(**radeon), ElementsAre("0000:33:00.0"));

  DeviceRequest l4 = Gpus(2);
  l4.model = "l4";
  auto both = mixed->Acquire(l4, Soon());
  ASSERT_TRUE(both.ok()) << both.error().ToString();
  EXPECT_THAT(Ids(**both), ElementsAre("0000:17:00.0", "0000:ca:00.0"));
  both->reset();

  DeviceRequest by_id = Gpus(1);
  by_id.vendor = "0x10de";
  auto nvidia = mixed->Acquire(by_id, Soon());
  ASSERT_TRUE(nvidia.ok());
  EXPECT_THAT(Ids(**nvidia), ElementsAre("0000:17:00.0"));

  DeviceRequest fpga;
  fpga.kind = DeviceKind::kFpga;
  fpga.vendor = "intel";
  auto n3000 = mixed->Acquire(fpga, Soon());
  ASSERT_TRUE(n3000.ok()) << n3000.error().ToString();
  EXPECT_THAT(Ids(**n3000), ElementsAre("0000:b1:00.0"));

  DeviceRequest none;
  none.kind = DeviceKind::kAccelerator;
  auto refused = mixed->Acquire(none, Soon());
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code(), StatusCode::kResourceExhausted);
  EXPECT_THAT(refused.error().message(), HasSubstr("1 accelerator(s)"));
  EXPECT_THAT(refused.error().message(), HasSubstr("0 device(s) here match"));
  EXPECT_THAT(refused.error().message(), HasSubstr("2 NVIDIA gpu (NVIDIA L4)"));
}

TEST(SysfsAllocatorTest, MinimumMemoryNeedsKnownSizes) {
  auto plain = Tree("dgx-a100", "memory-plain");
  DeviceRequest big = Gpus(1);
  big.min_memory_bytes = 40ull << 30;
  auto refused = plain->Acquire(big, Soon());
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(refused.error().message(), HasSubstr("memory sizes come from NVML"));

  ScopedEnv env("BITFUSION_FAKE_NVML_CONFIG", kFixtures + "/vendor/nvml-dgx-a100.json");
  auto enriched = Tree("dgx-a100", "memory-nvml",
                       [](SysfsAllocatorOptions& o) { o.nvml_library = BITFUSION_FAKE_NVML; });
  auto ok = enriched->Acquire(big, Soon());
  ASSERT_TRUE(ok.ok()) << ok.error().ToString();
  big.min_memory_bytes = 80ull << 30;
  auto too_big = enriched->Acquire(big, Soon());
  ASSERT_FALSE(too_big.ok());
  EXPECT_THAT(too_big.error().message(), HasSubstr(">= 80 GiB"));

  auto amd = Tree("amd-mi210-4gpu", "memory-amd");
  big.min_memory_bytes = 60ull << 30;
  big.count = 4;
  EXPECT_TRUE(amd->Acquire(big, Soon()).ok()) << "amdgpu reports VRAM in sysfs";
}

TEST(SysfsAllocatorTest, CountZeroAndNegative) {
  auto a = Tree("alveo-u250", "count");
  auto empty = a->Acquire(Gpus(0), Soon());
  ASSERT_TRUE(empty.ok());
  EXPECT_THAT((*empty)->devices(), IsEmpty());
  EXPECT_EQ(a->Acquire(Gpus(-1), Soon()).error().code(), StatusCode::kInvalidArgument);
}

// ---- topology -----------------------------------------------------------------------------

TEST(SysfsAllocatorTest, SamePcieSwitchTakesAPairThatIsFree) {
  auto dgx = Tree("dgx-a100", "switch");
  DeviceRequest pair = Gpus(2);
  pair.same_pcie_switch = true;
  auto first = dgx->Acquire(pair, Soon());
  ASSERT_TRUE(first.ok());
  EXPECT_THAT(Ids(**first), ElementsAre("0000:07:00.0", "0000:0f:00.0"));
  first->reset();

  auto lone = dgx->Acquire(Gpus(1), Soon());  // takes 0000:07:00.0
  ASSERT_TRUE(lone.ok());
  auto second = dgx->Acquire(pair, Soon());
  ASSERT_TRUE(second.ok()) << second.error().ToString();
  EXPECT_THAT(Ids(**second), ElementsAre("0000:47:00.0", "0000:4e:00.0"))
      << "0000:0f:00.0 is free but its switch partner is not";

  pair.count = 3;
  auto impossible = dgx->Acquire(pair, DeadlineAfter(std::chrono::seconds(30)));
  ASSERT_FALSE(impossible.ok());
  EXPECT_THAT(impossible.error().message(), HasSubstr("even with all of them free"));
}

TEST(SysfsAllocatorTest, SameNumaNodeAndImpossibleRequestsFailAtOnce) {
  auto dgx = Tree("dgx-a100", "numa");
  DeviceRequest four = Gpus(4);
  four.same_numa_node = true;
  auto held = dgx->Acquire(Gpus(1), Soon());
  ASSERT_TRUE(held.ok());
  auto node1 = dgx->Acquire(four, Soon());
  ASSERT_TRUE(node1.ok()) << node1.error().ToString();
  EXPECT_THAT(Ids(**node1),
              ElementsAre("0000:87:00.0", "0000:90:00.0", "0000:b7:00.0", "0000:bd:00.0"));
  for (const auto& d : (*node1)->devices()) EXPECT_EQ(d.numa_node, 1);

  four.count = 5;
  const auto start = std::chrono::steady_clock::now();
  auto refused = dgx->Acquire(four, DeadlineAfter(std::chrono::seconds(30)));
  ASSERT_FALSE(refused.ok());
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5))
      << "no waiting for what this host can never give";
  EXPECT_THAT(refused.error().message(), HasSubstr("on one NUMA node"));
}

TEST(SysfsAllocatorTest, NvlinkThroughNvSwitchesAndDirectPeers) {
  ScopedEnv env("BITFUSION_FAKE_NVML_CONFIG", kFixtures + "/vendor/nvml-dgx-a100.json");
  auto dgx = Tree("dgx-a100", "nvlink",
                  [](SysfsAllocatorOptions& o) { o.nvml_library = BITFUSION_FAKE_NVML; });
  DeviceRequest all = Gpus(8);
  all.nvlink_connected = true;
  EXPECT_TRUE(dgx->Acquire(all, Soon()).ok()) << "every A100 reaches the others via NVSwitch";

  // A DGX-1-like wiring: 07<->0f and 47<->4e linked directly, nothing else.
  const std::string config = testing::ScratchPath("bf-nvml-pairs.json");
  std::ofstream(config) << R"({"devices": [
    {"bus_id": "0000:07:00.0", "name": "A", "uuid": "GPU-0", "memory_total": 1,
     "nvlinks": ["00000000:0F:00.0", ""]},
    {"bus_id": "0000:0f:00.0", "name": "A", "uuid": "GPU-1", "memory_total": 1,
     "nvlinks": ["00000000:07:00.0"]},
    {"bus_id": "0000:47:00.0", "name": "A", "uuid": "GPU-2", "memory_total": 1,
     "nvlinks": ["00000000:4E:00.0"]},
    {"bus_id": "0000:4e:00.0", "name": "A", "uuid": "GPU-3", "memory_total": 1, "nvlinks": []}]})";
  ScopedEnv pairs("BITFUSION_FAKE_NVML_CONFIG", config);
  auto wired = Tree("dgx-a100", "nvlink-pairs",
                    [](SysfsAllocatorOptions& o) { o.nvml_library = BITFUSION_FAKE_NVML; });
  DeviceRequest linked = Gpus(2);
  linked.nvlink_connected = true;
  auto held = wired->Acquire(Gpus(1), Soon());
  ASSERT_TRUE(held.ok());
  auto pair = wired->Acquire(linked, Soon());
  ASSERT_TRUE(pair.ok()) << pair.error().ToString();
  EXPECT_THAT(Ids(**pair), ElementsAre("0000:47:00.0", "0000:4e:00.0"))
      << "a link listed on one side only still counts";
  linked.count = 3;
  EXPECT_FALSE(wired->Acquire(linked, Soon()).ok());

  auto mixed = Tree("mixed", "nvlink-none");
  DeviceRequest l4s = Gpus(2);
  l4s.vendor = "nvidia";
  l4s.nvlink_connected = true;
  auto refused = mixed->Acquire(l4s, Soon());
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(refused.error().message(), HasSubstr("NVLink-connected"));
}

TEST(SysfsAllocatorTest, XgmiCountsAsAGpuLink) {
  ScopedEnv env("BITFUSION_FAKE_ROCM_SMI_CONFIG", kFixtures + "/vendor/rocm-smi-mi210.json");
  auto amd = Tree("amd-mi210-4gpu", "xgmi",
                  [](SysfsAllocatorOptions& o) { o.rocm_smi_library = BITFUSION_FAKE_ROCM_SMI; });
  DeviceRequest hive = Gpus(4);
  hive.nvlink_connected = true;
  auto lease = amd->Acquire(hive, Soon());
  ASSERT_TRUE(lease.ok()) << lease.error().ToString();
  EXPECT_EQ((*lease)->devices()[0].model, "Aldebaran/MI200 [Instinct MI210]");
}

// ---- exclusive, shared, waiting, refusals, events -------------------------------------------

TEST(SysfsAllocatorTest, ExclusiveAndSharedLeases) {
  auto a = Tree("alveo-u250", "shared");
  DeviceRequest shared;
  shared.kind = DeviceKind::kFpga;
  shared.count = 2;
  shared.exclusive = false;
  auto s1 = a->Acquire(shared, Soon());
  auto s2 = a->Acquire(shared, Soon());
  ASSERT_TRUE(s1.ok()) << s1.error().ToString();
  ASSERT_TRUE(s2.ok()) << "shared leases coexist";
  DeviceRequest exclusive = shared;
  exclusive.count = 1;
  exclusive.exclusive = true;
  auto blocked = a->Acquire(exclusive, Soon());
  ASSERT_FALSE(blocked.ok());
  EXPECT_THAT(blocked.error().message(), HasSubstr("shared"));
  s1->reset();
  s2->reset();
  auto ex = a->Acquire(exclusive, Soon());
  ASSERT_TRUE(ex.ok());
  shared.count = 2;
  EXPECT_FALSE(a->Acquire(shared, Soon()).ok()) << "a shared lease waits for an exclusive one";
  shared.count = 1;
  auto other = a->Acquire(shared, Soon());
  ASSERT_TRUE(other.ok()) << "the other card is free to share";
  EXPECT_THAT(Ids(**other), ElementsAre("0000:d8:00.1"));
}

TEST(SysfsAllocatorTest, RefusalSaysWhatWasAskedWhatIsFreeAndWhoHoldsTheRest) {
  auto dgx = Tree("dgx-a100", "refusal");
  auto six = dgx->Acquire(Gpus(6), Soon());
  ASSERT_TRUE(six.ok());
  DeviceRequest three = Gpus(3);
  three.vendor = "NVIDIA";
  auto refused = dgx->Acquire(three, DeadlineAfter(std::chrono::milliseconds(150)));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code(), StatusCode::kResourceExhausted);
  const std::string m = refused.error().message();
  EXPECT_THAT(m, HasSubstr("cannot lease 3 NVIDIA gpu(s), exclusive"));
  EXPECT_THAT(m, HasSubstr("8 device(s) match, 2 free (0000:b7:00.0, 0000:bd:00.0)"));
  EXPECT_THAT(m, HasSubstr("0000:07:00.0 by pid " + std::to_string(::getpid())));
  EXPECT_THAT(m, HasSubstr("run r-refusal"));
  EXPECT_THAT(m, HasSubstr("Wait longer"));

  auto devices = dgx->Discover();
  ASSERT_TRUE(devices.ok());
  EXPECT_THAT(devices->at(0).properties.at("holders"), HasSubstr("(run r-refusal, exclusive)"));
  EXPECT_EQ(devices->at(7).properties.count("holders"), 0u);
}

TEST(SysfsAllocatorTest, WaitsForAReleaseUntilTheDeadline) {
  auto a = Tree("alveo-u250", "wait");
  DeviceRequest both;
  both.kind = DeviceKind::kFpga;
  both.count = 2;
  auto held = a->Acquire(both, Soon());
  ASSERT_TRUE(held.ok());
  std::thread releaser([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    held->reset();
  });
  const auto start = std::chrono::steady_clock::now();
  auto waited = a->Acquire(both, DeadlineAfter(std::chrono::seconds(10)));
  const auto elapsed = std::chrono::steady_clock::now() - start;
  releaser.join();
  ASSERT_TRUE(waited.ok()) << waited.error().ToString();
  EXPECT_GE(elapsed, std::chrono::milliseconds(250));
  EXPECT_LT(elapsed, std::chrono::seconds(5));
}

TEST(SysfsAllocatorTest, LeasesEmitLeasedAndReleasedEvents) {
  std::mutex mu;
  std::vector<Event> events;
  auto a = Tree("alveo-u250", "events", [&](SysfsAllocatorOptions& o) {
    o.on_event = [&](const Event& e) {
      std::lock_guard<std::mutex> lock(mu);
      events.push_back(e);
    };
  });
  DeviceRequest both;
  both.kind = DeviceKind::kFpga;
  both.count = 2;
  {
    auto lease = a->Acquire(both, Soon());
    ASSERT_TRUE(lease.ok());
    std::lock_guard<std::mutex> lock(mu);
    ASSERT_EQ(events.size(), 2u);
    EXPECT_EQ(events[0].type, EventType::kDeviceLeased);
    EXPECT_EQ(events[0].subject, "0000:3b:00.1");
    EXPECT_EQ(events[0].attributes.at("run_id"), "r-events");
    EXPECT_EQ(events[0].attributes.at("mode"), "exclusive");
    EXPECT_EQ(events[0].source, "sysfs://" + fs::canonical(kTrees + "/alveo-u250").string());
  }
  std::lock_guard<std::mutex> lock(mu);
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(events[2].type, EventType::kDeviceReleased);
  EXPECT_EQ(events[3].subject, "0000:d8:00.1");
  EXPECT_GT(events[3].time_ns, 0);
}

TEST(SysfsAllocatorTest, ThreadsNeverHoldADeviceTogether) {
  auto mixed = Tree("mixed", "threads");
  std::mutex mu;
  std::map<std::string, std::vector<std::pair<std::int64_t, std::int64_t>>> holds;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      DeviceRequest r;
      r.kind = DeviceKind::kAny;
      r.count = 1 + t % 2;
      for (int round = 0; round < 10; ++round) {
        auto lease = mixed->Acquire(r, DeadlineAfter(std::chrono::seconds(30)));
        if (!lease.ok()) {
          ++failures;
          return;
        }
        const std::int64_t from = MonoNowNs();
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        const std::int64_t to = MonoNowNs();
        std::lock_guard<std::mutex> lock(mu);
        for (const auto& d : (*lease)->devices()) holds[d.id].emplace_back(from, to);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  for (auto& [id, spans] : holds) {
    std::sort(spans.begin(), spans.end());
    for (std::size_t i = 1; i < spans.size(); ++i) {
      EXPECT_LE(spans[i - 1].second, spans[i].first) << id << " was held twice at once";
    }
  }
}

// ---- separate processes ---------------------------------------------------------------------

pid_t Spawn(const std::vector<std::string>& args, const std::string& stdout_path = "") {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (!stdout_path.empty()) {
    posix_spawn_file_actions_addopen(&actions, 1, stdout_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                     0644);
  }
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  EXPECT_EQ(rc, 0) << "cannot start " << args[0];
  return pid;
}

int WaitExit(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

TEST(SysfsAllocatorTest, ProcessesRacingForDevicesNeverOverlap) {
  const std::string lock_dir = FreshLockDir("race");
  const std::string uri =
      "sysfs://" + kTrees + "/mixed?lock_dir=" + lock_dir + "&poll_interval=5ms&run_id=race";
  const std::string log = ::testing::TempDir() + "/bf-race-" + std::to_string(::getpid()) + ".log";
  fs::remove(log);
  constexpr int kProcesses = 8;
  constexpr int kRounds = 6;
  std::vector<pid_t> pids;
  for (int i = 0; i < kProcesses; ++i) {
    // Four devices (two L4, a Radeon, an N3000); half the holders want two at once.
    pids.push_back(Spawn({BITFUSION_LEASE_HOLDER, uri, log, std::to_string(kRounds),
                          std::to_string(1 + i % 2), "15"}));
  }
  for (pid_t pid : pids) EXPECT_EQ(WaitExit(pid), 0);

  std::ifstream in(log);
  std::map<std::string, std::vector<std::tuple<std::int64_t, std::int64_t, int>>> holds;
  int lines = 0;
  for (std::string line; std::getline(in, line); ++lines) {
    std::istringstream fields(line);
    int pid;
    std::int64_t from, to;
    std::string ids;
    ASSERT_TRUE(fields >> pid >> from >> to >> ids) << line;
    std::istringstream list(ids);
    for (std::string id; std::getline(list, id, ',');) holds[id].emplace_back(from, to, pid);
  }
  EXPECT_EQ(lines, kProcesses * kRounds);
  EXPECT_EQ(holds.size(), 4u) << "every device was used";
  for (auto& [id, spans] : holds) {
    std::sort(spans.begin(), spans.end());
    for (std::size_t i = 1; i < spans.size(); ++i) {
      EXPECT_LE(std::get<1>(spans[i - 1]), std::get<0>(spans[i]))
          << id << " held by pids " << std::get<2>(spans[i - 1]) << " and " << std::get<2>(spans[i])
          << " at once";
    }
  }
  // Nobody holds anything now.
  for (const auto& [id, spans] : holds) EXPECT_THAT(ReadHolders(lock_dir, id), IsEmpty()) << id;
  fs::remove(log);
}

TEST(SysfsAllocatorTest, AKilledHolderFreesItsLease) {
  const std::string lock_dir = FreshLockDir("crash");
  const std::string uri =
      "sysfs://" + kTrees + "/alveo-u250?lock_dir=" + lock_dir + "&run_id=doomed";
  const std::string out = ::testing::TempDir() + "/bf-crash-" + std::to_string(::getpid());
  fs::remove(out);
  const pid_t holder = Spawn({BITFUSION_LEASE_HOLDER, uri, "/dev/null", "1", "2", "-1"}, out);
  std::string held;
  for (int i = 0; i < 200 && held.empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    std::ifstream in(out);
    std::getline(in, held);
  }
  ASSERT_EQ(held, "held 0000:3b:00.1,0000:d8:00.1");

  auto allocator = DeviceAllocatorFromUri(uri);
  ASSERT_TRUE(allocator.ok());
  DeviceRequest one;
  one.kind = DeviceKind::kFpga;
  auto refused = (*allocator)->Acquire(one, Soon());
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(refused.error().message(), HasSubstr("by pid " + std::to_string(holder)));
  EXPECT_THAT(refused.error().message(), HasSubstr("run doomed"));

  ::kill(holder, SIGKILL);
  EXPECT_EQ(WaitExit(holder), 128 + SIGKILL);
  auto freed = (*allocator)->Acquire(one, DeadlineAfter(std::chrono::seconds(5)));
  ASSERT_TRUE(freed.ok()) << freed.error().ToString();
  EXPECT_THAT(ReadHolders(lock_dir, "0000:d8:00.1"), IsEmpty())
      << "the dead holder's record is not reported";
  fs::remove(out);
}

// ---- container edits ------------------------------------------------------------------------

RunnerCapabilities Process() {
  RunnerCapabilities c;
  c.engine = "process";
  return c;
}

RunnerCapabilities Docker(bool gpu_runtime, bool cdi) {
  RunnerCapabilities c;
  c.engine = "docker";
  c.api_version = "1.41";
  c.images = true;
  c.gpu_runtime = gpu_runtime;
  c.cdi = cdi;
  return c;
}

std::vector<std::string> HostPaths(const ContainerEdits& e) {
  std::vector<std::string> out;
  for (const auto& m : e.devices) out.push_back(m.path_on_host);
  return out;
}

std::vector<std::string> ContainerPaths(const ContainerEdits& e) {
  std::vector<std::string> out;
  for (const auto& m : e.devices) {
    EXPECT_EQ(m.permissions, "rwm");
    out.push_back(m.path_in_container);
  }
  return out;
}

TEST(SysfsAllocatorEditsTest, ProcessRunnerGetsVisibleDeviceVariablesOnly) {
  auto dgx = Tree("dgx-a100", "edits-process-nvidia");
  auto held = dgx->Acquire(Gpus(2), Soon());
  auto lease = dgx->Acquire(Gpus(2), Soon());
  ASSERT_TRUE(lease.ok());
  auto edits = dgx->EditsFor(**lease, Process());
  ASSERT_TRUE(edits.ok()) << edits.error().ToString();
  EXPECT_EQ(edits->env.at("CUDA_VISIBLE_DEVICES"),
            "GPU-a1000002-0000-4000-8000-000000000002,GPU-a1000003-0000-4000-8000-000000000003");
  EXPECT_EQ(edits->env.count("CUDA_DEVICE_ORDER"), 0u) << "UUIDs need no ordering";
  EXPECT_EQ(edits->env.at("BITFUSION_DEVICES"), "0000:47:00.0,0000:4e:00.0");
  EXPECT_THAT(edits->devices, IsEmpty());
  EXPECT_THAT(edits->device_requests, IsEmpty());
  EXPECT_THAT(edits->cdi_devices, IsEmpty());

  auto amd = Tree("amd-mi210-4gpu", "edits-process-amd");
  auto first = amd->Acquire(Gpus(2), Soon());
  auto last = amd->Acquire(Gpus(2), Soon());
  ASSERT_TRUE(last.ok());
  edits = amd->EditsFor(**last, Process());
  ASSERT_TRUE(edits.ok());
  EXPECT_EQ(edits->env.at("ROCR_VISIBLE_DEVICES"), "2,3");
  EXPECT_EQ(edits->env.at("HIP_VISIBLE_DEVICES"), "0,1") << "HIP counts within ROCr's list";

  auto alveo = Tree("alveo-u250", "edits-process-fpga");
  DeviceRequest fpga;
  fpga.kind = DeviceKind::kFpga;
  auto card0 = alveo->Acquire(fpga, Soon());
  auto card1 = alveo->Acquire(fpga, Soon());
  ASSERT_TRUE(card1.ok());
  edits = alveo->EditsFor(**card1, Process());
  ASSERT_TRUE(edits.ok());
  EXPECT_EQ(edits->env.at("XILINX_VISIBLE_DEVICES"), "1");
}

TEST(SysfsAllocatorEditsTest, WithoutUuidsCudaCountsInBusOrder) {
  const std::string root = ::testing::TempDir() + "/bf-edits-no-uuid";
  fs::remove_all(root);
  fs::copy(kTrees + "/dgx-a100", root,
           fs::copy_options::recursive | fs::copy_options::copy_symlinks);
  fs::remove_all(root + "/proc");
  auto a = DeviceAllocatorFromUri("sysfs://" + root + "?lock_dir=" + FreshLockDir("no-uuid"));
  ASSERT_TRUE(a.ok());
  auto lease = (*a)->Acquire(Gpus(2), Soon());
  ASSERT_TRUE(lease.ok());
  auto edits = (*a)->EditsFor(**lease, Process());
  ASSERT_TRUE(edits.ok());
  EXPECT_EQ(edits->env.at("CUDA_VISIBLE_DEVICES"), "0,1");
  EXPECT_EQ(edits->env.at("CUDA_DEVICE_ORDER"), "PCI_BUS_ID");
  fs::remove_all(root);
}

TEST(SysfsAllocatorEditsTest, GpuRuntimeGetsADeviceRequest) {
  auto dgx = Tree("dgx-a100", "edits-runtime");
  auto lease = dgx->Acquire(Gpus(1), Soon());
  ASSERT_TRUE(lease.ok());
  auto edits = dgx->EditsFor(**lease, Docker(/*gpu_runtime=*/true, /*cdi=*/true));
  ASSERT_TRUE(edits.ok());
  ASSERT_EQ(edits->device_requests.size(), 1u);
  const DeviceRequestEntry& r = edits->device_requests[0];
  EXPECT_EQ(r.driver, "nvidia");
  EXPECT_THAT(r.device_ids, ElementsAre("GPU-a1000000-0000-4000-8000-000000000000"));
  ASSERT_EQ(r.capabilities.size(), 1u);
  EXPECT_THAT(r.capabilities[0], ElementsAre("gpu"));
  EXPECT_THAT(edits->devices, IsEmpty());
  EXPECT_THAT(edits->cdi_devices, IsEmpty());
}

TEST(SysfsAllocatorEditsTest, CdiNamesWhereSpecsCoverTheDevicesElseNodes) {
  auto mixed = Tree("mixed", "edits-cdi");
  DeviceRequest everything;
  everything.kind = DeviceKind::kAny;
  everything.count = 4;
  auto lease = mixed->Acquire(everything, Soon());
  ASSERT_TRUE(lease.ok()) << lease.error().ToString();
  auto edits = mixed->EditsFor(**lease, Docker(/*gpu_runtime=*/false, /*cdi=*/true));
  ASSERT_TRUE(edits.ok()) << edits.error().ToString();
  // nvidia-ctk names GPUs by NVML index: index 0 is the L4 whose node is /dev/nvidia1.
  EXPECT_THAT(edits->cdi_devices,
              UnorderedElementsAre("nvidia.com/gpu=0", "nvidia.com/gpu=1", "amd.com/gpu=0"));
  const std::string root = fs::canonical(kTrees + "/mixed").string();
  EXPECT_THAT(HostPaths(*edits), ElementsAre(root + "/dev/dfl-fme.0", root + "/dev/dfl-port.0"))
      << "no CDI spec names the N3000: its nodes are mapped";
  EXPECT_THAT(ContainerPaths(*edits), ElementsAre("/dev/dfl-fme.0", "/dev/dfl-port.0"));
  EXPECT_EQ(edits->env.count("NVIDIA_VISIBLE_DEVICES"), 0u);
}

TEST(SysfsAllocatorEditsTest, CdiWithoutSpecsFallsBackToNodes) {
  auto dgx = Tree("dgx-a100", "edits-cdi-none");
  auto lease = dgx->Acquire(Gpus(1), Soon());
  ASSERT_TRUE(lease.ok());
  auto edits = dgx->EditsFor(**lease, Docker(false, true));
  ASSERT_TRUE(edits.ok());
  EXPECT_THAT(edits->cdi_devices, IsEmpty());
  EXPECT_THAT(ContainerPaths(*edits),
              ElementsAre("/dev/nvidia0", "/dev/nvidiactl", "/dev/nvidia-uvm",
                          "/dev/nvidia-uvm-tools", "/dev/nvidia-modeset"));
}

TEST(SysfsAllocatorEditsTest, PlainEngineGetsExactlyTheLeasedNodes) {
  auto dgx = Tree("dgx-a100", "edits-plain-nvidia");
  DeviceRequest mig = Gpus(1);
  auto others = dgx->Acquire(Gpus(7), Soon());
  auto lease = dgx->Acquire(mig, Soon());
  ASSERT_TRUE(lease.ok());
  auto edits = dgx->EditsFor(**lease, Docker(false, false));
  ASSERT_TRUE(edits.ok());
  const std::string root = fs::canonical(kTrees + "/dgx-a100").string();
  EXPECT_THAT(ContainerPaths(*edits),
              ElementsAre("/dev/nvidia-caps/nvidia-cap957", "/dev/nvidia-caps/nvidia-cap958",
                          "/dev/nvidia7", "/dev/nvidiactl", "/dev/nvidia-uvm",
                          "/dev/nvidia-uvm-tools", "/dev/nvidia-modeset"));
  EXPECT_EQ(HostPaths(*edits)[2], root + "/dev/nvidia7");
  EXPECT_EQ(edits->env.at("NVIDIA_VISIBLE_DEVICES"), "GPU-a1000007-0000-4000-8000-000000000007");
  EXPECT_THAT(edits->device_requests, IsEmpty());

  auto amd = Tree("amd-mi210-4gpu", "edits-plain-amd");
  auto skip = amd->Acquire(Gpus(1), Soon());
  auto two = amd->Acquire(Gpus(2), Soon());
  ASSERT_TRUE(two.ok());
  edits = amd->EditsFor(**two, Docker(true, false));  // a GPU runtime does nothing for AMD
  ASSERT_TRUE(edits.ok());
  EXPECT_THAT(ContainerPaths(*edits),
              ElementsAre("/dev/dri/card2", "/dev/dri/renderD129", "/dev/kfd", "/dev/dri/card3",
                          "/dev/dri/renderD130"))
      << "/dev/kfd once, only the leased render nodes, no i2c";
  EXPECT_THAT(edits->device_requests, IsEmpty());

  auto alveo = Tree("alveo-u250", "edits-plain-fpga");
  DeviceRequest fpga;
  fpga.kind = DeviceKind::kFpga;
  auto card = alveo->Acquire(fpga, Soon());
  ASSERT_TRUE(card.ok());
  edits = alveo->EditsFor(**card, Docker(false, false));
  ASSERT_TRUE(edits.ok());
  EXPECT_THAT(ContainerPaths(*edits),
              ElementsAre("/dev/dri/card1", "/dev/dri/renderD128", "/dev/xclmgmt15104"));
  EXPECT_EQ(edits->env.at("XILINX_VISIBLE_DEVICES"), "0");

  ContainerSpec spec;
  spec.env["XILINX_VISIBLE_DEVICES"] = "all";
  edits->ApplyTo(spec);
  EXPECT_EQ(spec.env.at("XILINX_VISIBLE_DEVICES"), "0");
  EXPECT_EQ(spec.devices.size(), 3u);
}

TEST(SysfsAllocatorEditsTest, MissingNodeIsAFailedPrecondition) {
  const std::string root = ::testing::TempDir() + "/bf-edits-no-dev";
  fs::remove_all(root);
  fs::copy(kTrees + "/alveo-u250", root,
           fs::copy_options::recursive | fs::copy_options::copy_symlinks);
  fs::remove_all(root + "/dev");
  auto a = DeviceAllocatorFromUri("sysfs://" + root + "?lock_dir=" + FreshLockDir("no-dev"));
  ASSERT_TRUE(a.ok());
  DeviceRequest fpga;
  fpga.kind = DeviceKind::kFpga;
  auto lease = (*a)->Acquire(fpga, Soon());
  ASSERT_TRUE(lease.ok()) << "a device without nodes can still be leased";
  auto edits = (*a)->EditsFor(**lease, Docker(false, false));
  ASSERT_FALSE(edits.ok());
  EXPECT_EQ(edits.error().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(edits.error().message(), HasSubstr("0000:3b:00.1"));
  EXPECT_TRUE((*a)->EditsFor(**lease, Process()).ok()) << "processes need no nodes";
  fs::remove_all(root);
}

TEST(SysfsAllocatorEditsTest, ThisHostMapsNodesAtTheirOwnPaths) {
  // A lease made by hand, as another allocator might hand it over: local:// maps its nodes
  // without any root prefix.
  class HandLease final : public DeviceLease {
   public:
    HandLease() {
      Device d;
      d.id = "0000:01:00.0";
      d.vendor = "Xilinx";
      d.index = 0;
      d.device_nodes = {"/dev/null"};
      devices_.push_back(d);
    }
    const std::vector<Device>& devices() const override { return devices_; }

   private:
    std::vector<Device> devices_;
  };
  auto local = DeviceAllocatorFromUri("local://?lock_dir=" + FreshLockDir("local-edits"));
  ASSERT_TRUE(local.ok());
  auto edits = (*local)->EditsFor(HandLease(), Docker(false, false));
  ASSERT_TRUE(edits.ok()) << edits.error().ToString();
  EXPECT_THAT(HostPaths(*edits), ElementsAre("/dev/null"));
}

}  // namespace
}  // namespace bitfusion
