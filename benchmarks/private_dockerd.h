// A dockerd of a benchmark's own (its own socket, data and exec roots under /tmp, no bridge,
// no iptables), or the engine named by BITFUSION_DOCKER_SOCKET; stopped and cleaned up on
// destruction. Shared by the benchmark programs that need a real engine.
#pragma once

#include <curl/curl.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <string>
#include <system_error>
#include <thread>
#include <utility>

#include "bitfusion/container_runner.h"
#include "runners/tar_archive.h"

namespace bitfusion::bench {

class PrivateDockerd {
 public:
  /// `prefix` names its directories: /tmp/PREFIXd-PID (data, socket, log), /tmp/PREFIXx-PID.
  explicit PrivateDockerd(std::string prefix) : prefix_(std::move(prefix)) {}
  ~PrivateDockerd() { Stop(); }
  PrivateDockerd(const PrivateDockerd&) = delete;
  PrivateDockerd& operator=(const PrivateDockerd&) = delete;

  /// Empty when the engine answers; else why not (no root, no dockerd, did not come up).
  std::string Start() {
    if (const char* sock = std::getenv("BITFUSION_DOCKER_SOCKET"); sock && *sock) {
      socket_ = sock;
      return Ping(std::chrono::seconds(5))
                 ? ""
                 : "nothing answers on BITFUSION_DOCKER_SOCKET=" + socket_;
    }
    if (::geteuid() != 0) return "dockerd needs root";
    if (std::system("command -v dockerd >/dev/null 2>&1") != 0) return "dockerd is not installed";
    root_ = "/tmp/" + prefix_ + "d-" + std::to_string(::getpid());
    exec_root_ = "/tmp/" + prefix_ + "x-" + std::to_string(::getpid());
    socket_ = root_ + "/d.sock";
    std::filesystem::create_directories(root_ + "/data");
    pid_ = ::fork();
    if (pid_ == 0) {
      ::setpgid(0, 0);
      const int fd = ::open((root_ + "/dockerd.log").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      const std::string host = "unix://" + socket_, data = root_ + "/data",
                        pidfile = root_ + "/d.pid";
      ::execlp("dockerd", "dockerd", "--host", host.c_str(), "--data-root", data.c_str(),
               "--exec-root", exec_root_.c_str(), "--pidfile", pidfile.c_str(), "--bridge=none",
               "--iptables=false", static_cast<char*>(nullptr));
      ::_exit(127);
    }
    return Ping(std::chrono::seconds(30))
               ? ""
               : "dockerd did not come up (see " + root_ + "/dockerd.log)";
  }

  void Stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    ::waitpid(pid_, nullptr, 0);
    ::kill(-pid_, SIGKILL);
    pid_ = -1;
    ::umount2((exec_root_ + "/netns/default").c_str(), MNT_DETACH);
    std::error_code ec;
    std::filesystem::remove_all(root_, ec);
    std::filesystem::remove_all(exec_root_, ec);
  }

  const std::string& socket() const { return socket_; }
  pid_t pid() const { return pid_; }

 private:
  bool Ping(std::chrono::seconds timeout) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < until) {
      CURL* c = curl_easy_init();
      curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, socket_.c_str());
      curl_easy_setopt(c, CURLOPT_URL, "http://localhost/_ping");
      curl_easy_setopt(
          c, CURLOPT_WRITEFUNCTION, +[](char*, size_t s, size_t n, void*) { return s * n; });
      const bool ok = curl_easy_perform(c) == CURLE_OK;
      curl_easy_cleanup(c);
      if (ok) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }

  std::string prefix_, root_, exec_root_, socket_;
  pid_t pid_ = -1;
};

/// Imports a busybox image `tag` (this host's static /bin/busybox with `applets` linked in
/// /bin, PATH=/bin) unless the engine has it: no registry is needed.
inline Status ImportBusybox(ContainerRunner& runner, const std::string& tag,
                            std::initializer_list<const char*> applets) {
  if (runner.InspectImage(tag).ok()) return Status::OK();
  internal::TarWriter tar;
  for (const char* dir : {"bin", "tmp", "proc", "sys", "dev", "etc"}) tar.AddDirectory(dir);
  std::ifstream in("/bin/busybox", std::ios::binary);
  if (!in) return NotFoundError("/bin/busybox (busybox-static) is missing");
  tar.AddFile("bin/busybox", std::string(std::istreambuf_iterator<char>(in), {}), 0755);
  for (const char* applet : applets) tar.AddSymlink(std::string("bin/") + applet, "busybox");
  const std::filesystem::path path = "/tmp/bfbench-rootfs-" + std::to_string(::getpid()) + ".tar";
  std::ofstream(path, std::ios::binary) << tar.Finish();
  ImportSpec spec;
  spec.rootfs = path;
  spec.tag = tag;
  spec.changes = {"ENV PATH=/bin"};
  auto imported = runner.ImportImage(spec, DeadlineAfter(std::chrono::minutes(2)));
  std::filesystem::remove(path);
  return imported.status();
}

}  // namespace bitfusion::bench
