// One started process:// child, followed on the library's event loop (core/event_loop.h) with no
// thread of its own: its stdout and stderr read as they become readable and split into lines,
// its exit collected when its pidfd becomes readable (polled every 10 ms on a kernel without
// pidfds), its timeout enforced with SIGKILL to its process group by a timer, and its Stats()
// readings of /proc/PID taken by timers.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "bitfusion/container_runner.h"

namespace bitfusion::internal {

struct ProcessChildOptions {
  std::string id;  ///< the container's, for messages
  std::size_t max_line_bytes = 64 * 1024;
  /// After the child exits, how long to keep reading output its descendants still write.
  std::chrono::nanoseconds drain_timeout = std::chrono::seconds(1);
  /// > 0: the child's process group is killed this long after start_mono_ns, and its exit
  /// status says timed_out.
  std::int64_t timeout_ns = 0;
  std::int64_t start_ns = 0;       ///< wall clock at spawn
  std::int64_t start_mono_ns = 0;  ///< monotonic clock at spawn
};

/// Concurrency: every method may be called from any thread but the loop's (they wait for it).
class ProcessChild {
 public:
  using LineCallback = std::function<void(LogStream stream, std::string_view line)>;
  using EndCallback = std::function<void(const ExitStatus& exit)>;

  /// A handle on `pid` (the leader of its own process group) that will read `out_fd` and
  /// `err_fd` (the read ends of its output pipes, owned from here on) once Follow() is called.
  /// `on_line` gets each output line and `on_end` the exit status once the child has exited and
  /// its output is read (or given up on after drain_timeout); both run on the loop.
  static std::shared_ptr<ProcessChild> Make(pid_t pid, int out_fd, int err_fd,
                                            const ProcessChildOptions& options,
                                            LineCallback on_line, EndCallback on_end);
  virtual ~ProcessChild() = default;

  /// Starts following it; call once, and before any other method.
  virtual void Follow() = 0;

  virtual pid_t pid() const = 0;
  /// Exited (a zombie until Close reaps it).
  virtual bool exited() = 0;
  /// Exited and its output read: Wait may return.
  virtual bool finished() = 0;
  virtual ExitStatus exit_status() = 0;
  /// Blocks until finished(); false when `deadline` comes first.
  virtual bool WaitFinished(Deadline deadline) = 0;

  /// /proc/PID readings every `interval` until cancelled, then one with running = false when
  /// the child exits (see Container::Stats).
  virtual Subscription Stats(StatsCallback callback, std::chrono::nanoseconds interval) = 0;

  /// Ends every Stats subscription and the following of the child. `keep_running`: stops
  /// reading its output (its later writes fail) and leaves it running, with no on_end; else
  /// waits until it has exited (the caller has killed it). Then reaps it if it exited.
  virtual void Close(bool keep_running) = 0;
};

}  // namespace bitfusion::internal
