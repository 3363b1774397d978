#include "metrics/ssh_probe_source.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <utility>
#include <vector>

#include "bitfusion/clock.h"
#include "bitfusion/log.h"
#include "bitfusion/probe.h"
#include "bitfusion/registry.h"
#include "core/clock.h"
#include "net/ssh_uri.h"
#include "probe/probe_wire.h"

namespace bitfusion {
namespace {

namespace wire = probe_wire;

constexpr const char* kDirLine = "bitfusion-agent-dir ";
constexpr std::size_t kMaxStderrBytes = 16 * 1024;

int MsUntil(std::int64_t deadline_mono_ns) {
  const std::int64_t left = deadline_mono_ns - MonoNowNs();
  return left <= 0 ? 0 : static_cast<int>(std::min<std::int64_t>(left / 1'000'000 + 1, 60'000));
}

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
    const int r = ::poll(&pfd, 1, MsUntil(deadline_mono_ns));
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
  std::shared_ptr<SshProbeSource> s(new SshProbeSource(std::move(records)));
  s->uri_ = "host+ssh://" + options.target.ToString();
  BITFUSION_RETURN_IF_ERROR(s->Start(options, bytes));
  s->reader_ = std::thread([p = s.get()] { p->Read(); });
  return s;
}

Status SshProbeSource::Start(const SshProbeSourceOptions& o, const std::string& probe_bytes) {
  const std::string where = o.target.ToString();
  const std::int64_t deadline = MonoNowNs() + o.start_timeout.count();
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC);
  if (wake_fd_ < 0) return ErrnoError(errno, "host+ssh: eventfd");
  session_ = SshSession::Shared(o.target, o.session);  // the runner's master, when it has one
  BITFUSION_RETURN_IF_ERROR(session_->Connect());
  auto child = session_->Spawn(RemoteScript(probe_bytes.size(), o));
  if (!child) return child.error().WithContext("host+ssh: starting the probe on " + where);
  child_ = *child;
  BITFUSION_RETURN_IF_ERROR(SendAll(child_.stdin_fd, probe_bytes.data(), probe_bytes.size(),
                                    deadline, "host+ssh: copying the probe to " + where));

  // The clock exchanges, one PING in flight at a time, once the probe has said HELLO; the first
  // TICK gives the remote wall - monotonic difference the monotonic stamps are mapped with.
  std::vector<internal::ClockExchange> exchanges;
  bool in_flight = false;
  for (;;) {
    bool hello = false, have_tick = false;
    {
      std::lock_guard lock(mu_);
      hello = records_.hello();
      have_tick = records_.have_tick();
      for (const auto& [pong, t4] : records_.TakePongs()) {
        exchanges.push_back({pong.t1, pong.t2, pong.t3, t4});
        in_flight = false;
      }
    }
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
          FormatDuration(o.start_timeout) + (err_.empty() ? "" : "; it said: " + err_));
    }
    if (!ReadOnce(MsUntil(deadline))) {
      SampleBatch unused;
      std::lock_guard lock(mu_);
      Status corrupt = records_.Collect(unused);
      if (corrupt.ok()) corrupt = records_.Collect(unused);  // past samples that came before
      return UnavailableError("host+ssh: the probe on " + where + " ended while starting" +
                              (err_.empty() ? "" : ": " + err_) +
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
  std::lock_guard lock(mu_);
  internal::ProbeRecords::TimeShift shift;
  shift.wall_ns = -offset_.offset_ns;
  // Remote monotonic + (remote wall - remote mono) - offset = this host's wall; minus this
  // host's (wall - mono) = this host's monotonic.
  shift.mono_ns =
      records_.probe_wall_minus_mono_ns() - offset_.offset_ns - (WallNowNs() - MonoNowNs());
  records_.set_time_shift(shift);
  records_.set_label("clock_offset_ns", std::to_string(offset_.offset_ns));
  records_.set_label("clock_uncertainty_ns", std::to_string(offset_.uncertainty_ns));
  LogAt(LogLevel::kDebug, "host+ssh: ", where, " clock offset ", offset_.offset_ns, " ns ± ",
        offset_.uncertainty_ns, " ns (best of ", offset_.exchanges, " exchanges)");
  return Status::OK();
}

bool SshProbeSource::ReadOnce(int timeout_ms) {
  pollfd fds[3] = {{out_open_ ? child_.stdout_fd : -1, POLLIN, 0},
                   {err_open_ ? child_.stderr_fd : -1, POLLIN, 0},
                   {reader_.joinable() ? wake_fd_ : -1, POLLIN, 0}};
  const int r = ::poll(fds, 3, timeout_ms);
  if (r < 0 && errno != EINTR) return false;
  if (r <= 0) return true;
  if (fds[2].revents & POLLIN) return false;
  if (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) {
    char chunk[4096];
    const ssize_t n = ::read(child_.stderr_fd, chunk, sizeof chunk);
    if (n <= 0 && !(n < 0 && (errno == EINTR || errno == EAGAIN))) {
      err_open_ = false;
    } else if (n > 0) {
      err_.append(chunk, static_cast<std::size_t>(n));
      // The script's first line names its directory; the rest is the probe's own stderr.
      if (remote_dir_.empty() && err_.starts_with(kDirLine)) {
        const auto eol = err_.find('\n');
        if (eol != std::string::npos) {
          remote_dir_ = err_.substr(std::strlen(kDirLine), eol - std::strlen(kDirLine));
          err_.erase(0, eol + 1);
        }
      }
      if (err_.size() > kMaxStderrBytes) err_.erase(0, err_.size() - kMaxStderrBytes);
      while (!err_.empty() && (err_.back() == '\n' || err_.back() == ' ')) err_.pop_back();
    }
  }
  if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
    const std::size_t have = out_buffer_.size();
    out_buffer_.resize(have + 64 * 1024);
    const ssize_t n = ::read(child_.stdout_fd, out_buffer_.data() + have, 64 * 1024);
    const std::int64_t t4 = WallNowNs();
    out_buffer_.resize(have + static_cast<std::size_t>(std::max<ssize_t>(n, 0)));
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return true;
    std::lock_guard lock(mu_);
    if (n <= 0) {
      out_open_ = false;
      records_.End("the probe on " + uri_.substr(std::strlen("host+ssh://")) +
                   (n < 0 ? " could not be read: " + std::string(std::strerror(errno))
                          : "'s connection closed without its END record: was it killed, or the "
                            "connection lost?") +
                   (err_.empty() ? "" : " (" + err_ + ")"));
      return false;
    }
    std::size_t used = 0;
    records_.set_receive_wall_ns(t4);
    const bool ok = records_.Handle(reinterpret_cast<const unsigned char*>(out_buffer_.data()),
                                    out_buffer_.size(), used);
    out_buffer_.erase(0, used);
    if (!ok) return false;
  }
  return true;
}

void SshProbeSource::Read() {
  while (ReadOnce(-1)) reader_cpu_ns_.store(internal::ThreadCpuNs(), std::memory_order_relaxed);
  reader_cpu_ns_.store(internal::ThreadCpuNs(), std::memory_order_relaxed);
}

Status SshProbeSource::Collect(Timestamp /*now*/, SampleBatch& batch) {
  std::lock_guard lock(mu_);
  return records_.Collect(batch);
}

std::int64_t SshProbeSource::BackgroundCpuNs() const {
  return reader_cpu_ns_.load(std::memory_order_relaxed) + records_.probe_cpu_ns();
}

Status SshProbeSource::Stop(std::chrono::nanoseconds timeout) {
  {
    std::lock_guard lock(mu_);
    if (stopped_) return Status::OK();
    stopped_ = true;
  }
  Status status;
  // End of input: the probe sends END and exits, the remote shell removes its directory and
  // exits, the channel closes and the ssh client with it.
  if (child_.stdin_fd >= 0) {
    ::close(child_.stdin_fd);
    child_.stdin_fd = -1;
  }
  if (child_.pid > 0) {
    const std::int64_t until = MonoNowNs() + timeout.count();
    int wstatus = 0;
    pid_t done = 0;
    while ((done = ::waitpid(child_.pid, &wstatus, WNOHANG)) == 0 && MonoNowNs() < until) {
      ::usleep(5'000);
    }
    if (done == 0) {
      ::kill(child_.pid, SIGKILL);
      ::waitpid(child_.pid, &wstatus, 0);
      status = UnavailableError("host+ssh: the probe on " + uri_.substr(11) +
                                " did not stop within " + FormatDuration(timeout) +
                                " of its input's end; its connection "
                                "was cut, which ends it");
    }
    child_.pid = -1;
  }
  if (reader_.joinable()) {
    const std::uint64_t one = 1;
    (void)!::write(wake_fd_, &one, sizeof one);
    reader_.join();
  }
  for (int* fd : {&child_.stdout_fd, &child_.stderr_fd, &wake_fd_}) {
    if (*fd >= 0) ::close(*fd);
    *fd = -1;
  }
  session_.reset();  // shared: its master ends with its last holder
  {
    std::lock_guard lock(mu_);
    records_.End("the probe on " + uri_.substr(11) + " was stopped");
  }
  return status;
}

SshProbeSource::~SshProbeSource() {
  if (Status s = Stop(); !s.ok()) LogAt(LogLevel::kWarning, s.ToString());
}

BITFUSION_REGISTER(MetricSource, "host+ssh", SshProbeSourceOptions, SshProbeSource);

}  // namespace bitfusion
