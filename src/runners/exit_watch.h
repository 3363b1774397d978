// A local child's exit, awaited on the event loop (core/event_loop.h): its pidfd becomes
// readable, or, on a kernel without pidfds (before 5.3), a timer looks every 10 ms. For the
// handles that follow a child with no thread of their own (process_child, ssh_process_channel).
#pragma once

#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <chrono>
#include <utility>

namespace bitfusion::internal {

/// Used on the strand it was made with only.
class ExitWatch {
 public:
  using Strand = boost::asio::strand<boost::asio::io_context::executor_type>;

  ExitWatch(const Strand& strand, pid_t pid) : pidfd_(strand), poll_(strand) {
    const int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
    if (fd >= 0) pidfd_.assign(fd);
  }

  /// Calls `handler(error_code)` once the child may have exited (it still has to be checked:
  /// the poll fires whether or not it has); operation_aborted after Close.
  template <class Handler>
  void AsyncWait(Handler&& handler) {
    if (pidfd_.is_open()) {
      pidfd_.async_wait(boost::asio::posix::descriptor_base::wait_read,
                        std::forward<Handler>(handler));
    } else {
      poll_.expires_after(std::chrono::milliseconds(10));
      poll_.async_wait(std::forward<Handler>(handler));
    }
  }

  void Close() {
    boost::system::error_code ec;
    pidfd_.close(ec);
    poll_.cancel();
  }

 private:
  boost::asio::posix::stream_descriptor pidfd_;
  boost::asio::steady_timer poll_;
};

}  // namespace bitfusion::internal
