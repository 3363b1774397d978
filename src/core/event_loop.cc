#include "core/event_loop.h"

#include <pthread.h>

#include <signal.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <atomic>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "bitfusion/log.h"

namespace bitfusion::internal {
namespace {

namespace asio = boost::asio;

struct Loop {
  asio::io_context context{kEventLoopThreads};
  asio::executor_work_guard<asio::io_context::executor_type> work{context.get_executor()};
  std::vector<std::thread> threads;
  std::atomic<bool> running{true};
};

thread_local bool on_loop_thread = false;

// Guards `current`; held across fork() so that the child finds it unlocked and consistent.
std::mutex start_mu;
// Never freed: see the header. Replaced (the old one abandoned) in a child after fork().
Loop* current = nullptr;
bool atfork_registered = false;

void Shutdown() {
  Loop* loop;
  {
    std::lock_guard lock(start_mu);
    loop = current;
  }
  if (loop == nullptr) return;
  loop->running = false;
  loop->work.reset();
  loop->context.stop();
  for (auto& t : loop->threads) {
    // exit() called from a handler: that thread cannot join itself.
    if (t.get_id() == std::this_thread::get_id()) {
      t.detach();
    } else if (t.joinable()) {
      t.join();
    }
  }
}

// Made on first use of the loop: its destructor stops the loop during static destruction.
struct Stopper {
  ~Stopper() { Shutdown(); }
};

void Prepare() { start_mu.lock(); }
void Parent() { start_mu.unlock(); }
void Child() {
  // The parent's loop threads do not exist here, and its epoll instance is shared with the
  // parent: abandon it untouched.
  current = nullptr;
  start_mu.unlock();
}

Loop& Current() {
  static Stopper stopper;
  std::lock_guard lock(start_mu);
  if (current == nullptr) {
    if (!atfork_registered) {
      ::pthread_atfork(Prepare, Parent, Child);
      atfork_registered = true;
    }
    auto* loop = new Loop;
    // The threads take no asynchronous signals: those are the host application's to handle.
    sigset_t all, old;
    ::sigfillset(&all);
    ::pthread_sigmask(SIG_SETMASK, &all, &old);
    for (int i = 0; i < kEventLoopThreads; ++i) {
      loop->threads.emplace_back([loop] {
        on_loop_thread = true;
        while (true) {
          try {
            loop->context.run();
            return;
          } catch (const std::exception& e) {
            // A handler that throws would otherwise end the process from a library thread.
            LogAt(LogLevel::kError, "event loop: a handler threw: ", e.what());
          } catch (...) {
            LogAt(LogLevel::kError, "event loop: a handler threw");
          }
        }
      });
    }
    ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
    current = loop;
  }
  return *current;
}

class StrandTimer final : public LoopTimer, public std::enable_shared_from_this<StrandTimer> {
 public:
  explicit StrandTimer(Fn fn)
      : fn_(std::move(fn)), strand_(asio::make_strand(EventLoop())), timer_(strand_) {}

  void Arm(std::chrono::nanoseconds delay) {
    asio::post(strand_, [self = shared_from_this(), delay] { self->Schedule(delay); });
  }

  void Cancel() override {
    std::unique_lock lock(mu_);
    if (!cancelled_) {
      cancelled_ = true;
      asio::post(strand_, [self = shared_from_this()] { self->timer_.cancel(); });
    }
    // Also when fn cancelled itself and still runs: a Cancel from another thread returns only
    // once it has finished (what the caller then frees, fn may still be using).
    if (!EventLoopRunning()) return;
    cv_.wait(lock, [&] { return !running_ || running_on_ == std::this_thread::get_id(); });
  }

 private:
  // On strand_.
  void Schedule(std::chrono::nanoseconds delay) {
    timer_.expires_after(delay);
    timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (!ec) self->Run();
    });
  }

  void Run() {
    {
      std::lock_guard lock(mu_);
      if (cancelled_) return;
      running_ = true;
      running_on_ = std::this_thread::get_id();
    }
    std::optional<std::chrono::nanoseconds> next;
    try {
      next = fn_();
    } catch (const std::exception& e) {
      LogAt(LogLevel::kError, "a timer's function threw: ", e.what());
    }
    std::lock_guard lock(mu_);
    running_ = false;
    cv_.notify_all();
    if (next && !cancelled_) Schedule(*next);
  }

  const Fn fn_;
  asio::strand<asio::io_context::executor_type> strand_;
  asio::steady_timer timer_;  // on strand_

  std::mutex mu_;
  std::condition_variable cv_;
  bool cancelled_ = false;
  bool running_ = false;  // fn_ runs, on running_on_
  std::thread::id running_on_;
};

}  // namespace

std::shared_ptr<LoopTimer> LoopTimer::Start(std::chrono::nanoseconds delay, Fn fn) {
  auto timer = std::make_shared<StrandTimer>(std::move(fn));
  timer->Arm(delay);
  return timer;
}

asio::io_context& EventLoop() { return Current().context; }

bool EventLoopRunning() { return Current().running.load(); }

bool OnEventLoopThread() { return on_loop_thread; }

}  // namespace bitfusion::internal
