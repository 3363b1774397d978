#include "metrics/probe_source.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <utility>
#include <vector>

#include "bitfusion/log.h"
#include "bitfusion/probe.h"
#include "bitfusion/registry.h"
#include "core/clock.h"
#include "core/event_loop.h"
#include "metrics/probe_records.h"
#include "metrics/remote_probe_host.h"

namespace bitfusion {
namespace {

namespace asio = boost::asio;
using Strand = asio::strand<asio::io_context::executor_type>;
using Descriptor = asio::posix::stream_descriptor;
using boost::system::error_code;
constexpr auto kWaitRead = asio::posix::descriptor_base::wait_read;

}  // namespace

Result<ProbeSourceOptions> ProbeSourceOptions::FromUri(const Uri& uri) {
  BITFUSION_RETURN_IF_ERROR(uri.CheckQueryKeys({"socket", "connect_timeout"}));
  ProbeSourceOptions o;
  o.name = uri.host.empty() ? uri.path : uri.host + uri.path;
  if (o.name.empty()) {
    return InvalidArgumentError("metric source " + uri.ToString() +
                                " names no container; write probe:NAME?socket=PATH");
  }
  o.socket_path = uri.Query("socket").value_or("");
  if (o.socket_path.empty()) {
    return InvalidArgumentError("metric source " + uri.ToString() +
                                " needs the unix socket to listen on: probe:" + o.name +
                                "?socket=/path/to/probe.sock (ProbeContainer makes one)");
  }
  if (o.socket_path.size() >= sizeof(sockaddr_un::sun_path)) {
    return InvalidArgumentError("metric source " + uri.ToString() + ": socket path " +
                                o.socket_path + " is longer than the " +
                                std::to_string(sizeof(sockaddr_un::sun_path) - 1) +
                                " bytes a unix socket path may have");
  }
  BITFUSION_ASSIGN_OR_RETURN(o.connect_timeout,
                             uri.QueryDuration("connect_timeout", std::chrono::nanoseconds(0)));
  return o;
}

// ---- the reader, on the event loop -----------------------------------------------------------

class ProbeSource::Reader final : public std::enable_shared_from_this<Reader> {
 public:
  Reader(const ProbeSourceOptions& options, internal::ProbeRecords::Options records, int listen_fd)
      : options_(options),
        strand_(asio::make_strand(internal::EventLoop())),
        listener_(strand_, listen_fd),
        conn_(strand_),
        connect_timer_(strand_),
        records_(std::move(records)) {
    // What the source keeps alive is let go by the source, not by a handler on the loop.
    options_.keep_alive.reset();
    records_.set_time_shift(options.time_shift);
  }

  // Starts waiting for the probe, and the connect timeout.
  void Start() {
    const Deadline give_up = DeadlineAfter(options_.connect_timeout);
    asio::post(strand_, [self = shared_from_this(), give_up] {
      self->Timed([&] {
        self->WaitForProbe();
        if (self->options_.connect_timeout.count() > 0) self->ArmConnectTimeout(give_up);
      });
    });
  }

  // Cancels what is pending and closes the sockets on the strand; returns once that is done, so
  // that no handler of this source runs any more (those still queued find closed_ and return).
  // On a loop thread it does not wait (that could wait for itself): the handlers hold this
  // object, so nothing goes from under them.
  void Close() {
    asio::post(strand_, [self = shared_from_this()] { self->Shut(); });
    if (internal::OnEventLoopThread()) return;
    std::unique_lock lock(mu_);
    internal::WaitForLoop(lock, cv_, [&] { return shut_; });
  }

  bool WaitEnded(std::chrono::nanoseconds timeout) {
    std::unique_lock lock(mu_);
    return cv_.wait_until(lock, DeadlineAfter(timeout), [&] { return records_.ended(); });
  }

  Status Collect(SampleBatch& batch) {
    std::lock_guard lock(mu_);
    return records_.Collect(batch);
  }

  std::int64_t cpu_ns() const {
    return cpu_ns_.load(std::memory_order_relaxed) + records_.probe_cpu_ns();
  }
  std::int64_t refused() const { return refused_.load(std::memory_order_relaxed); }
  std::int64_t ticks() const { return records_.ticks(); }
  std::int64_t dropped() const { return records_.dropped(); }

 private:
  // Everything below runs on strand_.

  // Runs one handler's work, adding the CPU time it took to cpu_ns_.
  template <typename F>
  void Timed(F&& work) {
    const std::int64_t start = internal::ThreadCpuNs();
    work();
    cpu_ns_.fetch_add(internal::ThreadCpuNs() - start, std::memory_order_relaxed);
  }

  void End(const std::string& reason) {
    std::lock_guard lock(mu_);
    records_.End(reason);
    cv_.notify_all();
  }

  void WaitForProbe() {
    listener_.async_wait(kWaitRead, [self = shared_from_this()](error_code ec) {
      if (ec || self->closed_ || !self->listening_) return;
      self->Timed([&] { self->Accept(); });
    });
  }

  void ArmConnectTimeout(Deadline give_up) {
    connect_timer_.expires_at(give_up);
    connect_timer_.async_wait([self = shared_from_this()](error_code ec) {
      if (ec || self->closed_ || !self->listening_) return;
      self->Timed([&] {
        // No more waiting; the socket stays until the source goes (connections wait unheard).
        self->listening_ = false;
        error_code ignored;
        self->listener_.cancel(ignored);
        self->End("no bitfusion-probe connected to " + self->options_.socket_path + " within " +
                  FormatDuration(self->options_.connect_timeout) +
                  ": is it mounted into the container and running (ProbeContainer)?");
      });
    });
  }

  // The listener is readable: takes every connection waiting, refusing other users', until the
  // probe's (then stops listening) or none is left (then waits again).
  void Accept() {
    for (;;) {
      const int conn =
          ::accept4(listener_.native_handle(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (conn < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          WaitForProbe();
          return;
        }
        // Out of descriptors or memory: the listener stays readable, so waiting again would
        // spin. End the source saying why.
        const int e = errno;
        listening_ = false;
        connect_timer_.cancel();
        End("accepting the probe's connection on " + options_.socket_path +
            " failed: " + std::strerror(e) + " (too many open files? raise the limit)");
        return;
      }
      if (!PeerAllowed(conn)) {
        ::close(conn);
        continue;
      }
      // One probe per source: later connections are refused.
      listening_ = false;
      connect_timer_.cancel();
      error_code ignored;
      listener_.close(ignored);
      conn_.assign(conn);
      ReadWhenReady();
      return;
    }
  }

  bool PeerAllowed(int conn) {
    ucred peer{};
    socklen_t len = sizeof peer;
    if (::getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &peer, &len) != 0) return false;
    const auto uid = static_cast<long>(peer.uid);
    if (uid == 0 || peer.uid == ::geteuid() || options_.peer_uid < 0 || uid == options_.peer_uid) {
      return true;
    }
    refused_.fetch_add(1, std::memory_order_relaxed);
    LogOnceAt(LogLevel::kWarning, "probe-peer-refused", "probe ", options_.name,
              ": refused a connection to ", options_.socket_path, " from process ", peer.pid,
              " of user ", peer.uid, ", not the container's; waiting for the probe");
    return false;
  }

  void ReadWhenReady() {
    conn_.async_wait(kWaitRead, [self = shared_from_this()](error_code ec) {
      if (ec || self->closed_) return;
      bool more = false;
      self->Timed([&] { more = self->Read(); });
      if (more) {
        self->ReadWhenReady();
      } else {
        error_code ignored;
        self->conn_.close(ignored);
      }
    });
  }

  // Reads what the connection holds, a bounded number of reads at a time (the loop is shared);
  // false once the stream has ended: the END record, a corrupt record, or the connection closed
  // or failed.
  bool Read() {
    for (int reads = 0; reads < kReadsPerHandler; ++reads) {
      if (have_ == buffer_.size()) buffer_.resize(buffer_.size() * 2);  // a record bigger than it
      const ssize_t n =
          ::read(conn_.native_handle(), buffer_.data() + have_, buffer_.size() - have_);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
      if (n <= 0) {
        const int e = errno;
        if (n < 0) {
          End("probe " + options_.name + ": reading its socket failed: " + std::strerror(e));
        } else if (have_ > 0) {
          End("probe " + options_.name + "'s connection closed inside a record (" +
              std::to_string(have_) + " bytes of it arrived): was it killed?");
        } else {
          End("probe " + options_.name +
              "'s connection closed without its END record: was it killed?");
        }
        return false;
      }
      have_ += static_cast<std::size_t>(n);
      std::size_t used = 0;
      {
        std::lock_guard lock(mu_);
        const bool ok = records_.Handle(buffer_.data(), have_, used);
        if (!ok || records_.ended()) {
          cv_.notify_all();
          return false;
        }
      }
      std::memmove(buffer_.data(), buffer_.data() + used, have_ - used);
      have_ -= used;
    }
    return true;  // more may be there: the wait says so at once
  }

  void Shut() {
    closed_ = true;
    error_code ignored;
    connect_timer_.cancel();
    listener_.close(ignored);
    conn_.close(ignored);
    std::lock_guard lock(mu_);
    shut_ = true;
    cv_.notify_all();
  }

  static constexpr int kReadsPerHandler = 16;

  ProbeSourceOptions options_;  // without keep_alive

  // Used on strand_ only.
  Strand strand_;
  Descriptor listener_, conn_;
  asio::steady_timer connect_timer_;
  std::vector<unsigned char> buffer_ = std::vector<unsigned char>(64 * 1024);
  std::size_t have_ = 0;
  bool listening_ = true;  // waiting for the probe's connection
  bool closed_ = false;

  // The decoded stream, shared by the handlers and the source's methods under mu_.
  std::mutex mu_;
  std::condition_variable cv_;  // the stream ended; Shut ran
  internal::ProbeRecords records_;
  bool shut_ = false;

  std::atomic<std::int64_t> cpu_ns_{0}, refused_{0};
};

// ---- the source ---------------------------------------------------------------------------------

Result<std::shared_ptr<ProbeSource>> ProbeSource::Make(const ProbeSourceOptions& options) {
  if (options.socket_path.empty() || options.socket_path.size() >= sizeof(sockaddr_un::sun_path)) {
    return InvalidArgumentError("probe source: socket path \"" + options.socket_path +
                                "\" is empty or too long for a unix socket");
  }
  internal::ProbeRecords::Options records;
  records.name = options.name;
  records.labels = options.labels;
  records.labels["view"] = "inside";
  records.labels["container"] = options.name;
  records.max_pending_samples = kMaxPendingSamples;
  records.max_label_bytes = kMaxLabelBytes;
  std::shared_ptr<ProbeSource> s(new ProbeSource());
  s->options_ = options;
  s->uri_ = "probe:" + options.name + "?socket=" + options.socket_path;

  struct stat st;
  if (::lstat(options.socket_path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return AlreadyExistsError("probe source: " + options.socket_path +
                                " exists and is not a socket; choose another path");
    }
    // A stale socket of an earlier run is replaced; one that something still listens on is
    // not ours to take.
    const int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un peer{};
    peer.sun_family = AF_UNIX;
    std::memcpy(peer.sun_path, options.socket_path.data(), options.socket_path.size());
    const bool live =
        probe >= 0 && ::connect(probe, reinterpret_cast<const sockaddr*>(&peer), sizeof peer) == 0;
    if (probe >= 0) ::close(probe);
    if (live) {
      return AlreadyExistsError("probe source: something is listening on " + options.socket_path +
                                " already; choose another socket path");
    }
    ::unlink(options.socket_path.c_str());
  }
  // Non-blocking: the loop's handlers accept only what is there.
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return ErrnoError(errno, "probe source: socket");
  auto fail = [fd](Status status) {
    ::close(fd);
    return status;
  };
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, options.socket_path.data(), options.socket_path.size());
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    return fail(ErrnoError(errno, "probe source: bind " + options.socket_path));
  }
  s->bound_ = true;  // from here on the socket file is ours to remove
  // The probe may run as any user inside the container.
  ::chmod(options.socket_path.c_str(), 0777);
  if (::listen(fd, 4) != 0) {
    return fail(ErrnoError(errno, "probe source: listen " + options.socket_path));
  }
  s->reader_ = std::make_shared<Reader>(options, std::move(records), fd);
  s->reader_->Start();
  return s;
}

ProbeSource::~ProbeSource() {
  if (reader_) reader_->Close();
  if (bound_) {
    ::unlink(options_.socket_path.c_str());
    if (options_.remove_dir) {
      ::rmdir(std::filesystem::path(options_.socket_path).parent_path().c_str());
    }
  }
}

bool ProbeSource::WaitEnded(std::chrono::nanoseconds timeout) const {
  return reader_->WaitEnded(timeout);
}

std::int64_t ProbeSource::BackgroundCpuNs() const { return reader_->cpu_ns(); }
std::int64_t ProbeSource::peers_refused() const { return reader_->refused(); }
std::int64_t ProbeSource::ticks_received() const { return reader_->ticks(); }
std::int64_t ProbeSource::samples_dropped() const { return reader_->dropped(); }

Status ProbeSource::Collect(Timestamp /*now*/, SampleBatch& batch) {
  return reader_->Collect(batch);
}

// ---- the public setup ----------------------------------------------------------------------

Result<std::string> FindProbe() {
  constexpr const char* kName = "bitfusion-probe";
  std::vector<std::filesystem::path> candidates;
  if (const char* env = std::getenv("BITFUSION_PROBE"); env != nullptr && *env != '\0') {
    if (::access(env, X_OK) == 0) return std::string(env);
    return NotFoundError(std::string("BITFUSION_PROBE=") + env +
                         " is not an executable file; unset it or point it at bitfusion-probe");
  }
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    candidates.push_back(exe.parent_path() / kName);
    candidates.push_back(exe.parent_path().parent_path() / "libexec" / "bitfusion" / kName);
  }
  Dl_info info{};
  if (::dladdr(reinterpret_cast<void*>(&FindProbe), &info) != 0 && info.dli_fname != nullptr) {
    const auto lib = std::filesystem::absolute(info.dli_fname, ec).parent_path();
    candidates.push_back(lib.parent_path() / "libexec" / "bitfusion" / kName);
    candidates.push_back(lib / "libexec" / kName);  // the Python package carries its own
  }
  std::string looked;
  for (const auto& c : candidates) {
    if (::access(c.c_str(), X_OK) == 0) return c.lexically_normal().string();
    looked += (looked.empty() ? "" : ", ") + c.lexically_normal().string();
  }
  return NotFoundError("bitfusion-probe not found (looked at " + looked +
                       "); install it or set BITFUSION_PROBE to its path");
}

Result<ContainerProbe> ProbeContainer(const ContainerProbeOptions& options, ContainerSpec& spec) {
  using std::chrono::nanoseconds;
  if (options.interval < std::chrono::milliseconds(1) || options.interval > std::chrono::hours(1)) {
    return InvalidArgumentError("probe interval " + FormatDuration(options.interval) +
                                " is outside 1ms .. 1h");
  }
  if (options.wrap && spec.entrypoint.empty() && spec.command.empty()) {
    return InvalidArgumentError(
        "a probed container needs its command (or entrypoint) in the spec: the probe replaces "
        "the entrypoint and runs what follows it");
  }
  if (options.mount_dir.empty() || options.mount_dir[0] != '/') {
    return InvalidArgumentError("probe mount_dir \"" + options.mount_dir +
                                "\" is not an absolute path inside the container");
  }
  std::string probe = options.probe_path;
  if (probe.empty()) {
    BITFUSION_ASSIGN_OR_RETURN(probe, FindProbe());
  } else if (::access(probe.c_str(), X_OK) != 0) {
    return ErrnoError(errno, "probe_path " + probe);
  }

  ProbeSourceOptions so;
  so.name = !options.name.empty() ? options.name : !spec.name.empty() ? spec.name : "container";
  std::shared_ptr<RemoteProbeHost> remote;
  if (!options.remote.empty()) {
    if (!options.socket_dir.empty()) {
      return InvalidArgumentError(
          "probe: socket_dir is a directory on this host, and a probe on another machine's "
          "engine gets one there; leave it empty with remote");
    }
    BITFUSION_ASSIGN_OR_RETURN(remote, RemoteProbeHost::Open(options.remote, probe));
    so.time_shift = remote->time_shift();
    so.labels = remote->labels();
    so.keep_alive = remote;
  }
  std::string dir = options.socket_dir;
  if (dir.empty()) {
    // mkdtemp makes it 0700: only root (a container's root is the host's, without a user
    // namespace) and this user reach the socket. A container that runs as another numeric
    // user gets the directory; a named user (resolved only inside the image) gets 0711 and
    // any peer, said once. With a remote engine only this process connects here (through the
    // ssh client that carries the forward), so it stays 0700.
    char pattern[] = "/tmp/bitfusion-probe-XXXXXX";
    if (::mkdtemp(pattern) == nullptr) return ErrnoError(errno, "probe: mkdtemp /tmp");
    dir = pattern;
    so.remove_dir = true;
    const std::string user = spec.user.substr(0, spec.user.find(':'));
    if (!remote && !user.empty() && user != "root" && user != "0") {
      char* end = nullptr;
      const long uid = std::strtol(user.c_str(), &end, 10);
      if (end != nullptr && *end == '\0' && uid > 0 &&
          ::chown(dir.c_str(), static_cast<uid_t>(uid), static_cast<gid_t>(-1)) == 0) {
        so.peer_uid = uid;
      } else {
        ::chmod(dir.c_str(), 0711);
        LogOnceAt(LogLevel::kInfo, "probe-named-user", "probe: the container runs as user \"", user,
                  "\", which this host cannot map to a uid, so its socket directory is "
                  "0711 and any local user could connect first; give the user as a number");
      }
    }
  }
  so.socket_path = dir + "/probe.sock";
  auto source = ProbeSource::Make(so);
  if (!source.ok()) {
    if (so.remove_dir) ::rmdir(dir.c_str());
    return source.error();
  }

  if (remote) BITFUSION_RETURN_IF_ERROR(remote->Forward(so.socket_path, spec.user));

  const std::string inside_probe = options.mount_dir + "/bitfusion-probe";
  const std::string inside_socket = options.mount_dir + "/run/probe.sock";
  Mount bin;  // paths on the engine's host
  bin.source = remote ? remote->probe_path() : std::filesystem::absolute(probe).string();
  bin.target = inside_probe;
  bin.read_only = true;
  Mount run;  // read-only: connecting to a socket needs no write access to its file system
  run.source = remote ? remote->run_dir() : std::filesystem::absolute(dir).string();
  run.target = options.mount_dir + "/run";
  run.read_only = true;
  spec.mounts.push_back(bin);
  spec.mounts.push_back(run);

  std::vector<std::string> argv = {inside_probe, "--socket", inside_socket, "--interval",
                                   std::to_string(options.interval.count()) + "ns"};
  if (!options.processes) argv.push_back("--no-processes");

  ContainerProbe out;
  out.source = *source;
  out.socket_path = so.socket_path;
  out.exec_command = argv;
  if (options.wrap) {
    argv.push_back("--");
    // The engine appends the command to the entrypoint, so it follows the "--" too.
    argv.insert(argv.end(), spec.entrypoint.begin(), spec.entrypoint.end());
    spec.entrypoint = std::move(argv);
  }
  return out;
}

BITFUSION_REGISTER(MetricSource, "probe", ProbeSourceOptions, ProbeSource);

}  // namespace bitfusion
