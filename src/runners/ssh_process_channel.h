// One process+ssh:// command followed on the library's event loop (core/event_loop.h) with no
// thread of its own, as process_child.h follows a local one: the local ssh client's stdout (the
// command's output with the remote wrapper's records among it, see ssh_process_wire.h) and
// stderr read as they become readable and split into lines, the client's exit noticed on its
// pidfd (polled every 10 ms on a kernel without pidfds), the command's timeout enforced by a
// timer, and Stats() readings read from a second remote command as they arrive.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "bitfusion/container_runner.h"
#include "net/ssh_session.h"

namespace bitfusion::internal {

struct SshProcessChannelOptions {
  std::string id;     ///< the process's, for messages
  std::string where;  ///< "user@host:port", for messages
  std::string nonce;  ///< marks the wrapper's records in stdout
  std::size_t max_line_bytes = 64 * 1024;
  /// After the command's end, how long to keep reading output its descendants still write.
  std::chrono::nanoseconds drain_timeout = std::chrono::seconds(1);
  /// > 0: this long after the wrapper's "pid" record, on_timeout is called once (it sends the
  /// wrapper SIGKILL) and the exit status says timed_out.
  std::int64_t timeout_ns = 0;
  std::int64_t start_ns = 0;       ///< wall clock when the client was started
  std::int64_t start_mono_ns = 0;  ///< monotonic clock then
};

/// Concurrency: every method may be called from any thread but the loop's (they wait for it);
/// the callbacks run on the loop.
class SshProcessChannel {
 public:
  using LineCallback = std::function<void(LogStream stream, std::string_view line)>;
  /// The exit status, and why none came when the connection ended first ("" when it came).
  using EndCallback = std::function<void(const ExitStatus& exit, const std::string& lost)>;
  /// Starts a remote stats reader of process `pid` (kStats); see Stats.
  using StatsSpawner = std::function<Result<SshChild>(int pid)>;

  /// A channel that will follow `client` (the local ssh client and the read ends of its stdout
  /// and stderr, owned from here on; its stdin stays the caller's) once Follow() is called.
  /// `on_line` gets each output line, `on_timeout` is called when the timeout passes, `on_end`
  /// once the command has ended and its output is read (or given up on after drain_timeout), or
  /// at Close.
  static std::unique_ptr<SshProcessChannel> Make(const SshChild& client,
                                                 const SshProcessChannelOptions& options,
                                                 LineCallback on_line,
                                                 std::function<void()> on_timeout,
                                                 EndCallback on_end);
  /// Closes it (see Close) if that has not been done.
  ~SshProcessChannel();
  SshProcessChannel(const SshProcessChannel&) = delete;
  SshProcessChannel& operator=(const SshProcessChannel&) = delete;

  /// Starts following it; call once.
  void Follow();

  /// What Inspect and Wait show.
  struct State {
    int remote_pid = 0;     ///< the remote group's id, once the wrapper has said
    bool exited = false;    ///< the exit record came (or the connection ended)
    bool finished = false;  ///< and the output was read: Wait may return
    std::string lost;       ///< why no exit status came
    ExitStatus exit;
  };
  State state();

  /// Blocks until finished; false when `deadline` comes first.
  bool WaitFinished(Deadline deadline);

  /// Readings of the remote process, started with `spawn` once its pid is known, delivered as
  /// they arrive, until cancelled; then one with running = false once it has ended (see
  /// Container::Stats).
  Subscription Stats(StatsSpawner spawn, StatsCallback callback);

  /// Stops reading: ends every Stats subscription; if the command has not finished, it ends
  /// now, with lost = "the handle was removed" unless its exit record came. Waits until no
  /// handler runs any more. Then the ssh client may be reaped: client_reaped() says whether it
  /// already was.
  void Close();
  bool client_reaped();

 private:
  class Impl;
  class StatsReader;
  explicit SshProcessChannel(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<Impl> impl_;
  bool closed_ = false;
};

}  // namespace bitfusion::internal
