// A plan's images reaching a remote docker machine: this host's engine (a test dockerd) is the
// source; the "remote" machine is a static:// host whose sshd runs in a mount namespace of its
// own, where /var/run/docker.sock is a second test dockerd's socket, so the plan's docker://
// becomes docker+ssh:// to an engine that is not this host's, as on another machine. The image
// goes over SSH (save -> load, streamed) or through a Debian docker-registry the test starts,
// only when that engine lacks its id; a registry that refuses the push fails the plan at that
// step, naming registry and image, and the machine's lease is released. A third engine sits
// behind an sshd in a network namespace (another address, as another host), for a plan across
// this host and both remote engines that loses one of them mid-plan.
//
// One set of services serves the whole executable (tests/CMakeLists.txt: ONE_PROCESS).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "bitfusion/clock.h"
#include "bitfusion/container_runner.h"
#include "bitfusion/experiment.h"
#include "bitfusion/log.h"
#include "bitfusion/serialize.h"
#include "experiment/image_distribution.h"
#include "integration/docker_daemon.h"
#include "integration/registry_server.h"
#include "integration/sshd_server.h"
#include "scoped_env.h"

namespace bitfusion {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using testing::DockerDaemon;
using testing::kBusyboxImage;

struct Services {
  fs::path dir;
  testing::SshClientFiles client;
  std::unique_ptr<DockerDaemon> here, there, far_engine;
  std::unique_ptr<testing::TestSshd> sshd;
  std::unique_ptr<testing::RegistryServer> registry;
  std::unique_ptr<testing::NetnsHost> ns;
  std::unique_ptr<testing::TestSshd> far;  // in `ns`; its /run/docker.sock is far_engine's
  std::string unavailable = "the image distribution test environment did not start";

  // A host's sshd whose mount namespace has its own /run, where /run/docker.sock is `engine`'s
  // socket: what docker+ssh:// looks for, as on another machine. `prefix` puts it in a network
  // namespace. Its sessions' TMPDIR is under the test's directory.
  std::unique_ptr<testing::TestSshd> EngineHost(const std::string& name, const std::string& address,
                                                int port, std::vector<std::string> prefix,
                                                const DockerDaemon& engine) {
    const std::string ns_setup =
        "mount -t tmpfs bf-run /run && mkdir -p /run/sshd && touch /run/docker.sock && "
        "mount --bind " +
        engine.socket() + " /run/docker.sock && exec \"$0\" \"$@\"";
    for (const char* a : {"unshare", "--mount", "--propagation", "private", "sh", "-c"})
      prefix.push_back(a);
    prefix.push_back(ns_setup);
    fs::create_directories(dir / (name + "-tmp"));
    return std::make_unique<testing::TestSshd>(
        client, name, address, port, prefix, std::vector<int>{},
        "SetEnv TMPDIR=" + (dir / (name + "-tmp")).string() + "\n");
  }
  // The far host's sshd, (again) on port 22 of the namespace's address, with its old host key.
  std::string StartFar() {
    far = EngineHost("far", ns->address(), 22, ns->Prefix(), *far_engine);
    return far->error();
  }
};
Services& State() {
  static Services s;
  return s;
}

class ImageEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    auto& s = State();
    s.unavailable = testing::WhyNoDocker();
    if (!s.unavailable.empty()) return;
    if (!testing::HaveProgram("unshare")) {
      s.unavailable = "no unshare (util-linux) for the remote host's mount namespace";
      return;
    }
    s.dir = testing::FreshDir("images");
    s.unavailable = s.client.Make(s.dir);
    if (!s.unavailable.empty()) return;
    s.here = std::make_unique<DockerDaemon>("imgl");
    s.unavailable = s.here->Start();
    if (!s.unavailable.empty()) return;
    s.there = std::make_unique<DockerDaemon>("imgr");
    s.unavailable = s.there->Start();
    if (!s.unavailable.empty()) return;
    s.sshd = s.EngineHost("office", "127.0.0.1", testing::FreePort(), {}, *s.there);
    s.unavailable = s.sshd->error();
    if (!s.unavailable.empty()) return;
    s.far_engine = std::make_unique<DockerDaemon>("imgf");
    s.unavailable = s.far_engine->Start();
    if (!s.unavailable.empty()) return;
    s.ns = std::make_unique<testing::NetnsHost>();
    s.unavailable = s.ns->error();
    if (!s.unavailable.empty()) return;
    s.unavailable = s.StartFar();
    if (!s.unavailable.empty()) return;
    fs::create_directories(s.dir / "registry");
    s.registry = std::make_unique<testing::RegistryServer>(s.dir / "registry");
    s.unavailable = s.registry->error();
    if (!s.unavailable.empty()) return;
    if (Status imported = testing::ImportBusybox(s.here->uri()); !imported.ok()) {
      s.unavailable = "importing the busybox image failed: " + imported.ToString();
    }
  }
  void TearDown() override {
    auto& s = State();
    s.registry.reset();
    s.far.reset();
    s.ns.reset();
    s.far_engine.reset();
    s.sshd.reset();
    s.there.reset();
    s.here.reset();
    std::error_code ec;
    if (!s.dir.empty()) fs::remove_all(s.dir, ec);
  }
};

[[maybe_unused]] const auto* const kEnvironment =
    ::testing::AddGlobalTestEnvironment(new ImageEnvironment);

class ImageDistributionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    BITFUSION_REQUIRE_SERVICE(State().unavailable.empty(), State().unavailable);
    auto& s = State();
    auto here = ContainerRunnerFromUri(s.here->uri());
    auto there = ContainerRunnerFromUri(s.there->uri());
    ASSERT_TRUE(here.ok() && there.ok());
    here_ = std::move(*here);
    there_ = std::move(*there);
    // Every test starts with a remote engine that lacks the image's id (under any name).
    auto id = here_->InspectImage(kBusyboxImage);
    ASSERT_TRUE(id.ok()) << id.error().ToString();
    (void)there_->RemoveImage(id->id, /*force=*/true);
    ASSERT_FALSE(there_->InspectImage(id->id).ok());
    leases_ =
        s.dir /
        ("leases-" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
  }

  std::string Plan(const std::string& image, const std::string& extra = "") {
    auto& s = State();
    const fs::path inventory = s.dir / "office.json";
    std::ofstream(inventory) << R"({"hosts": [{"name": "office", "address": "127.0.0.1", "port": )"
                             << s.sshd->port() << R"(, "user": "root", "key": "client_key"}]})";
    const std::string provisioner =
        "static://" + inventory.string() + "?lease_dir=" + leases_.string() +
        "&ssh_config=" + s.client.config.string() + "&connect_timeout=5";
    return R"({"name": "ship", "runner": ")" + s.here->uri() + R"(", )" + extra +
           R"( "machines": {"office": {"provisioner": ")" + provisioner + R"("}},
      "metrics": {"sources": ["null"]},
      "benchmarks": [
        {"name": "hello", "image": ")" +
           image + R"(", "command": ["sh", "-c", "echo BITFUSION_RESULT answer 42 units"],
         "repetitions": 1, "warmup": 0},
        {"name": "again", "image": ")" +
           image + R"(", "command": ["sh", "-c", "echo BITFUSION_RESULT answer 43 units"],
         "repetitions": 1, "warmup": 0}]})";
  }

  Result<PlanResult> Run(const std::string& json) {
    BITFUSION_ASSIGN_OR_RETURN(auto plan, ParsePlan(json, "ship.json"));
    return RunPlan(plan, {});
  }

  bool NoLeases() const {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(leases_, ec)) {
      if (e.path().extension() == ".lease") return false;
    }
    return true;
  }

  void ExpectRanThere(const PlanResult& result) {
    EXPECT_EQ(result.failed_runs, 0);
    ASSERT_EQ(result.runs.size(), 2u);
    for (const auto& r : result.runs) {
      EXPECT_EQ(r.status, kRunOk) << r.error;
      EXPECT_EQ(r.labels.at("machine"), "office-1");
      EXPECT_EQ(r.runner.rfind("docker+ssh://root@127.0.0.1:", 0), 0u) << r.runner;
    }
    auto here = here_->InspectImage(kBusyboxImage);
    auto there = there_->InspectImage(kBusyboxImage);
    ASSERT_TRUE(here.ok() && there.ok());
    EXPECT_EQ(there->id, here->id) << "the machine runs the very image this host has";
  }

  // DistributeImages of the busybox image to office-1, logging how far it has got after every
  // piece (progress_interval 0), with the info-level lines it logs kept in `lines`.
  Result<std::vector<ImageDelivery>> DistributeLogged(internal::ImageDistributionOptions options,
                                                      std::vector<std::string>& lines) {
    std::mutex mu;
    const LogLevel level_before = GetLogLevel();
    SetLogLevel(LogLevel::kInfo);
    SetLogHandler([&](LogLevel, std::string_view message) {
      std::lock_guard lock(mu);
      lines.emplace_back(message);
    });
    options.progress_interval = std::chrono::nanoseconds(0);
    auto sent =
        internal::DistributeImages(*here_, {{"office-1", there_.get(), {kBusyboxImage}}}, options);
    SetLogHandler(nullptr);
    SetLogLevel(level_before);
    return sent;
  }

  std::shared_ptr<ContainerRunner> here_, there_;
  fs::path leases_;
};

TEST_F(ImageDistributionTest, AnImageTheMachineLacksIsStreamedOverSshOnce) {
  auto result = Run(Plan(kBusyboxImage));
  ASSERT_TRUE(result.ok()) << result.error().ToString();
  ExpectRanThere(*result);
  ASSERT_EQ(result->images.size(), 1u) << "two benchmarks, one image: sent once";
  const ImageDelivery& d = result->images[0];
  EXPECT_EQ(d.machine, "office-1");
  EXPECT_EQ(d.image, kBusyboxImage);
  EXPECT_EQ(d.method, "stream");
  // The archive holds at least busybox itself.
  EXPECT_GT(d.bytes, static_cast<std::int64_t>(fs::file_size(testing::kBusybox)));
  EXPECT_EQ(d.id, here_->InspectImage(kBusyboxImage)->id);
  EXPECT_TRUE(NoLeases());
}

// A streamed archive says how far it has got as it goes (here after every piece), ending at the
// bytes it sent, so that a terminal shows a long transfer moving.
TEST_F(ImageDistributionTest, AStreamedImageReportsItsProgress) {
  std::vector<std::string> lines;
  auto sent = DistributeLogged({}, lines);
  ASSERT_TRUE(sent.ok()) << sent.error().ToString();
  ASSERT_EQ(sent->size(), 1u);
  EXPECT_EQ((*sent)[0].method, "stream");
  std::vector<std::string> progress;
  for (const auto& l : lines) {
    if (l.find("image " + std::string(kBusyboxImage) + " to office-1: ") == 0)
      progress.push_back(l);
  }
  ASSERT_GE(progress.size(), 2u) << "one line per piece of the archive";
  EXPECT_NE(progress.front().find(" of about "), std::string::npos) << progress.front();
  EXPECT_NE(progress.back().find(" MB/s"), std::string::npos) << progress.back();
  char total[32];
  std::snprintf(total, sizeof total, "%.1f MB", static_cast<double>((*sent)[0].bytes) / 1e6);
  EXPECT_EQ(progress.back().find(std::string(": ") + total), progress.back().find(": "))
      << "the last line counts every byte sent: " << progress.back() << " vs " << total;
}

// A plan's "container" source on another machine's engine: its cgroups are not readable here,
// so each run's container is sampled through that engine's stats stream, over the same SSH
// forward as the runner, and the samples carry the machine and the container.
TEST_F(ImageDistributionTest, ARemoteRunsContainerIsSampledThroughItsEnginesStats) {
  const fs::path samples = State().dir / "container-samples.jsonl";
  fs::remove(samples);
  std::string json = Plan(kBusyboxImage, R"("sinks": ["jsonl://)" + samples.string() + R"("],)");
  json.replace(json.find(R"("sources": ["null"])"), 19, R"("sources": ["container"])");
  json.replace(json.find("echo BITFUSION_RESULT answer 42 units"), 37,
               "sleep 3; echo BITFUSION_RESULT answer 42 units");
  auto result = Run(json);
  ASSERT_TRUE(result.ok()) << result.error().ToString();
  ExpectRanThere(*result);
  std::ifstream in(samples);
  int cpu = 0;
  for (std::string line; std::getline(in, line);) {
    if (line.find("\"cgroup.cpu.usage\"") == std::string::npos) continue;
    EXPECT_NE(line.find("\"office-1\""), std::string::npos) << line;
    EXPECT_NE(line.find("\"container\":"), std::string::npos) << line;
    ++cpu;
  }
  EXPECT_GE(cpu, 1) << "the engine sends a reading about once a second; the run took 3 s";
  fs::remove(samples);
}

// A plan's "probe" source on another machine's engine: the probe is copied to that machine for
// each probed container, bind-mounted there by its engine, and its socket there forwarded back
// over the SSH master; its samples carry the machine and its clock estimate and land on this
// host's timeline. Nothing of it stays on the machine.
TEST_F(ImageDistributionTest, ARemoteRunsContainerIsProbedFromInsideOnThisHostsTimeline) {
  const std::string probe = std::string(BITFUSION_BIN_DIR) + "/bitfusion-probe";
  const testing::ScopedEnv env({{"BITFUSION_PROBE", probe.c_str()}});
  const fs::path samples = State().dir / "probe-samples.jsonl";
  fs::remove(samples);
  std::string json = Plan(kBusyboxImage, R"("sinks": ["jsonl://)" + samples.string() + R"("],)");
  json.replace(json.find(R"("sources": ["null"])"), 19,
               R"("sources": ["probe?processes=false"], "interval": "20ms")");
  json.replace(json.find("echo BITFUSION_RESULT answer 42 units"), 37,
               "i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done; "
               "echo BITFUSION_RESULT answer 42 units");
  // The machine's copies (a private directory with run/ for the socket, under its sessions'
  // TMPDIR), seen while they exist.
  std::atomic<bool> done{false};
  std::set<fs::path> copies;
  std::thread watch([&] {
    while (!done) {
      std::error_code ec;
      for (const auto& e : fs::directory_iterator(State().dir / "office-tmp", ec)) {
        if (e.path().filename().string().starts_with("bitfusion-agent.") &&
            fs::exists(e.path() / "run" / "probe.sock", ec)) {
          copies.insert(e.path());
        }
      }
      std::this_thread::sleep_for(5ms);
    }
  });
  const std::int64_t wall_before = WallNowNs(), mono_before = MonoNowNs();
  auto result = Run(json);
  const std::int64_t wall_after = WallNowNs(), mono_after = MonoNowNs();
  done = true;
  watch.join();
  ASSERT_TRUE(result.ok()) << result.error().ToString();
  ExpectRanThere(*result);
  for (const auto& r : result->runs) {
    ASSERT_TRUE(r.labels.count("clock_offset_ns") && r.labels.count("clock_uncertainty_ns"))
        << "the run records the clock estimate its samples were moved by";
    // One kernel: the true offset is 0, so the estimate is within its own bound of it.
    EXPECT_LE(std::llabs(std::stoll(r.labels.at("clock_offset_ns"))),
              std::stoll(r.labels.at("clock_uncertainty_ns")));
  }
  EXPECT_EQ(copies.size(), 2u) << "one copy for each probed container";
  for (const auto& c : copies) EXPECT_FALSE(fs::exists(c)) << c << " is left on the machine";

  std::ifstream in(samples);
  std::map<std::string, int> inside;  // run id -> samples
  auto number = [](const std::string& line, const std::string& key) {
    const auto at = line.find("\"" + key + "\":");
    return at == std::string::npos ? -1LL : std::stoll(line.substr(at + key.size() + 3));
  };
  for (std::string line; std::getline(in, line);) {
    if (line.find("\"view\":\"inside\"") == std::string::npos) continue;
    EXPECT_NE(line.find("\"machine\":\"office-1\""), std::string::npos) << line;
    EXPECT_NE(line.find("\"clock_offset_ns\":"), std::string::npos) << line;
    const long long wall = number(line, "timestamp_ns"), mono = number(line, "monotonic_ns");
    EXPECT_TRUE(wall >= wall_before && wall <= wall_after) << "off this host's timeline: " << line;
    EXPECT_TRUE(mono >= mono_before && mono <= mono_after) << "off this host's timeline: " << line;
    for (const auto& r : result->runs) {
      if (line.find(r.run_id) != std::string::npos) ++inside[r.run_id];
    }
  }
  EXPECT_EQ(inside.size(), 2u) << "every run's container is probed from inside";
  for (const auto& [run, n] : inside) EXPECT_GE(n, 2) << run;
  fs::remove(samples);
}

TEST_F(ImageDistributionTest, AMachineWithTheSameImageIdGetsNothing) {
  auto first = Run(Plan(kBusyboxImage));
  ASSERT_TRUE(first.ok()) << first.error().ToString();
  ASSERT_EQ(first->images.size(), 1u);
  ASSERT_EQ(first->images[0].method, "stream");
  // Present under its id only (untagged): it is tagged there, not sent again.
  ASSERT_TRUE(there_->TagImage(kBusyboxImage, "bftest/other:1").ok());
  ASSERT_TRUE(there_->RemoveImage(kBusyboxImage, /*force=*/false).ok());
  auto second = Run(Plan(kBusyboxImage));
  ASSERT_TRUE(second.ok()) << second.error().ToString();
  ExpectRanThere(*second);
  ASSERT_EQ(second->images.size(), 1u);
  EXPECT_EQ(second->images[0].method, "present");
  EXPECT_EQ(second->images[0].bytes, 0);
  (void)there_->RemoveImage("bftest/other:1", false);
}

TEST_F(ImageDistributionTest, ThroughThePlansRegistryItIsPushedAndPulled) {
  auto& s = State();
  auto result = Run(Plan(kBusyboxImage, R"("registry": ")" + s.registry->address() + R"(",)"));
  ASSERT_TRUE(result.ok()) << result.error().ToString();
  ExpectRanThere(*result);
  ASSERT_EQ(result->images.size(), 1u);
  EXPECT_EQ(result->images[0].method, "registry");
  EXPECT_GT(result->images[0].bytes, 0);
  EXPECT_NE(s.registry->Get("/v2/_catalog").find("bftest/busybox"), std::string::npos)
      << s.registry->Get("/v2/_catalog");
  EXPECT_TRUE(there_->InspectImage(s.registry->address() + "/" + kBusyboxImage).ok())
      << "the machine pulled it from the registry";
  EXPECT_TRUE(NoLeases());
}

TEST_F(ImageDistributionTest, ARegistryPushAndPullReportTheirProgress) {
  auto& s = State();
  // A repository of its own: a layer the registry already holds under it would be "already
  // exists", with no bytes to count.
  const std::string via = s.registry->address() + "/bftest/progress:1";
  ASSERT_TRUE(here_->TagImage(kBusyboxImage, via).ok());
  std::vector<ImageTransferProgress> pushed, pulled;
  Status push = here_->PushImage(via, {}, DeadlineAfter(120s),
                                 [&](const ImageTransferProgress& p) { pushed.push_back(p); });
  ASSERT_TRUE(push.ok()) << push.ToString();
  ASSERT_FALSE(pushed.empty());
  EXPECT_GE(pushed.back().layers, 1);
  EXPECT_EQ(pushed.back().layers_done, pushed.back().layers) << "every layer pushed or in place";
  EXPECT_EQ(pushed.back().done_bytes, pushed.back().total_bytes);

  auto pull = there_->PullImage(via, {}, DeadlineAfter(120s),
                                [&](const ImageTransferProgress& p) { pulled.push_back(p); });
  ASSERT_TRUE(pull.ok()) << pull.error().ToString();
  ASSERT_FALSE(pulled.empty());
  EXPECT_GE(pulled.back().layers, 1);
  EXPECT_EQ(pulled.back().layers_done, pulled.back().layers);
  EXPECT_GT(pulled.back().total_bytes, 0) << "the machine lacked the image's layer: it was sized";
  EXPECT_EQ(pulled.back().done_bytes, pulled.back().total_bytes) << "and all of it came";
  for (std::size_t i = 1; i < pulled.size(); ++i) {
    EXPECT_GE(pulled[i].done_bytes, pulled[i - 1].done_bytes) << "never goes back";
  }
  (void)there_->RemoveImage(via, /*force=*/true);
  (void)here_->RemoveImage(via, /*force=*/false);
}

TEST_F(ImageDistributionTest, ThroughARegistryThePushAndThePullLogHowFarTheyHaveGot) {
  auto& s = State();
  std::vector<std::string> lines;
  internal::ImageDistributionOptions options;
  options.registry = s.registry->address();
  auto sent = DistributeLogged(options, lines);
  ASSERT_TRUE(sent.ok()) << sent.error().ToString();
  ASSERT_EQ(sent->size(), 1u);
  EXPECT_EQ((*sent)[0].method, "registry");
  const std::string via = s.registry->address() + "/" + kBusyboxImage;
  int pushed = 0, pulled = 0;
  for (const auto& l : lines) {
    if (l.starts_with("image " + std::string(kBusyboxImage) + " to registry as " + via + ": ") &&
        l.find(" pushed, ") != std::string::npos) {
      ++pushed;
    }
    if (l.starts_with("image " + via + " to office-1: ") &&
        l.find(" pulled, ") != std::string::npos) {
      ++pulled;
      EXPECT_NE(l.find(" MB/s"), std::string::npos) << l;
    }
  }
  EXPECT_GE(pushed, 1) << "the push says how far it has got";
  EXPECT_GE(pulled, 1) << "the pull says how far it has got";
}

TEST_F(ImageDistributionTest, ARegistryThatRefusesThePushFailsThePlanAndReleasesTheMachine) {
  auto& s = State();
  fs::create_directories(s.dir / "readonly");
  testing::RegistryServer readonly(s.dir / "readonly", /*read_only=*/true);
  ASSERT_TRUE(readonly.error().empty()) << readonly.error();
  auto result = Run(Plan(kBusyboxImage, R"("registry": ")" + readonly.address() + R"(",)"));
  ASSERT_FALSE(result.ok());
  const std::string error = result.error().ToString();
  EXPECT_NE(error.find("registry " + readonly.address()), std::string::npos) << error;
  EXPECT_NE(error.find("pushing " + readonly.address() + "/" + kBusyboxImage), std::string::npos)
      << error;
  EXPECT_NE(error.find("machine office-1"), std::string::npos) << error;
  EXPECT_FALSE(there_->InspectImage(kBusyboxImage).ok()) << "nothing reached the machine";
  EXPECT_TRUE(NoLeases()) << "the acquired machine was released";
  (void)here_->RemoveImage(readonly.address() + "/" + kBusyboxImage, false);
}

// A registry that asks for a password: the plan takes it from BITFUSION_REGISTRY_USERNAME and
// _PASSWORD, pushes and pulls with it, and nothing the plan produces shows it: not its logs (at
// debug level), events, progress, records, summary or --json, nor the error when the registry
// refuses it.
TEST_F(ImageDistributionTest, ARegistryPasswordWorksAndAppearsNowhere) {
  auto& s = State();
  const std::string password = "reg-Pass-7Q2x9Zk4";  // made up for this test
  fs::create_directories(s.dir / "private");
  testing::RegistryServer registry(s.dir / "private", /*read_only=*/false,
                                   testing::RegistryServer::User{"bench", password});
  ASSERT_TRUE(registry.error().empty()) << registry.error();
  ASSERT_EQ(registry.Get("/v2/_catalog").rfind("401 ", 0), 0u) << "it refuses anonymous calls";

  std::string seen;
  std::mutex mu;
  const LogLevel level_before = GetLogLevel();
  SetLogLevel(LogLevel::kDebug);
  SetLogHandler([&](LogLevel, std::string_view message) {
    std::lock_guard lock(mu);
    seen.append(message).append("\n");
  });
  const fs::path records = s.dir / "private-records.jsonl";
  auto run = [&](const std::string& user, const std::string& pass) -> Result<PlanResult> {
    testing::ScopedEnv env({{"BITFUSION_REGISTRY_USERNAME", user.c_str()},
                            {"BITFUSION_REGISTRY_PASSWORD", pass.c_str()}});
    BITFUSION_ASSIGN_OR_RETURN(
        auto plan, ParsePlan(Plan(kBusyboxImage, R"("registry": ")" + registry.address() + R"(",)"),
                             "ship.json"));
    ExperimentOptions options;
    options.sinks = {"jsonl://" + records.string()};
    options.on_event = [&](const Event& e) {
      std::lock_guard lock(mu);
      seen.append(ToJson(e)).append("\n");
    };
    options.on_progress = [&](const RunProgress& p) {
      std::lock_guard lock(mu);
      seen.append(FormatProgressJson(p)).append("\n");
    };
    return RunPlan(plan, options);
  };
  auto refused = run("bench", "not-" + password.substr(4));
  auto result = run("bench", password);
  SetLogHandler(nullptr);
  SetLogLevel(level_before);

  ASSERT_FALSE(refused.ok()) << "a wrong password is refused";
  const std::string why = refused.error().ToString();
  EXPECT_NE(why.find("registry " + registry.address()), std::string::npos) << why;
  EXPECT_NE(why.find("refused user bench: check BITFUSION_REGISTRY_USERNAME and "
                     "BITFUSION_REGISTRY_PASSWORD"),
            std::string::npos)
      << why;
  ASSERT_TRUE(result.ok()) << result.error().ToString();
  ExpectRanThere(*result);
  ASSERT_EQ(result->images.size(), 1u);
  EXPECT_EQ(result->images[0].method, "registry");
  EXPECT_TRUE(NoLeases());

  std::ifstream in(records);
  const std::string stored((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_FALSE(stored.empty());
  std::string everything = seen + "\n" + why + "\n" + stored + "\n" + FormatSummaryTable(*result) +
                           "\n" + FormatSummaryJson(*result);
  for (const auto& r : result->runs) everything += ToJson(r) + "\n";
  ASSERT_NE(seen.find("registry " + registry.address()), std::string::npos)
      << "the log was captured";
  // The password, the wrong one, and the password's own halves.
  for (const std::string& secret : {password, password.substr(4), password.substr(0, 9)}) {
    EXPECT_EQ(everything.find(secret), std::string::npos) << "\"" << secret << "\" appeared";
  }
  (void)here_->RemoveImage(registry.address() + "/" + kBusyboxImage, false);
}

// An image the plan builds from a recipe is built on each machine's own engine (the machine's
// architecture is the one that counts), so nothing of it is streamed or pushed; the remote
// engine has it afterwards, and the record carries that engine's digest.
TEST_F(ImageDistributionTest, ARecipeImageIsBuiltOnTheRemoteMachinesOwnEngine) {
  auto& s = State();
  const fs::path context = s.dir / "recipe";
  fs::create_directories(context);
  std::ofstream(context / "Dockerfile")
      << "FROM scratch\nCOPY busybox /bin/busybox\nENTRYPOINT [\"/bin/busybox\"]\n";
  const std::string image = "bftest/recipe:1";
  (void)there_->RemoveImage(image, /*force=*/true);
  (void)here_->RemoveImage(image, /*force=*/true);
  std::string json =
      Plan(image, R"("images": {")" + image + R"(": {"context": ")" + context.string() +
                      R"(", "files": {"busybox": ")" + testing::kBusybox + R"("}}},)");
  auto result = Run(json);
  ASSERT_TRUE(result.ok()) << result.error().ToString();
  EXPECT_EQ(result->failed_runs, 0);
  ASSERT_EQ(result->runs.size(), 2u);
  auto built = there_->InspectImage(image);
  ASSERT_TRUE(built.ok()) << "built on the remote engine: " << built.error().ToString();
  for (const auto& r : result->runs) {
    EXPECT_EQ(r.status, kRunOk) << r.error;
    EXPECT_EQ(r.labels.at("machine"), "office-1");
    EXPECT_EQ(r.image_digest, built->digest);
  }
  EXPECT_TRUE(result->images.empty()) << "nothing streamed or pushed";
  EXPECT_FALSE(here_->InspectImage(image).ok()) << "and nothing built here";
  EXPECT_TRUE(NoLeases());
  (void)there_->RemoveImage(image, /*force=*/true);
}

// A GPU of a remote docker machine goes into its containers only through that engine's NVIDIA
// runtime (Docker's --gpus); an engine without one (this test's) fails the benchmark that asks
// for a GPU, saying what to install there, and the other benchmark still runs.
TEST_F(ImageDistributionTest, ARemoteEngineWithoutTheNvidiaRuntimeGetsNoGpuAndSaysWhatToInstall) {
  const std::string tree =
      (fs::path(BITFUSION_TEST_FIXTURES) / "sysfs" / "dgx-a100").lexically_normal().string();
  std::string json = Plan(kBusyboxImage, R"("device_allocator": "sysfs://)" + tree + R"(",)");
  const std::string first = R"({"name": "hello", )";
  ASSERT_NE(json.find(first), std::string::npos);
  json.replace(json.find(first), first.size(),
               first + R"("devices": {"kind": "gpu", "vendor": "nvidia", "count": 1}, )");
  auto result = Run(json);
  ASSERT_TRUE(result.ok()) << result.error().ToString();
  ASSERT_EQ(result->runs.size(), 2u);
  for (const auto& r : result->runs) {
    if (r.benchmark == "again") {
      EXPECT_EQ(r.status, kRunOk) << r.error;
      continue;
    }
    EXPECT_NE(r.status, kRunOk);
    EXPECT_NE(r.error.find("goes into a container there through the NVIDIA runtime"),
              std::string::npos)
        << r.error;
    EXPECT_NE(r.error.find("install the NVIDIA Container Toolkit there"), std::string::npos)
        << r.error;
  }
  EXPECT_TRUE(NoLeases());
}

// A remote machine's AMD GPU goes into a container on that machine's engine by its device nodes,
// at their paths there: the "mixed" tree, copied with its device nodes made real (character
// devices with /dev/null's numbers), is read over SSH, the GPU leased there, and the nodes opened
// by that engine, which the container sees as /dev/kfd and /dev/dri/renderD128.
TEST_F(ImageDistributionTest, ARemoteMachinesAmdGpuGoesIntoItsContainerByItsDeviceNodes) {
  const fs::path tree = State().dir / "amd-tree";
  fs::remove_all(tree);
  fs::copy(fs::path(BITFUSION_TEST_FIXTURES) / "sysfs" / "mixed", tree,
           fs::copy_options::recursive);
  std::vector<fs::path> nodes;
  for (const auto& e : fs::recursive_directory_iterator(tree / "dev")) {
    if (e.is_regular_file()) nodes.push_back(e.path());
  }
  for (const fs::path& n : nodes) {
    fs::remove(n);
    ASSERT_EQ(::mknod(n.c_str(), S_IFCHR | 0666, makedev(1, 3)), 0) << n;
  }
  std::string json =
      Plan(kBusyboxImage, R"("device_allocator": "sysfs://)" + tree.string() + R"(",)");
  const std::string first = R"({"name": "hello", )";
  ASSERT_NE(json.find(first), std::string::npos);
  json.replace(json.find(first), first.size(),
               first + R"("devices": {"kind": "gpu", "vendor": "amd", "count": 1}, )");
  const std::string command = "echo BITFUSION_RESULT answer 42 units";
  json.replace(json.find(command), command.size(),
               "test -c /dev/kfd && test -c /dev/dri/renderD128 && " + command);
  auto result = Run(json);
  ASSERT_TRUE(result.ok()) << result.error().ToString();
  ASSERT_EQ(result->runs.size(), 2u);
  for (const auto& r : result->runs) {
    EXPECT_EQ(r.status, kRunOk) << r.benchmark << ": " << r.error;
    if (r.benchmark != "hello") continue;
    bool answered = false;
    for (const auto& sample : r.results) answered |= sample.metric == "answer";
    EXPECT_TRUE(answered) << "the container saw both nodes as character devices";
  }
  EXPECT_TRUE(NoLeases());
  fs::remove_all(tree);
}

TEST_F(ImageDistributionTest, AnImageMissingHereIsAClearError) {
  auto result = Run(Plan("bftest/absent:1"));
  ASSERT_FALSE(result.ok());
  const std::string error = result.error().ToString();
  EXPECT_NE(error.find("bftest/absent:1"), std::string::npos) << error;
  EXPECT_NE(error.find("must be on this host's engine"), std::string::npos) << error;
  EXPECT_TRUE(NoLeases());
}

// One plan across this host's engine and both remote ones: the office (loopback sshd) and the
// far host (an sshd in a network namespace). While a far run's container runs, the far host is
// cut off (everything in its namespace is killed; its engine lives on, as a machine's engine
// does when its network goes). Its runs fail naming it, its last benchmark is not run, the
// other machines go on; remote runs carry their clock offsets; when it answers again before
// the plan ends, what its failed runs left there is removed, so no engine keeps a container.
class ThreeEnginesTest : public ImageDistributionTest {
 protected:
  struct Lost {
    PlanResult result;
    std::string far_name;                         // the lab machine the inventory's far host became
    std::shared_ptr<ContainerRunner> far_engine;  // its engine, reached here directly
  };
  // Runs the plan; `comes_back`: the far host's sshd starts again once the plan gave it up.
  void RunAndLose(bool comes_back, Lost& out) {
    auto& s = State();
    auto far_engine = ContainerRunnerFromUri(s.far_engine->uri());
    ASSERT_TRUE(far_engine.ok()) << far_engine.error().ToString();
    const std::string probe = std::string(BITFUSION_BIN_DIR) + "/bitfusion-probe";
    const testing::ScopedEnv env({{"BITFUSION_PROBE", probe.c_str()}});
    const fs::path inventory = s.dir / "fleet.json";
    std::ofstream(inventory) << R"({"hosts": [{"name": "office", "address": "127.0.0.1", "port": )"
                             << s.sshd->port()
                             << R"(, "user": "root", "key": "client_key"}, {"name": "far", )"
                             << R"("address": ")" << s.ns->address()
                             << R"(", "port": 22, "user": "root", "key": "client_key"}]})";
    const std::string provisioner =
        "static://" + inventory.string() + "?lease_dir=" + leases_.string() +
        "&ssh_config=" + s.client.config.string() + "&connect_timeout=5";
    auto plan = ParsePlan(R"({"name": "three-engines", "runner": ")" + s.here->uri() + R"(",
    "machines": {"lab": {"provisioner": ")" +
                              provisioner +
                              R"(", "count": 2}, "here": {"provisioner": "local://"}},
    "metrics": {"sources": ["host"], "interval": "50ms"},
    "benchmarks": [
      {"name": "tick", "image": ")" +
                              std::string(kBusyboxImage) +
                              R"(", "command": ["sh", "-c", "sleep 1; echo BITFUSION_RESULT t 1 s"],
       "repetitions": 3, "warmup": 0},
      {"name": "after", "image": ")" +
                              std::string(kBusyboxImage) +
                              R"(", "command": ["true"], "repetitions": 1, "warmup": 0}]})",
                          "three-engines.json");
    ASSERT_TRUE(plan.ok()) << plan.error().ToString();

    // The far machine is whichever lab machine the inventory's "far" host became.
    std::mutex mu;
    std::string far_name;
    std::atomic<bool> far_ran{false}, far_down{false}, cut{false}, back{false};
    std::vector<Event> down;
    ExperimentOptions options;
    options.on_run = [&](const RunRecord& r) {
      std::lock_guard lock(mu);
      if (r.machine.ssh.host == s.ns->address()) {
        far_name = r.labels.at("machine");
        if (r.status == kRunOk) far_ran = true;
      }
    };
    options.on_event = [&](const Event& e) {
      if (e.type != EventType::kMachineDown) return;
      std::lock_guard lock(mu);
      down.push_back(e);
      far_down = true;
    };
    // After the far machine's first run, once its next container runs: cut the host off; once the
    // plan has given it up, bring its sshd back (same address, same host key).
    std::atomic<bool> done{false};
    std::thread cutter([&] {
      while (!done && !far_ran) std::this_thread::sleep_for(20ms);
      while (!done && !cut) {
        auto running = (*far_engine)->ListContainers({{"benchmark", "tick"}});
        for (const auto& c : running ? *running : std::vector<ContainerInfo>{}) {
          if (c.state == "running" && c.labels.at("repetition") != "0") {
            testing::Shell("ip netns pids " + s.ns->name() + " | xargs -r kill -9 2>/dev/null");
            cut = true;
            break;
          }
        }
        std::this_thread::sleep_for(20ms);
      }
      while (!done && !far_down) std::this_thread::sleep_for(20ms);
      if (!done && far_down && comes_back) back = s.StartFar().empty();
    });
    auto result = RunPlan(*plan, options);
    done = true;
    cutter.join();
    ASSERT_TRUE(result.ok()) << result.error().ToString();
    ASSERT_TRUE(cut) << "the far host was cut off while a container ran there";
    ASSERT_EQ(back.load(), comes_back) << "and came back before the plan ended, or not";

    // The records: every machine says where it ran; the far one failed from the cut on.
    std::map<std::string, int> ok_on;
    int far_failed = 0, far_not_run = 0;
    for (const auto& r : result->runs) {
      const std::string machine = r.labels.at("machine");
      if (r.status == kRunOk) ++ok_on[machine];
      if (machine != far_name) {
        EXPECT_EQ(r.status, kRunOk) << machine << ": " << r.error;
      } else if (r.status != kRunOk) {
        EXPECT_NE(r.error.find("machine " + far_name + " (" + s.ns->address() + ")"),
                  std::string::npos)
            << r.error;
        ++far_failed;
        far_not_run += r.benchmark == "after" && r.error.find("not run: ") != std::string::npos;
      }
      if (machine == "here-1") {
        EXPECT_EQ(r.runner, s.here->uri());
        EXPECT_EQ(r.labels.count("clock_offset_ns"), 0u) << "this host's own clock";
      } else {
        EXPECT_EQ(r.runner.rfind("docker+ssh://root@", 0), 0u) << r.runner;
        EXPECT_EQ(r.machine.provider, "static");
      }
      if (machine != "here-1" && r.status == kRunOk) {
        // The same kernel on both sides of the SSH hop: the true offset is 0, within the bound.
        ASSERT_TRUE(r.labels.count("clock_offset_ns") && r.labels.count("clock_uncertainty_ns"))
            << machine << " " << r.run_id;
        EXPECT_LE(std::llabs(std::stoll(r.labels.at("clock_offset_ns"))),
                  std::stoll(r.labels.at("clock_uncertainty_ns")))
            << machine;
      }
    }
    const std::string office = far_name == "lab-1" ? "lab-2" : "lab-1";
    EXPECT_EQ(ok_on["here-1"], 4);
    EXPECT_EQ(ok_on[office], 4) << "the other remote machine went on";
    EXPECT_GE(ok_on[far_name], 1);
    EXPECT_GE(far_failed, 2) << "the run in flight, and `after` not run";
    EXPECT_EQ(far_not_run, 1);
    EXPECT_GT(result->failed_runs, 0) << "so the plan exits 1";
    {
      std::lock_guard lock(mu);
      ASSERT_EQ(down.size(), 1u);
      EXPECT_EQ(down[0].subject, far_name);
      EXPECT_EQ(down[0].attributes.at("reason"), "unreachable");
    }
    EXPECT_TRUE(NoLeases());
    out.result = std::move(*result);
    out.far_name = far_name;
    out.far_engine = std::move(*far_engine);
  }

  // The containers of plan run `id` on each engine.
  std::vector<std::size_t> LeftOn(const Lost& lost) {
    std::vector<std::size_t> n;
    for (auto* engine : {here_.get(), there_.get(), lost.far_engine.get()}) {
      auto left = engine->ListContainers({{"plan_run_id", lost.result.plan_run_id}});
      EXPECT_TRUE(left.ok()) << left.error().ToString();
      n.push_back(left.ok() ? left->size() : 999);
    }
    return n;
  }
};

TEST_F(ThreeEnginesTest, AMachineLostMidPlanThatAnswersAgainKeepsNothing) {
  Lost lost;
  ASSERT_NO_FATAL_FAILURE(RunAndLose(/*comes_back=*/true, lost));
  EXPECT_TRUE(lost.result.machine_errors.empty())
      << "the far host answered again at the end: " << lost.result.machine_errors.front();
  EXPECT_EQ(LeftOn(lost), (std::vector<std::size_t>{0, 0, 0}))
      << "nothing of the plan on any engine, the far one included";
}

// When the lost machine still does not answer at the end, the plan says what stayed there and
// the command that removes it; that command, run once the host is back, leaves nothing.
TEST_F(ThreeEnginesTest, AMachineThatStaysLostIsReportedWithTheCommandThatCleansIt) {
  Lost lost;
  ASSERT_NO_FATAL_FAILURE(RunAndLose(/*comes_back=*/false, lost));
  ASSERT_EQ(lost.result.machine_errors.size(), 1u);
  const std::string& error = lost.result.machine_errors[0];
  EXPECT_EQ(error.find("machine " + lost.far_name + " (" + State().ns->address() + "): "), 0u)
      << error;
  EXPECT_NE(error.find("it goes when its expiry label passes"), std::string::npos) << error;
  const std::string command_at = "bitfusion reap --runner ";
  ASSERT_NE(error.find(command_at), std::string::npos) << error;
  EXPECT_EQ(LeftOn(lost)[2], 1u) << "the container in flight when the host was cut off";
  EXPECT_EQ(LeftOn(lost)[0] + LeftOn(lost)[1], 0u);
  // Back again, the commands as given ("; "-separated), pasted into a shell, remove it: the
  // runner URI is quoted (a docker+ssh:// one carries `&`s).
  ASSERT_EQ(State().StartFar(), "");
  std::string commands = error.substr(error.find(command_at));
  const std::string bitfusion = "'" + std::string(BITFUSION_BIN_DIR) + "/bitfusion' ";
  for (std::size_t at = 0; (at = commands.find("bitfusion reap ", at)) != std::string::npos;) {
    commands.replace(at, std::string("bitfusion ").size(), bitfusion);
    at += bitfusion.size();
  }
  EXPECT_EQ(testing::Shell("set -e; " + commands + " >/dev/null"), 0) << commands;
  EXPECT_EQ(LeftOn(lost), (std::vector<std::size_t>{0, 0, 0}));
}

TEST(ImageDistributionPlanTest, RegistryMustBeHostAndPort) {
  const std::string benchmarks =
      R"("benchmarks": [{"name": "b", "image": "x:1", "command": ["true"]}]})";
  auto ok = ParsePlan(R"({"registry": "registry.lan:5000", )" + benchmarks, "p.json");
  ASSERT_TRUE(ok.ok()) << ok.error().ToString();
  EXPECT_EQ(ok->registry, "registry.lan:5000");
  for (const auto& [bad, says] : std::vector<std::pair<std::string, std::string>>{
           {"http://registry.lan:5000", "without a scheme"},
           {"registry.lan:99999", "not a number from 1 to 65535"},
           {"registry lan", "is not HOST or HOST:PORT"},
           {"", "is not HOST or HOST:PORT"}}) {
    auto plan = ParsePlan(R"({"registry": ")" + bad + R"(", )" + benchmarks, "p.json");
    ASSERT_FALSE(plan.ok()) << bad;
    EXPECT_NE(plan.error().message().find("p.json: registry: "), std::string::npos)
        << plan.error().message();
    EXPECT_NE(plan.error().message().find(says), std::string::npos) << plan.error().message();
  }
}

TEST(RegistryReferenceTest, PutsTheImageUnderThePlansRegistry) {
  EXPECT_EQ(*internal::RegistryReference("reg.lan:5000", "bench/x:1"), "reg.lan:5000/bench/x:1");
  EXPECT_EQ(*internal::RegistryReference("reg.lan:5000", "busybox"), "reg.lan:5000/busybox");
  EXPECT_EQ(*internal::RegistryReference("reg.lan:5000", "old.lan/bench/x:1"),
            "reg.lan:5000/bench/x:1");
  EXPECT_EQ(*internal::RegistryReference("reg.lan:5000", "localhost:5000/x:2"), "reg.lan:5000/x:2");
  auto pinned = internal::RegistryReference("reg.lan:5000", "x@sha256:" + std::string(64, 'a'));
  ASSERT_FALSE(pinned.ok());
  EXPECT_EQ(pinned.error().code(), StatusCode::kInvalidArgument);
}

// The pipe between two engines holds at most its capacity (the writer waits), passes every byte
// in order, and lets a reader that gives up release a waiting writer.
TEST(ArchivePipeTest, HoldsAtMostItsCapacityAndPassesEveryByte) {
  constexpr std::size_t kCapacity = 1 << 20, kPiece = 64 << 10, kPieces = 256;  // 16 MiB
  internal::ArchivePipe pipe(kCapacity);
  std::atomic<std::size_t> written{0};
  std::thread writer([&] {
    std::string piece(kPiece, '\0');
    for (std::size_t i = 0; i < kPieces; ++i) {
      for (std::size_t j = 0; j < kPiece; ++j) piece[j] = static_cast<char>((i * kPiece + j) % 251);
      if (!pipe.Write(piece)) return;
      written += kPiece;
    }
    pipe.Close(Status::OK());
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_LE(written.load(), kCapacity) << "nobody reads yet: the writer waits at the capacity";
  std::vector<char> buffer(16 << 10);
  std::size_t total = 0;
  bool in_order = true;
  for (;;) {
    auto got = pipe.Read(buffer.data(), buffer.size());
    ASSERT_TRUE(got.ok()) << got.error().ToString();
    if (*got == 0) break;
    for (std::size_t j = 0; j < *got; ++j) {
      in_order = in_order && buffer[j] == static_cast<char>((total + j) % 251);
    }
    total += *got;
  }
  writer.join();
  EXPECT_EQ(total, kPiece * kPieces);
  EXPECT_EQ(pipe.bytes_read(), static_cast<std::int64_t>(total));
  EXPECT_TRUE(in_order);

  internal::ArchivePipe abandoned(kCapacity);
  std::atomic<bool> refused{false};
  std::thread stuck([&] {
    const std::string piece(kPiece, 'x');
    while (abandoned.Write(piece)) {
    }
    refused = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  abandoned.Abort();
  stuck.join();
  EXPECT_TRUE(refused);

  internal::ArchivePipe failed(kCapacity);
  failed.Close(UnavailableError("the engine went away"));
  auto got = failed.Read(buffer.data(), buffer.size());
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().message(), "the engine went away");
}

}  // namespace
}  // namespace bitfusion
