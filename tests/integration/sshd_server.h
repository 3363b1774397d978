// Real sshds for tests: one on 127.0.0.1 (its own port, host key, authorized_keys) and, as a
// second host, one inside a network namespace reached over a veth pair. Everything lives in a
// fresh directory; daemons are stopped by PID, the namespace and veth removed. Needs
// /usr/sbin/sshd (Debian: openssh-server) and, for the namespace, root and `ip`.
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "integration/service.h"

namespace bitfusion::testing {

inline int Shell(const std::string& command) {
  const int rc = std::system(command.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/// The client side shared by the test's sshds: a key pair whose public half every sshd
/// accepts, and an ssh_config (passed with -F) with its own known_hosts.
struct SshClientFiles {
  std::filesystem::path dir, key, config, known_hosts;

  /// Empty on success, else what is missing.
  std::string Make(const std::filesystem::path& in) {
    dir = in;
    key = dir / "client_key";
    config = dir / "ssh_config";
    known_hosts = dir / "known_hosts";
    if (!HaveProgram("ssh") || !HaveProgram("ssh-keygen")) return "no OpenSSH client (ssh)";
    if (Shell("ssh-keygen -q -t ed25519 -N '' -f " + key.string() + " </dev/null") != 0) {
      return "ssh-keygen failed";
    }
    std::ofstream(config) << "Host *\n"
                          << "  StrictHostKeyChecking accept-new\n"
                          << "  UserKnownHostsFile " << known_hosts.string() << "\n"
                          << "  GlobalKnownHostsFile /dev/null\n"
                          << "  LogLevel ERROR\n";
    return "";
  }
};

class TestSshd {
 public:
  /// Starts sshd -D listening on address:port, run under `prefix` (e.g. ip netns exec NS), and
  /// on address:P for each of `more_ports` (a static:// inventory leases a host by address and
  /// port, so one host under several entries needs a port for each), with `extra_config`
  /// (sshd_config lines) appended to its configuration.
  TestSshd(const SshClientFiles& client, const std::string& name, const std::string& address,
           int port, std::vector<std::string> prefix = {}, const std::vector<int>& more_ports = {},
           const std::string& extra_config = "")
      : address_(address), port_(port) {
    if (!HaveProgram("/usr/sbin/sshd")) {
      error_ = "no /usr/sbin/sshd (Debian: apt-get install openssh-server)";
      return;
    }
    const auto dir = client.dir;
    // A host started again under its name keeps its key, as a rebooted host does.
    const auto host_key = dir / ("host_" + name);
    if (!std::filesystem::exists(host_key) &&
        Shell("ssh-keygen -q -t ed25519 -N '' -f " + host_key.string() + " </dev/null") != 0) {
      error_ = "ssh-keygen failed for the host key";
      return;
    }
    std::filesystem::copy_file(client.key.string() + ".pub", dir / "authorized_keys",
                               std::filesystem::copy_options::overwrite_existing);
    ::mkdir("/run/sshd", 0755);  // the privilege-separation directory compiled into sshd
    const auto config = dir / ("sshd_" + name + ".conf");
    std::string ports = "Port " + std::to_string(port) + "\n";
    for (const int p : more_ports) ports += "Port " + std::to_string(p) + "\n";
    std::ofstream(config) << ports << "ListenAddress " << address << "\nHostKey "
                          << host_key.string() << "\nPidFile "
                          << (dir / ("sshd_" + name + ".pid")).string() << "\nAuthorizedKeysFile "
                          << (dir / "authorized_keys").string()
                          << "\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n"
                          << "KbdInteractiveAuthentication no\nUsePAM no\n"
                          // keys under a temp dir: sshd's ownership checks would refuse them
                          << "StrictModes no\nMaxSessions 64\nMaxStartups 200\nPrintMotd no\n"
                          // lets tests send variables (ssh -o SetEnv=BF_...) to show they
                          // are not passed on
                          << "AcceptEnv BF_*\n"
                          << extra_config;
    log_ = (dir / ("sshd_" + name + ".log")).string();
    std::filesystem::remove(log_);  // a host started again waits for its own "listening"
    std::vector<std::string> argv = prefix;
    for (const char* a : {"/usr/sbin/sshd", "-D", "-e", "-f"}) argv.push_back(a);
    argv.push_back(config.string());  // absolute: sshd re-executes itself with its argv
    process_ = std::make_unique<ServiceProcess>(argv, log_);
    const bool up = process_->WaitReady([&] {
      std::ifstream in(log_);
      const std::string text(std::istreambuf_iterator<char>(in), {});
      return text.find("Server listening") != std::string::npos;
    });
    if (!up) error_ = "sshd " + name + " did not start: " + process_->Log();
  }

  const std::string& error() const { return error_; }
  const std::string& address() const { return address_; }
  int port() const { return port_; }
  /// How many logins sshd has accepted so far (from its log).
  int Logins() const {
    std::ifstream in(log_);
    const std::string text(std::istreambuf_iterator<char>(in), {});
    int n = 0;
    for (auto at = text.find("Accepted publickey"); at != std::string::npos;
         at = text.find("Accepted publickey", at + 1)) {
      ++n;
    }
    return n;
  }

 private:
  std::string address_;
  int port_ = 0;
  std::string log_;
  std::string error_;
  std::unique_ptr<ServiceProcess> process_;
};

/// A network namespace joined to this one by a veth pair: this side .1, the namespace .2 of a
/// /30 picked from the process id.
class NetnsHost {
 public:
  NetnsHost() {
    if (!IsRoot()) {
      error_ = "a network namespace needs root";
      return;
    }
    if (!HaveProgram("ip")) {
      error_ = "no `ip` (Debian: iproute2)";
      return;
    }
    const int id = ::getpid() % 100000;
    name_ = "bfs" + std::to_string(id);
    veth_ = name_ + "h";
    local_ = Subnet() + "1";
    address_ = PlannedAddress();
    Shell("ip netns del " + name_ + " 2>/dev/null; ip link del " + veth_ + " 2>/dev/null");
    const std::string in = "ip netns exec " + name_ + " ";
    const std::string setup = "ip netns add " + name_ + " && ip link add " + veth_ +
                              " type veth peer name " + name_ + "n && ip link set " + name_ +
                              "n netns " + name_ + " && ip addr add " + local_ + "/30 dev " +
                              veth_ + " && ip link set " + veth_ + " up && " + in + "ip addr add " +
                              address_ + "/30 dev " + name_ + "n && " + in + "ip link set " +
                              name_ + "n up && " + in + "ip link set lo up";
    if (Shell(setup) != 0) error_ = "could not create network namespace " + name_;
    made_ = true;
  }
  ~NetnsHost() {
    if (made_)
      Shell("ip netns del " + name_ + " 2>/dev/null; ip link del " + veth_ + " 2>/dev/null");
  }
  NetnsHost(const NetnsHost&) = delete;
  NetnsHost& operator=(const NetnsHost&) = delete;

  /// The namespace's address, known before it is made (tests name it in URIs made early).
  static std::string PlannedAddress() { return Subnet() + "2"; }

  const std::string& error() const { return error_; }
  const std::string& name() const { return name_; }
  const std::string& address() const { return address_; }
  std::vector<std::string> Prefix() const { return {"ip", "netns", "exec", name_}; }

 private:
  static std::string Subnet() {
    return "10.124." + std::to_string(::getpid() % 100000 % 250) + ".";
  }

  std::string name_, veth_, local_, address_, error_;
  bool made_ = false;
};

/// Two SSH hosts for a test: this host's sshd on 127.0.0.1 (started in SetUp, as root) and, on
/// StartFarHost(), another in a network namespace of its own, both taking the client's key.
/// A loopback SSH host and, when asked, a second host in a network namespace, sharing one client
/// identity: what the SSH tests (static://, process+ssh://, host+ssh://, plans across machines)
/// run against. Each Start* returns "" or why its host could not start.
class TwoSshHosts {
 public:
  explicit TwoSshHosts(std::string name) : name_(std::move(name)) {}
  TwoSshHosts(const TwoSshHosts&) = delete;
  TwoSshHosts& operator=(const TwoSshHosts&) = delete;
  ~TwoSshHosts() { StopAll(); }

  /// The directory, the client's files and the loopback host ("lo", 127.0.0.1).
  std::string StartNear() {
    dir_ = FreshDir(name_);
    if (!IsRoot()) return "sshd for a root login needs root";
    if (std::string made = client_.Make(dir_); !made.empty()) return made;
    lo_ = std::make_unique<TestSshd>(client_, "lo", "127.0.0.1", FreePort());
    return lo_->error();
  }
  /// The host in a network namespace of its own, on port 22 of its address. Its sessions'
  /// TMPDIR is under the test's directory: the namespace shares this host's /tmp, and a test
  /// that cuts the host off SIGKILLs the remote shells before their traps clean up. Their PATH
  /// starts with DIR/NAME-bin (far_bin()), where a test puts programs that machine should have
  /// and this one lacks (tests/fakes/nvidia-smi).
  std::string StartFar(const std::string& name = "far") {
    ns_ = std::make_unique<NetnsHost>();
    if (!ns_->error().empty()) return ns_->error();
    const auto tmp = dir_ / (name + "-tmp");
    far_bin_ = dir_ / (name + "-bin");
    std::filesystem::create_directories(tmp);
    std::filesystem::create_directories(far_bin_);
    far_ = std::make_unique<TestSshd>(
        client_, name, ns_->address(), 22, ns_->Prefix(), std::vector<int>{},
        "SetEnv TMPDIR=" + tmp.string() + " PATH=" + far_bin_.string() +
            ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n");
    return far_->error();
  }
  void StopAll() {
    far_.reset();
    ns_.reset();
    lo_.reset();
    if (!dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
      dir_.clear();
    }
  }

  std::string name_;
  std::filesystem::path dir_;
  SshClientFiles client_;
  std::unique_ptr<TestSshd> lo_;
  std::unique_ptr<NetnsHost> ns_;
  std::unique_ptr<TestSshd> far_;
  std::filesystem::path far_bin_;  // first on the far host's sessions' PATH
};

/// TwoSshHosts for one test: the loopback host in SetUp, the far one when the test asks.
class TwoSshHostsTest : public ::testing::Test, public TwoSshHosts {
 protected:
  explicit TwoSshHostsTest(std::string name) : TwoSshHosts(std::move(name)) {}
  void SetUp() override {
    const std::string why = StartNear();
    BITFUSION_REQUIRE_SERVICE(why.empty(), why);
  }
  void TearDown() override { StopAll(); }
  void StartFarHost() {
    const std::string why = StartFar();
    BITFUSION_REQUIRE_SERVICE(why.empty(), why);
  }
};

}  // namespace bitfusion::testing
