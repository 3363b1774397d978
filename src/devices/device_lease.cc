#include "devices/device_lease.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>

#include "bitfusion/clock.h"
#include "bitfusion/log.h"

namespace bitfusion {
namespace {

namespace fs = std::filesystem;

std::string HostName() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0) return "unknown";
  return name;
}

// Field 22 of /proc/PID/stat (starttime, clock ticks after boot); 0 when unreadable.
std::uint64_t StartTicks(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), {});
  const auto paren = stat.rfind(')');
  if (paren == std::string::npos) return 0;
  std::istringstream fields(stat.substr(paren + 1));
  std::string field;
  for (int i = 3; i <= 22 && fields >> field; ++i) {
    if (i == 22) return std::strtoull(field.c_str(), nullptr, 10);
  }
  return 0;
}

bool Alive(const LeaseHolder& h, const std::string& this_host) {
  if (h.host != this_host) return true;  // cannot check another host's processes
  if (h.pid <= 0) return false;
  if (::kill(h.pid, 0) != 0 && errno != EPERM) return false;
  return h.start_ticks == 0 || StartTicks(h.pid) == h.start_ticks;
}

std::string Clean(std::string s) {
  for (auto& c : s) {
    if (c == '\t' || c == '\n' || c == '\r') c = ' ';
  }
  return s;
}

std::string Encode(const LeaseHolder& h) {
  std::ostringstream out;
  out << h.pid << '\t' << h.start_ticks << '\t' << Clean(h.host) << '\t' << h.since_ns << '\t'
      << (h.exclusive ? "exclusive" : "shared") << '\t' << Clean(h.run_id) << '\n';
  return out.str();
}

bool Decode(const std::string& line, LeaseHolder& h) {
  std::vector<std::string> f;
  std::size_t start = 0;
  while (true) {
    const auto tab = line.find('\t', start);
    f.push_back(line.substr(start, tab == std::string::npos ? std::string::npos : tab - start));
    if (tab == std::string::npos) break;
    start = tab + 1;
  }
  if (f.size() != 6) return false;
  char* end = nullptr;
  h.pid = static_cast<int>(std::strtol(f[0].c_str(), &end, 10));
  if (*end != '\0' || h.pid <= 0) return false;
  h.start_ticks = std::strtoull(f[1].c_str(), nullptr, 10);
  h.host = f[2];
  h.since_ns = std::strtoll(f[3].c_str(), nullptr, 10);
  if (f[4] != "exclusive" && f[4] != "shared") return false;
  h.exclusive = f[4] == "exclusive";
  h.run_id = f[5];
  return true;
}

bool SameHolder(const LeaseHolder& a, const LeaseHolder& b) {
  return a.pid == b.pid && a.start_ticks == b.start_ticks && a.host == b.host &&
         a.since_ns == b.since_ns;
}

// Opens the holders file and runs `edit` on its live records under an exclusive flock; the
// records `edit` leaves are written back. Failures only cost the "who holds it" report.
template <class Edit>
void EditHolders(const fs::path& path, Edit edit) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0666);
  if (fd < 0) {
    LogAt(LogLevel::kWarning, "cannot record the device holder in ", path.string(), ": ",
          std::strerror(errno));
    return;
  }
  (void)::fchmod(fd, 0666);  // only works for the creator; others' files are already shared
  while (::flock(fd, LOCK_EX) != 0 && errno == EINTR) {
  }
  std::string text;
  char buf[4096];
  for (ssize_t n; (n = ::pread(fd, buf, sizeof buf, static_cast<off_t>(text.size()))) > 0;) {
    text.append(buf, static_cast<std::size_t>(n));
  }
  const std::string this_host = HostName();
  std::vector<LeaseHolder> holders;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    LeaseHolder h;
    if (Decode(line, h) && Alive(h, this_host)) holders.push_back(h);
  }
  edit(holders);
  std::string out;
  for (const auto& h : holders) out += Encode(h);
  if (::ftruncate(fd, 0) != 0 ||
      ::pwrite(fd, out.data(), out.size(), 0) != static_cast<ssize_t>(out.size())) {
    LogAt(LogLevel::kWarning, "cannot write ", path.string(), ": ", std::strerror(errno));
  }
  ::close(fd);  // also drops the flock
}

fs::path LockPath(const fs::path& dir, const std::string& id) { return dir / (id + ".lock"); }
fs::path HoldersPath(const fs::path& dir, const std::string& id) { return dir / (id + ".holders"); }

}  // namespace

std::string LeaseHolder::ToString() const {
  std::string out = "pid " + std::to_string(pid) + " on " + host + " (";
  if (!run_id.empty()) out += "run " + run_id + ", ";
  out += exclusive ? "exclusive)" : "shared)";
  if (since_ns > 0) {
    const std::time_t seconds = static_cast<std::time_t>(since_ns / 1'000'000'000);
    std::tm tm{};
    ::gmtime_r(&seconds, &tm);
    char when[32];
    std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    out += " since ";
    out += when;
  }
  return out;
}

LeaseHolder CurrentHolder(const std::string& run_id, bool exclusive) {
  LeaseHolder h;
  h.pid = static_cast<int>(::getpid());
  h.start_ticks = StartTicks(h.pid);
  h.host = HostName();
  h.run_id = run_id;
  h.since_ns = WallNowNs();
  h.exclusive = exclusive;
  return h;
}

Result<std::unique_ptr<DeviceLock>> DeviceLock::TryAcquire(const fs::path& lock_dir,
                                                           const std::string& device_id,
                                                           const LeaseHolder& holder) {
  const fs::path path = LockPath(lock_dir, device_id);
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0666);
  // flock needs no write access: a lock file another user created is still usable read-only.
  if (fd < 0 && errno == EACCES) fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return ErrnoError(errno, "cannot open device lock file " + path.string() +
                                 " (choose a writable lock_dir in the allocator URI)");
  }
  (void)::fchmod(fd, 0666);
  int rc;
  while ((rc = ::flock(fd, (holder.exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB)) != 0 &&
         errno == EINTR) {
  }
  if (rc != 0) {
    const int err = errno;
    ::close(fd);
    if (err != EWOULDBLOCK) return ErrnoError(err, "cannot lock " + path.string());
    std::string who;
    for (const auto& h : ReadHolders(lock_dir, device_id)) {
      who += (who.empty() ? "" : "; ") + h.ToString();
    }
    return ResourceExhaustedError("device " + device_id + " is held by " +
                                  (who.empty() ? std::string("another process") : who));
  }
  const fs::path holders = HoldersPath(lock_dir, device_id);
  EditHolders(holders, [&](std::vector<LeaseHolder>& list) { list.push_back(holder); });
  return std::unique_ptr<DeviceLock>(new DeviceLock(fd, holders, device_id, holder));
}

DeviceLock::~DeviceLock() {
  // The record goes first: once the lock is dropped a newcomer must not find us listed.
  EditHolders(holders_, [&](std::vector<LeaseHolder>& list) {
    list.erase(std::remove_if(list.begin(), list.end(),
                              [&](const LeaseHolder& h) { return SameHolder(h, holder_); }),
               list.end());
  });
  if (fd_ >= 0) ::close(fd_);
}

std::vector<LeaseHolder> ReadHolders(const fs::path& lock_dir, const std::string& device_id) {
  std::vector<LeaseHolder> out;
  const fs::path path = HoldersPath(lock_dir, device_id);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return out;
  while (::flock(fd, LOCK_SH) != 0 && errno == EINTR) {
  }
  std::string text;
  char buf[4096];
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;)
    text.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  const std::string this_host = HostName();
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    LeaseHolder h;
    if (Decode(line, h) && Alive(h, this_host)) out.push_back(h);
  }
  return out;
}

Status EnsureLockDir(const fs::path& dir) {
  std::error_code ec;
  const bool existed = fs::is_directory(dir, ec);
  if (!existed) {
    fs::create_directories(dir, ec);
    if (ec && !fs::is_directory(dir)) {
      return FailedPreconditionError("cannot create the device lock directory " + dir.string() +
                                     ": " + ec.message() +
                                     "; give a writable one with ?lock_dir=DIR in the allocator "
                                     "URI");
    }
    // Shared by every user of the host, like /tmp: anyone may add lock files, nobody may
    // delete another's.
    ::chmod(dir.c_str(), 01777);
  }
  if (::access(dir.c_str(), W_OK | X_OK) != 0) {
    return FailedPreconditionError("the device lock directory " + dir.string() +
                                   " is not writable: " + std::strerror(errno) +
                                   "; give a writable one with ?lock_dir=DIR in the allocator URI");
  }
  return Status::OK();
}

fs::path DefaultLockDir() {
  std::vector<fs::path> candidates = {"/run/bitfusion/devices"};
  if (const char* xdg = std::getenv("XDG_RUNTIME_DIR"); xdg != nullptr && xdg[0] == '/') {
    candidates.push_back(fs::path(xdg) / "bitfusion/devices");
  }
  candidates.push_back("/tmp/bitfusion-devices");
  for (const auto& dir : candidates) {
    if (EnsureLockDir(dir).ok()) return dir;
  }
  return candidates.back();
}

}  // namespace bitfusion
