#include "core/spawn.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <thread>

extern char** environ;

namespace bitfusion::internal {

Result<pid_t> Spawn(const SpawnSpec& spec) {
  std::vector<char*> argv;
  for (const std::string& a : spec.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  if (spec.env) {
    for (const std::string& e : *spec.env) envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);
  }

  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  ::posix_spawn_file_actions_init(&actions);
  ::posix_spawnattr_init(&attr);
  const int fds[3] = {spec.stdin_fd, spec.stdout_fd, spec.stderr_fd};
  for (int target = 0; target < 3; ++target) {
    if (fds[target] < 0) {
      ::posix_spawn_file_actions_addopen(&actions, target, "/dev/null",
                                         target == 0 ? O_RDONLY : O_WRONLY, 0);
    } else {
      ::posix_spawn_file_actions_adddup2(&actions, fds[target], target);
    }
  }
  if (!spec.working_dir.empty()) {
    ::posix_spawn_file_actions_addchdir_np(&actions, spec.working_dir.c_str());
  }
  ::posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  sigset_t none, all;
  ::sigemptyset(&none);
  ::sigfillset(&all);
  ::posix_spawnattr_setsigmask(&attr, &none);
  ::posix_spawnattr_setsigdefault(&attr, &all);
  short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  if (spec.new_process_group) {
    ::posix_spawnattr_setpgroup(&attr, 0);
    flags |= POSIX_SPAWN_SETPGROUP;
  }
  ::posix_spawnattr_setflags(&attr, flags);

  const std::string program = spec.program.string();
  Status status;
  cpu_set_t saved;
  if (spec.cpus && (::sched_getaffinity(0, sizeof saved, &saved) != 0 ||
                    ::sched_setaffinity(0, sizeof *spec.cpus, &*spec.cpus) != 0)) {
    status = ErrnoError(errno, "pinning " + program + " to its CPUs");
  }
  pid_t pid = -1;
  if (status.ok()) {
    const int rc = ::posix_spawn(&pid, program.c_str(), &actions, &attr, argv.data(),
                                 spec.env ? envp.data() : environ);
    if (rc != 0) status = ErrnoError(rc, "starting " + program);
    if (spec.cpus) ::sched_setaffinity(0, sizeof saved, &saved);
  }
  ::posix_spawnattr_destroy(&attr);
  ::posix_spawn_file_actions_destroy(&actions);
  if (!status.ok()) return status;
  return pid;
}

Reaped ReapWithin(pid_t pid, std::chrono::nanoseconds patience) {
  Reaped r;
  if (pid <= 0) return r;
  const auto until = std::chrono::steady_clock::now() + patience;
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  for (;;) {
    const pid_t done = ::waitpid(pid, &r.status, WNOHANG);
    if (done == pid) {
      r.reaped = true;
      break;
    }
    if (done < 0 && errno == EINTR) continue;
    if (done < 0) {  // not our child (ECHILD): nothing to reap
      r.status = 0;
      break;
    }
    const auto left = until - std::chrono::steady_clock::now();
    if (left <= std::chrono::nanoseconds(0)) {
      ::kill(pid, SIGKILL);
      r.killed = true;
      pid_t waited;
      while ((waited = ::waitpid(pid, &r.status, 0)) < 0 && errno == EINTR) {
      }
      r.reaped = waited == pid;
      break;
    }
    const auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
    if (pidfd >= 0) {
      pollfd p{pidfd, POLLIN, 0};
      ::poll(&p, 1, static_cast<int>(std::min<std::int64_t>(ms, 1000)));
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(std::min<std::int64_t>(ms, 5)));
    }
  }
  if (pidfd >= 0) ::close(pidfd);
  return r;
}

}  // namespace bitfusion::internal
