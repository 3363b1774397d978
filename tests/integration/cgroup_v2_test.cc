// The "cgroup:PATH" source on a real cgroup v2 hierarchy. This host (like many CI machines)
// runs cgroup v1, but a cgroup2 hierarchy can be mounted beside it: its core files (cpu.stat,
// cpu.pressure, cgroup.procs) work without any controller. The test mounts one in a temp dir,
// creates a fresh group, moves a busy child into it, samples the group through the source and
// checks each CPU reading against the kernel's own cpu.stat read just before and after, then
// leaves nothing behind: the child is killed, the group removed, the mount undone.
// Needs root: skipped without it on a developer's machine, a failure under CI=true.
#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>

#include "bitfusion/metric_stream.h"
#include "integration/service.h"

namespace bitfusion {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::string ReadAll(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A field of cpu.stat ("usage_usec 1234"), in microseconds.
std::optional<std::int64_t> CpuStat(const fs::path& group, const std::string& key) {
  std::istringstream lines(ReadAll(group / "cpu.stat"));
  std::string k;
  std::int64_t v = 0;
  while (lines >> k >> v) {
    if (k == key) return v;
  }
  return std::nullopt;
}

std::optional<double> ValueOf(const SampleBatch& batch, const std::string& metric) {
  for (std::size_t i = 0; i < batch.size(); ++i) {
    if (batch.series[batch.series_index[i]].metric == metric) return batch.value[i];
  }
  return std::nullopt;
}

// Everything the test sets up, undone in reverse order however the test ends.
struct Cgroup2Mount {
  fs::path mount_point;
  fs::path group;
  bool mounted = false;
  pid_t child = -1;

  ~Cgroup2Mount() {
    if (child > 0) {
      ::kill(child, SIGKILL);
      ::waitpid(child, nullptr, 0);  // a task leaves its group when it exits
    }
    if (!group.empty()) ::rmdir(group.c_str());
    if (mounted) ::umount2(mount_point.c_str(), MNT_DETACH);
    std::error_code ec;
    fs::remove(mount_point, ec);
  }
};

TEST(CgroupV2Test, BusyChildIsSampledLikeTheKernelCountsIt) {
  BITFUSION_REQUIRE_SERVICE(testing::IsRoot(), "mounting a cgroup2 hierarchy needs root");
  Cgroup2Mount cg;
  cg.mount_point = fs::path(::testing::TempDir()) / ("bf-cgroup2-" + std::to_string(::getpid()));
  fs::create_directories(cg.mount_point);
  const int mounted = ::mount("none", cg.mount_point.c_str(), "cgroup2", 0, nullptr);
  BITFUSION_REQUIRE_SERVICE(mounted == 0, std::string("mount -t cgroup2 failed: ") +
                                              std::strerror(errno) +
                                              " (a container without CAP_SYS_ADMIN?)");
  cg.mounted = true;
  ASSERT_TRUE(fs::exists(cg.mount_point / "cgroup.controllers"));
  const std::string name = "bf-test-" + std::to_string(::getpid());
  cg.group = cg.mount_point / name;
  ASSERT_EQ(::mkdir(cg.group.c_str(), 0755), 0) << std::strerror(errno);
  EXPECT_EQ(CpuStat(cg.group, "usage_usec"), 0) << "a fresh group has used no CPU";

  cg.child = ::fork();
  ASSERT_GE(cg.child, 0);
  if (cg.child == 0) {
    volatile std::uint64_t spin = 0;
    while (true) spin = spin + 1;  // busy until killed; nothing that allocates after fork
  }
  std::ofstream(cg.group / "cgroup.procs") << cg.child << "\n";
  ASSERT_EQ(ReadAll(cg.group / "cgroup.procs"), std::to_string(cg.child) + "\n");

  auto source = MetricSourceFromUri("cgroup:/" + name + "?root=" + cg.mount_point.string());
  ASSERT_TRUE(source.ok()) << source.error().ToString();
  double previous = -1;
  double first = -1;
  for (int i = 0; i < 20; ++i) {
    std::this_thread::sleep_for(50ms);
    const std::int64_t before = *CpuStat(cg.group, "usage_usec");
    SampleBatch batch;
    ASSERT_TRUE((*source)->Collect(Now(), batch).ok());
    const std::int64_t after = *CpuStat(cg.group, "usage_usec");
    const auto usage = ValueOf(batch, "cgroup.cpu.usage");
    const auto user = ValueOf(batch, "cgroup.cpu.user");
    const auto system = ValueOf(batch, "cgroup.cpu.system");
    ASSERT_TRUE(usage && user && system) << "cpu.stat's usage, user and system are read";
    // Read between the two direct reads of the same counter (1 us: its resolution).
    EXPECT_GE(*usage, static_cast<double>(before) * 1e-6 - 1e-6) << "sample " << i;
    EXPECT_LE(*usage, static_cast<double>(after) * 1e-6 + 1e-6) << "sample " << i;
    EXPECT_GE(*usage, previous) << "a counter never goes back";
    // The kernel splits usage into user and system (each rounded to a microsecond).
    EXPECT_NEAR(*user + *system, *usage, 5e-6) << "sample " << i;
    previous = *usage;
    if (first < 0) first = *usage;
  }
  EXPECT_GT(previous - first, 0.05)
      << "a busy child uses well over 50 ms of CPU in about a second, even on a loaded host";

  // Cleanup is the fixture's; check it leaves nothing behind. The source keeps the group's
  // files open, so it goes first, or the hierarchy stays busy.
  source->reset();
  ::kill(cg.child, SIGKILL);
  ::waitpid(cg.child, nullptr, 0);
  cg.child = -1;
  EXPECT_EQ(ReadAll(cg.group / "cgroup.procs"), "");
  EXPECT_EQ(::rmdir(cg.group.c_str()), 0) << std::strerror(errno);
  cg.group.clear();
  ASSERT_EQ(::umount2(cg.mount_point.c_str(), 0), 0) << std::strerror(errno);
  cg.mounted = false;
}

}  // namespace
}  // namespace bitfusion
