// Helpers for integration tests that run against real services (dockerd, influxd, postgres,
// slurmd, sshd, fakes of cloud APIs). Each test starts its own service: its own socket, data
// directory and port on 127.0.0.1, stopped by PID afterwards.
//
// A missing service binary or missing root may skip a test on a developer's machine, but under
// CI=true a skip is a failure: BITFUSION_REQUIRE_SERVICE does both.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

namespace bitfusion::testing {

/// A TCP port on 127.0.0.1 that was free a moment ago.
inline int FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

inline bool UnderCi() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && std::string(ci) == "true";
}

inline bool HaveProgram(const std::string& name) {
  if (name.find('/') != std::string::npos) return ::access(name.c_str(), X_OK) == 0;
  const char* path = std::getenv("PATH");
  std::string dirs = std::string(path ? path : "") + ":/usr/sbin:/sbin";
  std::size_t start = 0;
  while (start <= dirs.size()) {
    const std::size_t end = dirs.find(':', start);
    const std::string dir = dirs.substr(start, end - start);
    if (!dir.empty() && ::access((dir + "/" + name).c_str(), X_OK) == 0) return true;
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return false;
}

inline bool IsRoot() { return ::geteuid() == 0; }

/// A fresh directory under the test temp dir, removed by the caller (or left for post-mortem).
inline std::filesystem::path FreshDir(const std::string& name) {
  const auto dir = std::filesystem::path(::testing::TempDir()) /
                   ("bf-" + name + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

/// Removes a service's directory when destroyed: declared after the directory and before the
/// service's process, so the process is stopped first. BITFUSION_KEEP_TEST_DIRS=1 keeps it for a
/// post-mortem.
struct RemoveDirLater {
  std::filesystem::path path;
  RemoveDirLater() = default;
  RemoveDirLater(const RemoveDirLater&) = delete;
  RemoveDirLater& operator=(const RemoveDirLater&) = delete;
  ~RemoveDirLater() {
    if (path.empty() || std::getenv("BITFUSION_KEEP_TEST_DIRS") != nullptr) return;
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

/// A background service process: started with argv, stdout/stderr to `log_path`, in its own
/// process group, stopped (SIGTERM, then SIGKILL after `grace`) when destroyed.
class ServiceProcess {
 public:
  ServiceProcess(std::vector<std::string> argv, std::string log_path,
                 std::vector<std::string> extra_env = {})
      : argv_(std::move(argv)), log_path_(std::move(log_path)) {
    pid_ = ::fork();
    if (pid_ == 0) {
      ::setpgid(0, 0);
      const int fd = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
      }
      for (auto& e : extra_env) ::putenv(e.data());
      std::vector<char*> args;
      for (auto& a : argv_) args.push_back(a.data());
      args.push_back(nullptr);
      ::execvp(args[0], args.data());
      ::_exit(127);
    }
  }
  ~ServiceProcess() { Stop(); }
  ServiceProcess(const ServiceProcess&) = delete;
  ServiceProcess& operator=(const ServiceProcess&) = delete;

  pid_t pid() const { return pid_; }

  /// Polls `ready` every 50 ms until it returns true, the process dies, or `timeout` passes.
  bool WaitReady(const std::function<bool()>& ready,
                 std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < until) {
      if (ready()) return true;
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }

  void Stop(std::chrono::milliseconds grace = std::chrono::seconds(15)) {
    if (pid_ <= 0) return;
    ::kill(-pid_, SIGTERM);
    const auto until = std::chrono::steady_clock::now() + grace;
    int status = 0;
    while (std::chrono::steady_clock::now() < until) {
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        ::kill(-pid_, SIGKILL);  // anything the service left behind in its group
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ::kill(-pid_, SIGKILL);
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }

  /// The service's log, for failure messages.
  std::string Log() const {
    std::ifstream in(log_path_);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

 private:
  std::vector<std::string> argv_;
  std::string log_path_;
  pid_t pid_ = -1;
};

}  // namespace bitfusion::testing

/// Skips (or, under CI=true, fails) the current test when `condition` is false.
#define BITFUSION_REQUIRE_SERVICE(condition, why)                                           \
  do {                                                                                      \
    if (!(condition)) {                                                                     \
      if (::bitfusion::testing::UnderCi()) {                                                \
        FAIL() << (why) << " (CI=true: a test that cannot reach its service is a failure)"; \
      } else {                                                                              \
        GTEST_SKIP() << (why);                                                              \
      }                                                                                     \
    }                                                                                       \
  } while (0)
