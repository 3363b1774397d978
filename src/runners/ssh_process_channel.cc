#include "runners/ssh_process_channel.h"

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

#include "bitfusion/log.h"
#include "core/event_loop.h"
#include "runners/exit_watch.h"
#include "runners/line_splitter.h"
#include "runners/ssh_process_wire.h"

namespace bitfusion::internal {
namespace {

namespace asio = boost::asio;
using Strand = asio::strand<asio::io_context::executor_type>;
using boost::system::error_code;
using Descriptor = asio::posix::stream_descriptor;
constexpr auto kWaitRead = asio::posix::descriptor_base::wait_read;

}  // namespace

// Everything but the public methods runs on strand_.
class SshProcessChannel::Impl : public std::enable_shared_from_this<Impl> {
 public:
  Impl(const SshChild& client, const SshProcessChannelOptions& options, LineCallback on_line,
       std::function<void()> on_timeout, EndCallback on_end)
      : options_(options),
        on_line_(std::move(on_line)),
        on_timeout_(std::move(on_timeout)),
        on_end_(std::move(on_end)),
        client_pid_(client.pid),
        strand_(asio::make_strand(EventLoop())),
        streams_{Descriptor(strand_, client.stdout_fd), Descriptor(strand_, client.stderr_fd)},
        lines_{LineSplitter(options.max_line_bytes), LineSplitter(options.max_line_bytes)},
        records_(options.nonce),
        client_exit_(strand_, client.pid),
        timeout_(strand_),
        drain_(strand_) {
    for (auto& s : streams_) {
      error_code ec;
      s.non_blocking(true, ec);
    }
    state_.exit.start_ns = options.start_ns;
    start_mono_ns_ = options.start_mono_ns;
  }

  void Follow() {
    asio::dispatch(strand_, [self = shared_from_this()] {
      self->ReadWhenReady(0);
      self->ReadWhenReady(1);
      self->WatchClient();
    });
  }

  State state() {
    std::lock_guard lock(mu_);
    return state_;
  }

  bool WaitFinished(Deadline deadline) {
    std::unique_lock lock(mu_);
    auto done = [&] { return state_.finished; };
    if (deadline == kNoDeadline) {
      cv_.wait(lock, done);
      return true;
    }
    return cv_.wait_until(lock, deadline, done);
  }

  Subscription Stats(StatsSpawner spawn, StatsCallback callback);

  void Close();

  bool client_reaped() const { return client_reaped_.load(); }

 private:
  friend class StatsReader;

  bool AnyOpen() const { return streams_[0].is_open() || streams_[1].is_open(); }

  void ReadWhenReady(int i) {
    streams_[i].async_wait(kWaitRead, [self = shared_from_this(), i](error_code ec) {
      if (ec || self->reading_done_) return;
      if (self->Drain(i)) self->ReadWhenReady(i);
      self->CheckEnded();
    });
  }

  // Reads what stream i has; returns false at its end. Stdout's records are taken out of it.
  bool Drain(int i) {
    char buf[65536];
    const ssize_t n = ::read(streams_[i].native_handle(), buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return true;
    const LogStream kind = i == 0 ? LogStream::kStdout : LogStream::kStderr;
    auto line = [&](std::string_view l) { on_line_(kind, l); };
    auto text = [&](std::string_view t) { lines_[i].Feed(t, line); };
    if (n <= 0) {
      if (i == 0) records_.Finish(text);
      lines_[i].Finish(line);
      error_code ec;
      streams_[i].close(ec);
      return false;
    }
    const std::string_view got(buf, static_cast<std::size_t>(n));
    if (i == 0) {
      records_.Feed(got, text, [&](std::string_view r) { Record(r); });
    } else {
      // ssh's own complaints come last: the reason a connection ended.
      if (stderr_tail_.size() > 4096) stderr_tail_.erase(0, stderr_tail_.size() - 1024);
      stderr_tail_.append(got);
      text(got);
    }
    return true;
  }

  // "pid N" and "exit STATUS" from the wrapper.
  void Record(std::string_view rec) {
    const auto space = rec.rfind(' ');
    const int value = std::atoi(std::string(rec.substr(space + 1)).c_str());
    bool arm = false, ended = false;
    {
      std::lock_guard lock(mu_);
      if (rec.starts_with(" pid ")) {
        // The command starts now: its clock, and its timeout's, begin here and not with the
        // login (which runs the remote shell's startup files first).
        state_.remote_pid = value;
        state_.exit.start_ns = WallNowNs();
        start_mono_ns_ = MonoNowNs();
        arm = options_.timeout_ns > 0;
      } else if (rec.starts_with(" exit ") && !state_.exited) {
        state_.exited = ended = true;
        state_.exit.end_ns = WallNowNs();
        state_.exit.wall_time_ns = MonoNowNs() - start_mono_ns_;
        // The shell's wait says 128+N for a death by signal N.
        if (value > 128 && value < 128 + 65) {
          state_.exit.exit_code = -1;
          state_.exit.signal = value - 128;
        } else {
          state_.exit.exit_code = value;
        }
      }
      cv_.notify_all();
    }
    if (arm) ArmTimeout();
    if (ended) EndStats();
  }

  void ArmTimeout() {
    const std::int64_t left = start_mono_ns_ + options_.timeout_ns - MonoNowNs();
    timeout_.expires_after(std::chrono::nanoseconds(std::max<std::int64_t>(left, 0)));
    timeout_.async_wait([self = shared_from_this()](error_code ec) {
      if (ec || self->reading_done_ || self->Ended()) return;
      self->on_timeout_();
      std::lock_guard lock(self->mu_);
      self->state_.exit.timed_out = true;
    });
  }

  void WatchClient() {
    auto on_ready = [self = shared_from_this()](error_code ec) {
      if (ec || self->reading_done_) return;
      int status = 0;
      if (::waitpid(self->client_pid_, &status, WNOHANG) == self->client_pid_) {
        self->client_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 255;
        self->client_reaped_ = true;
        self->CheckEnded();
      } else {
        self->WatchClient();
      }
    };
    client_exit_.AsyncWait(on_ready);
  }

  bool Ended() {
    if (client_reaped_) return true;
    std::lock_guard lock(mu_);
    return state_.exited;
  }

  // The command ended (its exit record, or the client is gone): finish once the output is read,
  // or drain_timeout after.
  void CheckEnded() {
    if (reading_done_ || !Ended()) return;
    timeout_.cancel();
    if (!AnyOpen()) {
      Finish(/*removed=*/false);
      return;
    }
    if (draining_) return;
    draining_ = true;
    drain_.expires_after(options_.drain_timeout);
    drain_.async_wait([self = shared_from_this()](error_code ec) {
      if (!ec && !self->reading_done_) self->GiveUpDraining();
    });
  }

  // Ended, and something it started still holds its output open after drain_timeout.
  void GiveUpDraining() {
    // What is already in the pipes was written before the deadline: take it, bounded.
    for (int i = 0; i < 2; ++i) {
      for (int reads = 0; streams_[i].is_open() && reads < 16; ++reads) {
        pollfd p{streams_[i].native_handle(), POLLIN, 0};
        if (::poll(&p, 1, 0) <= 0 || !Drain(i)) break;
      }
    }
    if (AnyOpen()) {
      LogAt(LogLevel::kInfo, "process ", options_.id, " on ", options_.where,
            " exited but something it started still holds its output open; no longer reading "
            "it");
    }
    Finish(/*removed=*/false);
  }

  // Reading is over: Wait may return, and on_end is told.
  void Finish(bool removed) {
    if (reading_done_) return;
    reading_done_ = true;
    records_.Finish([&](std::string_view t) {
      lines_[0].Feed(t, [&](std::string_view l) { on_line_(LogStream::kStdout, l); });
    });
    for (int i = 0; i < 2; ++i) {
      const LogStream kind = i == 0 ? LogStream::kStdout : LogStream::kStderr;
      lines_[i].Finish([&](std::string_view l) { on_line_(kind, l); });
      error_code ec;
      streams_[i].close(ec);
    }
    client_exit_.Close();
    timeout_.cancel();
    drain_.cancel();
    ExitStatus ended;
    std::string lost;
    {
      std::lock_guard lock(mu_);
      if (!state_.exited) {
        state_.exited = true;
        state_.exit.end_ns = WallNowNs();
        state_.exit.wall_time_ns = MonoNowNs() - start_mono_ns_;
        if (client_reaped_ && client_status_ != 255) {
          // The wrapper ended before the command ran (a directory that went away).
          state_.exit.exit_code = client_status_;
        } else {
          state_.lost = removed ? "the handle was removed" : sshwire::LastLine(stderr_tail_);
        }
      }
      state_.finished = true;
      ended = state_.exit;
      lost = state_.lost;
      cv_.notify_all();
    }
    EndStats();
    on_end_(ended, lost);
    std::lock_guard lock(mu_);
    done_ = true;
    cv_.notify_all();
  }

  void EndStats();

  const SshProcessChannelOptions options_;
  const LineCallback on_line_;
  const std::function<void()> on_timeout_;
  const EndCallback on_end_;
  const int client_pid_;

  // Used on strand_ only.
  Strand strand_;
  Descriptor streams_[2];  // stdout, stderr
  LineSplitter lines_[2];
  sshwire::RecordFilter records_;
  std::string stderr_tail_;
  ExitWatch client_exit_;
  asio::steady_timer timeout_, drain_;
  bool reading_done_ = false;
  bool draining_ = false;
  int client_status_ = 255;
  std::atomic<bool> client_reaped_{false};  // written on the strand

  std::mutex mu_;
  std::condition_variable cv_;
  State state_;
  std::int64_t start_mono_ns_ = 0;
  bool done_ = false;  // finished and on_end_ returned: Close may go on
  std::vector<std::shared_ptr<StatsReader>> stats_;
};

// One Stats() subscription: kStats run on the remote host once the process's pid is known, its
// readings parsed as they arrive. On a strand of its own, so that a slow callback does not hold
// up the process's output.
class SshProcessChannel::StatsReader : public std::enable_shared_from_this<StatsReader> {
 public:
  StatsReader(std::weak_ptr<Impl> process, StatsSpawner spawn, StatsCallback callback)
      : process_(std::move(process)),
        spawn_(std::move(spawn)),
        callback_(std::move(callback)),
        strand_(asio::make_strand(EventLoop())),
        out_(strand_),
        retry_(strand_) {}

  void Begin() {
    asio::dispatch(strand_, [self = shared_from_this()] { self->SpawnWhenRunning(); });
  }

  // The process has ended: the stream ends, and says so (see Container::Stats).
  void ProcessEnded() {
    asio::post(strand_, [self = shared_from_this()] { self->End(/*last=*/true); });
  }

  // When it returns the callback is not running (unless Cancel was called from it) and will
  // not run again.
  void Cancel() {
    {
      std::lock_guard lock(mu_);
      cancelled_ = true;
      if (calling_ == std::this_thread::get_id()) {
        asio::post(strand_, [self = shared_from_this()] { self->End(false); });
        return;
      }
    }
    asio::post(strand_, [self = shared_from_this()] { self->End(false); });
    std::unique_lock lock(mu_);
    WaitForLoop(lock, cv_, [&] { return stopped_; });
  }

 private:
  void SpawnWhenRunning() {
    if (ended_) return;
    auto process = process_.lock();
    const State st = process ? process->state() : State{};
    if (!process || st.exited) {
      End(/*last=*/true);
      return;
    }
    if (st.remote_pid == 0) {
      retry_.expires_after(std::chrono::milliseconds(50));
      retry_.async_wait([self = shared_from_this()](error_code ec) {
        if (!ec) self->SpawnWhenRunning();
      });
      return;
    }
    auto child = spawn_(st.remote_pid);
    if (!child) {
      LogAt(LogLevel::kWarning, "stats of process ", process->options_.id, ": ",
            child.error().message());
      End(/*last=*/true);
      return;
    }
    sshwire::CloseFd(child->stdin_fd);
    sshwire::CloseFd(child->stderr_fd);
    client_pid_ = child->pid;
    out_.assign(child->stdout_fd);
    error_code ec;
    out_.non_blocking(true, ec);
    Read();
  }

  void Read() {
    out_.async_wait(kWaitRead, [self = shared_from_this()](error_code ec) {
      if (ec || self->ended_) return;
      if (self->Drain()) {
        self->Read();
      } else {
        self->End(/*last=*/true);
      }
    });
  }

  bool Drain() {
    char buf[16384];
    const ssize_t n = ::read(out_.native_handle(), buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return true;
    if (n <= 0) return false;
    buffer_.append(buf, static_cast<std::size_t>(n));
    for (auto eol = buffer_.find('\n'); eol != std::string::npos; eol = buffer_.find('\n')) {
      const std::string line = buffer_.substr(0, eol);
      buffer_.erase(0, eol + 1);
      if (auto st = parser_.Line(line)) Deliver(*st);
    }
    return true;
  }

  void Deliver(const ContainerStats& st) {
    {
      std::lock_guard lock(mu_);
      if (cancelled_) return;
      calling_ = std::this_thread::get_id();
    }
    callback_(st);
    std::lock_guard lock(mu_);
    calling_ = std::thread::id();
  }

  void End(bool last) {
    if (ended_) return;
    ended_ = true;
    retry_.cancel();
    error_code ec;
    out_.close(ec);
    if (client_pid_ > 0) {
      ::kill(client_pid_, SIGTERM);
      sshwire::ReapClientLater(client_pid_, std::chrono::seconds(2));
      client_pid_ = -1;
    }
    if (last) {
      ContainerStats ended;
      ended.time_ns = WallNowNs();
      ended.running = false;
      Deliver(ended);
    }
    std::lock_guard lock(mu_);
    stopped_ = true;
    cv_.notify_all();
  }

  const std::weak_ptr<Impl> process_;
  const StatsSpawner spawn_;
  const StatsCallback callback_;

  // Used on strand_ only.
  Strand strand_;
  Descriptor out_;
  asio::steady_timer retry_;
  int client_pid_ = -1;
  sshwire::StatsParser parser_;
  std::string buffer_;
  bool ended_ = false;

  std::mutex mu_;
  std::condition_variable cv_;
  bool cancelled_ = false;
  bool stopped_ = false;
  std::thread::id calling_;
};

Subscription SshProcessChannel::Impl::Stats(StatsSpawner spawn, StatsCallback callback) {
  auto reader =
      std::make_shared<StatsReader>(weak_from_this(), std::move(spawn), std::move(callback));
  {
    std::lock_guard lock(mu_);
    stats_.push_back(reader);
  }
  reader->Begin();
  return Subscription([reader] { reader->Cancel(); });
}

void SshProcessChannel::Impl::Close() {
  std::vector<std::shared_ptr<StatsReader>> readers;
  {
    std::lock_guard lock(mu_);
    readers.swap(stats_);
  }
  for (auto& r : readers) r->Cancel();
  asio::post(strand_, [self = shared_from_this()] { self->Finish(/*removed=*/true); });
  std::unique_lock lock(mu_);
  WaitForLoop(lock, cv_, [&] { return done_; });
}

void SshProcessChannel::Impl::EndStats() {
  std::vector<std::shared_ptr<StatsReader>> readers;
  {
    std::lock_guard lock(mu_);
    readers = stats_;
  }
  for (auto& r : readers) r->ProcessEnded();
}

std::unique_ptr<SshProcessChannel> SshProcessChannel::Make(const SshChild& client,
                                                           const SshProcessChannelOptions& options,
                                                           LineCallback on_line,
                                                           std::function<void()> on_timeout,
                                                           EndCallback on_end) {
  auto impl = std::make_shared<Impl>(client, options, std::move(on_line), std::move(on_timeout),
                                     std::move(on_end));
  return std::unique_ptr<SshProcessChannel>(new SshProcessChannel(std::move(impl)));
}

SshProcessChannel::~SshProcessChannel() {
  if (!closed_) Close();
}

void SshProcessChannel::Follow() { impl_->Follow(); }
SshProcessChannel::State SshProcessChannel::state() { return impl_->state(); }
bool SshProcessChannel::WaitFinished(Deadline deadline) { return impl_->WaitFinished(deadline); }
Subscription SshProcessChannel::Stats(StatsSpawner spawn, StatsCallback callback) {
  return impl_->Stats(std::move(spawn), std::move(callback));
}
void SshProcessChannel::Close() {
  if (closed_) return;
  closed_ = true;
  impl_->Close();
}
bool SshProcessChannel::client_reaped() { return impl_->client_reaped(); }

}  // namespace bitfusion::internal
