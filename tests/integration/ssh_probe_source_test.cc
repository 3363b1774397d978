// host+ssh:// against real sshds the test starts (tests/integration/sshd_server.h): one on
// 127.0.0.1 and one in a network namespace (another network host on the same kernel, so the same
// clocks: the offset estimate must come out within its own uncertainty of zero). The probe is
// copied over the channel, samples the host, and is gone with its directory after Stop, and
// after its ssh client is killed.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "bitfusion/clock.h"
#include "bitfusion/metric_stream.h"
#include "integration/sshd_server.h"
#include "metrics/remote_probe_host.h"
#include "metrics/ssh_gpu_source.h"
#include "metrics/ssh_probe_source.h"

namespace bitfusion {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using testing::NetnsHost;
using testing::SshClientFiles;
using testing::TestSshd;

const std::string kProbe = std::string(BITFUSION_BIN_DIR) + "/bitfusion-probe";

// Whether a process's command line matches `pattern` (pgrep -f); its first character is put in
// brackets so that the shell running pgrep does not match itself.
int Running(const std::string& pattern) {
  const std::string own = "[" + pattern.substr(0, 1) + "]" + pattern.substr(1);
  return testing::Shell("pgrep -f -- '" + own + "' >/dev/null") == 0 ? 1 : 0;
}

bool WaitFor(const std::function<bool()>& done, std::chrono::milliseconds limit) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= until) return false;
    std::this_thread::sleep_for(20ms);
  }
  return true;
}

class SshProbeSourceTest : public testing::TwoSshHostsTest {
 protected:
  SshProbeSourceTest() : TwoSshHostsTest("ssh-probe") {}

  void TearDown() override {
    // This test's ssh clients that started a probe (they name its ssh_config; other programs
    // on this machine may be running probes of their own): each lives as long as its channel.
    // The pattern is made first: StopAll clears dir_.
    const std::string own_probes = dir_.string() + "/ssh_config .*bitfusion-agent";
    TwoSshHostsTest::TearDown();
    EXPECT_EQ(Running(own_probes), 0) << "a probe of this test is still connected";
  }

  std::string Uri(const std::string& host, int port, const std::string& extra = "",
                  const std::string& interval = "20ms") const {
    return "host+ssh://root@" + host + (port != 22 ? ":" + std::to_string(port) : "") +
           "?identity=" + client_.key.string() + "&ssh_config=" + client_.config.string() +
           "&connect_timeout=5&interval=" + interval + "&probe=" + kProbe + extra;
  }

  std::shared_ptr<SshProbeSource> Make(const std::string& uri) {
    auto parsed = Uri::Parse(uri);
    EXPECT_TRUE(parsed.ok());
    if (!parsed.ok()) return nullptr;
    auto options = SshProbeSourceOptions::FromUri(*parsed);
    EXPECT_TRUE(options.ok()) << options.error().ToString();
    if (!options.ok()) return nullptr;
    auto source = SshProbeSource::Make(*options);
    EXPECT_TRUE(source.ok()) << source.error().ToString();
    return source.ok() ? *source : nullptr;
  }

  // Samples a host for a while and checks what came back against this host's clocks.
  void SamplesOnThisHostsTimeline(const std::string& host, int port, const std::string& machine) {
    const Timestamp before = Now();
    auto source = Make(Uri(host, port, "&machine=" + machine));
    ASSERT_NE(source, nullptr);
    const std::string dir = source->remote_dir();
    // Under the remote sessions' TMPDIR: the far host's is the test's (sshd_server.h).
    const fs::path tmp = host == "127.0.0.1" ? fs::path("/tmp") : dir_ / "far-tmp";
    ASSERT_EQ(dir.rfind((tmp / "bitfusion-agent.").string(), 0), 0u) << dir;
    EXPECT_TRUE(fs::exists(fs::path(dir) / "bitfusion-probe")) << "the same file system here";
    EXPECT_EQ(Running(dir + "/bitfusion-probe"), 1);

    // Same kernel, same clocks: the true offset is 0, which the estimate's bound must hold.
    const internal::ClockOffset& offset = source->clock_offset();
    EXPECT_GT(offset.uncertainty_ns, 0);
    EXPECT_LT(offset.uncertainty_ns, 50'000'000) << "a round trip on one machine";
    EXPECT_LE(std::abs(offset.offset_ns), offset.uncertainty_ns + 100'000)
        << "offset " << offset.offset_ns << " ± " << offset.uncertainty_ns;
    EXPECT_EQ(offset.exchanges, 8);
    std::printf("%s: clock offset %lld ns, uncertainty %lld ns (delay %lld ns)\n", machine.c_str(),
                static_cast<long long>(offset.offset_ns),
                static_cast<long long>(offset.uncertainty_ns),
                static_cast<long long>(offset.delay_ns));

    SampleBatch batch;
    std::this_thread::sleep_for(300ms);
    ASSERT_TRUE(source->Collect(Now(), batch).ok());
    const Timestamp after = Now();
    ASSERT_GT(batch.size(), 0u);
    std::set<std::string> metrics;
    for (const Series& s : batch.series) {
      metrics.insert(s.metric);
      EXPECT_EQ(s.labels.at("machine"), machine);
      EXPECT_EQ(s.labels.at("view"), "host");
      EXPECT_EQ(s.labels.at("clock_offset_ns"), std::to_string(offset.offset_ns));
      EXPECT_EQ(s.labels.at("clock_uncertainty_ns"), std::to_string(offset.uncertainty_ns));
    }
    for (const char* m : {"cpu.user", "cpu.idle", "mem.total", "mem.available"}) {
      EXPECT_TRUE(metrics.count(m)) << m;
    }
    EXPECT_EQ(metrics.count("proc.rss"), 0u) << "processes are off unless asked";
    EXPECT_EQ(metrics.count("cgroup.memory.usage"), 0u) << "the root cgroup is off unless asked";
    std::set<std::int64_t> ticks;
    for (std::size_t i = 0; i < batch.size(); ++i) {
      // Every sample lies in the window this host saw, on both of its clocks (give or take
      // the estimate's bound).
      const std::int64_t slack = offset.uncertainty_ns + 1'000'000;
      EXPECT_GE(batch.timestamp_ns[i], before.wall_ns - slack);
      EXPECT_LE(batch.timestamp_ns[i], after.wall_ns + slack);
      EXPECT_GE(batch.monotonic_ns[i], before.mono_ns - slack);
      EXPECT_LE(batch.monotonic_ns[i], after.mono_ns + slack);
      ticks.insert(batch.monotonic_ns[i]);
    }
    EXPECT_GE(ticks.size(), 5u) << "a tick every 20 ms for 300 ms and more";

    EXPECT_TRUE(source->Stop().ok());
    EXPECT_FALSE(fs::exists(dir)) << "the remote directory is removed at the end";
    EXPECT_EQ(Running(dir + "/bitfusion-probe"), 0);
    // What arrived last is still delivered; then the source has ended.
    SampleBatch rest;
    Status s = source->Collect(Now(), rest);
    if (s.ok()) s = source->Collect(Now(), rest);
    EXPECT_EQ(s.code(), StatusCode::kNotFound) << s.ToString();
  }
};

TEST_F(SshProbeSourceTest, LoopbackHostIsSampledOnThisHostsTimeline) {
  SamplesOnThisHostsTimeline("127.0.0.1", lo_->port(), "lo-1");
}

TEST_F(SshProbeSourceTest, NamespaceHostIsSampledOnThisHostsTimeline) {
  StartFarHost();
  SamplesOnThisHostsTimeline(ns_->address(), 22, "far-1");
}

TEST_F(SshProbeSourceTest, KillingTheSshClientEndsTheRemoteProbe) {
  auto source = Make(Uri("127.0.0.1", lo_->port()));
  ASSERT_NE(source, nullptr);
  const std::string dir = source->remote_dir();
  ASSERT_FALSE(dir.empty());
  ASSERT_EQ(Running(dir + "/bitfusion-probe"), 1);
  // The controller's side of the channel dies without a word: the remote probe sees the end of
  // its input, exits, and its shell removes the directory.
  ASSERT_EQ(::kill(source->client_pid(), SIGKILL), 0);
  EXPECT_TRUE(WaitFor([&] { return Running(dir + "/bitfusion-probe") == 0; }, 10s))
      << "the probe outlived its connection";
  EXPECT_TRUE(WaitFor([&] { return !fs::exists(dir); }, 10s)) << dir << " was left behind";
  // The source says it has ended, after what it had.
  Status s;
  EXPECT_TRUE(WaitFor(
      [&] {
        SampleBatch batch;
        s = source->Collect(Now(), batch);
        return !s.ok();
      },
      10s));
  EXPECT_EQ(s.code(), StatusCode::kNotFound) << s.ToString();
  EXPECT_NE(s.message().find("without its END record"), std::string::npos) << s.ToString();
}

// The controller itself dies (SIGKILL, no cleanup): its ssh client, left behind, sees the end of
// its input and closes the channel, so the probe still stops and its directory goes.
TEST_F(SshProbeSourceTest, KillingTheControllerEndsTheRemoteProbe) {
  const fs::path runtime = dir_ / "rt";
  fs::create_directories(runtime);
  const std::string uri = Uri("127.0.0.1", lo_->port(), "&runtime_dir=" + runtime.string());
  int out[2];
  ASSERT_EQ(::pipe(out), 0);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out[1], 1);
    ::execl(BITFUSION_SSH_PROBE_CREATOR, BITFUSION_SSH_PROBE_CREATOR, uri.c_str(), nullptr);
    ::_exit(127);
  }
  ::close(out[1]);
  FILE* in = ::fdopen(out[0], "r");
  char line[4096] = {0};
  const bool printed = std::fgets(line, sizeof line, in) != nullptr;
  std::fclose(in);
  std::string dir = line;
  while (!dir.empty() && dir.back() == '\n') dir.pop_back();
  EXPECT_TRUE(printed && !dir.empty()) << "the controller printed no directory";
  EXPECT_EQ(Running(dir + "/bitfusion-probe"), 1);
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  EXPECT_TRUE(WaitFor([&] { return Running(dir + "/bitfusion-probe") == 0; }, 10s))
      << "the probe outlived its controller";
  EXPECT_TRUE(WaitFor([&] { return !fs::exists(dir); }, 10s)) << dir << " was left behind";
  // The killed controller's master outlives it (ControlPersist); end it as `ssh -O exit` does.
  for (const auto& d : fs::directory_iterator(runtime)) {
    testing::Shell("ssh -o ControlPath=" + (d.path() / "m").string() +
                   " -O exit root@127.0.0.1 2>/dev/null");
  }
}

// Something that is not a probe (here a script that complains and exits) fails the start with
// what it said, and leaves nothing behind.
TEST_F(SshProbeSourceTest, AProbeThatDoesNotStartSaysWhy) {
  const fs::path fake = dir_ / "not-a-probe";
  std::ofstream(fake) << "#!/bin/sh\necho this is no probe >&2\nexit 3\n";
  auto options = SshProbeSourceOptions::FromUri(*Uri::Parse(Uri("127.0.0.1", lo_->port())));
  ASSERT_TRUE(options.ok()) << options.error().ToString();
  options->probe_path = fake.string();
  options->start_timeout = 30s;
  auto source = SshProbeSource::Make(*options);
  ASSERT_FALSE(source.ok());
  EXPECT_EQ(source.error().code(), StatusCode::kUnavailable) << source.error().ToString();
  EXPECT_NE(source.error().message().find("this is no probe"), std::string::npos)
      << source.error().ToString();
  EXPECT_TRUE(
      WaitFor([&] { return Running(dir_.string() + "/ssh_config .*bitfusion-agent") == 0; }, 10s));
}

TEST_F(SshProbeSourceTest, TheRegistryMakesItAndProcessesAreSampledWhenAsked) {
  auto made =
      MetricSourceFromUri(Uri("127.0.0.1", lo_->port(), "&processes=true&cgroup=true&rate=true"));
  ASSERT_TRUE(made.ok()) << made.error().ToString();
  std::set<std::string> metrics;
  EXPECT_TRUE(WaitFor(
      [&] {
        SampleBatch batch;
        EXPECT_TRUE((*made)->Collect(Now(), batch).ok());
        for (const Series& s : batch.series) metrics.insert(s.metric + " " + s.unit);
        return metrics.count("proc.rss bytes") && metrics.count("cpu.user s/s") &&
               metrics.count("cgroup.memory.usage bytes");
      },
      10s))
      << "processes, the root cgroup and rates";
  EXPECT_GT((*made)->BackgroundCpuNs(), 0) << "the remote probe's own CPU is counted";
}

// How long a sample takes from the remote tick to Collect here, at 100 Hz on loopback (polled
// every 2 ms, so that much is added). Printed for the record; the bound asserted is loose, for a
// loaded machine.
TEST_F(SshProbeSourceTest, SamplesArriveSoonAfterTheirTick) {
  auto source = Make(Uri("127.0.0.1", lo_->port(), "", "10ms"));
  ASSERT_NE(source, nullptr);
  SampleBatch first;
  ASSERT_TRUE(source->Collect(Now(), first).ok());  // what was taken during the start
  std::vector<std::int64_t> latency;
  std::set<std::int64_t> ticks;
  const auto until = std::chrono::steady_clock::now() + 3s;
  while (std::chrono::steady_clock::now() < until) {
    SampleBatch batch;
    ASSERT_TRUE(source->Collect(Now(), batch).ok());
    const std::int64_t now = WallNowNs();
    for (std::size_t i = 0; i < batch.size(); ++i) {
      if (ticks.insert(batch.timestamp_ns[i]).second) {
        latency.push_back(now - batch.timestamp_ns[i]);
      }
    }
    std::this_thread::sleep_for(2ms);
  }
  ASSERT_GE(latency.size(), 100u) << "about 300 ticks in 3 s";
  std::sort(latency.begin(), latency.end());
  const auto at = [&](double q) {
    return latency[std::min(latency.size() - 1, static_cast<std::size_t>(q * latency.size()))];
  };
  std::printf(
      "latency over %zu ticks: p50 %.2f ms, p99 %.2f ms, max %.2f ms; probe CPU %.1f us "
      "per tick\n",
      latency.size(), at(0.5) / 1e6, at(0.99) / 1e6, latency.back() / 1e6,
      static_cast<double>(source->BackgroundCpuNs()) / 1e3 /
          static_cast<double>(source->ticks_received()));
  EXPECT_LT(at(0.99), 500'000'000) << "p99 of a sample's way here";
}

// What a container's probe on another machine's engine gets there (remote_probe_host.h): the
// probe in a private directory, a run/ directory whose probe.sock sshd forwards back to a socket
// here, and for a container of another user both opened to it. All of it goes with the object.
TEST_F(SshProbeSourceTest, AContainersProbeCopyIsForwardedBackAndGoneWithIt) {
  const fs::path back = dir_ / "back.sock";
  const int listener = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(listener, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, back.c_str(), sizeof addr.sun_path - 1);
  ASSERT_EQ(::bind(listener, reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(listener, 4), 0);

  auto host = RemoteProbeHost::Open(Uri("127.0.0.1", lo_->port(), "&machine=lo-1"), kProbe);
  ASSERT_TRUE(host.ok()) << host.error().ToString();
  const fs::path dir = fs::path((*host)->run_dir()).parent_path();
  ASSERT_EQ(dir.string().rfind("/tmp/bitfusion-agent.", 0), 0u) << dir;
  ASSERT_TRUE((*host)->Forward(back.string(), "1000:1000").ok());
  const fs::path sock = fs::path((*host)->run_dir()) / "probe.sock";
  struct stat st {};
  ASSERT_EQ(::stat(sock.c_str(), &st), 0) << sock << " made by sshd";
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0666u) << "user 1000 connects too";
  EXPECT_EQ(fs::status(dir).permissions(), static_cast<fs::perms>(0711));
  EXPECT_EQ(fs::status((*host)->run_dir()).permissions(), static_cast<fs::perms>(0711));
  EXPECT_EQ(fs::status((*host)->probe_path()).permissions(), static_cast<fs::perms>(0755));
  const auto labels = (*host)->labels();
  EXPECT_EQ(labels.at("machine"), "lo-1");
  EXPECT_EQ(labels.count("clock_offset_ns"), 1u);
  EXPECT_EQ((*host)->time_shift().wall_ns, -std::stoll(labels.at("clock_offset_ns")));

  // A connection there arrives here, and what is written there is read here.
  const int there = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un to{};
  to.sun_family = AF_UNIX;
  std::strncpy(to.sun_path, sock.c_str(), sizeof to.sun_path - 1);
  ASSERT_EQ(::connect(there, reinterpret_cast<const sockaddr*>(&to), sizeof to), 0);
  ASSERT_EQ(::write(there, "tick", 4), 4);
  pollfd pfd{listener, POLLIN, 0};
  ASSERT_EQ(::poll(&pfd, 1, 10'000), 1) << "the forward brings the connection here";
  const int here = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  ASSERT_GE(here, 0);
  char got[8] = {};
  pfd = {here, POLLIN, 0};
  ASSERT_EQ(::poll(&pfd, 1, 10'000), 1);
  EXPECT_EQ(::read(here, got, sizeof got), 4);
  EXPECT_STREQ(got, "tick");
  ::close(there);
  ::close(here);
  ::close(listener);

  host->reset();
  EXPECT_FALSE(fs::exists(dir)) << "the copy and its socket go with the object";
  EXPECT_EQ(Running(dir.string() + "/bitfusion-probe"), 0);
}

TEST(SshProbeSourceOptionsTest, UriIsCheckedBeforeAnythingStarts) {
  auto bad = [](const std::string& text) {
    auto uri = Uri::Parse(text);
    if (!uri.ok()) return uri.error().ToString();
    auto o = SshProbeSourceOptions::FromUri(*uri);
    return o.ok() ? std::string() : o.error().ToString();
  };
  EXPECT_NE(bad("host+ssh://root@h?color=red").find("color"), std::string::npos);
  EXPECT_NE(bad("host+ssh://root:pw@h").find("no password"), std::string::npos);
  EXPECT_NE(bad("host+ssh://root@h?interval=100us").find("1ms .. 1h"), std::string::npos);
  EXPECT_NE(bad("host+ssh://root@h?clock_exchanges=0").find("clock_exchanges"), std::string::npos);
  EXPECT_NE(bad("host+ssh://root@h?identity=/nonexistent/key").find("not a file"),
            std::string::npos);
  auto uri = Uri::Parse("host+ssh://bench@10.0.0.5:2222?interval=5ms&machine=m-1&processes=true");
  ASSERT_TRUE(uri.ok());
  auto o = SshProbeSourceOptions::FromUri(*uri);
  ASSERT_TRUE(o.ok()) << o.error().ToString();
  EXPECT_EQ(o->target.ToString(), "bench@10.0.0.5:2222");
  EXPECT_EQ(o->interval, 5ms);
  EXPECT_EQ(o->machine, "m-1");
  EXPECT_TRUE(o->processes);
  EXPECT_EQ(o->clock_exchanges, 8);
}

// gpu+ssh://: nvidia-smi on the machine (tests/fakes/nvidia-smi: two GPUs, one without a power
// reading or SM clock, its stamps in UTC-5 unless asked for UTC) read over the machine's master,
// its samples on this host's timeline, and nothing of it left there at the end.
class SshGpuSourceTest : public SshProbeSourceTest {
 protected:
  // A copy of the fake in a directory of its own (it writes its PID next to itself).
  fs::path Fake(const std::string& name) {
    const fs::path dir = dir_ / name;
    fs::create_directories(dir);
    fs::copy_file(fs::path(BITFUSION_SOURCE_DIR) / "tests/fakes/nvidia-smi", dir / "nvidia-smi",
                  fs::copy_options::overwrite_existing);
    return dir / "nvidia-smi";
  }
  std::string GpuUri(const std::string& host, int port, const fs::path& nvidia_smi,
                     const std::string& extra = "") const {
    std::string uri = Uri(host, port, "&nvidia_smi=" + nvidia_smi.string() + extra, "50ms");
    return "gpu+ssh" + uri.substr(uri.find("://"));
  }
  static int PidIn(const fs::path& file) {
    std::ifstream in(file);
    int pid = -1;
    in >> pid;
    return pid;
  }
};

TEST_F(SshGpuSourceTest, AMachinesGpusAreReadThereByNvidiaSmiOnThisHostsTimeline) {
  StartFarHost();
  const fs::path smi = Fake("far-gpu");
  const Timestamp before = Now();
  auto made = MetricSourceFromUri(GpuUri(ns_->address(), 22, smi, "&machine=far-gpu"));
  ASSERT_TRUE(made.ok()) << made.error().ToString();
  std::this_thread::sleep_for(600ms);
  SampleBatch batch;
  ASSERT_TRUE((*made)->Collect(Now(), batch).ok());
  const Timestamp after = Now();
  ASSERT_GT(batch.size(), 0u);

  std::map<std::string, std::set<std::string>> metrics;  // by gpu
  std::map<std::string, double> memory_used;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const Series& s = batch.series[batch.series_index[i]];
    metrics[s.labels.at("gpu")].insert(s.metric + " " + s.unit);
    EXPECT_EQ(s.labels.at("machine"), "far-gpu");
    EXPECT_TRUE(s.labels.count("clock_offset_ns") && s.labels.count("clock_uncertainty_ns"));
    if (s.metric == "gpu.memory.used") memory_used[s.labels.at("gpu")] = batch.value[i];
    if (s.labels.at("gpu") == "0") {
      EXPECT_EQ(s.labels.at("pci_bus_id"), "0000:07:00.0");
      EXPECT_EQ(s.labels.at("uuid"), "GPU-3f1c2a9e-0000-4c1d-9a51-5e0c2b7d1a00");
    } else {
      EXPECT_EQ(s.labels.at("pci_bus_id"), "0000:0a:00.0");
    }
  }
  ASSERT_EQ(metrics.size(), 2u);
  EXPECT_EQ(metrics["0"].size(), 9u);
  EXPECT_EQ(metrics["1"].size(), 7u) << "no power reading, no SM clock";
  EXPECT_TRUE(metrics["0"].count("gpu.power W"));
  EXPECT_FALSE(metrics["1"].count("gpu.power W"));
  EXPECT_FALSE(metrics["1"].count("gpu.clock.sm Hz"));
  EXPECT_TRUE(metrics["0"].count("gpu.clock.memory Hz"));
  EXPECT_DOUBLE_EQ(memory_used["0"], 1024.0 * 1024 * 1024);
  EXPECT_DOUBLE_EQ(memory_used["1"], 3.0 * 1024 * 1024);

  // nvidia-smi's own stamps, read as UTC and moved by the offset (about 0 here), lie in the
  // window this host saw: a stamp read in the machine's zone would be five hours off.
  std::set<std::int64_t> stamps;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    EXPECT_GE(batch.timestamp_ns[i], before.wall_ns - 20'000'000);
    EXPECT_LE(batch.timestamp_ns[i], after.wall_ns + 20'000'000);
    EXPECT_GE(batch.monotonic_ns[i], before.mono_ns - 20'000'000);
    EXPECT_LE(batch.monotonic_ns[i], after.mono_ns + 20'000'000);
    stamps.insert(batch.timestamp_ns[i]);
  }
  EXPECT_GE(stamps.size(), 4u) << "several loops of nvidia-smi";

  const int pid = PidIn(smi.parent_path() / "nvidia-smi.pid");
  ASSERT_GT(pid, 0);
  EXPECT_EQ(::kill(pid, 0), 0) << "nvidia-smi runs while the source does";
  made->reset();
  EXPECT_TRUE(WaitFor([&] { return ::kill(pid, 0) != 0; }, 10s))
      << "nvidia-smi outlived its source";
}

TEST_F(SshGpuSourceTest, AMachineWithoutADriverOrNvidiaSmiGivesADisabledSourceThatAppendsNothing) {
  const fs::path smi = Fake("no-driver");
  std::ofstream(smi.parent_path() / "nvidia-smi.no-driver") << "";
  for (const auto& [path, says] : std::vector<std::pair<fs::path, std::string>>{
           {smi, "couldn't communicate with the NVIDIA driver"},
           {smi, "status 9"},
           {dir_ / "no-such-nvidia-smi", "not found"}}) {
    auto options =
        SshGpuSourceOptions::FromUri(*Uri::Parse(GpuUri("127.0.0.1", lo_->port(), path)));
    ASSERT_TRUE(options.ok()) << options.error().ToString();
    auto source = SshGpuSource::Make(*options);
    ASSERT_TRUE(source.ok()) << path << ": " << source.error().ToString();
    EXPECT_FALSE((*source)->enabled()) << path;
    EXPECT_NE((*source)->WhyDisabled().find(says), std::string::npos) << (*source)->WhyDisabled();
    EXPECT_NE((*source)->WhyDisabled().find(path.string()), std::string::npos);
    SampleBatch batch;
    EXPECT_TRUE((*source)->Collect(Now(), batch).ok());
    EXPECT_EQ(batch.size(), 0u);
  }
}

// A connection that ends before nvidia-smi answers (here its remote shell is killed, so ssh exits
// 255) gives a source that samples nothing this time but says nothing lasting: a plan keeps
// gpu+ssh:// in the machine's runs, where a later source may do better.
TEST_F(SshGpuSourceTest, ALostConnectionDisablesOnlyThisSource) {
  const fs::path dir = dir_ / "lost";
  fs::create_directories(dir);
  const fs::path smi = dir / "nvidia-smi";
  std::ofstream(smi) << "#!/bin/sh\nkill -KILL $PPID\n";
  fs::permissions(smi, fs::perms::owner_all);
  auto options = SshGpuSourceOptions::FromUri(*Uri::Parse(GpuUri("127.0.0.1", lo_->port(), smi)));
  ASSERT_TRUE(options.ok()) << options.error().ToString();
  auto source = SshGpuSource::Make(*options);
  ASSERT_TRUE(source.ok()) << source.error().ToString();
  EXPECT_FALSE((*source)->enabled());
  EXPECT_EQ((*source)->WhyDisabled(), "");
  SampleBatch batch;
  EXPECT_TRUE((*source)->Collect(Now(), batch).ok());
  EXPECT_EQ(batch.size(), 0u);
}

// A warning nvidia-smi prints before its samples (a GPU's corrupted infoROM) is not taken for a
// machine without GPUs.
TEST_F(SshGpuSourceTest, AWarningBeforeTheSamplesDoesNotDisableTheSource) {
  const fs::path smi = Fake("warns");
  std::ofstream(smi.parent_path() / "nvidia-smi.warn") << "";
  auto options = SshGpuSourceOptions::FromUri(*Uri::Parse(GpuUri("127.0.0.1", lo_->port(), smi)));
  ASSERT_TRUE(options.ok()) << options.error().ToString();
  auto source = SshGpuSource::Make(*options);
  ASSERT_TRUE(source.ok()) << source.error().ToString();
  EXPECT_TRUE((*source)->enabled()) << (*source)->WhyDisabled();
  SampleBatch batch;
  EXPECT_TRUE((*source)->Collect(Now(), batch).ok());
  EXPECT_GT(batch.size(), 0u);
}

// The controller's ssh client dies: nvidia-smi on the machine sees the end of its input and
// stops; the source says it has ended.
TEST_F(SshGpuSourceTest, NvidiaSmiEndsWithItsConnection) {
  const fs::path smi = Fake("lost");
  auto options = SshGpuSourceOptions::FromUri(*Uri::Parse(GpuUri("127.0.0.1", lo_->port(), smi)));
  ASSERT_TRUE(options.ok()) << options.error().ToString();
  auto source = SshGpuSource::Make(*options);
  ASSERT_TRUE(source.ok()) << source.error().ToString();
  ASSERT_TRUE((*source)->enabled());
  const int pid = PidIn(smi.parent_path() / "nvidia-smi.pid");
  ASSERT_GT(pid, 0);
  ASSERT_EQ(::kill((*source)->client_pid(), SIGKILL), 0);
  EXPECT_TRUE(WaitFor([&] { return ::kill(pid, 0) != 0; }, 10s))
      << "nvidia-smi outlived its connection";
  Status s;
  EXPECT_TRUE(WaitFor(
      [&] {
        SampleBatch batch;
        s = (*source)->Collect(Now(), batch);
        return !s.ok();
      },
      10s));
  EXPECT_EQ(s.code(), StatusCode::kNotFound) << s.ToString();
}

}  // namespace
}  // namespace bitfusion
