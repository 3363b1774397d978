// process+ssh:// against real sshds the test starts (tests/integration/sshd_server.h): one on
// 127.0.0.1 and a second host in a network namespace. The runner conformance suite runs on
// both; the tests below check what is particular to running over SSH: the environment, the
// remote process group on Stop, timeout and a lost connection, the orphan guard when the
// creator is killed, and the URI's options.
#include <gmock/gmock.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "conformance/runner_conformance.h"
#include "integration/sshd_server.h"
#include "net/ssh_session.h"
#include "process_status.h"

namespace bitfusion {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing::NetnsHost;
using ::testing::Not;
using testing::SshClientFiles;
using testing::TestSshd;

// Where the services will be, chosen before any starts: the suite's URIs are made at static
// initialisation.
struct Plan {
  fs::path dir = fs::path(::testing::TempDir()) / ("bf-sshproc-" + std::to_string(::getpid()));
  int port = testing::FreePort();
  int dead_port = testing::FreePort();
  std::string ns_address = NetnsHost::PlannedAddress();

  std::string Options() const {
    return "identity=" + (dir / "client_key").string() +
           "&ssh_config=" + (dir / "ssh_config").string() + "&connect_timeout=5";
  }
  std::string Uri(const std::string& host, int p) const {
    return "process+ssh://root@" + host + (p != 0 ? ":" + std::to_string(p) : "") + "?" + Options();
  }
};
const Plan& ThePlan() {
  static const Plan plan;
  return plan;
}

// One set of services for the whole process (ONE_PROCESS in tests/CMakeLists.txt).
struct Hosts {
  SshClientFiles client;
  std::unique_ptr<TestSshd> lo;
  std::unique_ptr<NetnsHost> ns;
  std::unique_ptr<TestSshd> h2;
  std::string error;     // why the loopback sshd is not there
  std::string ns_error;  // why the namespace host is not there

  Hosts() {
    const Plan& plan = ThePlan();
    fs::remove_all(plan.dir);
    fs::create_directories(plan.dir);
    if (!testing::IsRoot()) {
      error = ns_error = "sshd for a root login needs root";
      return;
    }
    error = client.Make(plan.dir);
    if (!error.empty()) return;
    lo = std::make_unique<TestSshd>(client, "lo", "127.0.0.1", plan.port);
    error = lo->error();
    ns = std::make_unique<NetnsHost>();
    ns_error = ns->error();
    if (ns_error.empty()) {
      // The second host's root has an empty ~/.bashrc (a bind mount in the sshd's own mount
      // namespace; the host's file is untouched): one host with the login shell as it is here
      // (root's runs `pyenv init`, seconds per session on a loaded machine), one without.
      std::vector<std::string> prefix = ns->Prefix();
      prefix.insert(prefix.end(),
                    {"unshare", "-m", "sh", "-c",
                     "mount --bind /dev/null /root/.bashrc 2>/dev/null; exec \"$@\"", "sh"});
      h2 = std::make_unique<TestSshd>(client, "h2", ns->address(), 22, prefix);
      ns_error = h2->error();
    }
  }
  ~Hosts() {
    h2.reset();
    ns.reset();
    lo.reset();
    fs::remove_all(ThePlan().dir);
  }
};

Hosts* g_hosts = nullptr;
Hosts& TheHosts() {
  static Hosts* hosts = g_hosts = new Hosts();
  return *hosts;
}
struct HostsShutdown : ::testing::Environment {
  void TearDown() override { delete g_hosts; }
};
const auto* const kShutdown = ::testing::AddGlobalTestEnvironment(new HostsShutdown);

std::vector<RunnerCase> Cases() {
  return {RunnerCase{"loopback", ThePlan().Uri("127.0.0.1", ThePlan().port), "",
                     [] { return TheHosts().error; }},
          RunnerCase{"netns", ThePlan().Uri(ThePlan().ns_address, 0), "",
                     [] { return TheHosts().ns_error; }}};
}
INSTANTIATE_TEST_SUITE_P(Sshd, RunnerConformanceTest, ::testing::ValuesIn(Cases()),
                         [](const auto& info) { return info.param.name; });

class SshProcessRunnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    BITFUSION_REQUIRE_SERVICE(TheHosts().error.empty(), TheHosts().error);
    auto r = ContainerRunnerFromUri(Uri());
    ASSERT_TRUE(r.ok()) << r.error().ToString();
    runner_ = *r;
  }
  std::string Uri() const { return ThePlan().Uri("127.0.0.1", ThePlan().port); }

  // A command run to its end; its stdout lines.
  std::vector<std::string> Output(const ContainerSpec& spec, ExitStatus* status = nullptr) {
    auto c = runner_->Create(spec);
    EXPECT_TRUE(c.ok()) << c.error().ToString();
    if (!c.ok()) return {};
    Captured got;
    auto sub = (*c)->Logs([&](LogStream s, std::string_view l) { got.Add(s, l); });
    EXPECT_TRUE((*c)->Start().ok());
    auto exit = (*c)->Wait(DeadlineAfter(60s));
    EXPECT_TRUE(exit.ok()) << exit.error().ToString();
    if (status != nullptr && exit.ok()) *status = *exit;
    std::lock_guard lock(got.mu);
    return got.out;
  }

  // The remote shell's answer to `script` (exit status 0 = true), asked over a connection of
  // the test's own.
  bool RemoteTrue(const std::string& script) {
    if (probe_ == nullptr) {
      SshSessionOptions o;
      o.config_file = TheHosts().client.config;
      o.connect_timeout = std::chrono::seconds(5);
      probe_ = std::make_unique<SshSession>(
          SshTarget{"127.0.0.1", ThePlan().port, "root", TheHosts().client.key}, o);
      const Status up = probe_->Connect();
      EXPECT_TRUE(up.ok()) << up.ToString();
    }
    auto r = probe_->Run({"sh", "-c", script}, std::chrono::seconds(30));
    EXPECT_TRUE(r.ok()) << r.error().ToString();
    return r.ok() && r->exit_status == 0;
  }

  // Every process of the remote group `pgid` and process `pid` is gone (or a zombie about to
  // be reaped); polled, since the kernel delivers a group's SIGKILL to each member in turn.
  bool RemoteGone(int pgid, int pid) {
    const std::string script =
        "for f in /proc/[0-9]*/stat; do read -r l <\"$f\" 2>/dev/null || continue; "
        "set -- ${l##*) }; [ \"$1\" = Z ] && continue; [ \"$3\" = " +
        std::to_string(pgid) + " ] && exit 1; done; [ ! -e /proc/" + std::to_string(pid) +
        " ] || [ \"$(set -- $(sed 's/.*) //' /proc/" + std::to_string(pid) +
        "/stat); echo $1)\" = Z ]";
    const auto until = std::chrono::steady_clock::now() + 60s;
    while (std::chrono::steady_clock::now() < until) {
      if (RemoteTrue(script)) return true;
      std::this_thread::sleep_for(100ms);
    }
    return false;
  }

  std::shared_ptr<ContainerRunner> runner_;
  std::unique_ptr<SshSession> probe_;
};

TEST_F(SshProcessRunnerTest, CommandSeesOnlyTheLoginBasicsAndTheSpecsEnvironment) {
  ::setenv("BF_LOCAL_ONLY", "must-not-travel", 1);
  ::setenv("BF_SECRET_TOKEN", "hunter2", 1);
  // The transport can carry variables (SetEnv, accepted by this sshd for BF_*): the runner
  // must still not hand them to the command.
  auto r = ContainerRunnerFromUri(Uri() + "&ssh_option=SetEnv=BF_SENT=over-ssh");
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  runner_ = *r;
  ContainerSpec spec;
  spec.command = {"env"};
  spec.env["BF_SPEC"] = "from the spec";
  std::set<std::string> names;
  std::map<std::string, std::string> values;
  for (const auto& line : Output(spec)) {
    const auto eq = line.find('=');
    names.insert(line.substr(0, eq));
    values[line.substr(0, eq)] = line.substr(eq + 1);
  }
  EXPECT_EQ(names, (std::set<std::string>{"BF_SPEC", "HOME", "LOGNAME", "PATH", "SHELL", "USER"}));
  EXPECT_EQ(values["BF_SPEC"], "from the spec");
  EXPECT_EQ(values["USER"], "root");
  ::unsetenv("BF_LOCAL_ONLY");
  ::unsetenv("BF_SECRET_TOKEN");
  // And the transport did carry it: a plain ssh with the same option sees it.
  EXPECT_EQ(testing::Shell("ssh -F " + TheHosts().client.config.string() + " -i " +
                           TheHosts().client.key.string() + " -o SetEnv=BF_SENT=over-ssh -p " +
                           std::to_string(ThePlan().port) +
                           " root@127.0.0.1 'test \"$BF_SENT\" = over-ssh'"),
            0);
}

TEST_F(SshProcessRunnerTest, SpecPathFindsTheCommandAndRelativePathsStartInTheWorkingDir) {
  const fs::path bin = ThePlan().dir / "bin";
  fs::create_directories(bin);
  std::ofstream(bin / "bf-hello") << "#!/bin/sh\necho \"hello from $(pwd)\"\n";
  fs::permissions(bin / "bf-hello", fs::perms::owner_all);
  ContainerSpec spec;
  spec.command = {"bf-hello"};
  spec.env["PATH"] = bin.string() + ":/usr/bin:/bin";
  spec.working_dir = ThePlan().dir.string();
  EXPECT_EQ(Output(spec), std::vector<std::string>{"hello from " + ThePlan().dir.string()});

  ContainerSpec relative;
  relative.command = {"./bin/bf-hello"};
  relative.working_dir = ThePlan().dir.string();
  EXPECT_EQ(Output(relative), std::vector<std::string>{"hello from " + ThePlan().dir.string()});

  ContainerSpec missing;
  missing.command = {"bf-no-such-command"};
  auto c = runner_->Create(missing);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code(), StatusCode::kNotFound);
  EXPECT_THAT(c.error().message(), HasSubstr("bf-no-such-command"));
  EXPECT_THAT(c.error().message(), HasSubstr("127.0.0.1"));

  ContainerSpec nowhere;
  nowhere.command = {"true"};
  nowhere.working_dir = "/bf/no/such/dir";
  c = runner_->Create(nowhere);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code(), StatusCode::kNotFound);
  EXPECT_THAT(c.error().message(), HasSubstr("/bf/no/such/dir"));
}

TEST_F(SshProcessRunnerTest, ArgumentsAndOutputBytesArriveIntact) {
  const std::string marker = (ThePlan().dir / "injected").string();
  const std::vector<std::string> args = {"$(touch " + marker + ")",
                                         "`touch " + marker + "`",
                                         "a'b\"c",
                                         "; touch " + marker,
                                         "tab\there",
                                         "*",
                                         "-n",
                                         "é ✓"};
  ContainerSpec spec;
  spec.command = {"printf", "%s\\n"};
  spec.command.insert(spec.command.end(), args.begin(), args.end());
  spec.env["BF_ODD"] = "$(touch " + marker + ") 'x'";
  EXPECT_EQ(Output(spec), args);
  ContainerSpec env;
  env.command = {"/bin/sh", "-c", "printf '%s\\n' \"$BF_ODD\""};
  env.env = spec.env;
  EXPECT_EQ(Output(env), std::vector<std::string>{spec.env["BF_ODD"]});
  EXPECT_FALSE(fs::exists(marker));
}

TEST_F(SshProcessRunnerTest, LinesArriveWhileTheCommandRuns) {
  const fs::path gate = ThePlan().dir / "gate";
  fs::remove(gate);
  ContainerSpec spec;
  spec.command = {"/bin/sh", "-c",
                  "echo first; while [ ! -e " + gate.string() +
                      " ]; do sleep 0.05; done; "
                      "echo second"};
  auto c = runner_->Create(spec);
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  Captured got;
  auto sub = (*c)->Logs([&](LogStream s, std::string_view l) { got.Add(s, l); });
  ASSERT_TRUE((*c)->Start().ok());
  // "first" arrives while the command is blocked on the gate only this test opens.
  ASSERT_TRUE((*c)->WaitFor(WaitStrategy::LogMatches("^first$"), DeadlineAfter(60s)).ok());
  EXPECT_EQ((*c)->Inspect()->state, "running");
  {
    std::lock_guard lock(got.mu);
    EXPECT_EQ(got.out, std::vector<std::string>{"first"});
  }
  std::ofstream(gate).put('\n');
  ASSERT_TRUE((*c)->Wait(DeadlineAfter(60s))->success());
  std::lock_guard lock(got.mu);
  EXPECT_EQ(got.out, (std::vector<std::string>{"first", "second"}));
}

// `sh -c 'sleep 300 & echo $!; wait'`: the group's id and the backgrounded child's pid.
struct Group {
  std::unique_ptr<Container> c;
  int pgid = 0;
  int child = 0;
};

Group StartGroup(ContainerRunner& runner, std::int64_t timeout_ns = 0) {
  Group g;
  ContainerSpec spec;
  spec.command = {"/bin/sh", "-c", "trap '' TERM; sleep 300 & echo $!; wait"};
  spec.timeout_ns = timeout_ns;
  auto c = runner.Create(spec);
  EXPECT_TRUE(c.ok()) << c.error().ToString();
  if (!c.ok()) return g;
  g.c = std::move(*c);
  auto child = std::make_shared<std::atomic<int>>(0);
  auto sub = g.c->Logs([child](LogStream s, std::string_view line) {
    if (s == LogStream::kStdout && child->load() == 0)
      child->store(std::atoi(std::string(line).c_str()));
  });
  EXPECT_TRUE(g.c->Start().ok());
  EXPECT_TRUE(g.c->WaitFor(WaitStrategy::LogMatches("^[0-9]+$"), DeadlineAfter(60s)).ok());
  g.pgid = g.c->Inspect()->pid;
  g.child = child->load();
  return g;
}

// Commands, their output and their Stats are followed on the library's event loop: this
// process's thread count does not grow with how many run (before, each had a reader thread and
// each Stats subscription one more).
TEST_F(SshProcessRunnerTest, ThreadsDoNotGrowWithTheNumberOfCommands) {
  constexpr int kCommands = 12;
  ContainerSpec spec;
  spec.command = {"/bin/sh", "-c", "echo up; sleep 60"};
  std::vector<std::unique_ptr<Container>> running;
  std::vector<Subscription> subs;
  std::mutex mu;
  int up = 0, readings = 0;
  auto add = [&] {
    auto c = runner_->Create(spec);
    ASSERT_TRUE(c.ok()) << c.error().ToString();
    subs.push_back((*c)->Logs([&](LogStream, std::string_view line) {
      std::lock_guard lock(mu);
      if (line == "up") ++up;
    }));
    ASSERT_TRUE((*c)->Start().ok());
    auto stats = (*c)->Stats(
        [&](const ContainerStats& st) {
          std::lock_guard lock(mu);
          if (st.running) ++readings;
        },
        200ms);
    ASSERT_TRUE(stats.ok()) << stats.error().ToString();
    subs.push_back(std::move(*stats));
    running.push_back(std::move(*c));
  };
  add();  // the loop's threads start with the first command
  ASSERT_TRUE(running[0]->WaitFor(WaitStrategy::LogMatches("^up$"), DeadlineAfter(60s)).ok());
  const long before = testing::ThreadsOfThisProcess();
  for (int i = 1; i < kCommands; ++i) add();
  for (int i = 0; i < 600; ++i) {
    {
      std::lock_guard lock(mu);
      if (up == kCommands && readings >= 2 * kCommands) break;
    }
    std::this_thread::sleep_for(100ms);
  }
  const long during = testing::ThreadsOfThisProcess();
  {
    std::lock_guard lock(mu);
    EXPECT_EQ(up, kCommands);
    EXPECT_GE(readings, 2 * kCommands) << "each command's Stats delivered readings";
  }
  RecordProperty("threads_before", static_cast<int>(before));
  RecordProperty("threads_during", static_cast<int>(during));
  EXPECT_EQ(during, before) << "threads with 1 command and its Stats, then with " << kCommands;
  for (auto& sub : subs) sub.Cancel();
  running.clear();
}

TEST_F(SshProcessRunnerTest, StopEndsTheWholeRemoteGroup) {
  Group g = StartGroup(*runner_);
  ASSERT_GT(g.pgid, 0);
  ASSERT_GT(g.child, 0);
  EXPECT_TRUE(RemoteTrue("kill -s 0 -- -" + std::to_string(g.pgid)));
  // The group ignores SIGTERM: Stop goes on to SIGKILL after the grace.
  ASSERT_TRUE(g.c->Stop(200ms).ok());
  auto exit = g.c->Wait(DeadlineAfter(60s));
  ASSERT_TRUE(exit.ok()) << exit.error().ToString();
  EXPECT_EQ(exit->signal, SIGKILL);
  EXPECT_EQ(exit->exit_code, -1);
  EXPECT_TRUE(RemoteGone(g.pgid, g.child));
}

TEST_F(SshProcessRunnerTest, TimeoutEndsTheWholeRemoteGroup) {
  // Counted from the command's start (the pid record), not from the login.
  Group g = StartGroup(*runner_, std::chrono::nanoseconds(3s).count());
  ASSERT_GT(g.pgid, 0);
  auto exit = g.c->Wait(DeadlineAfter(60s));
  ASSERT_TRUE(exit.ok()) << exit.error().ToString();
  EXPECT_TRUE(exit->timed_out);
  EXPECT_EQ(exit->signal, SIGKILL);
  EXPECT_TRUE(RemoteGone(g.pgid, g.child));
}

TEST_F(SshProcessRunnerTest, SignalDeathIsReportedAsProcessReportsIt) {
  ContainerSpec spec;
  spec.command = {"/bin/sh", "-c", "kill -USR1 $$"};
  ExitStatus exit;
  Output(spec, &exit);
  EXPECT_EQ(exit.signal, SIGUSR1);
  EXPECT_EQ(exit.exit_code, -1);
}

TEST_F(SshProcessRunnerTest, DestroyingTheHandleEndsTheRemoteGroup) {
  Group g = StartGroup(*runner_);
  ASSERT_GT(g.pgid, 0);
  g.c.reset();
  EXPECT_TRUE(RemoteGone(g.pgid, g.child));
}

// The local ssh clients this process started whose command line holds `needle`.
std::vector<int> SshChildren(const std::string& needle) {
  std::vector<int> pids;
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string name = e.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream stat(e.path() / "stat");
    std::string text((std::istreambuf_iterator<char>(stat)), {});
    const auto paren = text.rfind(')');
    if (paren == std::string::npos) continue;
    std::istringstream fields(text.substr(paren + 2));
    std::string state;
    int ppid = 0;
    fields >> state >> ppid;
    if (ppid != ::getpid()) continue;
    std::ifstream cmd(e.path() / "cmdline");
    const std::string cmdline((std::istreambuf_iterator<char>(cmd)), {});
    if (cmdline.find(needle) != std::string::npos) pids.push_back(std::stoi(name));
  }
  return pids;
}

TEST_F(SshProcessRunnerTest, KilledSshClientTakesTheRemoteGroupWithIt) {
  Group g = StartGroup(*runner_);
  ASSERT_GT(g.pgid, 0);
  const auto clients = SshChildren("setsid env -i");
  ASSERT_EQ(clients.size(), 1u);
  ::kill(clients[0], SIGKILL);
  EXPECT_TRUE(RemoteGone(g.pgid, g.child));
  auto exit = g.c->Wait(DeadlineAfter(60s));
  ASSERT_FALSE(exit.ok());
  EXPECT_EQ(exit.error().code(), StatusCode::kUnavailable);
  EXPECT_THAT(exit.error().message(), HasSubstr("127.0.0.1"));
}

TEST_F(SshProcessRunnerTest, KilledCreatorLeavesNothingRunningRemotely) {
  const fs::path runtime = ThePlan().dir / "creator-runtime";
  fs::create_directories(runtime);
  int out[2];
  ASSERT_EQ(::pipe(out), 0);
  const std::string uri = Uri() + "&runtime_dir=" + runtime.string();
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out[1], 1);
    ::execl(BITFUSION_SSH_RUNNER_CREATOR, BITFUSION_SSH_RUNNER_CREATOR, uri.c_str(), nullptr);
    ::_exit(127);
  }
  ::close(out[1]);
  FILE* in = ::fdopen(out[0], "r");
  int pgid = 0, child = 0;
  ASSERT_EQ(std::fscanf(in, "%d %d", &pgid, &child), 2) << "the creator printed no ids";
  std::fclose(in);
  EXPECT_TRUE(RemoteTrue("kill -s 0 -- -" + std::to_string(pgid)));
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  EXPECT_TRUE(RemoteGone(pgid, child));
  // The killed creator's master outlives it (ControlPersist); end it as `ssh -O exit` does.
  for (const auto& d : fs::directory_iterator(runtime)) {
    testing::Shell("ssh -o ControlPath=" + (d.path() / "m").string() +
                   " -O exit root@127.0.0.1 2>/dev/null");
  }
}

TEST_F(SshProcessRunnerTest, BadOptionsAreRefusedNamingTheKey) {
  struct Bad {
    std::string uri;
    StatusCode code;
    std::string says;
  };
  const std::string base = "process+ssh://root@127.0.0.1:" + std::to_string(ThePlan().port);
  const std::vector<Bad> bad = {
      {base + "?identty=/x", StatusCode::kInvalidArgument, "unknown option \"identty\""},
      {base + "?connect_timeout=0", StatusCode::kInvalidArgument, "connect_timeout"},
      {base + "?connect_timeout=soon", StatusCode::kInvalidArgument, "connect_timeout"},
      {base + "?ssh_option=BatchModeyes", StatusCode::kInvalidArgument, "KEY=VALUE"},
      {base + "?identity=/bf/no/key", StatusCode::kNotFound, "identity"},
      {base + "?drain_timeout=-1s", StatusCode::kInvalidArgument, "drain_timeout"},
      {"process+ssh://", StatusCode::kInvalidArgument, "USER@HOST"},
      {"process+ssh://root:hunter2@127.0.0.1", StatusCode::kInvalidArgument, "identity="},
  };
  for (const auto& b : bad) {
    auto r = ContainerRunnerFromUri(b.uri);
    ASSERT_FALSE(r.ok()) << b.uri;
    EXPECT_EQ(r.error().code(), b.code) << b.uri << ": " << r.error().ToString();
    EXPECT_THAT(r.error().message(), HasSubstr(b.says)) << b.uri;
    EXPECT_THAT(r.error().message(), Not(HasSubstr("hunter2"))) << b.uri;
  }
}

// ssh binds its control socket at "<ControlPath>.<16 characters>" first: a runtime_dir of 75
// characters still fits a unix socket address (108 bytes), one of 76 would not and is refused
// up front rather than leaving a master that cannot multiplex.
TEST_F(SshProcessRunnerTest, RuntimeDirUpToTheSocketPathLimitWorksAndALongerOneIsRefused) {
  fs::path dir = "/tmp/bf-rt-" + std::to_string(::getpid()) + "-";
  dir += std::string(75 - dir.string().size(), 'r');
  ASSERT_EQ(dir.string().size(), 75u);
  fs::create_directories(dir);
  {
    auto r = ContainerRunnerFromUri(Uri() + "&runtime_dir=" + dir.string());
    ASSERT_TRUE(r.ok()) << r.error().ToString();
    runner_ = *r;
    ContainerSpec spec;
    spec.command = {"echo", "fits"};
    EXPECT_EQ(Output(spec), std::vector<std::string>{"fits"});
    runner_ = nullptr;
  }
  const fs::path longer = dir.string() + "x";
  fs::create_directories(longer);
  auto r = ContainerRunnerFromUri(Uri() + "&runtime_dir=" + longer.string());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), StatusCode::kInvalidArgument) << r.error().ToString();
  EXPECT_THAT(r.error().message(), HasSubstr("runtime_dir " + longer.string() + " has 76"));
  EXPECT_THAT(r.error().message(), HasSubstr("at most 75 characters"));
  EXPECT_TRUE(fs::is_empty(longer)) << "nothing is made in a refused runtime_dir";
  fs::remove_all(dir);
  fs::remove_all(longer);
}

TEST_F(SshProcessRunnerTest, UnreachableHostIsOneErrorNamingIt) {
  auto r = ContainerRunnerFromUri(ThePlan().Uri("127.0.0.1", ThePlan().dead_port));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), StatusCode::kUnavailable);
  EXPECT_THAT(r.error().message(), HasSubstr("127.0.0.1:" + std::to_string(ThePlan().dead_port)));
  EXPECT_THAT(r.error().message(), HasSubstr("Connection refused"));
}

TEST_F(SshProcessRunnerTest, CapabilitiesSayWhatCannotBeOffered) {
  auto caps = runner_->Capabilities();
  ASSERT_TRUE(caps.ok());
  EXPECT_EQ(caps->engine, "process+ssh");
  EXPECT_FALSE(caps->images);
  EXPECT_FALSE(caps->containers);
  EXPECT_FALSE(caps->reap);
  EXPECT_TRUE(caps->exec && caps->copy && caps->stats && caps->events);
  ContainerSpec spec;
  spec.command = {"true"};
  spec.memory_bytes = 1 << 20;
  auto c = runner_->Create(spec);
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.error().message(), HasSubstr("memory_bytes"));
}

}  // namespace
}  // namespace bitfusion
