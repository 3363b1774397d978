#include "metrics/probe_source.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <utility>

#include "bitfusion/log.h"
#include "bitfusion/probe.h"
#include "bitfusion/registry.h"
#include "core/clock.h"
#include "probe/probe_wire.h"

namespace bitfusion {
namespace {

namespace wire = probe_wire;

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

Result<std::shared_ptr<ProbeSource>> ProbeSource::Make(const ProbeSourceOptions& options) {
  if (options.socket_path.empty() || options.socket_path.size() >= sizeof(sockaddr_un::sun_path)) {
    return InvalidArgumentError("probe source: socket path \"" + options.socket_path +
                                "\" is empty or too long for a unix socket");
  }
  internal::ProbeRecords::Options records;
  records.name = options.name;
  records.labels = {{"view", "inside"}, {"container", options.name}};
  records.max_pending_samples = kMaxPendingSamples;
  records.max_label_bytes = kMaxLabelBytes;
  std::shared_ptr<ProbeSource> s(new ProbeSource(std::move(records)));
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
  s->listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s->listen_fd_ < 0) return ErrnoError(errno, "probe source: socket");
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, options.socket_path.data(), options.socket_path.size());
  if (::bind(s->listen_fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    return ErrnoError(errno, "probe source: bind " + options.socket_path);
  }
  s->bound_ = true;  // from here on the socket file is ours to remove
  // The probe may run as any user inside the container.
  ::chmod(options.socket_path.c_str(), 0777);
  if (::listen(s->listen_fd_, 4) != 0) {
    return ErrnoError(errno, "probe source: listen " + options.socket_path);
  }
  s->wake_fd_ = ::eventfd(0, EFD_CLOEXEC);
  if (s->wake_fd_ < 0) return ErrnoError(errno, "probe source: eventfd");
  s->reader_ = std::thread([p = s.get()] { p->Read(); });
  return s;
}

ProbeSource::~ProbeSource() {
  if (reader_.joinable()) {
    const std::uint64_t one = 1;
    (void)!::write(wake_fd_, &one, sizeof one);
    reader_.join();
  }
  if (listen_fd_ >= 0) ::close(listen_fd_);
  if (wake_fd_ >= 0) ::close(wake_fd_);
  if (bound_) {
    ::unlink(options_.socket_path.c_str());
    if (options_.remove_dir) {
      ::rmdir(std::filesystem::path(options_.socket_path).parent_path().c_str());
    }
  }
}

bool ProbeSource::WaitEnded(std::chrono::nanoseconds timeout) const {
  const auto until = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    {
      std::lock_guard lock(mu_);
      if (records_.ended()) return true;
    }
    if (std::chrono::steady_clock::now() >= until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

std::int64_t ProbeSource::BackgroundCpuNs() const {
  return reader_cpu_ns_.load(std::memory_order_relaxed) + records_.probe_cpu_ns();
}

bool ProbeSource::PeerAllowed(int conn) {
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

void ProbeSource::Read() {
  // Wait for the probe.
  const bool forever = options_.connect_timeout.count() <= 0;
  const std::int64_t give_up = MonoNowNs() + options_.connect_timeout.count();
  int conn = -1;
  while (conn < 0) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    const std::int64_t left = give_up - MonoNowNs();
    const int timeout_ms =
        forever ? -1
                : static_cast<int>(std::min<std::int64_t>(
                      std::max<std::int64_t>(0, left) / 1'000'000 + 1, 24 * 3600 * 1000));
    const int r = ::poll(fds, 2, timeout_ms);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 || (fds[1].revents & POLLIN)) return;
    if (fds[0].revents & POLLIN) {
      conn = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (conn >= 0 && !PeerAllowed(conn)) {
        ::close(conn);
        conn = -1;
        continue;
      }
      if (conn < 0 && errno != EINTR && errno != EAGAIN && errno != ECONNABORTED) {
        // Out of descriptors or memory: the listener stays readable, so retrying at once
        // would spin. End the source saying why.
        const int e = errno;
        std::lock_guard lock(mu_);
        records_.End("accepting the probe's connection on " + options_.socket_path +
                     " failed: " + std::strerror(e) + " (too many open files? raise the limit)");
        return;
      }
    } else if (!forever && MonoNowNs() >= give_up) {
      std::lock_guard lock(mu_);
      records_.End("no bitfusion-probe connected to " + options_.socket_path + " within " +
                   FormatDuration(options_.connect_timeout) +
                   ": is it mounted into the container and running (ProbeContainer)?");
      return;
    }
  }
  // One probe per source: later connections are refused.
  ::close(listen_fd_);
  listen_fd_ = -1;

  std::vector<unsigned char> buffer(64 * 1024);
  std::size_t have = 0;
  for (;;) {
    pollfd fds[2] = {{conn, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    const int r = ::poll(fds, 2, -1);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 || (fds[1].revents & POLLIN)) break;
    if (have == buffer.size()) buffer.resize(buffer.size() * 2);  // a record bigger than the buffer
    const ssize_t n = ::read(conn, buffer.data() + have, buffer.size() - have);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) {
      const int e = errno;
      std::lock_guard lock(mu_);
      if (n < 0) {
        records_.End("probe " + options_.name + ": reading its socket failed: " + std::strerror(e));
      } else if (have > 0) {
        records_.End("probe " + options_.name + "'s connection closed inside a record (" +
                     std::to_string(have) + " bytes of it arrived): was it killed?");
      } else {
        records_.End("probe " + options_.name +
                     "'s connection closed without its END record: was it killed?");
      }
      break;
    }
    have += static_cast<std::size_t>(n);
    std::size_t used = 0;
    bool ok = false, ended = false;
    {
      std::lock_guard lock(mu_);
      ok = records_.Handle(buffer.data(), have, used);
      ended = records_.ended();
    }
    reader_cpu_ns_.store(internal::ThreadCpuNs(), std::memory_order_relaxed);
    if (!ok || ended) break;
    std::memmove(buffer.data(), buffer.data() + used, have - used);
    have -= used;
  }
  reader_cpu_ns_.store(internal::ThreadCpuNs(), std::memory_order_relaxed);
  ::close(conn);
}

Status ProbeSource::Collect(Timestamp /*now*/, SampleBatch& batch) {
  std::lock_guard lock(mu_);
  return records_.Collect(batch);
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
  std::string dir = options.socket_dir;
  if (dir.empty()) {
    // mkdtemp makes it 0700: only root (a container's root is the host's, without a user
    // namespace) and this user reach the socket. A container that runs as another numeric
    // user gets the directory; a named user (resolved only inside the image) gets 0711 and
    // any peer, said once.
    char pattern[] = "/tmp/bitfusion-probe-XXXXXX";
    if (::mkdtemp(pattern) == nullptr) return ErrnoError(errno, "probe: mkdtemp /tmp");
    dir = pattern;
    so.remove_dir = true;
    const std::string user = spec.user.substr(0, spec.user.find(':'));
    if (!user.empty() && user != "root" && user != "0") {
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

  const std::string inside_probe = options.mount_dir + "/bitfusion-probe";
  const std::string inside_socket = options.mount_dir + "/run/probe.sock";
  Mount bin;
  bin.source = std::filesystem::absolute(probe).string();
  bin.target = inside_probe;
  bin.read_only = true;
  Mount run;  // read-only: connecting to a socket needs no write access to its file system
  run.source = std::filesystem::absolute(dir).string();
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
