// A group's setup steps and the preflight on its machines: the plan fields and their errors, the
// preflight's output read and judged, and a local:// group end to end (steps run once, what the
// preflight found in the result and in --json, a machine that fails kept from every run with an
// error record, a machine.down event and the plan's exit). Remote machines: plan_fleet_test.cc.
#include "experiment/machine_preflight.h"

#include <gtest/gtest.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <mutex>

#include "bitfusion/events.h"
#include "bitfusion/experiment.h"

namespace bitfusion {
namespace {

using internal::CompareVersions;
using internal::JudgePreflight;
using internal::ParsePreflightOutput;

std::string ErrorOf(const std::string& group) {
  auto plan =
      ParsePlan(R"({"machines": {"a": )" + group + R"(}, "benchmarks": [{"command": ["true"]}]})",
                "plan.json");
  EXPECT_FALSE(plan.ok()) << group;
  return plan.ok() ? "" : plan.error().message();
}

TEST(MachinePreflightTest, SetupAndLimitsAreRead) {
  auto plan = ParsePlan(R"({"machines": {
      "a": {"provisioner": "local://", "setup": ["apt-get install -y numactl", "true"],
            "setup_timeout": "5m",
            "preflight": {"min_free_inodes": 5000000, "min_free_space": "10GiB",
                          "min_engine_version": "20.10"}},
      "b": {"provisioner": "local://", "setup": "echo one step"}},
    "benchmarks": [{"command": ["true"]}]})",
                        "plan.json");
  ASSERT_TRUE(plan.ok()) << plan.error().ToString();
  const MachineGroupSpec& a = plan->machines[0];
  EXPECT_EQ(a.setup, (std::vector<std::string>{"apt-get install -y numactl", "true"}));
  EXPECT_EQ(a.setup_timeout, std::chrono::minutes(5));
  EXPECT_EQ(a.preflight.min_free_inodes, 5'000'000u);
  EXPECT_EQ(a.preflight.min_free_bytes, 10ull << 30);
  EXPECT_EQ(a.preflight.min_engine_version, "20.10");
  const MachineGroupSpec& b = plan->machines[1];
  EXPECT_EQ(b.setup, (std::vector<std::string>{"echo one step"}));
  EXPECT_EQ(b.setup_timeout, std::chrono::minutes(30)) << "the default";
  EXPECT_EQ(b.preflight.min_free_inodes, 100'000u) << "the default";
  EXPECT_EQ(b.preflight.min_free_bytes, 2ull << 30) << "the default";
  EXPECT_TRUE(b.preflight.min_engine_version.empty());
}

TEST(MachinePreflightTest, BadSetupAndLimitsAreNamedWithTheirField) {
  EXPECT_NE(ErrorOf(R"({"provisioner": "local://", "setup": ["ok", "  "]})")
                .find("machines.a.setup[1]: an empty setup step"),
            std::string::npos);
  EXPECT_NE(ErrorOf(R"({"provisioner": "local://", "setup": [1]})")
                .find("machines.a.setup[0]: expected a string"),
            std::string::npos);
  EXPECT_NE(ErrorOf(R"({"provisioner": "local://", "setup_timeout": "0s"})")
                .find("machines.a.setup_timeout: at least 1s"),
            std::string::npos);
  EXPECT_NE(ErrorOf(R"({"provisioner": "local://", "preflight": {"min_inodes": 1}})")
                .find("machines.a.preflight.min_inodes: unknown field; known fields: "
                      "min_engine_version, min_free_inodes, min_free_space"),
            std::string::npos);
  EXPECT_NE(ErrorOf(R"({"provisioner": "local://", "preflight": {"min_free_inodes": -1}})")
                .find("machines.a.preflight.min_free_inodes: expected a whole number"),
            std::string::npos);
  EXPECT_NE(ErrorOf(R"({"provisioner": "local://", "preflight": {"min_free_space": "lots"}})")
                .find("machines.a.preflight.min_free_space: "),
            std::string::npos);
  EXPECT_NE(ErrorOf(R"({"provisioner": "local://", "preflight": {"min_engine_version": "new"}})")
                .find("machines.a.preflight.min_engine_version: expected a version such as "
                      "\"20.10\""),
            std::string::npos);
}

TEST(MachinePreflightTest, OutputIsReadAndBadOutputNamed) {
  MachinePreflight found;
  ASSERT_TRUE(ParsePreflightOutput("kernel 6.1.0-18-amd64\nroot /var/lib/docker\n"
                                   "fs 1234567 1000 4096\ndriver nvidia 550.54.14\n"
                                   "driver amdgpu\n",
                                   found)
                  .ok());
  EXPECT_EQ(found.kernel, "6.1.0-18-amd64");
  EXPECT_EQ(found.data_root, "/var/lib/docker");
  EXPECT_EQ(found.free_inodes, 1234567u);
  EXPECT_EQ(found.free_bytes, 1000u * 4096u);
  EXPECT_EQ(found.accelerator_drivers, (std::vector<std::string>{"nvidia 550.54.14", "amdgpu"}));

  MachinePreflight bad;
  auto s = ParsePreflightOutput("kernel 6.1\nfs many 1 4096\n", bad);
  EXPECT_NE(s.message().find("cannot read free inodes and space from \"fs many 1 4096\""),
            std::string::npos)
      << s.ToString();
  s = ParsePreflightOutput("kernel 6.1\nstat: cannot read file system information\n", bad);
  EXPECT_NE(s.message().find("unexpected line \"stat: cannot read"), std::string::npos);
  s = ParsePreflightOutput("kernel 6.1\n", bad);
  EXPECT_NE(s.message().find("free inodes and space are missing"), std::string::npos);
  s = ParsePreflightOutput("fs 1 1 1\n", bad);
  EXPECT_NE(s.message().find("kernel release is missing"), std::string::npos);
}

TEST(MachinePreflightTest, VersionsCompareNumberByNumber) {
  EXPECT_GT(CompareVersions("20.10.24+dfsg1", "20.10.9"), 0);
  EXPECT_LT(CompareVersions("19.03.15", "20.10"), 0);
  EXPECT_EQ(CompareVersions("20.10", "20.10.0"), 0);
  EXPECT_GT(CompareVersions("24.0.5", "20.10"), 0);
  EXPECT_LT(CompareVersions("", "1"), 0);
}

TEST(MachinePreflightTest, LimitsAndAcceleratorDriversAreJudged) {
  MachineGroupSpec group;
  MachinePreflight found;
  found.engine = "docker";
  found.engine_version = "20.10.24+dfsg1";
  found.data_root = "/var/lib/docker";
  found.free_inodes = 200'000;
  found.free_bytes = 8ull << 30;
  EXPECT_EQ(JudgePreflight(group, found), "");

  found.free_inodes = 99'999;
  std::string why = JudgePreflight(group, found);
  EXPECT_NE(why.find("99999 free inodes on /var/lib/docker, below the 100000 this group needs"),
            std::string::npos)
      << why;
  EXPECT_NE(why.find("docker system prune"), std::string::npos) << "says what to do";
  found.free_inodes = 200'000;

  group.preflight.min_free_bytes = 10ull << 30;
  why = JudgePreflight(group, found);
  EXPECT_NE(why.find("8.0 GiB free on /var/lib/docker, below the 10.0 GiB"), std::string::npos)
      << why;
  group.preflight.min_free_bytes = 1;

  group.preflight.min_engine_version = "23.0";
  why = JudgePreflight(group, found);
  EXPECT_NE(why.find("docker 20.10.24+dfsg1 is older than the 23.0 this group needs"),
            std::string::npos)
      << why;
  group.preflight.min_engine_version = "20.10";
  EXPECT_EQ(JudgePreflight(group, found), "");

  // A group that asks for NVIDIA GPUs needs the nvidia module; an AMD one does not do.
  group.requirements.accelerator_kind = "gpu";
  group.requirements.accelerator_vendor = "nvidia";
  found.accelerator_drivers = {"amdgpu"};
  why = JudgePreflight(group, found);
  EXPECT_NE(why.find("asks for gpu but no driver for one is loaded (none of nvidia in "
                     "/sys/module)"),
            std::string::npos)
      << why;
  found.accelerator_drivers = {"nvidia 550.54.14"};
  EXPECT_EQ(JudgePreflight(group, found), "");
  group.requirements.accelerator_vendor.clear();
  found.accelerator_drivers = {"amdgpu"};
  EXPECT_EQ(JudgePreflight(group, found), "") << "any GPU driver for a group without a vendor";
  group.requirements.accelerator_kind = "fpga";
  why = JudgePreflight(group, found);
  EXPECT_NE(why.find("none of xocl, xclmgmt, dfl_fme"), std::string::npos) << why;
}

class PreflightPlanTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           ("bf-preflight-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  Result<PlanSpec> Plan(const std::string& group) {
    return ParsePlan(R"({"name": "pf", "machines": {"here": )" + group + R"(},
      "benchmarks": [{"name": "b1", "command": ["sh", "-c", "echo 'BITFUSION_RESULT s 1 x'"],
                      "repetitions": 2, "warmup": 0},
                     {"name": "b2", "command": ["true"], "repetitions": 1, "warmup": 0}]})",
                     (dir_ / "plan.json").string());
  }
  std::filesystem::path dir_;
};

std::string Uname() {
  struct utsname u {};
  ::uname(&u);
  return u.release;
}

TEST_F(PreflightPlanTest, SetupRunsOnceAndThePreflightIsRecorded) {
  const std::string marker = (dir_ / "setup.log").string();
  auto plan = Plan(R"({"provisioner": "local://",
                       "setup": ["echo first >> )" +
                   marker + R"(", "echo second >> )" + marker + R"("]})");
  ASSERT_TRUE(plan.ok()) << plan.error().ToString();
  auto result = RunPlan(*plan, {});
  ASSERT_TRUE(result.ok()) << result.error().ToString();
  ASSERT_EQ(result->runs.size(), 3u);
  for (const auto& r : result->runs) EXPECT_EQ(r.status, kRunOk) << r.error;
  std::ifstream in(marker);
  std::string text((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(text, "first\nsecond\n") << "each step once, in order, before the runs";

  ASSERT_EQ(result->preflight.count("here-1"), 1u);
  const MachinePreflight& f = result->preflight.at("here-1");
  EXPECT_EQ(f.error, "");
  EXPECT_EQ(f.machine, "here-1");
  EXPECT_EQ(f.kernel, Uname());
  EXPECT_EQ(f.engine, "process");
  EXPECT_EQ(f.setup_steps, 2);
  EXPECT_EQ(f.data_root, std::filesystem::current_path().string())
      << "without an engine, the directory commands run in";
  EXPECT_GT(f.free_inodes, 0u);
  EXPECT_GT(f.free_bytes, 0u);

  // --json says where the runs ran and what the preflight found there.
  const auto json = boost::json::parse(FormatSummaryJson(*result)).as_object();
  const auto& machine = json.at("machines").at("here-1").as_object();
  EXPECT_EQ(machine.at("provider").as_string(), "local");
  EXPECT_EQ(machine.at("preflight").at("ok").as_bool(), true);
  EXPECT_EQ(machine.at("preflight").at("kernel").as_string(), Uname());
  EXPECT_EQ(machine.at("preflight").at("setup_steps").as_int64(), 2);
  EXPECT_EQ(json.at("runs").at(0).at("machine").as_string(), "here-1");
}

TEST_F(PreflightPlanTest, AMachineThatFailsItsPreflightRunsNothingAndIsReported) {
  auto plan = Plan(R"({"provisioner": "local://", "preflight": {"min_free_space": "1000TiB"}})");
  ASSERT_TRUE(plan.ok()) << plan.error().ToString();
  std::mutex mu;
  std::vector<Event> down;
  ExperimentOptions options;
  options.on_event = [&](const Event& e) {
    std::lock_guard lock(mu);
    if (e.type == EventType::kMachineDown) down.push_back(e);
  };
  auto result = RunPlan(*plan, options);
  ASSERT_TRUE(result.ok()) << result.error().ToString();
  ASSERT_EQ(result->runs.size(), 2u) << "one error record per benchmark, no run made";
  for (const auto& r : result->runs) {
    EXPECT_EQ(r.status, kRunError);
    EXPECT_NE(r.error.find("not run: machine here-1 failed its setup or preflight: preflight: "),
              std::string::npos)
        << r.error;
    EXPECT_NE(r.error.find(" free on "), std::string::npos) << r.error;
    EXPECT_NE(r.error.find("this group needs (\"preflight\": {\"min_free_space\"})"),
              std::string::npos)
        << r.error;
    EXPECT_EQ(r.labels.at("machine"), "here-1");
  }
  EXPECT_EQ(result->failed_runs, 2);
  EXPECT_NE(result->preflight.at("here-1").error.find("min_free_space"), std::string::npos)
      << result->preflight.at("here-1").error;
  std::lock_guard lock(mu);
  ASSERT_EQ(down.size(), 1u);
  EXPECT_EQ(down[0].subject, "here-1");
  EXPECT_EQ(EventAttribute(down[0], "reason"), "preflight");
}

TEST_F(PreflightPlanTest, AFailedSetupStepIsNamedWithItsOutputAndStopsTheRest) {
  const std::string marker = (dir_ / "after").string();
  auto plan = Plan(R"({"provisioner": "local://",
                       "setup": ["echo preparing; echo 'E: Unable to locate package nosuch' >&2; exit 100",
                                 "touch )" +
                   marker + R"("]})");
  ASSERT_TRUE(plan.ok()) << plan.error().ToString();
  auto result = RunPlan(*plan, {});
  ASSERT_TRUE(result.ok()) << result.error().ToString();
  ASSERT_EQ(result->runs.size(), 2u);
  const std::string& why = result->preflight.at("here-1").error;
  EXPECT_NE(why.find("setup step 1 (echo preparing;"), std::string::npos) << why;
  EXPECT_NE(why.find("exited with status 100"), std::string::npos) << why;
  EXPECT_NE(why.find("| E: Unable to locate package nosuch"), std::string::npos) << why;
  EXPECT_EQ(result->preflight.at("here-1").setup_steps, 0);
  EXPECT_FALSE(std::filesystem::exists(marker)) << "the steps after a failed one do not run";
  for (const auto& r : result->runs) EXPECT_EQ(r.status, kRunError);
}

TEST_F(PreflightPlanTest, ASetupStepThatOverrunsItsTimeoutIsStopped) {
  auto plan = Plan(R"({"provisioner": "local://", "setup": ["sleep 30"], "setup_timeout": "1s"})");
  ASSERT_TRUE(plan.ok()) << plan.error().ToString();
  auto result = RunPlan(*plan, {});
  ASSERT_TRUE(result.ok()) << result.error().ToString();
  const std::string& why = result->preflight.at("here-1").error;
  EXPECT_NE(why.find("setup step 1 (sleep 30) timed out"), std::string::npos) << why;
}

}  // namespace
}  // namespace bitfusion
