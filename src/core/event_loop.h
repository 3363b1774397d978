// The library's one event loop: a process-wide boost::asio::io_context run by a small fixed
// pool of threads, started on first use. Child-process watches, output pipes, timeouts and
// periodic readings of every runner run on it, so this process's thread count does not grow
// with the number of containers, streams or machines.
//
// Handlers run on the loop's threads, and so do the user callbacks they call (Logs, Stats,
// Events): a handler that blocks holds up everything else on the loop, and one that waits for
// other work on the loop can wait forever once every loop thread does the same. Work for one
// object is serialised on a strand of its own (the pool has more than one thread).
//
// Lifetime: the loop is stopped and its threads joined during static destruction (by an object
// made on first use, so before anything made before that first use is destroyed); the context
// itself is never freed, so a late caller still gets a valid (stopped) context, on which
// nothing runs any more: EventLoopRunning() says so, and whoever would wait for a handler must
// then do without it. In a child after fork() the parent's loop is left alone (its threads do
// not exist there) and a fresh one starts on first use.
#pragma once

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>

namespace bitfusion::internal {

/// How many threads run the loop: more than one, so that one slow callback does not stop the
/// others; a constant, so that it does not grow with the work.
inline constexpr int kEventLoopThreads = 2;

/// The loop; its threads start on the first call.
boost::asio::io_context& EventLoop();

/// False once the loop has been shut down at exit: nothing posted to it runs any more.
bool EventLoopRunning();

/// Whether the calling thread is one of the loop's.
bool OnEventLoopThread();

/// Waits on `cv` (with `lock` held on its mutex) until `done()` holds: for a handler posted to
/// the loop to have run. After the loop has been shut down at exit nothing would run it, so the
/// wait then ends without it (done() may still be false).
template <class Lock, class CondVar, class Done>
void WaitForLoop(Lock& lock, CondVar& cv, Done done) {
  while (!cv.wait_for(lock, std::chrono::milliseconds(100), done)) {
    if (!EventLoopRunning()) break;
  }
}

/// A function run on the loop after a delay, and again after each delay it returns, until it
/// returns nullopt or the timer is cancelled: timeouts and periodic readings, with no thread.
class LoopTimer {
 public:
  using Fn = std::function<std::optional<std::chrono::nanoseconds>()>;
  static std::shared_ptr<LoopTimer> Start(std::chrono::nanoseconds delay, Fn fn);
  virtual ~LoopTimer() = default;
  /// When it returns, fn is not running (unless Cancel was called from fn itself) and will not
  /// run again.
  virtual void Cancel() = 0;
};

}  // namespace bitfusion::internal
