// A real single-node Slurm for tests: munged (its own socket), slurmctld, slurmd and slurmrestd
// (as user slurm, rest_auth/local on a unix socket), all in the foreground under a fresh
// directory with a private slurm.conf (SLURM_CONF; /etc/slurm is not touched). Two fake GPUs
// are character devices made with mknod (1:3, like /dev/null) named in gres.conf, so that a job
// with --gres=gpu:1 gets CUDA_VISIBLE_DEVICES. Every daemon is stopped by PID afterwards, after
// the cluster's jobs are cancelled.
//
// With slurm-wlm-jwt-plugin installed, the cluster also takes JWTs (AuthAltTypes=auth/jwt, a
// key of its own) and a second slurmrestd serves rest_auth/jwt on 127.0.0.1:PORT (started with
// SLURM_JWT=daemon: without it slurmrestd hands the token to auth/munge, which rejects it with
// "Rejecting thread config token").
//
// Needs root, the Debian packages slurmctld slurmd slurm-client munge slurmrestd (see
// scripts/setup.sh) and the users munge and slurm they create. Slurm's ports are fixed
// (6817/6818): only one cluster per host at a time (ONE_PROCESS in tests/CMakeLists.txt).
#pragma once

#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "integration/service.h"

namespace bitfusion::testing {

class SlurmCluster {
 public:
  SlurmCluster() {
    if (!IsRoot()) {
      error_ = "a Slurm cluster for tests needs root";
      return;
    }
    for (const char* p : {"/usr/sbin/munged", "/usr/sbin/slurmctld", "/usr/sbin/slurmd",
                          "/usr/sbin/slurmrestd", "/usr/bin/sinfo", "/usr/bin/setpriv"}) {
      if (!HaveProgram(p)) {
        error_ = std::string("no ") + p +
                 " (Debian: apt-get install slurmctld slurmd slurm-client munge slurmrestd)";
        return;
      }
    }
    dir_ = FreshDir("slurm");
    namespace fs = std::filesystem;
    for (const char* d : {"state", "spool", "log", "dev", "munge", "rest"}) {
      fs::create_directories(dir_ / d);
    }
    // The daemons run as other users: they need to reach their files under the test dir.
    fs::permissions(dir_, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                              fs::perms::others_read | fs::perms::others_exec);
    if (Run("chown munge:munge " + (dir_ / "munge").string() + " && chown slurm:slurm " +
            (dir_ / "rest").string()) != 0) {
      error_ = "could not chown the munge and slurmrestd directories (users munge, slurm?)";
      return;
    }
    for (int i = 0; i < 2; ++i) {
      const auto dev = dir_ / "dev" / ("nvidia" + std::to_string(i));
      if (::mknod(dev.c_str(), S_IFCHR | 0666, makedev(1, 3)) != 0) {
        error_ = "mknod " + dev.string() + " failed";
        return;
      }
    }
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    node_ = host;
    node_ = node_.substr(0, node_.find('.'));
    jwt_ = fs::exists(kJwtPlugin);
    if (jwt_) {
      // HS256 key: slurmctld reads it as SlurmUser (root here); nobody else may.
      Run("head -c 32 /dev/urandom > " + (dir_ / "jwt.key").string() + " && chmod 600 " +
          (dir_ / "jwt.key").string());
    } else {
      jwt_error_ =
          std::string("no ") + kJwtPlugin + " (Debian: apt-get install slurm-wlm-jwt-plugin)";
    }
    WriteConfig();
    env_ = {"SLURM_CONF=" + conf_.string()};

    munged_ = std::make_unique<ServiceProcess>(
        std::vector<std::string>{"setpriv", "--reuid=munge", "--regid=munge", "--init-groups",
                                 "/usr/sbin/munged", "-F", "--socket=" + MungeSocket(),
                                 "--pid-file=" + (dir_ / "munge" / "munged.pid").string(),
                                 "--log-file=" + (dir_ / "munge" / "munged.log").string(),
                                 "--seed-file=" + (dir_ / "munge" / "munged.seed").string()},
        (dir_ / "log" / "munged.out").string(), env_);
    if (!munged_->WaitReady([&] { return fs::exists(MungeSocket()); }, std::chrono::seconds(10))) {
      error_ = "munged did not start: " + munged_->Log();
      return;
    }
    slurmctld_ = std::make_unique<ServiceProcess>(
        std::vector<std::string>{"/usr/sbin/slurmctld", "-D", "-f", conf_.string()},
        (dir_ / "log" / "slurmctld.out").string(), env_);
    slurmd_ = std::make_unique<ServiceProcess>(
        std::vector<std::string>{"/usr/sbin/slurmd", "-D", "-f", conf_.string()},
        (dir_ / "log" / "slurmd.out").string(), env_);
    const std::string idle =
        "SLURM_CONF=" + conf_.string() + " sinfo -h -o %T 2>/dev/null | grep -q idle";
    if (!slurmctld_->WaitReady([&] { return Run(idle) == 0; }, std::chrono::seconds(60))) {
      error_ = "slurmctld/slurmd did not bring the node up: " + slurmctld_->Log() + slurmd_->Log() +
               Read(dir_ / "log" / "slurmctld.log");
      return;
    }
    rest_ = std::make_unique<ServiceProcess>(
        std::vector<std::string>{"setpriv", "--reuid=slurm", "--regid=slurm", "--init-groups",
                                 "/usr/sbin/slurmrestd", "-a", "rest_auth/local", "-s",
                                 "openapi/v0.0.38", "unix:" + Socket()},
        (dir_ / "log" / "slurmrestd.log").string(), env_);
    const std::string ping =
        "curl -sf --unix-socket " + Socket() + " http://localhost/slurm/v0.0.38/ping >/dev/null";
    if (!rest_->WaitReady([&] { return Run(ping) == 0; }, std::chrono::seconds(20))) {
      error_ = "slurmrestd did not start: " + rest_->Log();
      return;
    }
    if (jwt_) StartJwtRest();
  }

  ~SlurmCluster() {
    if (slurmctld_) {
      // Jobs first, so that no job step outlives slurmd.
      Run(Env() + "scancel --quiet --user=slurm 2>/dev/null; " + Env() +
          "scancel --quiet --user=root 2>/dev/null");
      for (int i = 0; i < 100 && Run(Env() + "squeue -h 2>/dev/null | grep -q .") == 0; ++i) {
        ::usleep(100'000);
      }
    }
    rest_.reset();
    jwt_rest_.reset();
    slurmd_.reset();
    slurmctld_.reset();
    munged_.reset();
    if (error_.empty()) std::filesystem::remove_all(dir_);
  }
  SlurmCluster(const SlurmCluster&) = delete;
  SlurmCluster& operator=(const SlurmCluster&) = delete;

  /// Empty when the cluster is up; else why not.
  const std::string& error() const { return error_; }
  const std::filesystem::path& dir() const { return dir_; }
  const std::string& node() const { return node_; }
  std::string Socket() const { return (dir_ / "rest" / "slurmrestd.sock").string(); }
  /// "SLURM_CONF=… " to put before a Slurm command line.
  std::string Env() const { return "SLURM_CONF=" + conf_.string() + " "; }
  std::string RestLog() const { return rest_ ? rest_->Log() : ""; }

  /// Empty when the JWT slurmrestd is up; else why not.
  const std::string& jwt_error() const { return jwt_error_.empty() ? error_ : jwt_error_; }
  /// Its TCP port on 127.0.0.1.
  int jwt_port() const { return jwt_port_; }
  /// A fresh token for `user` (scontrol token), lifespan 10 minutes; empty on failure.
  std::string Token(const std::string& user) const {
    FILE* f = ::popen((Env() + "scontrol token username=" + user + " lifespan=600").c_str(), "r");
    if (f == nullptr) return "";
    char buf[2048] = {};
    const bool got = std::fgets(buf, sizeof buf, f) != nullptr;
    ::pclose(f);
    std::string line = got ? buf : "";
    const auto eq = line.find('=');
    if (eq == std::string::npos) return "";
    line = line.substr(eq + 1);
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
    return line;
  }

 private:
  static int Run(const std::string& command) {
    const int rc = std::system(command.c_str());
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  }
  static std::string Read(const std::filesystem::path& p) {
    std::ifstream in(p);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  static constexpr const char* kJwtPlugin = "/usr/lib/x86_64-linux-gnu/slurm-wlm/auth_jwt.so";

  void StartJwtRest() {
    jwt_port_ = FreePort();
    std::vector<std::string> env = env_;
    env.push_back("SLURM_JWT=daemon");
    jwt_rest_ = std::make_unique<ServiceProcess>(
        std::vector<std::string>{"setpriv", "--reuid=slurm", "--regid=slurm", "--init-groups",
                                 "/usr/sbin/slurmrestd", "-a", "rest_auth/jwt", "-s",
                                 "openapi/v0.0.38", "127.0.0.1:" + std::to_string(jwt_port_)},
        (dir_ / "log" / "slurmrestd-jwt.log").string(), env);
    const std::string token = Token("root");
    const std::string ping =
        "curl -sf -H 'X-SLURM-USER-NAME: root' -H 'X-SLURM-USER-TOKEN: " + token +
        "' http://127.0.0.1:" + std::to_string(jwt_port_) + "/slurm/v0.0.38/ping >/dev/null";
    if (token.empty() ||
        !jwt_rest_->WaitReady([&] { return Run(ping) == 0; }, std::chrono::seconds(20))) {
      jwt_error_ = "the JWT slurmrestd did not start (token " +
                   std::string(token.empty() ? "missing" : "made") + "): " + jwt_rest_->Log();
    }
  }

  std::string MungeSocket() const { return (dir_ / "munge" / "munge.sock").string(); }

  void WriteConfig() {
    conf_ = dir_ / "slurm.conf";
    const std::string d = dir_.string();
    // gres.conf is read from slurm.conf's directory.
    std::ofstream(dir_ / "gres.conf")
        << "NodeName=" << node_ << " Name=gpu Type=fake File=" << d << "/dev/nvidia[0-1]\n";
    // CR_Core (not memory): jobs that give no memory do not each take the whole node. CPUs=16
    // with config_overrides: sixteen jobs at once on a two-core test machine.
    std::ofstream(conf_)
        << "ClusterName=bftest\n"
        << "SlurmctldHost=" << node_ << "(127.0.0.1)\n"
        << "AuthType=auth/munge\nCredType=cred/munge\n"
        << "AuthInfo=socket=" << MungeSocket() << "\n"
        << (jwt_ ? "AuthAltTypes=auth/jwt\nAuthAltParameters=jwt_key=" + d + "/jwt.key\n" : "")
        << "SlurmUser=root\nSlurmdUser=root\n"
        << "SlurmctldPort=6817\nSlurmdPort=6818\n"
        << "StateSaveLocation=" << d << "/state\n"
        << "SlurmdSpoolDir=" << d << "/spool\n"
        << "SlurmctldPidFile=" << d << "/slurmctld.pid\n"
        << "SlurmdPidFile=" << d << "/slurmd.pid\n"
        << "SlurmctldLogFile=" << d << "/log/slurmctld.log\n"
        << "SlurmdLogFile=" << d << "/log/slurmd.log\n"
        << "ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\n"
        << "SchedulerType=sched/backfill\nSelectType=select/cons_tres\n"
        << "SelectTypeParameters=CR_Core\nSlurmdParameters=config_overrides\n"
        << "ReturnToService=2\nMpiDefault=none\n"
        << "JobAcctGatherType=jobacct_gather/none\n"
        << "AccountingStorageType=accounting_storage/none\n"
        << "KillWait=2\nMinJobAge=60\nGresTypes=gpu\n"
        << "NodeName=" << node_
        << " NodeAddr=127.0.0.1 CPUs=16 RealMemory=4000 Gres=gpu:fake:2 "
           "State=UNKNOWN\n"
        << "PartitionName=debug Nodes=" << node_ << " Default=YES MaxTime=INFINITE State=UP\n";
  }

  std::string error_;
  std::filesystem::path dir_, conf_;
  std::string node_;
  std::vector<std::string> env_;
  bool jwt_ = false;
  std::string jwt_error_;
  int jwt_port_ = 0;
  std::unique_ptr<ServiceProcess> munged_, slurmctld_, slurmd_, rest_, jwt_rest_;
};

}  // namespace bitfusion::testing
