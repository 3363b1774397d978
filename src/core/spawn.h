// Starting a child process with posix_spawn, which glibc does with clone(CLONE_VM|CLONE_VFORK):
// unlike fork, its cost does not grow with the parent's memory (fork copies the page tables:
// 0.7 ms for a small process on a VM, 4 ms at 100 MiB, the same again for every thread's
// worth of mappings in a large host application; posix_spawn stays ~30 us). Used by process://
// for benchmark commands and by the SSH session for every ssh client it runs.
#pragma once

#include <sched.h>
#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "bitfusion/status.h"

namespace bitfusion::internal {

struct SpawnSpec {
  std::filesystem::path program;  ///< the executable, a path (no PATH search)
  std::vector<std::string> argv;  ///< argv[0] included
  /// "NAME=value" entries; nullopt: this process's environment.
  std::optional<std::vector<std::string>> env;
  /// Descriptors for the child's 0, 1 and 2; -1 is /dev/null. Nothing else is inherited.
  int stdin_fd = -1;
  int stdout_fd = -1;
  int stderr_fd = -1;
  std::filesystem::path working_dir;  ///< empty: this process's
  bool new_process_group = false;     ///< the child leads a process group of its own
  /// CPUs the child may run on: it inherits them from the calling thread's affinity, which is
  /// set around the call and restored.
  std::optional<cpu_set_t> cpus;
};

/// Starts the child with default signal dispositions and an empty signal mask (a host such as
/// Python ignores SIGPIPE; a command must not inherit that) and returns its pid. The error
/// names the program and errno (ENOENT, EACCES, a working directory that cannot be entered).
Result<pid_t> Spawn(const SpawnSpec& spec);

/// How a child reaped by ReapWithin ended.
struct Reaped {
  bool reaped = false;  ///< a status was collected (false: `pid` was not a child of ours)
  int status = 0;       ///< waitpid's status (WIFEXITED, WEXITSTATUS, ...) when reaped
  bool killed = false;  ///< it had not exited within the patience and was sent SIGKILL
};

/// Waits up to `patience` for the child `pid` to exit (on its pidfd, or every 5 ms on a kernel
/// without pidfds), then kills it with SIGKILL, and reaps it either way, so the pid is never
/// left a zombie nor killed after it was freed. A pid that is not a child of this process
/// returns at once.
Reaped ReapWithin(pid_t pid, std::chrono::nanoseconds patience);

}  // namespace bitfusion::internal
