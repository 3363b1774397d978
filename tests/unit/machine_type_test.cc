// Requirements -> cheapest satisfying type (ResolveMachineType) and the ownership labels and
// reap rule (ownership.h) that every runner and provisioner shares.
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <thread>

#include "bitfusion/clock.h"
#include "bitfusion/machine.h"
#include "bitfusion/ownership.h"
#include "integration/service.h"

namespace bitfusion {
namespace {

constexpr std::uint64_t kGiB = 1ULL << 30;

MachineType Type(std::string name, int vcpus, std::uint64_t gib, double price,
                 std::vector<AcceleratorInfo> acc = {}, std::string arch = "x86_64") {
  MachineType t;
  t.name = std::move(name);
  t.vcpus = vcpus;
  t.memory_bytes = gib * kGiB;
  t.hourly_price_usd = price;
  t.accelerators = std::move(acc);
  t.cpu_architecture = std::move(arch);
  t.cpu_vendor = "AMD";
  return t;
}

AcceleratorInfo Gpu(std::string vendor, std::string model, int count) {
  AcceleratorInfo a;
  a.kind = "gpu";
  a.vendor = std::move(vendor);
  a.model = std::move(model);
  a.count = count;
  return a;
}

std::vector<MachineType> Catalogue() {
  return {Type("m.small", 2, 8, 0.10),
          Type("m.large", 8, 32, 0.40),
          Type("g.one", 4, 16, 1.00, {Gpu("NVIDIA", "A10G", 1)}),
          Type("g.four", 48, 192, 5.60, {Gpu("NVIDIA", "A10G", 4)}),
          Type("g.cheap-big", 64, 256, 0.90, {Gpu("NVIDIA", "T4", 4)}),
          Type("a.arm", 16, 32, 0.30, {}, "arm64")};
}

TEST(ResolveMachineTypeTest, PicksTheCheapestThatSatisfies) {
  MachineRequirements r;
  r.min_vcpus = 4;
  auto got = ResolveMachineType(Catalogue(), r);
  ASSERT_TRUE(got.ok()) << got.error().ToString();
  EXPECT_EQ(got->type.name, "a.arm");  // $0.30, the cheapest with >= 4 vCPUs
  r.cpu_architecture = "amd64";        // = x86_64
  EXPECT_EQ(ResolveMachineType(Catalogue(), r)->type.name, "m.large");
  r.cpu_architecture = "aarch64";  // = arm64
  EXPECT_EQ(ResolveMachineType(Catalogue(), r)->type.name, "a.arm");
}

TEST(ResolveMachineTypeTest, AcceleratorsByKindVendorModelAndCount) {
  MachineRequirements r;
  r.accelerator_kind = "gpu";
  EXPECT_EQ(ResolveMachineType(Catalogue(), r)->type.name, "g.cheap-big");  // 4 T4s at $0.90
  r.accelerator_model = "a10g";
  EXPECT_EQ(ResolveMachineType(Catalogue(), r)->type.name, "g.one");
  r.accelerator_count = 2;
  auto got = ResolveMachineType(Catalogue(), r);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->type.name, "g.four");
  EXPECT_NE(got->summary.find("g.four"), std::string::npos);
  EXPECT_NE(got->summary.find("1 of 6"), std::string::npos) << got->summary;
  ASSERT_EQ(got->explanation.size(), 6u);
  bool saw_reason = false;
  for (const auto& line : got->explanation) {
    if (line == "g.one: 1 gpu a10g < 2") saw_reason = true;
  }
  EXPECT_TRUE(saw_reason) << ::testing::PrintToString(got->explanation);
  r.accelerator_kind = "fpga";
  r.accelerator_model.clear();
  got = ResolveMachineType(Catalogue(), r);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().code(), StatusCode::kNotFound);
  EXPECT_NE(got.error().message().find("fpga x2"), std::string::npos) << got.error().message();
}

// A provider that names no vendor (a Slurm node's GRES "gpu:tesla:2") meets no vendor asked
// for; the error says so and how to ask instead, and asking by type or for any works.
TEST(ResolveMachineTypeTest, AVendorAskedOfGpusWithoutOneSaysHowToAsk) {
  const std::vector<MachineType> nodes = {Type("debug", 8, 16, -1, {Gpu("", "tesla", 2)})};
  MachineRequirements r;
  ASSERT_TRUE(ParseAcceleratorRequirement("gpu", "nvidia:1", "gpu", r).ok());
  auto got = ResolveMachineType(nodes, r);
  ASSERT_FALSE(got.ok());
  const std::string m = got.error().message();
  EXPECT_NE(m.find("debug: no gpu nvidia (has 2x gpu tesla)"), std::string::npos) << m;
  EXPECT_NE(m.find("does not name the vendor of its gpus"), std::string::npos) << m;
  EXPECT_NE(m.find(R"("gpu": "any:1")"), std::string::npos) << m;
  for (const char* ask : {"tesla:1", "any:2"}) {
    MachineRequirements ok;
    ASSERT_TRUE(ParseAcceleratorRequirement("gpu", ask, "gpu", ok).ok());
    EXPECT_TRUE(ResolveMachineType(nodes, ok).ok()) << ask;
  }
  // A provider that names vendors gets no such hint.
  r.accelerator_vendor = "amd";
  got = ResolveMachineType(Catalogue(), r);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().message().find("does not name"), std::string::npos);
}

TEST(ResolveMachineTypeTest, MemoryVendorAndUnpricedTypes) {
  MachineRequirements r;
  r.min_memory_bytes = 100 * kGiB;
  EXPECT_EQ(ResolveMachineType(Catalogue(), r)->type.name, "g.cheap-big");
  r.cpu_vendor = "intel";
  EXPECT_FALSE(ResolveMachineType(Catalogue(), r).ok());
  // Without prices the smallest satisfying type wins, after any priced one.
  auto unpriced = Catalogue();
  for (auto& t : unpriced) t.hourly_price_usd = -1;
  unpriced.push_back(Type("priced.huge", 96, 768, 20.0));
  MachineRequirements big;
  big.min_vcpus = 40;
  auto got = ResolveMachineType(unpriced, big);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->type.name, "priced.huge");
  unpriced.pop_back();
  got = ResolveMachineType(unpriced, big);
  EXPECT_EQ(got->type.name, "g.four");
  EXPECT_NE(got->summary.find("no prices known"), std::string::npos);
  EXPECT_TRUE(MachineRequirements{}.empty());
  EXPECT_EQ(MachineRequirements{}.ToString(), "anything");
  EXPECT_FALSE(ResolveMachineType({}, big).ok());
}

TEST(OwnershipTest, LabelsNameThisProcessAndExpiry) {
  const Labels labels = OwnerLabels("run-1", 3600);
  const auto& self = OwnerIdentity::Self();
  EXPECT_EQ(labels.at(kLabelCreator), "bitfusion");
  EXPECT_EQ(labels.at(kLabelRunId), "run-1");
  EXPECT_EQ(labels.at(kLabelHost), self.host);
  EXPECT_EQ(labels.at(kLabelPid), std::to_string(::getpid()));
  EXPECT_NE(self.pid_start, 0u);
  EXPECT_EQ(labels.at(kLabelPidStart), std::to_string(self.pid_start));
  EXPECT_EQ(labels.at(kLabelBootId), self.boot_id);
  const std::int64_t expires = std::stoll(labels.at(kLabelExpires));
  EXPECT_NEAR(expires, WallNowNs() / 1'000'000'000 + 3600, 2);
  EXPECT_EQ(OwnerLabels("", 0).count(kLabelExpires), 0u);
  EXPECT_EQ(OwnerLabels("", 0).count(kLabelRunId), 0u);
}

TEST(OwnershipTest, AZombieIsNotAlive) {
  // Killed but not yet reaped by whoever adopted it: its creator's objects are left behind.
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  for (int i = 0; i < 500; ++i) {
    std::ifstream stat("/proc/" + std::to_string(child) + "/stat");
    std::string text((std::istreambuf_iterator<char>(stat)), {});
    if (text.find(") Z") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(::kill(child, 0), 0) << "the zombie is there";
  EXPECT_FALSE(ProcessAlive(child, 0));
  EXPECT_FALSE(ProcessAlive(child, ProcessStartTicks(child)));
  ::waitpid(child, nullptr, 0);
  EXPECT_TRUE(ProcessAlive(::getpid(), ProcessStartTicks(::getpid())));
}

TEST(OwnershipTest, AProcessHiddenByHidepidIsNotTakenForGone) {
  // With /proc mounted hidepid=2 a user sees only their own processes, while kill(pid, 0) still
  // answers EPERM for the others: such a creator is alive, and what it made is not to be
  // reaped. Checked by a child in a mount namespace of its own, as the user "nobody".
  BITFUSION_REQUIRE_SERVICE(::geteuid() == 0, "mounting /proc with hidepid needs root");
  const pid_t parent = ::getpid();
  const std::uint64_t start = ProcessStartTicks(parent);
  const pid_t child = ::fork();
  if (child == 0) {
    if (::unshare(CLONE_NEWNS) != 0) ::_exit(10);
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) ::_exit(11);
    if (::mount("proc", "/proc", "proc", 0, "hidepid=2") != 0) ::_exit(12);
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(13);
    if (std::ifstream("/proc/" + std::to_string(parent) + "/stat")) ::_exit(14);
    ::_exit(ProcessAlive(parent, start) ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  const int code = WEXITSTATUS(status);
  BITFUSION_REQUIRE_SERVICE(code < 10,
                            "could not set up a hidepid /proc (step " + std::to_string(code) + ")");
  EXPECT_EQ(code, 0) << "a hidden but running creator was taken for gone";
}

TEST(OwnershipTest, ReapReasonForDeadCreatorsExpiryAndRuns) {
  const std::int64_t now = WallNowNs() / 1'000'000'000;
  ReapPolicy policy;
  Labels mine = OwnerLabels("run-1", 3600);
  EXPECT_EQ(ReapReason(mine, policy, now), "");
  const std::int64_t at = std::stoll(mine.at(kLabelExpires));
  EXPECT_EQ(ReapReason(mine, policy, at), "");
  EXPECT_EQ(ReapReason(mine, policy, at + 1), "expired 1 s ago");
  // A creator that has exited.
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ::waitpid(child, nullptr, 0);
  Labels dead = mine;
  dead[kLabelPid] = std::to_string(child);
  EXPECT_NE(ReapReason(dead, policy, now).find("is gone"), std::string::npos);
  // This process's PID with another start time: a reused PID, so the creator is gone.
  Labels reused = mine;
  reused[kLabelPidStart] = "1";
  EXPECT_NE(ReapReason(reused, policy, now).find("is gone"), std::string::npos);
  Labels rebooted = mine;
  rebooted[kLabelBootId] = "another-boot";
  EXPECT_NE(ReapReason(rebooted, policy, now).find("rebooted"), std::string::npos);
  // A PID taken in another PID namespace (a creator in another container with this host name)
  // says nothing here: only expiry counts.
  ASSERT_FALSE(OwnerIdentity::Self().pid_ns.empty());
  EXPECT_EQ(mine.at(kLabelPidNs), OwnerIdentity::Self().pid_ns);
  Labels elsewhere = dead;
  elsewhere[kLabelPidNs] = "1";
  EXPECT_EQ(ReapReason(elsewhere, policy, now), "");
  EXPECT_EQ(ReapReason(elsewhere, policy, at + 1), "expired 1 s ago");
  // Another host's objects: only their expiry counts, and only with expired_any_host.
  Labels other = dead;
  other[kLabelHost] = "elsewhere";
  EXPECT_EQ(ReapReason(other, policy, now + 7200), "");
  policy.expired_any_host = true;
  EXPECT_NE(ReapReason(other, policy, now + 7200), "");
  policy.expired_any_host = false;
  // No host at all (a machine that never got its tags): any host reaps it once it expires.
  const Labels untagged = {{kLabelCreator, "bitfusion"}, {kLabelExpires, std::to_string(now)}};
  EXPECT_EQ(ReapReason(untagged, policy, now), "");
  EXPECT_EQ(ReapReason(untagged, policy, now + 5), "expired 5 s ago");
  // Run ids select regardless of state; objects without the creator label never go.
  ReapPolicy by_run;
  by_run.run_id = "run-1";
  EXPECT_EQ(ReapReason(mine, by_run, now), "of run run-1");
  by_run.run_id = "run-2";
  EXPECT_EQ(ReapReason(mine, by_run, now), "");
  Labels foreign = dead;
  foreign.erase(kLabelCreator);
  EXPECT_EQ(ReapReason(foreign, ReapPolicy{}, now + 7200), "");
}

}  // namespace
}  // namespace bitfusion
