// docker:// against real engines this test starts itself: the runner conformance suite, what
// only engines do (images, the full ContainerSpec, health checks, events and reactors, reaping),
// a second engine behind mutual TLS, an engine restart under an event subscription, and the
// `bitfusion` command end to end (the docker quickstart, a kill -9 in mid-run, then `reap`).
//
// One dockerd serves the whole executable, so CTest runs this binary as one test
// (tests/CMakeLists.txt: ONE_PROCESS) rather than one process per TEST.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <boost/json.hpp>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <thread>

#include "bitfusion/events.h"
#include "conformance/runner_conformance.h"
#include "integration/docker_daemon.h"
#include "runners/docker_runner.h"

namespace bitfusion {
namespace {

using namespace std::chrono_literals;
using testing::DockerDaemon;
using testing::kBusyboxImage;

std::string MainTag() { return "main"; }

// The shared daemon; its socket path is fixed before it starts, so the suite can be
// instantiated with its URI.
struct Shared {
  std::unique_ptr<DockerDaemon> daemon;
  std::string unavailable = "the docker test environment did not start";
};
Shared& State() {
  static Shared s;
  return s;
}

std::string MainUri() { return "docker:///tmp/bfd-main-" + std::to_string(::getpid()) + "/d.sock"; }

class DockerEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    auto& s = State();
    s.unavailable = testing::WhyNoDocker();
    if (!s.unavailable.empty()) return;
    s.daemon = std::make_unique<DockerDaemon>(MainTag());
    s.unavailable = s.daemon->Start();
    if (!s.unavailable.empty()) return;
    if (Status imported = testing::ImportBusybox(s.daemon->uri()); !imported.ok()) {
      s.unavailable = "importing the busybox image failed: " + imported.ToString();
    }
  }
  void TearDown() override { State().daemon.reset(); }
};

[[maybe_unused]] const auto* const kEnvironment =
    ::testing::AddGlobalTestEnvironment(new DockerEnvironment);

std::string Unavailable() { return State().unavailable; }

// Podman's Docker-compatible API joins when BITFUSION_TEST_PODMAN_SOCKET names a running
// `podman system service` socket (opt-in: this test does not start Podman itself).
std::string PodmanSocket() {
  const char* p = std::getenv("BITFUSION_TEST_PODMAN_SOCKET");
  return p != nullptr ? p : "";
}

std::string PodmanUnavailable() {
  static const std::string why = [] {
    Status imported = testing::ImportBusybox("docker://" + PodmanSocket());
    return imported.ok() ? std::string() : "importing into Podman: " + imported.ToString();
  }();
  return why;
}

std::vector<RunnerCase> Engines() {
  std::vector<RunnerCase> cases = {{"docker", MainUri(), kBusyboxImage, &Unavailable}};
  if (!PodmanSocket().empty()) {
    cases.push_back({"podman", "docker://" + PodmanSocket(), kBusyboxImage, &PodmanUnavailable});
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Engines, RunnerConformanceTest, ::testing::ValuesIn(Engines()),
                         [](const auto& info) { return info.param.name; });

// Raw engine calls, to look at what the runner made (and to make what it must not touch).
Result<net::HttpResponse> Raw(const std::string& socket, const std::string& method,
                              const std::string& target, const std::string& body = "") {
  net::HttpClientOptions o;
  o.base_url = "http://localhost";
  o.unix_socket = socket;
  BITFUSION_ASSIGN_OR_RETURN(auto client, net::HttpClient::Make(o));
  net::HttpRequest r;
  r.method = method;
  r.target = "/v1.41" + target;
  r.body = body;
  if (!body.empty()) r.headers.emplace_back("Content-Type", "application/json");
  r.deadline = DeadlineAfter(60s);
  return client->Send(r);
}

boost::json::value RawJson(const std::string& socket, const std::string& target) {
  auto r = Raw(socket, "GET", target);
  EXPECT_TRUE(r.ok()) << r.error().ToString();
  return r.ok() ? boost::json::parse(r->body) : boost::json::value();
}

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

class DockerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    BITFUSION_REQUIRE_SERVICE(Unavailable().empty(), Unavailable());
    socket_ = State().daemon->socket();
    auto r = ContainerRunnerFromUri(State().daemon->uri());
    ASSERT_TRUE(r.ok()) << r.error().ToString();
    runner_ = *r;
  }

  // Runs `spec` to its end; its output lands in `out`.
  ExitStatus Run(ContainerSpec spec, Output& out) {
    if (spec.image.empty()) spec.image = kBusyboxImage;
    auto c = runner_->Create(spec);
    EXPECT_TRUE(c.ok()) << c.error().ToString();
    if (!c.ok()) return {};
    auto sub = (*c)->Logs(out.Callback());
    EXPECT_TRUE((*c)->Start().ok());
    auto exit = (*c)->Wait(DeadlineAfter(60s));
    EXPECT_TRUE(exit.ok()) << exit.error().ToString();
    return exit.ok() ? *exit : ExitStatus{};
  }

  std::string socket_;
  std::shared_ptr<ContainerRunner> runner_;
};

TEST_F(DockerTest, CapabilitiesNameTheEngineAndItsApi) {
  auto caps = runner_->Capabilities();
  ASSERT_TRUE(caps.ok()) << caps.error().ToString();
  EXPECT_EQ(caps->engine, "docker");
  EXPECT_FALSE(caps->version.empty());
  EXPECT_EQ(caps->api_version.substr(0, 2), "1.");
  EXPECT_GE(std::stoi(caps->api_version.substr(2)), 41);
  EXPECT_TRUE(caps->images && caps->exec && caps->copy && caps->events && caps->reap);
}

TEST_F(DockerTest, ImportedImageHasAnIdDigestAndLabels) {
  auto image = runner_->InspectImage(kBusyboxImage);
  ASSERT_TRUE(image.ok()) << image.error().ToString();
  EXPECT_EQ(image->id.substr(0, 7), "sha256:");
  EXPECT_EQ(image->digest, image->id) << "no registry: the digest is the image id";
  EXPECT_EQ(image->labels.at(kLabelCreator), "bitfusion");
  auto listed = runner_->ListImages({{kLabelCreator, "bitfusion"}});
  ASSERT_TRUE(listed.ok()) << listed.error().ToString();
  bool found = false;
  for (const auto& i : *listed) found = found || i.id == image->id;
  EXPECT_TRUE(found);
}

TEST_F(DockerTest, BuildFromAContextWithExtraFilesThenRemove) {
  const auto dir = testing::FreshDir("build");
  std::ofstream(dir / "Dockerfile") << "FROM " << kBusyboxImage
                                    << "\nCOPY greeting.txt /greeting.txt\n"
                                       "RUN echo built > /built.txt\n"
                                       "CMD [\"cat\", \"/greeting.txt\", \"/built.txt\"]\n";
  const auto extra = dir / "elsewhere.txt";
  std::ofstream(extra) << "hello\n";
  std::filesystem::create_directories(dir / "ctx");
  std::filesystem::rename(dir / "Dockerfile", dir / "ctx" / "Dockerfile");
  BuildSpec build;
  build.context_dir = dir / "ctx";
  build.tag = "bftest/built:1";
  build.extra_files["greeting.txt"] = extra;
  build.labels["purpose"] = "test";
  auto built = runner_->BuildImage(build, DeadlineAfter(120s));
  ASSERT_TRUE(built.ok()) << built.error().ToString();
  EXPECT_EQ(built->labels.at("purpose"), "test");
  EXPECT_EQ(built->labels.at(kLabelCreator), "bitfusion");

  Output out;
  ContainerSpec spec;
  spec.image = "bftest/built:1";
  EXPECT_TRUE(Run(spec, out).success());
  EXPECT_EQ(out.out, "hello\nbuilt\n");

  ASSERT_TRUE(runner_->RemoveImage("bftest/built:1", /*force=*/true).ok());
  auto gone = runner_->InspectImage("bftest/built:1");
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.error().code(), StatusCode::kNotFound);
  EXPECT_NE(gone.error().message().find("bftest/built:1"), std::string::npos);

  // A failing step: the engine's message and the build's last lines.
  std::ofstream(dir / "ctx" / "Dockerfile")
      << "FROM " << kBusyboxImage << "\nRUN echo about to fail && exit 3\n";
  build.extra_files.clear();
  auto failed = runner_->BuildImage(build, DeadlineAfter(120s));
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.error().message().find("non-zero code: 3"), std::string::npos)
      << failed.error().message();
  EXPECT_NE(failed.error().message().find("about to fail"), std::string::npos)
      << failed.error().message();
  std::filesystem::remove_all(dir);
}

TEST_F(DockerTest, MissingImagesAreNamed) {
  ContainerSpec spec;
  spec.image = "bftest/absent:9";
  auto c = runner_->Create(spec);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code(), StatusCode::kNotFound);
  EXPECT_NE(c.error().message().find("bftest/absent:9"), std::string::npos);
  // No registry is reachable: pulling fails, and the error still names the image.
  Status ensured = runner_->EnsureImage("bftest/absent:9", DeadlineAfter(60s));
  EXPECT_EQ(ensured.code(), StatusCode::kNotFound) << ensured.ToString();
  EXPECT_NE(ensured.message().find("bftest/absent:9"), std::string::npos);
  EXPECT_NE(ensured.message().find("pulling it failed"), std::string::npos);
}

TEST_F(DockerTest, CreateHonoursTheWholeSpec) {
  const auto dir = testing::FreshDir("bind");
  std::ofstream(dir / "file") << "from the host\n";
  ContainerSpec spec;
  spec.image = kBusyboxImage;
  spec.entrypoint = {"/bin/sh", "-c"};
  spec.command = {
      "id -u; pwd; echo \"$BF_E\"; cat /bind/file; (touch /bind/x 2>/dev/null && echo rw) || "
      "echo ro; echo x > /scratch/f && echo tmpfs-ok; echo hi > /dev/bfnull && echo dev-ok; "
      "cat /sys/fs/cgroup/memory/memory.limit_in_bytes"};
  spec.env["BF_E"] = "env value";
  spec.working_dir = "/tmp";
  spec.user = "65534";
  spec.mounts.push_back({"bind", dir.string(), "/bind", true, 0});
  spec.mounts.push_back({"tmpfs", "", "/scratch", false, 8 << 20});
  spec.devices.push_back({"/dev/null", "/dev/bfnull", "rw"});
  spec.device_cgroup_rules = {"c 1:3 rwm"};
  spec.cpuset = "0";
  spec.cpus = 0.5;
  spec.memory_bytes = 64 << 20;
  spec.shm_bytes = 16 << 20;
  spec.network_mode = "none";
  spec.labels["purpose"] = "spec-test";
  auto c = runner_->Create(spec);
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  Output out;
  auto sub = (*c)->Logs(out.Callback());
  ASSERT_TRUE((*c)->Start().ok());
  auto exit = (*c)->Wait(DeadlineAfter(60s));
  ASSERT_TRUE(exit.ok());
  EXPECT_TRUE(exit->success()) << out.out << out.err;
  EXPECT_EQ(out.out, "65534\n/tmp\nenv value\nfrom the host\nro\ntmpfs-ok\ndev-ok\n67108864\n");

  const auto v = RawJson(socket_, "/containers/" + (*c)->id() + "/json");
  const auto& host = v.at("HostConfig");
  EXPECT_EQ(host.at("CpusetCpus").as_string(), "0");
  EXPECT_EQ(host.at("NanoCpus").to_number<std::int64_t>(), 500'000'000);
  EXPECT_EQ(host.at("Memory").to_number<std::int64_t>(), 64 << 20);
  EXPECT_EQ(host.at("ShmSize").to_number<std::int64_t>(), 16 << 20);
  EXPECT_EQ(host.at("NetworkMode").as_string(), "none");
  EXPECT_EQ(host.at("DeviceCgroupRules").at(0).as_string(), "c 1:3 rwm");
  EXPECT_EQ(host.at("Devices").at(0).at("PathInContainer").as_string(), "/dev/bfnull");
  EXPECT_TRUE(host.at("Init").as_bool());
  const auto& labels = v.at("Config").at("Labels");
  EXPECT_EQ(labels.at("purpose").as_string(), "spec-test");
  EXPECT_EQ(labels.at(kLabelCreator).as_string(), "bitfusion");
  EXPECT_EQ(labels.at(kLabelPid).as_string(), std::to_string(::getpid()));
  EXPECT_GT(std::stoll(std::string(labels.at(kLabelExpires).as_string())),
            WallNowNs() / 1'000'000'000);
  std::filesystem::remove_all(dir);
}

TEST_F(DockerTest, InvalidSpecsAreRejectedBeforeAnythingIsSent) {
  // Nothing listens here: a request would fail with Unavailable, so InvalidArgument proves
  // the spec was refused first.
  auto offline = ContainerRunnerFromUri("docker:///tmp/bf-nothing-listens.sock");
  ASSERT_TRUE(offline.ok());
  auto expect_invalid = [&](const std::string& what, auto edit) {
    ContainerSpec spec;
    spec.image = kBusyboxImage;
    spec.command = {"true"};
    edit(spec);
    auto c = (*offline)->Create(spec);
    ASSERT_FALSE(c.ok()) << what;
    EXPECT_EQ(c.error().code(), StatusCode::kInvalidArgument)
        << what << ": " << c.error().ToString();
  };
  expect_invalid("name", [](ContainerSpec& s) { s.name = "bad name!"; });
  expect_invalid("image", [](ContainerSpec& s) { s.image = "Bad/Image"; });
  expect_invalid("no image", [](ContainerSpec& s) { s.image = ""; });
  expect_invalid("mount target", [](ContainerSpec& s) {
    s.mounts.push_back({"bind", "/tmp", "relative/target", false, 0});
  });
  expect_invalid("bind source", [](ContainerSpec& s) {
    s.mounts.push_back({"bind", "../etc", "/x", false, 0});
  });
  expect_invalid("mount type", [](ContainerSpec& s) {
    s.mounts.push_back({"volume", "v", "/x", false, 0});
  });
  expect_invalid("device path", [](ContainerSpec& s) {
    s.devices.push_back({"dev/null", "", "rw"});
  });
  expect_invalid("device perms", [](ContainerSpec& s) {
    s.devices.push_back({"/dev/null", "", "rwx"});
  });
  expect_invalid("cgroup rule", [](ContainerSpec& s) { s.device_cgroup_rules = {"x 1:2 r"}; });
  expect_invalid("cpuset", [](ContainerSpec& s) { s.cpuset = "0-"; });
  expect_invalid("label", [](ContainerSpec& s) { s.labels[kLabelRunId] = "mine"; });
  expect_invalid("env", [](ContainerSpec& s) { s.env["A=B"] = "c"; });
  expect_invalid("network", [](ContainerSpec& s) { s.network_mode = "no such/mode"; });

  ContainerSpec missing_device;
  missing_device.image = kBusyboxImage;
  missing_device.devices.push_back({"/dev/bf-no-such-device", "", "rwm"});
  auto c = (*offline)->Create(missing_device);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code(), StatusCode::kNotFound);
  EXPECT_NE(c.error().message().find("/dev/bf-no-such-device"), std::string::npos);
}

TEST_F(DockerTest, UnreachableEngineIsNamedWithAHint) {
  auto offline = ContainerRunnerFromUri("docker:///tmp/bf-nothing-listens.sock");
  ASSERT_TRUE(offline.ok());
  auto caps = (*offline)->Capabilities();
  ASSERT_FALSE(caps.ok());
  EXPECT_EQ(caps.error().code(), StatusCode::kUnavailable);
  EXPECT_NE(caps.error().message().find("/tmp/bf-nothing-listens.sock"), std::string::npos);
  EXPECT_NE(caps.error().message().find("dockerd"), std::string::npos) << caps.error().message();
}

TEST_F(DockerTest, EngineErrorsCarryItsMessageTheStatusAndTheCall) {
  ContainerSpec spec;
  spec.image = kBusyboxImage;
  spec.command = {"true"};
  spec.user = "bf-no-such-user";
  auto c = runner_->Create(spec);
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  Status started = (*c)->Start();
  ASSERT_FALSE(started.ok());
  const std::string& m = started.message();
  EXPECT_NE(m.find("POST /containers/" + (*c)->id() + "/start"), std::string::npos) << m;
  EXPECT_NE(m.find("HTTP 500"), std::string::npos) << m;
  EXPECT_NE(m.find("unable to find user bf-no-such-user"), std::string::npos) << m;
  EXPECT_NE(m.find(socket_), std::string::npos) << m;

  // Exec in a container that is not running: the engine's 409 and its words.
  ExecSpec exec;
  exec.command = {"true"};
  auto r = (*c)->Exec(exec, DeadlineAfter(30s));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), StatusCode::kFailedPrecondition) << r.error().ToString();
  EXPECT_NE(r.error().message().find("HTTP 409"), std::string::npos) << r.error().message();
  EXPECT_NE(r.error().message().find("is not running"), std::string::npos) << r.error().message();
}

TEST_F(DockerTest, AnExecPastItsDeadlineIsKilledAndNamed) {
  ContainerSpec spec;
  spec.image = kBusyboxImage;
  spec.command = {"sleep", "300"};
  auto c = runner_->Create(spec);
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  ASSERT_TRUE((*c)->Start().ok());
  ExecSpec exec;
  exec.command = {"sleep", "60"};
  const auto started = std::chrono::steady_clock::now();
  auto r = (*c)->Exec(exec, DeadlineAfter(1s));
  const auto took = std::chrono::steady_clock::now() - started;
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), StatusCode::kDeadlineExceeded) << r.error().ToString();
  EXPECT_NE(r.error().message().find("`sleep 60`"), std::string::npos) << r.error().message();
  EXPECT_NE(r.error().message().find("it was killed"), std::string::npos) << r.error().message();
  EXPECT_LT(took, 15s);

  // Nothing of it is left in the container; the container itself still runs.
  ExecSpec ps;
  ps.command = {"ps"};
  auto listed = (*c)->Exec(ps, DeadlineAfter(30s));
  ASSERT_TRUE(listed.ok()) << listed.error().ToString();
  EXPECT_EQ(listed->exit_code, 0);
  EXPECT_NE(listed->output.find("sleep 300"), std::string::npos) << listed->output;
  EXPECT_EQ(listed->output.find("sleep 60"), std::string::npos) << listed->output;
}

TEST_F(DockerTest, HealthCheckDrivesTheHealthyWait) {
  ContainerSpec spec;
  spec.image = kBusyboxImage;
  spec.command = {"sh", "-c", "sleep 0.5; touch /tmp/ok; sleep 30"};
  spec.health_check.command = {"test", "-f", "/tmp/ok"};
  spec.health_check.interval_ns = 100'000'000;
  spec.health_check.retries = 50;
  auto c = runner_->Create(spec);
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  ASSERT_TRUE((*c)->Start().ok());
  Status healthy = (*c)->WaitFor(WaitStrategy::Healthy(), DeadlineAfter(30s));
  EXPECT_TRUE(healthy.ok()) << healthy.ToString();
  EXPECT_EQ((*c)->Inspect()->health, "healthy");

  spec.command = {"sleep", "30"};
  spec.health_check.command = {"false"};
  spec.health_check.retries = 1;
  auto sick = runner_->Create(spec);
  ASSERT_TRUE(sick.ok());
  ASSERT_TRUE((*sick)->Start().ok());
  Status s = (*sick)->WaitFor(WaitStrategy::Healthy(), DeadlineAfter(30s));
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
  EXPECT_NE(s.message().find("unhealthy"), std::string::npos) << s.ToString();
}

class FakeLease final : public DeviceLease {
 public:
  explicit FakeLease(std::shared_ptr<std::atomic<int>> released) : released_(std::move(released)) {}
  ~FakeLease() override { ++*released_; }
  const std::vector<Device>& devices() const override { return devices_; }

 private:
  std::shared_ptr<std::atomic<int>> released_;
  std::vector<Device> devices_;
};

template <class F>
bool Eventually(F&& condition, std::chrono::milliseconds timeout = 15s) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() >= until) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

TEST_F(DockerTest, ReactorsActOnEngineEvents) {
  EventBus bus;
  auto events = runner_->Events(bus.Publisher());
  ASSERT_TRUE(events.ok()) << events.error().ToString();
  Reactor reactor(bus);
  std::mutex mu;
  std::map<std::string, std::vector<std::string>> tails;
  std::set<std::string> oom;
  reactor.Add(AttachLogTailOnFailure(runner_, 3, [&](const Event& e, std::vector<LogLine> tail) {
    std::lock_guard lock(mu);
    for (auto& l : tail) tails[e.subject].push_back(l.text);
  }));
  reactor.Add(MarkFailedOnOom([&](const Event& e) {
    std::lock_guard lock(mu);
    oom.insert(e.subject);
  }));
  auto leases = std::make_shared<LeaseTable>();
  reactor.Add(ReleaseLeasesOnExit(leases));

  // A failure: its last three lines are attached, its lease released.
  ContainerSpec spec;
  spec.image = kBusyboxImage;
  spec.command = {"sh", "-c", "echo l1; echo l2; echo l3; echo l4; exit 7"};
  auto failing = runner_->Create(spec);
  ASSERT_TRUE(failing.ok());
  auto released = std::make_shared<std::atomic<int>>(0);
  leases->Hold((*failing)->id(), std::make_unique<FakeLease>(released));
  ASSERT_TRUE((*failing)->Start().ok());
  ASSERT_EQ((*failing)->Wait(DeadlineAfter(30s))->exit_code, 7);
  const std::string failing_id = (*failing)->id();
  EXPECT_TRUE(Eventually([&] {
    std::lock_guard lock(mu);
    return tails.count(failing_id) > 0;
  }));
  {
    std::lock_guard lock(mu);
    EXPECT_EQ(tails[failing_id], (std::vector<std::string>{"l2", "l3", "l4"}));
  }
  EXPECT_TRUE(Eventually([&] { return released->load() == 1; }));
  EXPECT_EQ(leases->held(), 0u);

  // The OOM killer: the event marks it; the exit status says so too.
  spec.command = {"dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"};
  spec.memory_bytes = 16 << 20;
  auto hungry = runner_->Create(spec);
  ASSERT_TRUE(hungry.ok()) << hungry.error().ToString();
  ASSERT_TRUE((*hungry)->Start().ok());
  auto exit = (*hungry)->Wait(DeadlineAfter(30s));
  ASSERT_TRUE(exit.ok());
  EXPECT_TRUE(exit->oom_killed);
  EXPECT_FALSE(exit->success());
  const std::string hungry_id = (*hungry)->id();
  EXPECT_TRUE(Eventually([&] {
    std::lock_guard lock(mu);
    return oom.count(hungry_id) > 0;
  }));
  ASSERT_TRUE(bus.Flush(DeadlineAfter(10s)).ok());
  EXPECT_GE(reactor.fired("attach-log-tail-on-failure"), 2u);  // the OOM kill exits non-zero too
  EXPECT_EQ(reactor.fired("mark-failed-on-oom"), 1u);
  EXPECT_EQ(bus.counters().dropped, 0u);
}

TEST_F(DockerTest, ReapRemovesExpiredAndDeadCreatorsOnly) {
  // Expired: a runner whose objects expire after one second.
  auto short_lived = ContainerRunnerFromUri(State().daemon->uri() + "?ttl=1s");
  ASSERT_TRUE(short_lived.ok());
  ContainerSpec spec;
  spec.image = kBusyboxImage;
  spec.command = {"sleep", "60"};
  auto expiring = (*short_lived)->Create(spec);
  ASSERT_TRUE(expiring.ok());
  ASSERT_TRUE((*expiring)->Start().ok());
  (*expiring)->Keep();
  const std::string expiring_id = (*expiring)->id();
  expiring->reset();

  spec.labels["run_id"] = "bf-reap-test-" + std::to_string(::getpid());
  auto current = runner_->Create(spec);
  ASSERT_TRUE(current.ok());
  (*current)->Keep();
  const std::string current_id = (*current)->id();
  current->reset();

  // Not bitfusion's: never touched.
  auto foreign =
      Raw(socket_, "POST", "/containers/create", R"({"Image":"bftest/busybox:1","Cmd":["true"]})");
  ASSERT_TRUE(foreign.ok());
  const std::string foreign_id =
      std::string(boost::json::parse(foreign->body).at("Id").as_string());

  // A dead creator on this host: a child that has exited (its PID is free now).
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ::waitpid(child, nullptr, 0);
  char hostname[256] = {};
  ::gethostname(hostname, sizeof hostname - 1);
  auto orphan = Raw(socket_, "POST", "/containers/create",
                    std::string(R"({"Image":"bftest/busybox:1","Cmd":["sleep","60"],"Labels":{)") +
                        R"("bitfusion.creator":"bitfusion","bitfusion.host":")" + hostname +
                        R"(","bitfusion.pid":")" + std::to_string(child) +
                        R"(","bitfusion.pid_start":"1"}})");
  ASSERT_TRUE(orphan.ok());
  const std::string orphan_id = std::string(boost::json::parse(orphan->body).at("Id").as_string());

  std::this_thread::sleep_for(2100ms);  // expiry is in whole seconds
  ReapPolicy dry;
  dry.dry_run = true;
  auto preview = runner_->Reap(dry);
  ASSERT_TRUE(preview.ok()) << preview.error().ToString();
  EXPECT_EQ(preview->containers.size(), 2u);
  auto exists = [&](const std::string& id) {
    auto r = Raw(socket_, "GET", "/containers/" + id + "/json");
    return r.ok() && r->status == 200;
  };
  EXPECT_TRUE(exists(expiring_id)) << "a dry run removes nothing";

  auto report = runner_->Reap(ReapPolicy{});
  ASSERT_TRUE(report.ok()) << report.error().ToString();
  ASSERT_EQ(report->containers.size(), 2u);
  std::string all;
  for (const auto& line : report->containers) all += line + "\n";
  EXPECT_NE(all.find("expired"), std::string::npos) << all;
  EXPECT_NE(all.find("process " + std::to_string(child) + ", is gone"), std::string::npos) << all;
  EXPECT_FALSE(exists(expiring_id));
  EXPECT_FALSE(exists(orphan_id));
  EXPECT_TRUE(exists(current_id)) << "its creator (this process) is alive and it has not expired";
  EXPECT_TRUE(exists(foreign_id));

  ReapPolicy by_run;
  by_run.run_id = spec.labels["run_id"];
  report = runner_->Reap(by_run);
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report->containers.size(), 1u);
  EXPECT_FALSE(exists(current_id));
  EXPECT_TRUE(exists(foreign_id));
  (void)Raw(socket_, "DELETE", "/containers/" + foreign_id + "?force=1");
}

TEST_F(DockerTest, ReapTakesOnlyContainersUnderTheirOwnNameAndLeavesKeptOnesToTheirRun) {
  const std::string tag = std::to_string(::getpid());
  auto name_of = [&](const std::string& id) {
    auto r = Raw(socket_, "GET", "/containers/" + id + "/json");
    if (!r.ok() || r->status != 200) return std::string();
    std::string name(boost::json::parse(r->body).at("Name").as_string());
    return name.empty() ? name : name.substr(1);
  };
  auto exists = [&](const std::string& id) { return !name_of(id).empty(); };
  // Whatever this test leaves, also when an assertion ends it early.
  std::vector<std::string> made;
  struct Cleanup {
    std::function<void()> run;
    ~Cleanup() { run(); }
  } cleanup{[&] {
    for (const auto& id : made) (void)Raw(socket_, "DELETE", "/containers/" + id + "?force=1");
    (void)Raw(socket_, "DELETE", "/images/bftest/committed:" + tag + "?force=1");
  }};
  auto create = [&](const std::string& name, const std::string& image, const std::string& labels) {
    auto r = Raw(socket_, "POST", "/containers/create?name=" + name,
                 R"({"Image":")" + image + R"(","Cmd":["sleep","60"],"Labels":{)" + labels + "}}");
    EXPECT_TRUE(r.ok() && r->status == 201) << (r.ok() ? r->body : r.error().ToString());
    if (!r.ok() || r->status != 201) return std::string();
    made.push_back(std::string(boost::json::parse(r->body).at("Id").as_string()));
    return made.back();
  };

  // Keep() renames the container, because its labels cannot change.
  ContainerSpec spec;
  spec.image = kBusyboxImage;
  spec.command = {"sleep", "60"};
  spec.labels["run_id"] = "bf-keep-test-" + tag;
  auto kept = runner_->Create(spec);
  ASSERT_TRUE(kept.ok()) << kept.error().ToString();
  const std::string kept_id = (*kept)->id();
  made.push_back(kept_id);
  const std::string made_as = name_of(kept_id);
  EXPECT_EQ(made_as.rfind("bf-", 0), 0u) << made_as;
  (*kept)->Keep();
  kept->reset();
  EXPECT_EQ(name_of(kept_id), made_as + "-kept");

  // Three containers whose creator (an exited child) is gone: one under the name its label
  // records, one kept (renamed), one under another name (made from an image committed from one
  // of ours, it inherited the labels).
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ::waitpid(child, nullptr, 0);
  char hostname[256] = {};
  ::gethostname(hostname, sizeof hostname - 1);
  auto dead_labels = [&](const std::string& name) {
    return std::string(R"("bitfusion.creator":"bitfusion","bitfusion.host":")") + hostname +
           R"(","bitfusion.pid":")" + std::to_string(child) +
           R"(","bitfusion.pid_start":"1","bitfusion.name":")" + name + R"(")";
  };
  const std::string orphan =
      create("bf-orphan-" + tag, kBusyboxImage, dead_labels("bf-orphan-" + tag));
  const std::string kept_orphan =
      create("bf-kept-" + tag + "-kept", kBusyboxImage, dead_labels("bf-kept-" + tag));
  const std::string inherited = create("user-" + tag, kBusyboxImage, dead_labels("bf-gone-" + tag));

  // A real commit of the kept container, and a user's container from that image: both carry
  // the kept container's labels, run id included.
  auto commit = Raw(socket_, "POST",
                    "/commit?container=" + kept_id + "&repo=bftest/committed&tag=" + tag, "{}");
  ASSERT_TRUE(commit.ok() && commit->status == 201) << (commit.ok() ? commit->body : "");
  const std::string from_commit = create("user-commit-" + tag, "bftest/committed:" + tag, "");
  auto image_exists = [&] {
    auto r = Raw(socket_, "GET", "/images/bftest/committed:" + tag + "/json");
    return r.ok() && r->status == 200;
  };

  auto report = runner_->Reap(ReapPolicy{});
  ASSERT_TRUE(report.ok()) << report.error().ToString();
  EXPECT_FALSE(exists(orphan));
  EXPECT_TRUE(exists(kept_orphan)) << "kept: only its run id or expiry ends it";
  EXPECT_TRUE(exists(inherited)) << "not under the name its labels record";
  EXPECT_TRUE(exists(kept_id));
  EXPECT_TRUE(exists(from_commit));
  EXPECT_TRUE(image_exists());

  ReapPolicy by_run;
  by_run.run_id = spec.labels["run_id"];
  report = runner_->Reap(by_run);
  ASSERT_TRUE(report.ok()) << report.error().ToString();
  EXPECT_FALSE(exists(kept_id)) << "a kept container still belongs to its run";
  EXPECT_TRUE(exists(from_commit)) << "a container from a committed image is the user's";
  EXPECT_TRUE(image_exists()) << "so is the committed image";
}

TEST(DockerEngineRestartTest, EventsResumeWithoutLossOrRepeats) {
  const std::string why = testing::WhyNoDocker();
  BITFUSION_REQUIRE_SERVICE(why.empty(), why);
  DockerDaemon daemon("ev");
  const std::string up = daemon.Start();
  ASSERT_TRUE(up.empty()) << up;
  ASSERT_TRUE(testing::ImportBusybox(daemon.uri()).ok());
  auto runner = ContainerRunnerFromUri(daemon.uri());
  ASSERT_TRUE(runner.ok());
  std::mutex mu;
  std::vector<Event> seen;
  auto sub = (*runner)->Events([&](const Event& e) {
    std::lock_guard lock(mu);
    seen.push_back(e);
  });
  ASSERT_TRUE(sub.ok());
  auto created = [&](const std::string& id) {
    std::lock_guard lock(mu);
    return std::count_if(seen.begin(), seen.end(), [&](const Event& e) {
      return e.subject == id && e.type == EventType::kContainerCreated;
    });
  };
  ContainerSpec spec;
  spec.image = kBusyboxImage;
  spec.command = {"true"};
  auto first = (*runner)->Create(spec);
  ASSERT_TRUE(first.ok());
  (*first)->Keep();
  const std::string first_id = (*first)->id();
  ASSERT_TRUE(Eventually([&] { return created(first_id) == 1; }));

  daemon.Stop(/*remove_data=*/false);
  const std::string again = daemon.Start();
  ASSERT_TRUE(again.empty()) << again;
  // Made right after the restart, most likely before the subscription has reconnected: only
  // `since` brings it.
  auto second = (*runner)->Create(spec);
  ASSERT_TRUE(second.ok()) << second.error().ToString();
  const std::string second_id = (*second)->id();
  EXPECT_TRUE(Eventually([&] { return created(second_id) == 1; }));
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(created(first_id), 1) << "an event delivered before the restart came again";
  EXPECT_EQ(created(second_id), 1);
  sub->Cancel();
}

// ---- mutual TLS ----------------------------------------------------------------------------

int Sh(const std::string& command) { return std::system(command.c_str()); }

// A CA, a server certificate for 127.0.0.1 and a client certificate signed by it, plus a
// second CA with its own client certificate (the wrong one).
bool MakeCertificates(const std::filesystem::path& dir) {
  const std::string d = dir.string();
  const std::string q = " >/dev/null 2>&1";
  auto ca = [&](const std::string& name) {
    return Sh("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=" + name + " -keyout " +
              d + "/" + name + "-key.pem -out " + d + "/" + name + ".pem" + q) == 0;
  };
  auto leaf = [&](const std::string& name, const std::string& ca_name, const std::string& ext) {
    std::ofstream(d + "/" + name + ".ext") << ext << "\n";
    return Sh("openssl req -newkey rsa:2048 -nodes -subj /CN=" + name + " -keyout " + d + "/" +
              name + "-key.pem -out " + d + "/" + name + ".csr" + q) == 0 &&
           Sh("openssl x509 -req -days 2 -in " + d + "/" + name + ".csr -CA " + d + "/" + ca_name +
              ".pem -CAkey " + d + "/" + ca_name + "-key.pem -CAcreateserial -extfile " + d + "/" +
              name + ".ext -out " + d + "/" + name + ".pem" + q) == 0;
  };
  return ca("ca") && ca("otherca") &&
         leaf("server", "ca", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth") &&
         leaf("client", "ca", "extendedKeyUsage=clientAuth") &&
         leaf("intruder", "otherca", "extendedKeyUsage=clientAuth");
}

TEST(DockerTlsTest, OnlyTheRightClientCertificateGetsIn) {
  std::string why = testing::WhyNoDocker();
  if (why.empty() && !testing::HaveProgram("openssl")) why = "openssl is not installed";
  BITFUSION_REQUIRE_SERVICE(why.empty(), why);
  const auto certs = testing::FreshDir("tls");
  ASSERT_TRUE(MakeCertificates(certs));
  const std::string c = certs.string();
  const auto port = static_cast<std::uint16_t>(testing::FreePort());
  DockerDaemon daemon(
      "tls", {"--host", "tcp://127.0.0.1:" + std::to_string(port), "--tlsverify", "--tlscacert",
              c + "/ca.pem", "--tlscert", c + "/server.pem", "--tlskey", c + "/server-key.pem"});
  const std::string up = daemon.Start();
  ASSERT_TRUE(up.empty()) << up;
  const std::string base = "docker+tls://127.0.0.1:" + std::to_string(port);

  auto good = ContainerRunnerFromUri(base + "?ca=" + c + "/ca.pem&cert=" + c +
                                     "/client.pem&key=" + c + "/client-key.pem");
  ASSERT_TRUE(good.ok()) << good.error().ToString();
  auto caps = (*good)->Capabilities();
  ASSERT_TRUE(caps.ok()) << caps.error().ToString();
  ASSERT_TRUE(testing::ImportBusybox(base + "?ca=" + c + "/ca.pem&cert=" + c +
                                     "/client.pem&key=" + c + "/client-key.pem")
                  .ok());
  ContainerSpec spec;
  spec.image = kBusyboxImage;
  spec.command = {"echo", "over tls"};
  auto container = (*good)->Create(spec);
  ASSERT_TRUE(container.ok()) << container.error().ToString();
  Output out;
  auto sub = (*container)->Logs(out.Callback());
  ASSERT_TRUE((*container)->Start().ok());
  ASSERT_TRUE((*container)->Wait(DeadlineAfter(30s))->success());
  EXPECT_EQ(out.out, "over tls\n");
  container->reset();

  // The same through the environment the docker CLI uses.
  for (const auto& [name, file] :
       {std::pair{"ca.pem", "ca.pem"}, {"cert.pem", "client.pem"}, {"key.pem", "client-key.pem"}}) {
    std::filesystem::create_directories(certs / "env");
    std::filesystem::copy_file(certs / file, certs / "env" / name,
                               std::filesystem::copy_options::overwrite_existing);
  }
  ::setenv("DOCKER_HOST", ("tcp://127.0.0.1:" + std::to_string(port)).c_str(), 1);
  ::setenv("DOCKER_TLS_VERIFY", "1", 1);
  ::setenv("DOCKER_CERT_PATH", (c + "/env").c_str(), 1);
  auto from_env = ContainerRunnerFromUri("docker://");
  ::unsetenv("DOCKER_HOST");
  ::unsetenv("DOCKER_TLS_VERIFY");
  ::unsetenv("DOCKER_CERT_PATH");
  ASSERT_TRUE(from_env.ok()) << from_env.error().ToString();
  EXPECT_TRUE((*from_env)->Capabilities().ok());

  auto refused = [&](const std::string& uri, const std::string& expect) {
    auto r = ContainerRunnerFromUri(uri);
    ASSERT_TRUE(r.ok()) << r.error().ToString();
    auto caps = (*r)->Capabilities();
    ASSERT_FALSE(caps.ok()) << uri;
    EXPECT_EQ(caps.error().code(), StatusCode::kPermissionDenied) << caps.error().ToString();
    EXPECT_NE(caps.error().message().find(expect), std::string::npos) << caps.error().message();
    EXPECT_NE(caps.error().message().find("127.0.0.1:" + std::to_string(port)), std::string::npos);
  };
  // A client certificate from another CA, and none at all: the engine refuses both.
  refused(base + "?ca=" + c + "/ca.pem&cert=" + c + "/intruder.pem&key=" + c + "/intruder-key.pem",
          "certificate");
  refused(base + "?ca=" + c + "/ca.pem", "certificate");
  // The engine's certificate checked against the wrong CA: this client refuses it.
  refused(base + "?ca=" + c + "/otherca.pem&cert=" + c + "/client.pem&key=" + c + "/client-key.pem",
          "CA bundle");
  daemon.Stop(true);
  std::filesystem::remove_all(certs);
}

// ---- the bitfusion command, end to end -------------------------------------------------------

const std::string kCli = std::string(BITFUSION_BIN_DIR) + "/bitfusion";

struct CliResult {
  int exit = -1;
  std::string out, err;
};

std::string ReadAll(const std::filesystem::path& p) {
  std::ifstream in(p);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Runs the command in `cwd` with DOCKER_HOST pointing at `socket`.
CliResult Cli(const std::filesystem::path& cwd, const std::string& socket,
              const std::string& args) {
  const std::string command = "cd '" + cwd.string() + "' && DOCKER_HOST=unix://" + socket + " '" +
                              kCli + "' " + args + " > cli.out 2> cli.err";
  CliResult r;
  const int status = std::system(command.c_str());
  r.exit = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = ReadAll(cwd / "cli.out");
  r.err = ReadAll(cwd / "cli.err");
  return r;
}

class DockerCliTest : public DockerTest {
 protected:
  void SetUp() override {
    DockerTest::SetUp();
    if (IsSkipped() || HasFailure()) return;
    ASSERT_TRUE(std::filesystem::exists(kCli)) << "build bitfusion_cli first";
    dir_ = testing::FreshDir("cli");
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::vector<ContainerInfo> ContainersOf(pid_t pid) {
    auto listed = runner_->ListContainers({{kLabelPid, std::to_string(pid)}});
    EXPECT_TRUE(listed.ok()) << listed.error().ToString();
    return listed.ok() ? *listed : std::vector<ContainerInfo>{};
  }

  std::filesystem::path dir_;
};

TEST_F(DockerCliTest, QuickstartBuildsItsImageRunsInContainersAndRecordsTheDigest) {
  const std::string spec =
      std::string(BITFUSION_SOURCE_DIR) + "/examples/specs/quickstart-docker.json";
  CliResult r = Cli(dir_, socket_, "run '" + spec + "' --sink jsonl://runs.jsonl --quiet");
  ASSERT_EQ(r.exit, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("matmul.gflops"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("stream.triad"), std::string::npos) << r.out;

  auto image = runner_->InspectImage("bitfusion/quickstart:0.1");
  ASSERT_TRUE(image.ok()) << image.error().ToString();
  EXPECT_EQ(image->labels.count("bitfusion.context_sha256"), 1u);
  const std::string records = ReadAll(dir_ / "runs.jsonl");
  std::size_t runs = 0;
  std::istringstream lines(records);
  for (std::string line; std::getline(lines, line);) {
    auto v = boost::json::parse(line);
    if (!v.is_object() || !v.as_object().contains("image_digest")) continue;
    ++runs;
    EXPECT_EQ(v.at("image_digest").as_string(), image->digest);
    EXPECT_EQ(v.at("status").as_string(), "ok");
  }
  EXPECT_EQ(runs, 12u);  // 2 benchmarks x (1 warm-up + 5 runs)
  auto left = runner_->ListContainers({{kLabelCreator, "bitfusion"}});
  ASSERT_TRUE(left.ok());
  EXPECT_TRUE(left->empty()) << left->size() << " containers left behind";

  // A second plan with the same recipe finds the image current and does not build it again.
  std::ofstream(dir_ / "again.json")
      << R"({"runner": "docker://", "sinks": ["null://"],
             "images": {"bitfusion/quickstart:0.1": {"context": ")"
      << BITFUSION_SOURCE_DIR << R"(/examples/images/quickstart", "files": {"busybox":
             "/bin/busybox", "bf-matmul": "bf-matmul-static", "bf-stream": "bf-stream-static"}}},
             "benchmarks": [{"name": "m", "image": "bitfusion/quickstart:0.1", "program":
             "bf-matmul", "args": ["--n", "64"], "repetitions": 1, "warmup": 0}]})";
  r = Cli(dir_, socket_, "run again.json --quiet");
  ASSERT_EQ(r.exit, 0) << r.out << r.err;
  auto after = runner_->InspectImage("bitfusion/quickstart:0.1");
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->id, image->id) << "the image was built again";
}

TEST_F(DockerCliTest, AFailedRunGetsTheContainersLastLinesFromTheReactor) {
  std::ofstream(dir_ / "fails.json") << R"({"runner": "docker://", "sinks": ["null://"],
      "benchmarks": [{"name": "f", "image": "bftest/busybox:1",
      "command": ["sh", "-c", "echo first; echo second; echo third >&2; exit 4"],
      "repetitions": 1, "warmup": 0}]})";
  CliResult r = Cli(dir_, socket_, "run fails.json --json");
  EXPECT_EQ(r.exit, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("exit status 4; last log lines:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("second"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("third"), std::string::npos) << r.err;
}

// A plan whose one benchmark sleeps, started as a child process (so it can be killed).
std::unique_ptr<testing::ServiceProcess> StartSleeper(const std::filesystem::path& dir,
                                                      const std::string& socket) {
  std::ofstream(dir / "sleeps.json") << R"({"runner": "docker://", "sinks": ["null://"],
      "benchmarks": [{"name": "sleeps", "image": "bftest/busybox:1",
      "command": ["sleep", "120"], "repetitions": 1, "warmup": 0}]})";
  return std::make_unique<testing::ServiceProcess>(
      std::vector<std::string>{kCli, "run", (dir / "sleeps.json").string(), "--quiet"},
      (dir / "sleeper.log").string(), std::vector<std::string>{"DOCKER_HOST=unix://" + socket});
}

TEST_F(DockerCliTest, AfterKillNineReapAndTheNextRunLeaveNothingOfTheDeadRun) {
  for (const bool by_reap : {true, false}) {
    auto sleeper = StartSleeper(dir_, socket_);
    const pid_t pid = sleeper->pid();
    ASSERT_TRUE(Eventually([&] { return !ContainersOf(pid).empty(); }, 60s))
        << "no container of the run appeared; its log:\n"
        << sleeper->Log();
    ASSERT_TRUE(Eventually([&] {
      auto c = ContainersOf(pid);
      return !c.empty() && c.front().state == "running";
    }));
    ::kill(pid, SIGKILL);
    sleeper->Stop();  // collects the killed process
    ASSERT_EQ(ContainersOf(pid).size(), 1u) << "kill -9 leaves the container behind";

    if (by_reap) {
      CliResult r = Cli(dir_, socket_, "reap --dry-run");
      ASSERT_EQ(r.exit, 0) << r.out << r.err;
      EXPECT_NE(r.out.find("would remove container"), std::string::npos) << r.out;
      EXPECT_EQ(ContainersOf(pid).size(), 1u);
      r = Cli(dir_, socket_, "reap --runner docker://" + socket_);
      ASSERT_EQ(r.exit, 0) << r.out << r.err;
      EXPECT_NE(r.out.find("process " + std::to_string(pid) + ", is gone"), std::string::npos)
          << r.out;
    } else {
      std::ofstream(dir_ / "quick.json") << R"({"runner": "docker://", "sinks": ["null://"],
          "benchmarks": [{"name": "q", "image": "bftest/busybox:1",
          "command": ["true"], "repetitions": 1, "warmup": 0}]})";
      CliResult r = Cli(dir_, socket_, "run quick.json --quiet");
      ASSERT_EQ(r.exit, 0) << r.out << r.err;
    }
    EXPECT_TRUE(ContainersOf(pid).empty())
        << (by_reap ? "bitfusion reap" : "the next bitfusion run")
        << " left the dead run's container";
  }
}

}  // namespace
}  // namespace bitfusion
