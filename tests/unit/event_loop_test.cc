// The library's event loop and its timers: a fixed pool of threads, timers that run until their
// function says stop or they are cancelled, cancellation from inside the function, and a fresh
// loop in a child after fork().
#include "core/event_loop.h"
#include "process_status.h"

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/post.hpp>

#include <atomic>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <string>

namespace bitfusion::internal {
namespace {

using namespace std::chrono_literals;

// Counts calls, and lets a test wait for a number of them.
struct Calls {
  std::mutex mu;
  std::condition_variable cv;
  int n = 0;
  void Add() {
    std::lock_guard lock(mu);
    ++n;
    cv.notify_all();
  }
  bool WaitFor(int want) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, 30s, [&] { return n >= want; });
  }
  int Get() {
    std::lock_guard lock(mu);
    return n;
  }
};

TEST(EventLoopTest, HandlersRunOnAFixedPoolOfLoopThreads) {
  EventLoop();
  const long threads = testing::ThreadsOfThisProcess();
  Calls calls;
  bool on_loop = true;
  for (int i = 0; i < 100; ++i) {
    boost::asio::post(EventLoop(), [&] {
      {
        std::lock_guard lock(calls.mu);
        on_loop = on_loop && OnEventLoopThread();
      }
      calls.Add();
    });
  }
  ASSERT_TRUE(calls.WaitFor(100));
  EXPECT_TRUE(on_loop);
  EXPECT_FALSE(OnEventLoopThread());
  EXPECT_EQ(testing::ThreadsOfThisProcess(), threads);
  EXPECT_TRUE(EventLoopRunning());
}

TEST(EventLoopTest, ATimerRunsUntilItsFunctionSaysStop) {
  Calls calls;
  auto timer = LoopTimer::Start(0ms, [&]() -> std::optional<std::chrono::nanoseconds> {
    calls.Add();
    if (calls.Get() < 3) return 1ms;
    return std::nullopt;
  });
  ASSERT_TRUE(calls.WaitFor(3));
  timer->Cancel();
  EXPECT_EQ(calls.Get(), 3);
}

TEST(EventLoopTest, ACancelledTimerDoesNotRunAgain) {
  Calls calls;
  auto timer = LoopTimer::Start(0ms, [&]() -> std::optional<std::chrono::nanoseconds> {
    calls.Add();
    return 1ms;
  });
  ASSERT_TRUE(calls.WaitFor(2));
  timer->Cancel();
  const int after_cancel = calls.Get();
  // A timer posted later runs after anything the cancelled one could still have had queued.
  Calls later;
  auto probe = LoopTimer::Start(5ms, [&]() -> std::optional<std::chrono::nanoseconds> {
    later.Add();
    return std::nullopt;
  });
  ASSERT_TRUE(later.WaitFor(1));
  EXPECT_EQ(calls.Get(), after_cancel);
}

TEST(EventLoopTest, ATimerCanBeCancelledFromItsOwnFunction) {
  Calls calls;
  std::shared_ptr<LoopTimer> timer;
  std::mutex mu;
  std::unique_lock hold(mu);  // the function waits until `timer` is set
  timer = LoopTimer::Start(0ms, [&]() -> std::optional<std::chrono::nanoseconds> {
    std::lock_guard lock(mu);
    timer->Cancel();
    calls.Add();
    return 1ms;
  });
  hold.unlock();
  ASSERT_TRUE(calls.WaitFor(1));
  timer->Cancel();
  EXPECT_EQ(calls.Get(), 1);
}

// A function that cancelled its own timer may still be running: a Cancel from another thread
// waits for it to end (the caller may free what it uses next). It returned at once before, and
// the test above aborted about once in 150 runs, its mutex unlocked after the test had ended.
TEST(EventLoopTest, CancelFromOutsideWaitsForAFunctionThatCancelledItself) {
  Calls started;
  std::atomic<bool> finished{false};
  std::shared_ptr<LoopTimer> timer;
  std::mutex mu;
  std::unique_lock hold(mu);
  timer = LoopTimer::Start(0ms, [&]() -> std::optional<std::chrono::nanoseconds> {
    { std::lock_guard lock(mu); }
    timer->Cancel();
    started.Add();
    std::this_thread::sleep_for(100ms);
    finished = true;
    return std::nullopt;
  });
  hold.unlock();
  ASSERT_TRUE(started.WaitFor(1));
  timer->Cancel();
  EXPECT_TRUE(finished.load()) << "Cancel returned while the function still ran";
}

TEST(EventLoopTest, AForkedChildGetsALoopOfItsOwn) {
  Calls parent;
  boost::asio::post(EventLoop(), [&] { parent.Add(); });
  ASSERT_TRUE(parent.WaitFor(1));
  // Only the forking thread goes on in the child, and a lock another thread held at fork() stays
  // held there for ever. A loop thread may still be freeing a finished handler's memory (under
  // ASan with GCC 12 that takes an allocator lock fork() does not take: the child then hung in
  // its first malloc). So both loop threads are parked in a handler of this test, waiting on a
  // condition variable, while fork() runs.
  std::mutex park_mu;
  std::condition_variable park_cv;
  int parked = 0;
  bool release = false;
  for (int i = 0; i < kEventLoopThreads; ++i) {
    boost::asio::post(EventLoop(), [&] {
      std::unique_lock lock(park_mu);
      ++parked;
      park_cv.notify_all();
      park_cv.wait(lock, [&] { return release; });
    });
  }
  {
    std::unique_lock lock(park_mu);
    ASSERT_TRUE(park_cv.wait_for(lock, 10s, [&] { return parked == kEventLoopThreads; }));
  }
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    Calls child;
    auto timer = LoopTimer::Start(0ms, [&]() -> std::optional<std::chrono::nanoseconds> {
      child.Add();
      return std::nullopt;
    });
    ::_exit(child.WaitFor(1) ? 0 : 1);
  }
  {
    std::lock_guard lock(park_mu);
    release = true;
  }
  park_cv.notify_all();
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  // The parent's loop is untouched.
  boost::asio::post(EventLoop(), [&] { parent.Add(); });
  EXPECT_TRUE(parent.WaitFor(2));
}

}  // namespace
}  // namespace bitfusion::internal
