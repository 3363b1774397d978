#include "runners/process_child.h"

#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <fstream>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>
#include <vector>

#include "bitfusion/log.h"
#include "core/event_loop.h"
#include "core/proc_pid_stat.h"
#include "runners/exit_watch.h"
#include "runners/line_splitter.h"

namespace bitfusion::internal {
namespace {

namespace asio = boost::asio;
using Strand = asio::strand<asio::io_context::executor_type>;
using boost::system::error_code;
using Descriptor = asio::posix::stream_descriptor;
constexpr auto kWaitRead = asio::posix::descriptor_base::wait_read;

std::int64_t TimevalNs(const timeval& tv) {
  return static_cast<std::int64_t>(tv.tv_sec) * 1'000'000'000 + tv.tv_usec * 1000;
}

// /proc/PID counters of one process (its reaped children's CPU time included).
std::optional<ContainerStats> ReadProcStats(pid_t pid) {
  ContainerStats st;
  st.time_ns = WallNowNs();
  const auto proc = ParseProcPidStat(ReadProcPidStat(static_cast<int>(pid)));
  if (!proc) return std::nullopt;
  const double tick_ns = 1e9 / static_cast<double>(::sysconf(_SC_CLK_TCK));
  st.cpu_ns = static_cast<std::int64_t>(static_cast<double>(proc->cpu_ticks) * tick_ns);
  st.pids = proc->threads;
  st.memory_bytes = proc->rss_pages * ::sysconf(_SC_PAGESIZE);
  st.memory_limit_bytes =
      static_cast<std::int64_t>(::sysconf(_SC_PHYS_PAGES)) * ::sysconf(_SC_PAGESIZE);
  cpu_set_t cpus;
  if (::sched_getaffinity(pid, sizeof cpus, &cpus) == 0) st.online_cpus = CPU_COUNT(&cpus);
  std::ifstream io("/proc/" + std::to_string(pid) + "/io");
  for (std::string key, value; io >> key >> value;) {
    if (key == "read_bytes:") st.read_bytes = std::strtoll(value.c_str(), nullptr, 10);
    if (key == "write_bytes:") st.write_bytes = std::strtoll(value.c_str(), nullptr, 10);
  }
  return st;
}

class LoopChild final : public ProcessChild, public std::enable_shared_from_this<LoopChild> {
 public:
  LoopChild(pid_t pid, int out_fd, int err_fd, const ProcessChildOptions& options,
            LineCallback on_line, EndCallback on_end)
      : pid_(pid),
        options_(options),
        on_line_(std::move(on_line)),
        on_end_(std::move(on_end)),
        strand_(asio::make_strand(EventLoop())),
        streams_{
            {LogStream::kStdout, Descriptor(strand_, out_fd), LineSplitter(options.max_line_bytes)},
            {LogStream::kStderr, Descriptor(strand_, err_fd),
             LineSplitter(options.max_line_bytes)}},
        exit_watch_(strand_, pid),
        timeout_(strand_),
        drain_(strand_) {
    exit_.start_ns = options.start_ns;
    for (auto& s : streams_) {
      error_code ec;
      s.fd.non_blocking(true, ec);
    }
  }

  void Follow() override {
    asio::dispatch(strand_, [self = shared_from_this()] {
      for (auto& s : self->streams_) self->ReadWhenReady(s);
      self->WatchExit();
      if (self->options_.timeout_ns > 0) self->ArmTimeout();
    });
  }

  pid_t pid() const override { return pid_; }

  bool exited() override {
    std::lock_guard lock(mu_);
    return exited_;
  }

  bool finished() override {
    std::lock_guard lock(mu_);
    return finished_;
  }

  ExitStatus exit_status() override {
    std::lock_guard lock(mu_);
    return exit_;
  }

  bool WaitFinished(Deadline deadline) override {
    std::unique_lock lock(mu_);
    auto done = [&] { return finished_; };
    if (deadline == kNoDeadline) {
      cv_.wait(lock, done);
      return true;
    }
    return cv_.wait_until(lock, deadline, done);
  }

  Subscription Stats(StatsCallback callback, std::chrono::nanoseconds interval) override {
    std::weak_ptr<LoopChild> weak = shared_from_this();
    auto timer = LoopTimer::Start(
        std::chrono::nanoseconds(0),
        [weak, pid = pid_, interval,
         callback = std::move(callback)]() -> std::optional<std::chrono::nanoseconds> {
          auto self = weak.lock();
          if (self && !self->exited()) {
            if (auto st = ReadProcStats(pid)) callback(*st);
            return interval;
          }
          // It exited: the stream ends, and says so (see Container::Stats).
          ContainerStats last;
          last.time_ns = WallNowNs();
          last.running = false;
          callback(last);
          return std::nullopt;
        });
    {
      std::lock_guard lock(mu_);
      stats_.push_back(timer);
    }
    return Subscription([timer] { timer->Cancel(); });
  }

  void Close(bool keep_running) override {
    std::vector<std::shared_ptr<LoopTimer>> stats;
    {
      std::lock_guard lock(mu_);
      stats.swap(stats_);
    }
    for (auto& timer : stats) timer->Cancel();
    if (keep_running) {
      asio::dispatch(strand_, [self = shared_from_this()] {
        self->keep_running_ = true;
        self->Finish();
      });
    }
    {
      std::unique_lock lock(mu_);
      WaitForLoop(lock, cv_, [&] { return done_; });
    }
    if (exited()) {
      // The group has been signalled (or the process kept): only now may its pid be freed.
      while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
      }
    }
  }

 private:
  struct Stream {
    LogStream kind;
    Descriptor fd;
    LineSplitter lines;
  };

  void Deliver(LogStream stream, std::string_view line) { on_line_(stream, line); }

  // Everything below runs on strand_.

  void ReadWhenReady(Stream& s) {
    s.fd.async_wait(kWaitRead, [self = shared_from_this(), &s](error_code ec) {
      if (ec || self->reading_done_) return;
      if (self->Drain(s)) {
        self->ReadWhenReady(s);
      } else if (self->exited() && !self->AnyOpen()) {
        self->Finish();
      }
    });
  }

  bool AnyOpen() const { return streams_[0].fd.is_open() || streams_[1].fd.is_open(); }

  // Splits what was read into lines; returns false at end of stream.
  bool Drain(Stream& s) {
    char buf[65536];
    const ssize_t n = ::read(s.fd.native_handle(), buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return true;
    if (n <= 0) {
      s.lines.Finish([&](std::string_view line) { Deliver(s.kind, line); });
      error_code ec;
      s.fd.close(ec);
      return false;
    }
    s.lines.Feed(std::string_view(buf, static_cast<std::size_t>(n)),
                 [&](std::string_view line) { Deliver(s.kind, line); });
    return true;
  }

  void WatchExit() {
    auto on_ready = [self = shared_from_this()](error_code ec) {
      if (!ec && !self->reading_done_) self->OnMaybeExited();
    };
    exit_watch_.AsyncWait(on_ready);
  }

  void OnMaybeExited() {
    CollectExit();
    if (!exited()) {
      WatchExit();
      return;
    }
    timeout_.cancel();
    if (!AnyOpen()) {
      Finish();
      return;
    }
    drain_.expires_after(options_.drain_timeout);
    drain_.async_wait([self = shared_from_this()](error_code ec) {
      if (!ec && !self->reading_done_) self->GiveUpDraining();
    });
  }

  // Exited, and something it started still holds its output open after drain_timeout.
  void GiveUpDraining() {
    // What is already in the pipes was written before the deadline (the loop may simply not
    // have run this for a while on a loaded machine): take it, bounded, then stop reading.
    for (auto& s : streams_) {
      for (int reads = 0; s.fd.is_open() && reads < 16; ++reads) {
        pollfd p{s.fd.native_handle(), POLLIN, 0};
        if (::poll(&p, 1, 0) <= 0 || !Drain(s)) break;
      }
    }
    if (AnyOpen()) {
      LogAt(LogLevel::kInfo, "process ", options_.id,
            " exited but something it started still holds its output open; no longer reading "
            "it");
    }
    Finish();
  }

  void ArmTimeout() {
    const std::int64_t left = options_.start_mono_ns + options_.timeout_ns - MonoNowNs();
    timeout_.expires_after(std::chrono::nanoseconds(std::max<std::int64_t>(left, 0)));
    timeout_.async_wait([self = shared_from_this()](error_code ec) {
      if (ec || self->reading_done_ || self->exited()) return;
      ::kill(-self->pid_, SIGKILL);
      std::lock_guard lock(self->mu_);
      self->exit_.timed_out = true;
    });
  }

  // Collects the exit status and rusage of the exited child without reaping it: waitid with
  // WNOWAIT (the raw syscall's fifth argument is the same rusage wait4 gives). The zombie keeps
  // its pid, and with it the process group id, from being reused until Close (after the group
  // was signalled) reaps it; after a reap, kill(-pid) could reach a stranger's new group.
  void CollectExit() {
    siginfo_t info{};
    rusage usage{};
    if (::syscall(SYS_waitid, P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT,
                  &usage) != 0 ||
        info.si_pid != pid_) {
      return;
    }
    const std::int64_t end_mono = MonoNowNs();
    std::lock_guard lock(mu_);
    if (exited_) return;
    exited_ = true;
    exit_.end_ns = WallNowNs();
    exit_.wall_time_ns = end_mono - options_.start_mono_ns;
    if (info.si_code == CLD_EXITED) {
      exit_.exit_code = info.si_status;
    } else if (info.si_code == CLD_KILLED || info.si_code == CLD_DUMPED) {
      exit_.exit_code = -1;
      exit_.signal = info.si_status;
    }
    auto& u = exit_.usage;
    u.user_cpu_ns = TimevalNs(usage.ru_utime);
    u.system_cpu_ns = TimevalNs(usage.ru_stime);
    u.max_rss_bytes = static_cast<std::int64_t>(usage.ru_maxrss) * 1024;
    u.minor_faults = usage.ru_minflt;
    u.major_faults = usage.ru_majflt;
    u.voluntary_switches = usage.ru_nvcsw;
    u.involuntary_switches = usage.ru_nivcsw;
    u.read_bytes = static_cast<std::int64_t>(usage.ru_inblock) * 512;
    u.write_bytes = static_cast<std::int64_t>(usage.ru_oublock) * 512;
  }

  // Reading is over (exited and drained, or kept): Wait may return, and the die is reported.
  void Finish() {
    if (reading_done_) return;
    reading_done_ = true;
    for (auto& s : streams_) {
      s.lines.Finish([&](std::string_view line) { Deliver(s.kind, line); });
      error_code ec;
      s.fd.close(ec);
    }
    exit_watch_.Close();
    timeout_.cancel();
    drain_.cancel();
    ExitStatus ended;
    {
      std::lock_guard lock(mu_);
      finished_ = true;
      ended = exit_;
      cv_.notify_all();
    }
    if (!keep_running_ && on_end_) on_end_(ended);
    std::lock_guard lock(mu_);
    done_ = true;
    cv_.notify_all();
  }

  const pid_t pid_;
  const ProcessChildOptions options_;
  const LineCallback on_line_;
  const EndCallback on_end_;

  // Used on strand_ only.
  Strand strand_;
  Stream streams_[2];
  ExitWatch exit_watch_;
  asio::steady_timer timeout_, drain_;
  bool reading_done_ = false;
  bool keep_running_ = false;

  std::mutex mu_;
  std::condition_variable cv_;
  bool exited_ = false;    // exited; a zombie until Close reaps it
  bool finished_ = false;  // exited and output drained: Wait may return
  bool done_ = false;      // finished and on_end_ returned: Close may go on
  ExitStatus exit_;
  std::vector<std::shared_ptr<LoopTimer>> stats_;  // Stats() subscriptions
};

}  // namespace

std::shared_ptr<ProcessChild> ProcessChild::Make(pid_t pid, int out_fd, int err_fd,
                                                 const ProcessChildOptions& options,
                                                 LineCallback on_line, EndCallback on_end) {
  return std::make_shared<LoopChild>(pid, out_fd, err_fd, options, std::move(on_line),
                                     std::move(on_end));
}

}  // namespace bitfusion::internal
