// static:// and SshSession against real sshds the test starts: one on 127.0.0.1 and a second
// host in a network namespace (tests/integration/sshd_server.h). The provisioner conformance
// suite runs on an inventory of both.
#include <gmock/gmock.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "conformance/provisioner_conformance.h"
#include "integration/sshd_server.h"
#include "net/ssh_session.h"
#include "provisioners/host_fingerprint.h"
#include "provisioners/static_provisioner.h"

namespace bitfusion {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// One set of services for the whole process (ONE_PROCESS in tests/CMakeLists.txt).
struct Hosts : testing::TwoSshHosts {
  std::string error;     // why the loopback sshd is not there
  std::string ns_error;  // why the namespace host is not there
  fs::path inventory;    // lo-a, lo-b (both the loopback sshd), h2
  fs::path dead_inventory;
  int dead_port = 0;

  Hosts() : TwoSshHosts("static-sshd") {
    error = StartNear();
    if (!error.empty()) return;
    ns_error = StartFar("h2");
    // "key" relative to the inventory's directory, as users write it.
    auto host = [&](const std::string& name, const std::string& address, int port,
                    const std::string& labels) {
      return "{\"name\": \"" + name + "\", \"address\": \"" + address +
             "\", \"port\": " + std::to_string(port) +
             ", \"user\": \"root\", \"key\": \"client_key\", \"labels\": {" + labels + "}}";
    };
    inventory = dir_ / "inventory.json";
    std::ofstream(inventory) << "{\"hosts\": [" << host("lo-a", "127.0.0.1", lo_->port(), "")
                             << ", "
                             << host("lo-b", "localhost", lo_->port(), "\"fpga\": \"xilinx-u250\"")
                             << (ns_error.empty()
                                     ? ", " + host("h2", ns_->address(), 22, "\"site\": \"ns\"")
                                     : std::string())
                             << "]}";
    dead_port = testing::FreePort();
    dead_inventory = dir_ / "dead.json";
    std::ofstream(dead_inventory) << "{\"hosts\": [" << host("dead", "127.0.0.1", dead_port, "")
                                  << "]}";
  }

  // lo-b names the loopback sshd "localhost": a lease is per address and port, so the two
  // names lease separately.
  std::string Uri(const fs::path& file, const std::string& leases = "leases") const {
    return "static://" + file.string() + "?lease_dir=" + (dir_ / leases).string() +
           "&ssh_config=" + client_.config.string() + "&connect_timeout=5";
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

const ProvisionerCase kStatic{"static",
                              [] { return TheHosts().Uri(TheHosts().inventory); },
                              "",
                              true,
                              "no-such-host",
                              [] { return TheHosts().error; }};
INSTANTIATE_TEST_SUITE_P(Sshd, ProvisionerConformanceTest, ::testing::Values(kStatic),
                         [](const auto& info) { return info.param.name; });
INSTANTIATE_TEST_SUITE_P(Sshd, DisposableProvisionerConformanceTest, ::testing::Values(kStatic),
                         [](const auto& info) { return info.param.name; });

class StaticSshTest : public ::testing::Test {
 protected:
  void SetUp() override { BITFUSION_REQUIRE_SERVICE(TheHosts().error.empty(), TheHosts().error); }
  Hosts& h() { return TheHosts(); }
  SshSession Session(const std::string& address, int port) {
    SshSessionOptions o;
    o.config_file = h().client_.config;
    o.connect_timeout = std::chrono::seconds(5);
    return SshSession(SshTarget{address, port, "root", h().client_.key}, o);
  }
  std::shared_ptr<Provisioner> Make(const fs::path& inventory,
                                    const std::string& leases = "leases") {
    auto p = ProvisionerFromUri(h().Uri(inventory, leases));
    EXPECT_TRUE(p.ok()) << p.error().ToString();
    return p.ok() ? *p : nullptr;
  }
};

TEST_F(StaticSshTest, RunsCommandsWithArgumentsIntactOverOneMaster) {
  SshSession s = Session("127.0.0.1", h().lo_->port());
  const int logins_before = h().lo_->Logins();
  ASSERT_TRUE(s.Connect().ok());
  const fs::path socket = s.control_path();
  ASSERT_FALSE(socket.empty());
  EXPECT_TRUE(fs::is_socket(socket)) << socket;
  EXPECT_LT(socket.string().size(), 104u);
  EXPECT_EQ(fs::status(socket.parent_path()).permissions() & fs::perms::all, fs::perms::owner_all);
  // Each argument arrives as one word, however it is quoted or what it holds.
  const std::vector<std::string> args = {"printf", "[%s]",         "a b",  "it's",
                                         "$HOME",  "; echo pwned", "`id`", ""};
  auto r = s.Run(args, std::chrono::seconds(20));
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->exit_status, 0) << r->err;
  EXPECT_EQ(r->out, "[a b][it's][$HOME][; echo pwned][`id`][]");
  auto failed = s.Run({"sh", "-c", "echo to-err >&2; exit 7"}, std::chrono::seconds(20));
  ASSERT_TRUE(failed.ok());
  EXPECT_EQ(failed->exit_status, 7);
  EXPECT_EQ(failed->err, "to-err\n");
  // The commands went through the master: sshd saw one login for all of them.
  EXPECT_EQ(h().lo_->Logins(), logins_before + 1);
  auto fresh = s.RunUnmultiplexed({"true"}, std::chrono::seconds(20));
  ASSERT_TRUE(fresh.ok());
  EXPECT_EQ(fresh->exit_status, 0) << fresh->err;
  EXPECT_EQ(h().lo_->Logins(), logins_before + 2);  // and a fresh one logs in again
  s.Close();
  EXPECT_FALSE(fs::exists(socket));
  EXPECT_FALSE(fs::exists(socket.parent_path()));
}

TEST_F(StaticSshTest, CommandChannelKeepsOutputExactAndWorksBesideOtherThreads) {
  SshSession s = Session("127.0.0.1", h().lo_->port());
  ASSERT_TRUE(s.Connect().ok());
  // Binary output with NULs and no final newline, a megabyte of it, and stderr apart.
  auto binary = s.Run({"printf", "a\\000b\\377"}, std::chrono::seconds(20));
  ASSERT_TRUE(binary.ok()) << binary.error().ToString();
  EXPECT_EQ(binary->out, std::string("a\0b\xff", 4));
  auto big =
      s.Run({"sh", "-c", "head -c 1048576 /dev/zero; echo done >&2"}, std::chrono::seconds(30));
  ASSERT_TRUE(big.ok());
  EXPECT_EQ(big->out, std::string(1048576, '\0'));
  EXPECT_EQ(big->err, "done\n");
  // A command with a newline in an argument goes over its own ssh, and arrives intact.
  auto multi = s.Run({"printf", "%s", "line one\nline two"}, std::chrono::seconds(20));
  ASSERT_TRUE(multi.ok());
  EXPECT_EQ(multi->out, "line one\nline two");
  // Two threads at once: one on the channel, the other over its own ssh; neither sees the
  // other's output. stdin is /dev/null either way.
  std::vector<std::string> outs(2);
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 10; ++i) {
        auto r = s.Run({"sh", "-c", "cat; echo " + std::to_string(t * 100 + i)},
                       std::chrono::seconds(30));
        if (r.ok() && r->exit_status == 0) outs[t] += r->out;
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int t = 0; t < 2; ++t) {
    std::string want;
    for (int i = 0; i < 10; ++i) want += std::to_string(t * 100 + i) + "\n";
    EXPECT_EQ(outs[t], want);
  }
}

TEST_F(StaticSshTest, TimeoutKillsTheCommand) {
  SshSession s = Session("127.0.0.1", h().lo_->port());
  ASSERT_TRUE(s.Connect().ok());
  const auto start = std::chrono::steady_clock::now();
  // The command and a child of its own: both are stopped on the remote host (here the same
  // host, so their PIDs are this host's), not left to run out their minute.
  const std::string pids = (h().dir_ / "timed-out.pids").string();
  auto r = s.Run({"sh", "-c", "sleep 60 & echo $$ $! > " + pids + "; wait"},
                 std::chrono::milliseconds(1500));
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->timed_out);
  EXPECT_NE(r->exit_status, 0);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(30));
  int shell = 0, sleeper = 0;
  std::ifstream(pids) >> shell >> sleeper;
  ASSERT_GT(shell, 0);
  ASSERT_GT(sleeper, 0);
  auto gone = [](int pid) { return ::kill(pid, 0) != 0 && errno == ESRCH; };
  for (int i = 0; i < 100 && !(gone(shell) && gone(sleeper)); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(gone(shell)) << "the remote command still runs: " << shell;
  EXPECT_TRUE(gone(sleeper)) << "its child still runs: " << sleeper;
  // The master survives a killed client.
  auto after = s.Run({"true"}, std::chrono::seconds(20));
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->exit_status, 0) << after->err;
}

TEST_F(StaticSshTest, UnreachableHostIsOneErrorNamingHostAndSshsMessage) {
  SshSession s = Session("127.0.0.1", h().dead_port);
  const Status st = s.Connect();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), StatusCode::kUnavailable);
  EXPECT_THAT(st.message(), HasSubstr("127.0.0.1:" + std::to_string(h().dead_port)));
  EXPECT_THAT(st.message(), HasSubstr("Connection refused"));

  auto p = Make(h().dead_inventory, "leases-dead");
  ASSERT_NE(p, nullptr);
  auto made = p->Create(MachineRequest{});
  ASSERT_FALSE(made.ok());
  EXPECT_EQ(made.error().code(), StatusCode::kUnavailable);
  EXPECT_THAT(made.error().message(), HasSubstr("host \"dead\""));
  EXPECT_THAT(made.error().message(), HasSubstr("Connection refused"));
  auto listed = p->List();
  ASSERT_TRUE(listed.ok());
  EXPECT_TRUE(listed->empty()) << "a failed Create left a lease";
}

TEST_F(StaticSshTest, WrongKeyIsRefusedWithoutAPrompt) {
  SshSessionOptions o;
  o.config_file = h().client_.config;
  o.connect_timeout = std::chrono::seconds(5);
  const fs::path other = h().dir_ / "other_key";
  ASSERT_EQ(testing::Shell("ssh-keygen -q -t ed25519 -N '' -f " + other.string() + " </dev/null"),
            0);
  SshSession s(SshTarget{"127.0.0.1", h().lo_->port(), "root", other}, o);
  const Status st = s.Connect();
  ASSERT_FALSE(st.ok());
  EXPECT_THAT(st.message(), HasSubstr("Permission denied"));
}

TEST_F(StaticSshTest, FingerprintOverSshIsThisHostsInventory) {
  auto p = Make(h().inventory);
  ASSERT_NE(p, nullptr);
  MachineRequest r;
  r.type = "lo-a";
  auto made = p->Create(r);
  ASSERT_TRUE(made.ok()) << made.error().ToString();
  auto m = p->WaitReady("lo-a", DeadlineAfter(std::chrono::seconds(60)));
  ASSERT_TRUE(m.ok()) << m.error().ToString();
  auto local = ReadHostFingerprint(FingerprintRoots{});
  ASSERT_TRUE(local.ok());
  // The sshd runs on this machine, so its fingerprint over SSH is `bitfusion inventory`'s.
  EXPECT_EQ(m->cpu.model_name, local->cpu.model_name);
  EXPECT_EQ(m->cpu.threads, local->cpu.threads);
  EXPECT_EQ(m->memory_bytes, local->memory_bytes);
  EXPECT_EQ(m->kernel, local->kernel);
  EXPECT_EQ(m->os, local->os);
  EXPECT_EQ(m->address, "127.0.0.1");
  EXPECT_EQ(m->ssh.port, h().lo_->port());
  EXPECT_GT(m->created_ns, 0);
  EXPECT_GE(m->ssh_ready_ns, m->created_ns);
  EXPECT_GE(m->ready_ns, m->ssh_ready_ns);
  auto types = p->Types();
  ASSERT_TRUE(types.ok());
  EXPECT_EQ((*types)[0].vcpus, local->cpu.threads);  // known now
  ASSERT_TRUE(p->Destroy({"lo-a"}).ok());
}

TEST_F(StaticSshTest, LabelAndRequirementsPickTheHost) {
  auto p = Make(h().inventory);
  ASSERT_NE(p, nullptr);
  MachineRequest r;
  r.type = "fpga=xilinx-u250";
  auto made = p->Create(r);
  ASSERT_TRUE(made.ok()) << made.error().ToString();
  ASSERT_EQ(made->size(), 1u);
  EXPECT_EQ((*made)[0].id, "lo-b");
  // Only lo-b has an FPGA, and it is leased now.
  auto again = p->Create(r);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code(), StatusCode::kResourceExhausted);
  EXPECT_THAT(again.error().message(),
              HasSubstr("lo-b (leased by process " + std::to_string(::getpid())));
  ASSERT_TRUE(p->Destroy({"lo-b"}).ok());

  MachineRequest need;
  need.requirements.min_vcpus = 1;
  need.requirements.accelerator_kind = "fpga";
  made = p->Create(need);
  ASSERT_TRUE(made.ok()) << made.error().ToString();
  EXPECT_EQ((*made)[0].id, "lo-b");
  ASSERT_TRUE(p->Destroy({"lo-b"}).ok());
}

// A lease holds across processes, and the holder's death (kill -9) frees it.
TEST_F(StaticSshTest, LeaseHeldByAnotherProcessUntilItIsKilled) {
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  // The child's control sockets go where this test can find them: its master outlives it.
  const fs::path child_runtime = h().dir_ / "child-rt";
  fs::create_directories(child_runtime);
  const std::string uri =
      h().Uri(h().inventory, "leases-xproc") + "&runtime_dir=" + child_runtime.string();
  const pid_t child = ::fork();
  if (child == 0) {
    ::close(ready[0]);
    auto p = ProvisionerFromUri(uri);
    MachineRequest r;
    r.type = "lo-a";
    const char ok = (p.ok() && (*p)->Create(r).ok()) ? '1' : '0';
    (void)!::write(ready[1], &ok, 1);
    ::pause();
    ::_exit(0);
  }
  ::close(ready[1]);
  struct Reaper {
    pid_t pid;
    fs::path runtime;
    ~Reaper() {
      if (pid > 0) {
        ::kill(pid, SIGKILL);
        int status = 0;
        ::waitpid(pid, &status, 0);
      }
      // A killed holder leaves its master behind (ControlPersist); end it as `ssh -O exit`.
      std::error_code ec;
      for (const auto& d : fs::directory_iterator(runtime, ec)) {
        testing::Shell("ssh -o ControlPath=" + (d.path() / "m").string() +
                       " -O exit x >/dev/null 2>&1");
      }
    }
  } reaper{child, child_runtime};
  char ok = 0;
  ASSERT_EQ(::read(ready[0], &ok, 1), 1);
  ::close(ready[0]);
  ASSERT_EQ(ok, '1');

  auto p = Make(h().inventory, "leases-xproc");
  ASSERT_NE(p, nullptr);
  MachineRequest r;
  r.type = "lo-a";
  auto refused = p->Create(r);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code(), StatusCode::kResourceExhausted);
  EXPECT_THAT(refused.error().message(), HasSubstr("process " + std::to_string(child)));
  auto listed = p->List();
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].labels.at(kLabelPid), std::to_string(child));

  ::kill(child, SIGKILL);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  reaper.pid = 0;  // gone; not to be signalled again (kill(0) would hit our group)
  auto taken = p->Create(r);
  ASSERT_TRUE(taken.ok()) << taken.error().ToString();
  EXPECT_EQ((*taken)[0].labels.at(kLabelPid), std::to_string(::getpid()));
  ASSERT_TRUE(p->Destroy({"lo-a"}).ok());
}

TEST_F(StaticSshTest, SecondHostInANetworkNamespace) {
  BITFUSION_REQUIRE_SERVICE(h().ns_error.empty(), h().ns_error);
  auto p = Make(h().inventory);
  ASSERT_NE(p, nullptr);
  MachineRequest r;
  r.type = "h2";
  auto made = p->Create(r);
  ASSERT_TRUE(made.ok()) << made.error().ToString();
  auto m = p->WaitReady("h2", DeadlineAfter(std::chrono::seconds(60)));
  ASSERT_TRUE(m.ok()) << m.error().ToString();
  EXPECT_EQ(m->address, h().ns_->address());
  EXPECT_GT(m->memory_bytes, 0u);
  EXPECT_GT(m->cpu.threads, 0);
  // Commands run on the other side of the veth: the namespace's address is local there.
  auto static_p = std::dynamic_pointer_cast<StaticProvisioner>(p);
  ASSERT_NE(static_p, nullptr);
  auto session = static_p->Session("h2");
  ASSERT_TRUE(session.ok());
  auto addr = (*session)->Run({"ip", "-o", "addr", "show"}, std::chrono::seconds(20));
  ASSERT_TRUE(addr.ok());
  EXPECT_THAT(addr->out, HasSubstr(h().ns_->address() + "/30"));
  EXPECT_THAT(addr->out, HasSubstr(h().ns_->name() + "n"));  // the namespace's end of the veth
  ASSERT_TRUE(p->Destroy({"h2"}).ok());
}

}  // namespace
}  // namespace bitfusion
