// docker+ssh:// against a dockerd and an sshd this test starts itself: the engine's socket is
// reached through the sshd (as another host's would be), the runner conformance suite runs over
// it, and so do what only SSH brings: DOCKER_HOST=ssh://, errors that name the host (a wrong
// socket path, no sshd, a refused login, and no key contents in them), a master connection
// that dies and comes back, and nothing left behind (no ssh process, no forwarded socket) once
// the runner and its containers are gone.
//
// One dockerd and one sshd serve the whole executable (tests/CMakeLists.txt: ONE_PROCESS).
#include <gmock/gmock.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "conformance/runner_conformance.h"
#include "integration/docker_daemon.h"
#include "integration/sshd_server.h"
#include "runners/docker_runner.h"
#include "scoped_env.h"

namespace bitfusion {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using testing::DockerDaemon;
using ::testing::HasSubstr;
using testing::kBusyboxImage;
using ::testing::Not;

constexpr const char* kTag = "ssh";

// Paths and the port are fixed before the services start, so the suite can be instantiated
// with its URI.
fs::path ClientDir() {
  return fs::path(::testing::TempDir()) / ("bf-dockerssh-" + std::to_string(::getpid()));
}
int SshPort() {
  static const int port = testing::FreePort();
  return port;
}
std::string EngineSocket() {
  return "/tmp/bfd-" + std::string(kTag) + "-" + std::to_string(::getpid()) + "/d.sock";
}
std::string Target() { return "root@127.0.0.1:" + std::to_string(SshPort()); }
std::string SshOptions() {
  return "ssh_config=" + (ClientDir() / "ssh_config").string() +
         "&identity=" + (ClientDir() / "client_key").string();
}
std::string SshUri(const std::string& socket = EngineSocket()) {
  return "docker+ssh://" + Target() + "?socket=" + socket + "&" + SshOptions();
}

struct Services {
  testing::SshClientFiles client;
  std::unique_ptr<testing::TestSshd> sshd;
  std::unique_ptr<DockerDaemon> daemon;
  std::string unavailable = "the docker+ssh test environment did not start";
};
Services& State() {
  static Services s;
  return s;
}

class DockerSshEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    auto& s = State();
    s.unavailable = testing::WhyNoDocker();
    if (!s.unavailable.empty()) return;
    fs::remove_all(ClientDir());
    fs::create_directories(ClientDir());
    s.unavailable = s.client.Make(ClientDir());
    if (!s.unavailable.empty()) return;
    s.sshd = std::make_unique<testing::TestSshd>(s.client, "docker", "127.0.0.1", SshPort());
    s.unavailable = s.sshd->error();
    if (!s.unavailable.empty()) return;
    s.daemon = std::make_unique<DockerDaemon>(kTag);
    s.unavailable = s.daemon->Start();
    if (!s.unavailable.empty()) return;
    if (s.daemon->socket() != EngineSocket()) {
      s.unavailable =
          "the test dockerd's socket is " + s.daemon->socket() + ", not " + EngineSocket();
      return;
    }
    // Imported straight through the local socket: the suite's own calls go over SSH.
    if (Status imported = testing::ImportBusybox(s.daemon->uri()); !imported.ok()) {
      s.unavailable = "importing the busybox image failed: " + imported.ToString();
    }
  }
  void TearDown() override {
    State().daemon.reset();
    State().sshd.reset();
    std::error_code ec;
    fs::remove_all(ClientDir(), ec);
  }
};

[[maybe_unused]] const auto* const kEnvironment =
    ::testing::AddGlobalTestEnvironment(new DockerSshEnvironment);

std::string Unavailable() { return State().unavailable; }

INSTANTIATE_TEST_SUITE_P(OverSsh, RunnerConformanceTest,
                         ::testing::Values(RunnerCase{"docker_ssh", SshUri(), kBusyboxImage,
                                                      &Unavailable}),
                         [](const auto& info) { return info.param.name; });

// The ssh master connections this test's runners started (found by the test's ssh_config in
// their command line), as pid -> control path. Zombies do not count: they have ended.
std::map<pid_t, std::string> Masters() {
  std::map<pid_t, std::string> out;
  const std::string config = (ClientDir() / "ssh_config").string();
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(entry.path() / "cmdline");
    std::vector<std::string> argv;
    for (std::string arg; std::getline(in, arg, '\0');) argv.push_back(arg);
    bool ours = false, master = false;
    std::string control;
    for (std::size_t i = 0; i < argv.size(); ++i) {
      ours = ours || argv[i] == config;
      master = master || argv[i] == "ControlMaster=yes";
      if (argv[i].rfind("ControlPath=", 0) == 0) control = argv[i].substr(12);
    }
    if (!ours || !master) continue;
    std::ifstream stat(entry.path() / "stat");
    const std::string text(std::istreambuf_iterator<char>(stat), {});
    const auto paren = text.rfind(')');
    if (paren != std::string::npos && paren + 2 < text.size() && text[paren + 2] == 'Z') continue;
    out[static_cast<pid_t>(std::stol(name))] = control;
  }
  return out;
}

// The masters in `after` that are not in `before`.
std::map<pid_t, std::string> Started(const std::map<pid_t, std::string>& before,
                                     const std::map<pid_t, std::string>& after) {
  std::map<pid_t, std::string> out;
  for (const auto& [pid, path] : after) {
    if (!before.count(pid)) out[pid] = path;
  }
  return out;
}

// Waits (bounded) for the processes to end: `ssh -O exit` is answered before the master exits.
bool AllEnded(const std::map<pid_t, std::string>& masters) {
  for (int i = 0; i < 400; ++i) {
    bool any = false;
    const auto now = Masters();
    for (const auto& [pid, path] : masters) any = any || now.count(pid);
    if (!any) return true;
    std::this_thread::sleep_for(25ms);
  }
  return false;
}

class DockerSshTest : public ::testing::Test {
 protected:
  void SetUp() override { BITFUSION_REQUIRE_SERVICE(Unavailable().empty(), Unavailable()); }

  static std::string Echo(ContainerRunner& runner, const std::string& text) {
    ContainerSpec spec;
    spec.image = kBusyboxImage;
    spec.command = {"echo", text};
    auto c = runner.Create(spec);
    if (!c.ok()) return "create: " + c.error().ToString();
    if (Status s = (*c)->Start(); !s.ok()) return "start: " + s.ToString();
    auto exit = (*c)->Wait(DeadlineAfter(60s));
    if (!exit.ok()) return "wait: " + exit.error().ToString();
    auto logs = runner.TailLogs((*c)->id(), 10);
    if (!logs.ok()) return "logs: " + logs.error().ToString();
    std::string out;
    for (const auto& line : *logs) out += line.text + "\n";
    return out;
  }
};

TEST_F(DockerSshTest, DockerHostSshMeansTheSameAsDockerSsh) {
  const std::string docker_host = "ssh://" + Target();
  testing::ScopedEnv env({{"DOCKER_HOST", docker_host.c_str()}, {"DOCKER_TLS_VERIFY", nullptr}});
  auto runner = ContainerRunnerFromUri("docker://?socket=" + EngineSocket() + "&" + SshOptions());
  ASSERT_TRUE(runner.ok()) << runner.error().ToString();
  const auto* docker = dynamic_cast<DockerRunner*>(runner->get());
  ASSERT_NE(docker, nullptr);
  EXPECT_EQ(docker->options().ssh.host, "127.0.0.1");
  EXPECT_EQ(docker->options().ssh.port, SshPort());
  EXPECT_FALSE(docker->options().local());
  auto caps = (*runner)->Capabilities();
  ASSERT_TRUE(caps.ok()) << caps.error().ToString();
  EXPECT_EQ(caps->engine, "docker");
  EXPECT_EQ(Echo(**runner, "via DOCKER_HOST"), "via DOCKER_HOST\n");
}

TEST_F(DockerSshTest, WrongSocketPathNamesTheHostAndThePath) {
  auto runner = ContainerRunnerFromUri(SshUri("/nonexistent/docker.sock"));
  // The login works; the engine is asked nothing until the first call.
  ASSERT_TRUE(runner.ok()) << runner.error().ToString();
  auto caps = (*runner)->Capabilities();
  ASSERT_FALSE(caps.ok());
  EXPECT_EQ(caps.error().code(), StatusCode::kUnavailable) << caps.error().ToString();
  RecordProperty("error", caps.error().message());
  EXPECT_THAT(caps.error().message(), HasSubstr("no socket at /nonexistent/docker.sock"));
  EXPECT_THAT(caps.error().message(), HasSubstr(Target()));
}

TEST_F(DockerSshTest, NoSshdThereNamesTheHost) {
  const std::string target = "root@127.0.0.1:" + std::to_string(testing::FreePort());
  auto runner = ContainerRunnerFromUri("docker+ssh://" + target + "?socket=" + EngineSocket() +
                                       "&" + SshOptions() + "&connect_timeout=5s");
  ASSERT_FALSE(runner.ok());
  EXPECT_EQ(runner.error().code(), StatusCode::kUnavailable) << runner.error().ToString();
  RecordProperty("error", runner.error().message());
  EXPECT_THAT(runner.error().message(), HasSubstr(target));
}

TEST_F(DockerSshTest, RefusedLoginNamesTheHostAndNoKeyContents) {
  // A key the sshd does not know, and a file that is no key at all: both are refused, and
  // neither file's contents may appear in the message.
  const fs::path stranger = ClientDir() / "stranger_key";
  ASSERT_EQ(
      testing::Shell("ssh-keygen -q -t ed25519 -N '' -f " + stranger.string() + " </dev/null"), 0);
  const fs::path garbage = ClientDir() / "garbage_key";
  {
    std::ofstream out(garbage);
    out << "-----BEGIN OPENSSH PRIVATE KEY-----\nbfSECRETbf0123456789\n"
           "-----END OPENSSH PRIVATE KEY-----\n";
  }
  fs::permissions(garbage, fs::perms::owner_read | fs::perms::owner_write);
  std::ifstream in(stranger);
  std::vector<std::string> key_lines;
  for (std::string line; std::getline(in, line);) {
    if (line.find("-----") == std::string::npos && line.size() > 16) key_lines.push_back(line);
  }
  ASSERT_FALSE(key_lines.empty());
  for (const fs::path& key : {stranger, garbage}) {
    auto runner = ContainerRunnerFromUri("docker+ssh://" + Target() + "?socket=" + EngineSocket() +
                                         "&ssh_config=" + (ClientDir() / "ssh_config").string() +
                                         "&identity=" + key.string());
    ASSERT_FALSE(runner.ok()) << key;
    const std::string message = runner.error().message();
    RecordProperty("error_" + key.filename().string(), message);
    EXPECT_EQ(runner.error().code(), StatusCode::kUnavailable) << message;
    EXPECT_THAT(message, HasSubstr(Target()));
    EXPECT_THAT(message, HasSubstr("Permission denied"));
    EXPECT_THAT(message, Not(HasSubstr("bfSECRETbf")));
    for (const auto& line : key_lines) EXPECT_THAT(message, Not(HasSubstr(line)));
  }
}

TEST_F(DockerSshTest, NothingIsLeftOnceTheRunnerAndItsContainersAreGone) {
  const auto before = Masters();
  auto runner = ContainerRunnerFromUri(SshUri());
  ASSERT_TRUE(runner.ok()) << runner.error().ToString();
  const auto masters = Started(before, Masters());
  ASSERT_EQ(masters.size(), 1u);
  const fs::path dir = fs::path(masters.begin()->second).parent_path();
  EXPECT_TRUE(fs::exists(dir / "docker.sock"));
  EXPECT_EQ(fs::status(dir).permissions() & fs::perms::all, fs::perms::owner_all)
      << "the forwarded socket's directory must be private";

  // A container handle outlives the runner and still reaches the engine through the forward.
  ContainerSpec spec;
  spec.image = kBusyboxImage;
  spec.command = {"true"};
  auto container = (*runner)->Create(spec);
  ASSERT_TRUE(container.ok()) << container.error().ToString();
  const std::string id = (*container)->id();
  runner->reset();
  EXPECT_EQ(Started(before, Masters()).size(), 1u);
  ASSERT_TRUE((*container)->Start().ok());
  ASSERT_TRUE((*container)->Wait(DeadlineAfter(60s)).ok());
  container->reset();  // removes the container, then the forward and the master

  EXPECT_TRUE(AllEnded(masters)) << "an ssh master outlived its runner";
  EXPECT_FALSE(fs::exists(dir)) << dir << " (and the forwarded socket in it) was left behind";
  auto local = ContainerRunnerFromUri(State().daemon->uri());
  ASSERT_TRUE(local.ok());
  EXPECT_EQ((*local)->InspectContainer(id).error().code(), StatusCode::kNotFound)
      << "the container handle did not remove its container";
}

TEST_F(DockerSshTest, DeadMasterIsLoggedInAgain) {
  const auto before = Masters();
  auto runner = ContainerRunnerFromUri(SshUri());
  ASSERT_TRUE(runner.ok()) << runner.error().ToString();
  ASSERT_TRUE((*runner)->Capabilities().ok());
  const auto first = Started(before, Masters());
  ASSERT_EQ(first.size(), 1u);
  ASSERT_EQ(::kill(first.begin()->first, SIGKILL), 0);
  ASSERT_TRUE(AllEnded(first));

  auto listed = (*runner)->ListContainers({});
  EXPECT_TRUE(listed.ok()) << listed.error().ToString();
  EXPECT_EQ(Echo(**runner, "after a new login"), "after a new login\n");
  const auto second = Started(before, Masters());
  ASSERT_EQ(second.size(), 1u);
  EXPECT_NE(second.begin()->first, first.begin()->first);
  EXPECT_EQ(second.begin()->second, first.begin()->second) << "the forward moved";
  runner->reset();
  EXPECT_TRUE(AllEnded(second));
}

TEST_F(DockerSshTest, TheEngineIsJudgedRemote) {
  auto runner = ContainerRunnerFromUri(SshUri());
  ASSERT_TRUE(runner.ok()) << runner.error().ToString();
  // A bind mount source is not looked for on this host: the engine (here on the same machine,
  // but reached as another host's would be) is the one to refuse a missing one.
  ContainerSpec spec;
  spec.image = kBusyboxImage;
  spec.command = {"true"};
  spec.mounts.push_back({"bind", "/nonexistent/bf-dockerssh", "/data", true});
  auto c = (*runner)->Create(spec);
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.error().message(), Not(HasSubstr("does not exist on this host")));
  EXPECT_THAT(c.error().message(), HasSubstr("Docker engine at ssh://" + Target()));
}

TEST_F(DockerSshTest, ReapRemovesThisRunsContainersThroughSsh) {
  auto runner = ContainerRunnerFromUri(SshUri() + "&run_id=bf-dockerssh-reap");
  ASSERT_TRUE(runner.ok()) << runner.error().ToString();
  ContainerSpec spec;
  spec.image = kBusyboxImage;
  spec.command = {"sleep", "60"};
  auto c = (*runner)->Create(spec);
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  const std::string id = (*c)->id();
  (*c)->Keep();
  c->reset();
  ReapPolicy policy;
  policy.run_id = "bf-dockerssh-reap";
  auto report = (*runner)->Reap(policy);
  ASSERT_TRUE(report.ok()) << report.error().ToString();
  ASSERT_EQ(report->containers.size(), 1u);
  EXPECT_THAT(report->containers[0], HasSubstr(id.substr(0, 12)));
  EXPECT_EQ((*runner)->InspectContainer(id).error().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace bitfusion
