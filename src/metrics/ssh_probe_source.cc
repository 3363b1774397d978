#include "metrics/ssh_probe_source.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <fstream>
#include <iterator>
#include <mutex>
#include <utility>
#include <vector>

#include "bitfusion/clock.h"
#include "bitfusion/log.h"
#include "bitfusion/probe.h"
#include "bitfusion/registry.h"
#include "core/clock.h"
#include "core/event_loop.h"
#include "core/shell_quote.h"
#include "core/spawn.h"
#include "metrics/probe_records.h"
#include "net/ssh_uri.h"
#include "probe/probe_wire.h"

namespace bitfusion {
namespace {

namespace wire = probe_wire;
namespace asio = boost::asio;
using Strand = asio::strand<asio::io_context::executor_type>;
using Descriptor = asio::posix::stream_descriptor;
using boost::system::error_code;
constexpr auto kWaitRead = asio::posix::descriptor_base::wait_read;

constexpr const char* kDirLine = "bitfusion-agent-dir ";
constexpr std::size_t kMaxStderrBytes = 16 * 1024;

// The remote side, run by `sh` whatever the login shell is: a private directory, the probe's
// exact bytes from the channel, the probe, and the directory's removal when it exits.
std::string RemoteScript(std::size_t probe_bytes, const SshProbeSourceOptions& o) {
  std::string probe_args =
      "--stdout --control-stdin --interval " + std::to_string(o.interval.count()) + "ns";
  if (!o.processes) probe_args += " --no-processes";
  if (!o.cgroup) probe_args += " --no-cgroup";
  const std::string body =
      "umask 077\n"
      "d=$(mktemp -d \"${TMPDIR:-/tmp}/bitfusion-agent.XXXXXX\") || exit 125\n"
      "trap 'rm -rf \"$d\"' EXIT\n"
      "trap 'exit 143' HUP INT TERM\n"
      "echo \"" +
      std::string(kDirLine) +
      "$d\" >&2\n"
      "head -c " +
      std::to_string(probe_bytes) +
      " >\"$d/bitfusion-probe\" || exit 125\n"
      "chmod 700 \"$d/bitfusion-probe\" || exit 125\n"
      "\"$d/bitfusion-probe\" " +
      probe_args + "\n";
  return "exec sh -c " + ShellQuote(body);
}

Status SendAll(int fd, const void* data, std::size_t size, std::int64_t deadline_mono_ns,
               const std::string& what) {
  const auto* p = static_cast<const char*>(data);
  while (size > 0) {
    pollfd pfd{fd, POLLOUT, 0};
    const int r = ::poll(&pfd, 1, internal::PollMsUntil(deadline_mono_ns));
    if (r < 0 && errno == EINTR) continue;
    if (r == 0) return DeadlineExceededError(what + ": the remote host stopped reading");
    const ssize_t n = ::send(fd, p, size, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n < 0) return ErrnoError(errno, what);
    p += n;
    size -= static_cast<std::size_t>(n);
  }
  return Status::OK();
}

}  // namespace

Result<SshProbeSourceOptions> SshProbeSourceOptions::FromUri(const Uri& uri) {
  std::vector<std::string_view> keys = internal::kSshUriKeys;
  keys.insert(keys.end(), {"interval", "processes", "cgroup", "machine", "probe", "start_timeout",
                           "clock_exchanges"});
  BITFUSION_RETURN_IF_ERROR(uri.CheckQueryKeys(keys));
  BITFUSION_ASSIGN_OR_RETURN(internal::SshLogin login, internal::SshLoginFromUri(uri, "host+ssh"));
  SshProbeSourceOptions o;
  o.target = std::move(login.target);
  o.session = std::move(login.session);
  o.machine = uri.Query("machine").value_or("");
  o.probe_path = uri.Query("probe").value_or("");
  BITFUSION_ASSIGN_OR_RETURN(o.interval, uri.QueryDuration("interval", o.interval));
  BITFUSION_ASSIGN_OR_RETURN(o.processes, uri.QueryBool("processes", o.processes));
  BITFUSION_ASSIGN_OR_RETURN(o.cgroup, uri.QueryBool("cgroup", o.cgroup));
  BITFUSION_ASSIGN_OR_RETURN(o.start_timeout, uri.QueryDuration("start_timeout", o.start_timeout));
  BITFUSION_ASSIGN_OR_RETURN(const std::int64_t exchanges,
                             uri.QueryInt("clock_exchanges", o.clock_exchanges));
  if (o.interval < std::chrono::milliseconds(1) || o.interval > std::chrono::hours(1)) {
    return InvalidArgumentError("host+ssh:// option interval " + FormatDuration(o.interval) +
                                " is outside 1ms .. 1h");
  }
  if (exchanges < 1 || exchanges > 64 || o.start_timeout.count() <= 0) {
    return InvalidArgumentError(
        "host+ssh:// options clock_exchanges must be 1..64 and start_timeout positive in " +
        uri.ToString());
  }
  o.clock_exchanges = static_cast<int>(exchanges);
  return o;
}

// ---- the reader ------------------------------------------------------------------------------

class SshProbeSource::Reader final : public std::enable_shared_from_this<Reader> {
 public:
  // `where`: USER@HOST:PORT, for messages.
  Reader(internal::ProbeRecords::Options records, std::string where)
      : where_(std::move(where)),
        strand_(asio::make_strand(internal::EventLoop())),
        out_(strand_),
        err_fd_(strand_),
        records_(std::move(records)) {}

  // Takes the ssh client's stdout and stderr (made non-blocking).
  void Attach(int out_fd, int err_fd) {
    error_code ec;
    out_.assign(out_fd, ec);
    out_.non_blocking(true, ec);
    err_fd_.assign(err_fd, ec);
    err_fd_.non_blocking(true, ec);
  }

  // Before Follow, on the caller's thread (Start): reads what one poll brings, stdout into the
  // records and stderr into err(); false at the end of the probe's output.
  bool PollOnce(int timeout_ms) {
    pollfd fds[2] = {{out_open_ ? out_.native_handle() : -1, POLLIN, 0},
                     {err_open_ ? err_fd_.native_handle() : -1, POLLIN, 0}};
    const int r = ::poll(fds, 2, timeout_ms);
    if (r < 0 && errno != EINTR) return false;
    if (r <= 0) return true;
    if (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) ReadErr();
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) return ReadOut() != Got::kEnd;
    return true;
  }

  // From here on the loop reads.
  void Follow() {
    {
      std::lock_guard lock(mu_);
      followed_ = true;
    }
    asio::post(strand_, [self = shared_from_this()] {
      if (self->out_open_) self->WaitOut();
      if (self->out_open_ && self->err_open_) self->WaitErr();
    });
  }

  // Waits until the probe's output has ended (its end read), or `deadline`; false then, or when
  // the loop does not read it (not followed, or shut down at exit).
  bool WaitOutputEnded(Deadline deadline) {
    std::unique_lock lock(mu_);
    while (!output_ended_) {
      if (!followed_ || !internal::EventLoopRunning()) return false;
      const auto step = std::min(deadline, DeadlineAfter(std::chrono::milliseconds(100)));
      if (cv_.wait_until(lock, step, [&] { return output_ended_; })) break;
      if (std::chrono::steady_clock::now() >= deadline) return false;
    }
    return true;
  }

  // Cancels what is pending and closes the descriptors on the strand; returns once that is
  // done, so that no handler of this source runs any more (those still queued find closed_ and
  // return). On a loop thread it does not wait (that could wait for itself): the handlers hold
  // this object, so nothing goes from under them.
  void Close() {
    asio::post(strand_, [self = shared_from_this()] { self->Shut(); });
    if (internal::OnEventLoopThread()) return;
    std::unique_lock lock(mu_);
    internal::WaitForLoop(lock, cv_, [&] { return shut_; });
  }

  void End(const std::string& reason) {
    std::lock_guard lock(mu_);
    records_.End(reason);
  }

  // Runs `f(records)` under the lock.
  template <typename F>
  auto WithRecords(F&& f) {
    std::lock_guard lock(mu_);
    return f(records_);
  }

  // Before Follow only.
  const std::string& err() const { return err_; }
  // Set from the remote shell's first line of stderr, before Follow in practice.
  const std::string& remote_dir() const { return remote_dir_; }

  std::int64_t cpu_ns() const {
    return cpu_ns_.load(std::memory_order_relaxed) + records_.probe_cpu_ns();
  }
  std::int64_t ticks() const { return records_.ticks(); }
  std::int64_t dropped() const { return records_.dropped(); }

 private:
  enum class Got { kSome, kNothing, kEnd };

  // Runs one handler's work, adding the CPU time it took to cpu_ns_.
  template <typename F>
  void Timed(F&& work) {
    const std::int64_t start = internal::ThreadCpuNs();
    work();
    cpu_ns_.fetch_add(internal::ThreadCpuNs() - start, std::memory_order_relaxed);
  }

  // One read of stderr: the script's first line names its directory; the rest is the probe's
  // own stderr, kept (the last kMaxStderrBytes) for messages.
  Got ReadErr() {
    char chunk[4096];
    const ssize_t n = ::read(err_fd_.native_handle(), chunk, sizeof chunk);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return Got::kNothing;
    if (n <= 0) {
      err_open_ = false;
      return Got::kEnd;
    }
    err_.append(chunk, static_cast<std::size_t>(n));
    if (remote_dir_.empty() && err_.starts_with(kDirLine)) {
      const auto eol = err_.find('\n');
      if (eol != std::string::npos) {
        remote_dir_ = err_.substr(std::strlen(kDirLine), eol - std::strlen(kDirLine));
        err_.erase(0, eol + 1);
      }
    }
    if (err_.size() > kMaxStderrBytes) err_.erase(0, err_.size() - kMaxStderrBytes);
    while (!err_.empty() && (err_.back() == '\n' || err_.back() == ' ')) err_.pop_back();
    return Got::kSome;
  }

  // One read of stdout into the records; kEnd at its end (closed, failed, corrupt).
  Got ReadOut() {
    const std::size_t have = out_buffer_.size();
    out_buffer_.resize(have + 64 * 1024);
    const ssize_t n = ::read(out_.native_handle(), out_buffer_.data() + have, 64 * 1024);
    const int e = errno;
    const std::int64_t t4 = WallNowNs();
    out_buffer_.resize(have + static_cast<std::size_t>(std::max<ssize_t>(n, 0)));
    if (n < 0 && (e == EINTR || e == EAGAIN)) return Got::kNothing;
    std::lock_guard lock(mu_);
    if (n <= 0) {
      out_open_ = false;
      records_.End("the probe on " + where_ +
                   (n < 0 ? " could not be read: " + std::string(std::strerror(e))
                          : "'s connection closed without its END record: was it killed, or the "
                            "connection lost?") +
                   (err_.empty() ? "" : " (" + err_ + ")"));
      return Got::kEnd;
    }
    std::size_t used = 0;
    records_.set_receive_wall_ns(t4);
    const bool ok = records_.Handle(reinterpret_cast<const unsigned char*>(out_buffer_.data()),
                                    out_buffer_.size(), used);
    out_buffer_.erase(0, used);
    return ok ? Got::kSome : Got::kEnd;
  }

  // Everything below runs on strand_.

  void WaitOut() {
    out_.async_wait(kWaitRead, [self = shared_from_this()](error_code ec) {
      if (ec || self->closed_) return;
      self->Timed([&] {
        // A bounded number of reads at a time: the loop is shared.
        for (int reads = 0; reads < kReadsPerHandler; ++reads) {
          const Got got = self->ReadOut();
          if (got == Got::kEnd) {
            self->OutputEnded();
            return;
          }
          if (got == Got::kNothing) break;
        }
        self->WaitOut();
      });
    });
  }

  void WaitErr() {
    err_fd_.async_wait(kWaitRead, [self = shared_from_this()](error_code ec) {
      if (ec || self->closed_ || self->output_done_) return;
      self->Timed([&] {
        for (int reads = 0; reads < kReadsPerHandler; ++reads) {
          const Got got = self->ReadErr();
          if (got == Got::kEnd) return;
          if (got == Got::kNothing) break;
        }
        self->WaitErr();
      });
    });
  }

  // The probe's output has ended: nothing more is read (stderr neither).
  void OutputEnded() {
    output_done_ = true;
    error_code ignored;
    err_fd_.cancel(ignored);
    std::lock_guard lock(mu_);
    output_ended_ = true;
    cv_.notify_all();
  }

  void Shut() {
    closed_ = true;
    error_code ignored;
    out_.close(ignored);
    err_fd_.close(ignored);
    std::lock_guard lock(mu_);
    shut_ = true;
    cv_.notify_all();
  }

  static constexpr int kReadsPerHandler = 16;

  const std::string where_;

  // Used by the caller's thread until Follow, then on strand_ only.
  Strand strand_;
  Descriptor out_, err_fd_;
  std::string out_buffer_;
  std::string err_;  // the remote shell's and probe's stderr, for messages
  std::string remote_dir_;
  bool out_open_ = true, err_open_ = true;
  bool output_done_ = false, closed_ = false;

  std::mutex mu_;
  std::condition_variable cv_;      // output_ended_, shut_
  internal::ProbeRecords records_;  // guarded by mu_
  bool followed_ = false;           // Follow was called
  bool output_ended_ = false;
  bool shut_ = false;

  std::atomic<std::int64_t> cpu_ns_{0};
};

// ---- the source ---------------------------------------------------------------------------------

Result<std::shared_ptr<SshProbeSource>> SshProbeSource::Make(const SshProbeSourceOptions& options) {
  std::string probe = options.probe_path;
  if (probe.empty()) {
    BITFUSION_ASSIGN_OR_RETURN(probe, FindProbe());
  }
  std::ifstream in(probe, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in.good() && !in.eof()) return ErrnoError(errno, "host+ssh: reading " + probe);
  if (bytes.empty())
    return NotFoundError("host+ssh: the probe " + probe + " is empty or unreadable");

  internal::ProbeRecords::Options records;
  records.name = options.machine.empty() ? options.target.ToString() : options.machine;
  records.labels = {{"machine", records.name}, {"view", "host"}};
  records.accept_pongs = true;
  std::shared_ptr<SshProbeSource> s(new SshProbeSource());
  s->uri_ = "host+ssh://" + options.target.ToString();
  s->reader_ = std::make_shared<Reader>(std::move(records), options.target.ToString());
  BITFUSION_RETURN_IF_ERROR(s->Start(options, bytes));
  s->reader_->Follow();
  return s;
}

Status SshProbeSource::Start(const SshProbeSourceOptions& o, const std::string& probe_bytes) {
  const std::string where = o.target.ToString();
  const std::int64_t deadline = MonoNowNs() + o.start_timeout.count();
  session_ = SshSession::Shared(o.target, o.session);  // the runner's master, when it has one
  BITFUSION_RETURN_IF_ERROR(session_->Connect());
  auto child = session_->Spawn(RemoteScript(probe_bytes.size(), o));
  if (!child) return child.error().WithContext("host+ssh: starting the probe on " + where);
  child_ = *child;
  reader_->Attach(child_.stdout_fd, child_.stderr_fd);
  child_.stdout_fd = child_.stderr_fd = -1;
  BITFUSION_RETURN_IF_ERROR(SendAll(child_.stdin_fd, probe_bytes.data(), probe_bytes.size(),
                                    deadline, "host+ssh: copying the probe to " + where));

  // The clock exchanges, one PING in flight at a time, once the probe has said HELLO; the first
  // TICK gives the remote wall - monotonic difference the monotonic stamps are mapped with.
  const std::string& err = reader_->err();  // the caller's until Follow
  std::vector<internal::ClockExchange> exchanges;
  bool in_flight = false;
  for (;;) {
    bool hello = false, have_tick = false;
    reader_->WithRecords([&](internal::ProbeRecords& records) {
      hello = records.hello();
      have_tick = records.have_tick();
      for (const auto& [pong, t4] : records.TakePongs()) {
        exchanges.push_back({pong.t1, pong.t2, pong.t3, t4});
        in_flight = false;
      }
    });
    if (static_cast<int>(exchanges.size()) >= o.clock_exchanges && have_tick) break;
    if (hello && !in_flight && static_cast<int>(exchanges.size()) < o.clock_exchanges) {
      unsigned char bytes[32];
      wire::Writer w(bytes, sizeof bytes);
      wire::EncodePing(w, wire::Ping{WallNowNs()});
      BITFUSION_RETURN_IF_ERROR(
          SendAll(child_.stdin_fd, w.data(), w.size(), deadline, "host+ssh: PING to " + where));
      in_flight = true;
    }
    if (MonoNowNs() >= deadline) {
      return DeadlineExceededError(
          "host+ssh: the probe on " + where + " did not start and answer " +
          std::to_string(o.clock_exchanges) + " clock exchanges within " +
          FormatDuration(o.start_timeout) + (err.empty() ? "" : "; it said: " + err));
    }
    if (!reader_->PollOnce(internal::PollMsUntil(deadline))) {
      Status corrupt = reader_->WithRecords([](internal::ProbeRecords& records) {
        SampleBatch unused;
        Status first = records.Collect(unused);
        return first.ok() ? records.Collect(unused) : first;  // past samples that came before
      });
      return UnavailableError("host+ssh: the probe on " + where + " ended while starting" +
                              (err.empty() ? "" : ": " + err) +
                              (corrupt.ok() ? "" : " (" + corrupt.message() + ")"));
    }
  }
  const auto estimate = internal::EstimateClockOffset(exchanges);
  if (!estimate) {
    return UnavailableError("host+ssh: none of " + std::to_string(exchanges.size()) +
                            " clock exchanges with " + where +
                            " had consistent stamps (a clock stepped?)");
  }
  offset_ = *estimate;
  reader_->WithRecords([&](internal::ProbeRecords& records) {
    internal::ProbeRecords::TimeShift shift;
    shift.wall_ns = -offset_.offset_ns;
    // Remote monotonic + (remote wall - remote mono) - offset = this host's wall; minus this
    // host's (wall - mono) = this host's monotonic.
    shift.mono_ns =
        records.probe_wall_minus_mono_ns() - offset_.offset_ns - (WallNowNs() - MonoNowNs());
    records.set_time_shift(shift);
    shift_ = shift;
    records.set_label("clock_offset_ns", std::to_string(offset_.offset_ns));
    records.set_label("clock_uncertainty_ns", std::to_string(offset_.uncertainty_ns));
  });
  LogAt(LogLevel::kDebug, "host+ssh: ", where, " clock offset ", offset_.offset_ns, " ns ± ",
        offset_.uncertainty_ns, " ns (best of ", offset_.exchanges, " exchanges)");
  return Status::OK();
}

Status SshProbeSource::Collect(Timestamp /*now*/, SampleBatch& batch) {
  return reader_->WithRecords(
      [&](internal::ProbeRecords& records) { return records.Collect(batch); });
}

std::int64_t SshProbeSource::BackgroundCpuNs() const { return reader_->cpu_ns(); }
std::int64_t SshProbeSource::SamplesDropped() const { return reader_->dropped(); }
std::int64_t SshProbeSource::ticks_received() const { return reader_->ticks(); }
const std::string& SshProbeSource::remote_dir() const { return reader_->remote_dir(); }

Status SshProbeSource::Stop(std::chrono::nanoseconds timeout) {
  if (stopped_.exchange(true)) return Status::OK();
  Status status;
  // End of input: the probe sends END and exits, the remote shell removes its directory and
  // exits, the channel closes and the ssh client with it.
  if (child_.stdin_fd >= 0) {
    ::close(child_.stdin_fd);
    child_.stdin_fd = -1;
  }
  if (child_.pid > 0) {
    const std::int64_t until = MonoNowNs() + timeout.count();
    if (internal::ReapWithin(child_.pid, timeout).killed) {
      status = UnavailableError("host+ssh: the probe on " + uri_.substr(11) +
                                " did not stop within " + FormatDuration(timeout) +
                                " of its input's end; its connection "
                                "was cut, which ends it");
    } else {
      // It stopped: what it sent last (its END record) is read before the reader stops.
      reader_->WaitOutputEnded(
          DeadlineAfter(std::chrono::nanoseconds(std::max<std::int64_t>(until - MonoNowNs(), 0))));
    }
    child_.pid = -1;
  }
  if (reader_) reader_->Close();
  session_.reset();  // shared: its master ends with its last holder
  if (reader_) reader_->End("the probe on " + uri_.substr(11) + " was stopped");
  return status;
}

SshProbeSource::~SshProbeSource() {
  if (Status s = Stop(); !s.ok()) LogAt(LogLevel::kWarning, s.ToString());
}

BITFUSION_REGISTER(MetricSource, "host+ssh", SshProbeSourceOptions, SshProbeSource);

}  // namespace bitfusion
