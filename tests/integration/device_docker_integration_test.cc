// A leased device passed into a real Docker container: a recorded tree whose /dev entries are
// turned into real character devices with mknod, a lease from sysfs:// on it, the lease's
// container edits applied to a spec, and a busybox container that lists what it got. Exactly
// the leased device's nodes (and the vendor's shared ones) must be inside, nothing of the
// devices held by someone else.
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <filesystem>
#include <set>
#include <sstream>

#include "bitfusion/device_allocator.h"
#include "integration/docker_daemon.h"

namespace bitfusion {
namespace {

namespace fs = std::filesystem;
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

class DeviceDockerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string why = testing::WhyNoDocker();
    BITFUSION_REQUIRE_SERVICE(why.empty(), why);
    daemon_ = std::make_unique<testing::DockerDaemon>("dev");
    const std::string down = daemon_->Start();
    BITFUSION_REQUIRE_SERVICE(down.empty(), down);
    ASSERT_TRUE(testing::ImportBusybox(daemon_->uri()).ok());
    auto runner = ContainerRunnerFromUri(daemon_->uri());
    ASSERT_TRUE(runner.ok()) << runner.error().ToString();
    runner_ = *runner;
  }
  void TearDown() override {
    daemon_.reset();
    std::error_code ec;
    if (!root_.empty()) fs::remove_all(root_, ec);
  }

  // A copy of a recorded tree whose dev/ files become character devices. They all get the
  // numbers of /dev/null: the container only has to see them, and these are harmless to open.
  std::string RootWithRealNodes(const std::string& host) {
    root_ = "/tmp/bf-devroot-" + host + "-" + std::to_string(::getpid());
    fs::remove_all(root_);
    fs::copy(std::string(BITFUSION_TEST_FIXTURES) + "/sysfs/" + host, root_,
             fs::copy_options::recursive | fs::copy_options::copy_symlinks);
    std::vector<fs::path> files;
    for (const auto& e : fs::recursive_directory_iterator(root_ + "/dev")) {
      if (e.is_regular_file()) files.push_back(e.path());
    }
    for (const auto& f : files) {
      fs::remove(f);
      EXPECT_EQ(::mknod(f.c_str(), S_IFCHR | 0666, makedev(1, 3)), 0) << f;
    }
    return root_;
  }

  // Runs `script` in busybox with the lease's edits; returns its stdout.
  std::string RunWith(const ContainerEdits& edits, const std::string& script) {
    ContainerSpec spec;
    spec.image = kBusyboxImage;
    spec.command = {"sh", "-c", script};
    spec.network_mode = "none";
    edits.ApplyTo(spec);
    auto c = runner_->Create(spec);
    EXPECT_TRUE(c.ok()) << c.error().ToString();
    if (!c.ok()) return "";
    Output out;
    auto sub = (*c)->Logs(out.Callback());
    EXPECT_TRUE((*c)->Start().ok());
    auto exit = (*c)->Wait(DeadlineAfter(60s));
    EXPECT_TRUE(exit.ok() && exit->success()) << out.err;
    std::lock_guard lock(out.mu);
    return out.out;
  }

  RunnerCapabilities Capabilities() {
    auto caps = runner_->Capabilities();
    EXPECT_TRUE(caps.ok());
    EXPECT_TRUE(caps->images);
    return *caps;
  }

  std::unique_ptr<testing::DockerDaemon> daemon_;
  std::shared_ptr<ContainerRunner> runner_;
  std::string root_;
};

std::set<std::string> Lines(const std::string& text) {
  std::set<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) out.insert(line);
  }
  return out;
}

TEST_F(DeviceDockerTest, OnlyTheLeasedGpusRenderNodesAndKfdAreInside) {
  const std::string root = RootWithRealNodes("amd-mi210-4gpu");
  auto allocator = DeviceAllocatorFromUri("sysfs://" + root + "?lock_dir=" + root + "/locks");
  ASSERT_TRUE(allocator.ok()) << allocator.error().ToString();
  DeviceRequest one;
  one.kind = DeviceKind::kGpu;
  auto someone_else = (*allocator)->Acquire(one, DeadlineAfter(1s));  // takes 0000:03:00.0
  ASSERT_TRUE(someone_else.ok());
  auto lease = (*allocator)->Acquire(one, DeadlineAfter(1s));
  ASSERT_TRUE(lease.ok()) << lease.error().ToString();
  ASSERT_EQ((*lease)->devices().at(0).id, "0000:43:00.0");

  auto edits = (*allocator)->EditsFor(**lease, Capabilities());
  ASSERT_TRUE(edits.ok()) << edits.error().ToString();
  const std::string out =
      RunWith(*edits,
              "ls /dev/dri; ls /dev | grep -x -e kfd -e 'i2c-.*'; "
              "stat -c 'char %F' /dev/dri/renderD129; echo \"devices=$BITFUSION_DEVICES\"");
  EXPECT_EQ(Lines(out),
            (std::set<std::string>{"card2", "renderD129", "kfd", "char character special file",
                                   "devices=0000:43:00.0"}))
      << out;
}

TEST_F(DeviceDockerTest, ANvidiaGpuGetsItsNodeTheControlNodesAndItsMigCapabilities) {
  const std::string root = RootWithRealNodes("dgx-a100");
  auto allocator = DeviceAllocatorFromUri("sysfs://" + root + "?lock_dir=" + root + "/locks");
  ASSERT_TRUE(allocator.ok()) << allocator.error().ToString();
  DeviceRequest seven;
  seven.count = 7;
  auto others = (*allocator)->Acquire(seven, DeadlineAfter(1s));
  ASSERT_TRUE(others.ok());
  DeviceRequest one;
  auto lease = (*allocator)->Acquire(one, DeadlineAfter(1s));
  ASSERT_TRUE(lease.ok()) << lease.error().ToString();
  ASSERT_EQ((*lease)->devices().at(0).id, "0000:bd:00.0");

  // This engine's own answer decides nothing here: the node-mapping path is what is tested,
  // whatever runtimes the host has.
  RunnerCapabilities caps = Capabilities();
  caps.gpu_runtime = false;
  caps.cdi = false;
  auto edits = (*allocator)->EditsFor(**lease, caps);
  ASSERT_TRUE(edits.ok()) << edits.error().ToString();
  const std::string out = RunWith(
      *edits, "ls /dev | grep '^nvidia'; ls /dev/nvidia-caps; echo \"$NVIDIA_VISIBLE_DEVICES\"");
  EXPECT_EQ(Lines(out),
            (std::set<std::string>{"nvidia7", "nvidiactl", "nvidia-uvm", "nvidia-uvm-tools",
                                   "nvidia-modeset", "nvidia-caps", "nvidia-cap957",
                                   "nvidia-cap958", "GPU-a1000007-0000-4000-8000-000000000007"}))
      << out;
}

}  // namespace
}  // namespace bitfusion
