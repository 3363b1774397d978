// A dockerd of a test's own: its socket, data root and exec root under /tmp (short paths: unix
// sockets are limited to 108 bytes), no bridge and no iptables rules, stopped by PID. Also the
// registry-free test image: a busybox-static root filesystem imported through the runner.
#pragma once

#include <signal.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "bitfusion/container_runner.h"
#include "integration/service.h"
#include "net/http_client.h"
#include "runners/tar_archive.h"

namespace bitfusion::testing {

/// The image every docker test runs: busybox-static with PATH=/bin and sh as its command.
inline constexpr const char* kBusyboxImage = "bftest/busybox:1";
inline constexpr const char* kBusybox = "/bin/busybox";

inline std::string WhyNoDocker() {
  if (!IsRoot()) return "dockerd needs root";
  if (!HaveProgram("dockerd")) return "dockerd is not installed (apt-get install docker.io)";
  if (!HaveProgram(kBusybox)) return "busybox-static is not installed (/bin/busybox)";
  return "";
}

/// Stops dockerds that test processes which died without tearing down (a crash, a kill)
/// left running, found by their /tmp/bfd-TAG-PID directories, and removes their files.
inline void StopDaemonsOfDeadTests() {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/tmp", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("bfd-", 0) != 0) continue;
    const auto dash = name.rfind('-');
    const pid_t owner = static_cast<pid_t>(std::strtol(name.c_str() + dash + 1, nullptr, 10));
    if (owner <= 0 || ::kill(owner, 0) == 0 || errno != ESRCH) continue;
    std::ifstream pidfile(entry.path() / "d.pid");
    pid_t daemon = 0;
    if (pidfile >> daemon && daemon > 0 && ::kill(daemon, SIGTERM) == 0) {
      for (int i = 0; i < 200 && ::kill(daemon, 0) == 0; ++i) ::usleep(50'000);
      ::kill(daemon, SIGKILL);
    }
    const std::string exec_root = "/tmp/bfx-" + name.substr(4);
    ::umount2((exec_root + "/netns/default").c_str(), MNT_DETACH);
    std::filesystem::remove_all(entry.path(), ec);
    std::filesystem::remove_all(exec_root, ec);
  }
}

class DockerDaemon {
 public:
  /// `tag` keeps several daemons of one test apart; `extra_args` are added to dockerd's.
  explicit DockerDaemon(const std::string& tag, std::vector<std::string> extra_args = {})
      : root_("/tmp/bfd-" + tag + "-" + std::to_string(::getpid())),
        exec_root_("/tmp/bfx-" + tag + "-" + std::to_string(::getpid())),
        extra_args_(std::move(extra_args)) {}
  ~DockerDaemon() { Stop(/*remove_data=*/true); }
  DockerDaemon(const DockerDaemon&) = delete;
  DockerDaemon& operator=(const DockerDaemon&) = delete;

  std::string socket() const { return root_ + "/d.sock"; }
  std::string uri() const { return "docker://" + socket(); }
  const std::string& root() const { return root_; }
  pid_t pid() const { return process_ ? process_->pid() : -1; }

  /// Starts it (again, after Stop(false), on the same data) and waits for /_ping. Empty when
  /// up; else why not, with the end of its log.
  std::string Start() {
    StopDaemonsOfDeadTests();
    std::filesystem::create_directories(root_ + "/data");
    std::vector<std::string> argv = {"dockerd",       "--host",          "unix://" + socket(),
                                     "--data-root",   root_ + "/data",   "--exec-root",
                                     exec_root_,      "--pidfile",       root_ + "/d.pid",
                                     "--bridge=none", "--iptables=false"};
    argv.insert(argv.end(), extra_args_.begin(), extra_args_.end());
    process_ = std::make_unique<ServiceProcess>(argv, root_ + "/dockerd.log");
    net::HttpClientOptions o;
    o.base_url = "http://localhost";
    o.unix_socket = socket();
    auto client = net::HttpClient::Make(o);
    const bool up = process_->WaitReady([&] {
      net::HttpRequest ping;
      ping.target = "/_ping";
      ping.deadline = DeadlineAfter(std::chrono::seconds(2));
      auto r = (*client)->Send(ping);
      return r.ok() && r->status == 200;
    });
    if (up) return "";
    const std::string log = process_->Log();
    return "dockerd did not come up on " + socket() + "; its log ends:\n" +
           log.substr(log.size() > 3000 ? log.size() - 3000 : 0);
  }

  /// Removes its containers, stops it by PID and unmounts what it leaves; with `remove_data`
  /// its directories go too.
  void Stop(bool remove_data) {
    if (process_) {
      if (auto runner = ContainerRunnerFromUri(uri()); runner.ok()) {
        // Running containers would make dockerd wait 10 s each on the way down.
        if (auto all = (*runner)->ListContainers({}); all.ok()) {
          for (const auto& c : *all) {
            net::HttpClientOptions o;
            o.base_url = "http://localhost";
            o.unix_socket = socket();
            auto client = net::HttpClient::Make(o);
            net::HttpRequest del;
            del.method = "DELETE";
            del.target = "/containers/" + c.id + "?force=1";
            del.deadline = DeadlineAfter(std::chrono::seconds(30));
            (void)(*client)->Send(del);
          }
        }
      }
      process_->Stop(std::chrono::seconds(20));
      process_.reset();
    }
    ::umount2((exec_root_ + "/netns/default").c_str(), MNT_DETACH);
    if (remove_data) {
      std::error_code ec;
      std::filesystem::remove_all(root_, ec);
      std::filesystem::remove_all(exec_root_, ec);
    }
  }

  std::string Log() const { return process_ ? process_->Log() : ""; }

 private:
  std::string root_, exec_root_;
  std::vector<std::string> extra_args_;
  std::unique_ptr<ServiceProcess> process_;
};

/// A root filesystem tarball: busybox-static, a link per applet, /etc/passwd and group.
inline std::string BusyboxRootfs() {
  internal::TarWriter tar;
  for (const char* dir : {"bin", "tmp", "proc", "sys", "dev", "etc", "root"}) {
    tar.AddDirectory(dir, std::string(dir) == "tmp" ? 01777 : 0755);
  }
  std::ifstream in(kBusybox, std::ios::binary);
  tar.AddFile("bin/busybox", std::string(std::istreambuf_iterator<char>(in), {}), 0755);
  FILE* list = ::popen((std::string(kBusybox) + " --list").c_str(), "r");
  char line[256];
  while (list != nullptr && std::fgets(line, sizeof line, list) != nullptr) {
    std::string applet(line);
    while (!applet.empty() && applet.back() == '\n') applet.pop_back();
    if (!applet.empty() && applet != "busybox") tar.AddSymlink("bin/" + applet, "busybox");
  }
  if (list != nullptr) ::pclose(list);
  tar.AddFile("etc/passwd",
              "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n");
  tar.AddFile("etc/group", "root:x:0:\nnogroup:x:65534:\n");
  return tar.Finish();
}

/// Imports kBusyboxImage into the engine at `uri` (a no-op when present).
inline Status ImportBusybox(const std::string& uri, const std::string& tag = kBusyboxImage) {
  BITFUSION_ASSIGN_OR_RETURN(auto runner, ContainerRunnerFromUri(uri));
  if (runner->InspectImage(tag).ok()) return Status::OK();
  const auto path =
      std::filesystem::temp_directory_path() / ("bf-rootfs-" + std::to_string(::getpid()) + ".tar");
  {
    std::ofstream out(path, std::ios::binary);
    out << BusyboxRootfs();
  }
  ImportSpec spec;
  spec.rootfs = path;
  spec.tag = tag;
  spec.changes = {"ENV PATH=/bin", "CMD [\"/bin/sh\"]"};
  auto imported = runner->ImportImage(spec, DeadlineAfter(std::chrono::minutes(2)));
  std::filesystem::remove(path);
  return imported.status();
}

}  // namespace bitfusion::testing
