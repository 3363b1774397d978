#include "devices/device_lease.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>
#include <thread>

#include "bitfusion/clock.h"
#include "bitfusion/log.h"
#include "bitfusion/ownership.h"

namespace bitfusion {
namespace {

namespace fs = std::filesystem;

std::string HostName() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0) return "unknown";
  return name;
}

bool Alive(const LeaseHolder& h, const std::string& this_host) {
  if (h.host != this_host) return true;  // cannot check another host's processes
  return ProcessAlive(h.pid, h.start_ticks);
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

// Holders edits take microseconds; a holder that keeps the flock longer than this is stuck or
// hostile (any local user can flock a file they can open), so the edit is skipped instead of
// blocking a lease or its release forever.
constexpr auto kHoldersLockWait = std::chrono::seconds(2);
// A holders file is a few lines per holder; anything bigger is garbage someone wrote into it.
constexpr std::size_t kMaxHoldersBytes = 1 << 20;

// Flocks `fd` in `mode`, retrying a conflicting lock until kHoldersLockWait has passed.
bool FlockWithin(int fd, int mode) {
  const auto give_up = std::chrono::steady_clock::now() + kHoldersLockWait;
  auto pause = std::chrono::milliseconds(1);
  while (::flock(fd, mode | LOCK_NB) != 0) {
    if (errno == EINTR) continue;
    if (errno != EWOULDBLOCK || std::chrono::steady_clock::now() >= give_up) return false;
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(50));
  }
  return true;
}

// The lock directory, opened and checked: since every user of the host shares it, it must be
// owned by root or by us, and if others may write to it the sticky bit must stop them from
// renaming or deleting our files. Checked on the descriptor, so a directory swapped in after
// the check cannot slip through.
Result<int> OpenLockDir(const fs::path& dir, const LockDirKind& kind) {
  const std::string what = "the " + std::string(kind.what) + " " + dir.string();
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    return ErrnoError(
        errno, "cannot open " + what + " (give another with " + std::string(kind.option) + ")");
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return ErrnoError(err, "cannot stat " + what);
  }
  std::string problem;
  if (st.st_uid != 0 && st.st_uid != ::geteuid()) {
    problem = "is owned by uid " + std::to_string(st.st_uid) + ", neither root nor this user";
  } else if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0 && (st.st_mode & S_ISVTX) == 0) {
    problem = "is writable by other users but lacks the sticky bit (mode 1777 is right)";
  }
  if (!problem.empty()) {
    ::close(fd);
    return PermissionDeniedError(what + " " + problem +
                                 ", so another user could replace its lock files; use a "
                                 "directory owned by root or by you (" +
                                 std::string(kind.option) + ")");
  }
  return fd;
}

// Opens the file `name` in the lock directory (creating it when `create` and it is absent):
// never through a symlink, and only a regular file with no other links, so a file another user
// planted there cannot redirect our writes to a file elsewhere. Files we create are made 0666 so
// that every user can lock them.
Result<int> OpenLockFile(const fs::path& dir, const std::string& name, bool writable, bool create,
                         const LockDirKind& kind = kDeviceLockDir) {
  BITFUSION_ASSIGN_OR_RETURN(const int dir_fd, OpenLockDir(dir, kind));
  const fs::path path = dir / name;
  // O_NONBLOCK: opening a FIFO planted under our name must not hang.
  const int flags = (writable ? O_RDWR : O_RDONLY) | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK;
  int fd = -1;
  for (int attempt = 0; fd < 0 && attempt < 2; ++attempt) {
    // An existing file is opened without O_CREAT: in a sticky directory the kernel's
    // protected_regular refuses O_CREAT on another user's file even when it exists.
    fd = ::openat(dir_fd, name.c_str(), flags);
    if (fd >= 0 || errno != ENOENT || !create) break;
    fd = ::openat(dir_fd, name.c_str(), flags | O_CREAT | O_EXCL, 0666);
    if (fd < 0 && errno != EEXIST) break;  // EEXIST: another process created it just now
  }
  if (fd < 0 && errno == EACCES && writable) {
    // flock needs no write access: a lock file another user created is usable read-only.
    fd = ::openat(dir_fd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
  }
  const int open_errno = errno;
  ::close(dir_fd);
  const auto elsewhere = [&kind] {
    return " (or choose another directory: " + std::string(kind.option) + ")";
  };
  if (fd < 0) {
    if (open_errno == ELOOP) {
      return PermissionDeniedError(path.string() +
                                   " is a symlink; lock files are never followed through links: "
                                   "remove it" +
                                   elsewhere());
    }
    return ErrnoError(open_errno, "cannot open " + path.string() + elsewhere());
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1) {
    ::close(fd);
    return PermissionDeniedError(
        path.string() + " is not a regular file with a single link; remove it" + elsewhere());
  }
  if (st.st_uid == ::geteuid() && (st.st_mode & 07777) != 0666) (void)::fchmod(fd, 0666);
  return fd;
}

// Runs `edit` on the live records of the holders file under an exclusive flock; the records
// `edit` leaves are written back. Failures only cost the "who holds it" report.
template <class Edit>
void EditHolders(const fs::path& dir, const std::string& name, const LockDirKind& kind, Edit edit) {
  auto opened = OpenLockFile(dir, name, /*writable=*/true, /*create=*/true, kind);
  if (!opened) {
    LogAt(LogLevel::kWarning, "cannot record the lease holder: ", opened.error().message());
    return;
  }
  const int fd = *opened;
  const fs::path path = dir / name;
  if (!FlockWithin(fd, LOCK_EX)) {
    LogAt(LogLevel::kWarning, "cannot record the lease holder in ", path.string(),
          ": another process has kept it locked for over ",
          std::chrono::seconds(kHoldersLockWait).count(), " s");
    ::close(fd);
    return;
  }
  std::string text;
  char buf[4096];
  for (ssize_t n; text.size() < kMaxHoldersBytes &&
                  (n = ::pread(fd, buf, sizeof buf, static_cast<off_t>(text.size()))) > 0;) {
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

std::string LockName(const std::string& id) { return id + ".lock"; }
std::string HoldersName(const std::string& id) { return id + ".holders"; }

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
  h.start_ticks = ProcessStartTicks(h.pid);
  h.host = HostName();
  h.run_id = run_id;
  h.since_ns = WallNowNs();
  h.exclusive = exclusive;
  return h;
}

Result<std::unique_ptr<DeviceLock>> DeviceLock::TryAcquire(const fs::path& lock_dir,
                                                           const std::string& device_id,
                                                           const LeaseHolder& holder,
                                                           const LockDirKind& kind) {
  const fs::path path = lock_dir / LockName(device_id);
  auto opened =
      OpenLockFile(lock_dir, LockName(device_id), /*writable=*/true, /*create=*/true, kind);
  if (!opened) {
    return Status(opened.error().code(),
                  "cannot lock " + device_id + ": " + opened.error().message());
  }
  const int fd = *opened;
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
  EditHolders(lock_dir, HoldersName(device_id), kind,
              [&](std::vector<LeaseHolder>& list) { list.push_back(holder); });
  return std::unique_ptr<DeviceLock>(new DeviceLock(fd, lock_dir, device_id, holder, kind));
}

DeviceLock::~DeviceLock() {
  // The record goes first: once the lock is dropped a newcomer must not find us listed.
  EditHolders(lock_dir_, HoldersName(device_id_), kind_, [&](std::vector<LeaseHolder>& list) {
    list.erase(std::remove_if(list.begin(), list.end(),
                              [&](const LeaseHolder& h) { return SameHolder(h, holder_); }),
               list.end());
  });
  if (fd_ >= 0) ::close(fd_);
}

std::vector<LeaseHolder> ReadHolders(const fs::path& lock_dir, const std::string& device_id) {
  std::vector<LeaseHolder> out;
  auto opened =
      OpenLockFile(lock_dir, HoldersName(device_id), /*writable=*/false, /*create=*/false);
  if (!opened) return out;
  const int fd = *opened;
  if (!FlockWithin(fd, LOCK_SH)) {
    ::close(fd);
    return out;
  }
  std::string text;
  char buf[4096];
  for (ssize_t n; text.size() < kMaxHoldersBytes && (n = ::read(fd, buf, sizeof buf)) > 0;) {
    text.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  const std::string this_host = HostName();
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    LeaseHolder h;
    if (Decode(line, h) && Alive(h, this_host)) out.push_back(h);
  }
  return out;
}

Status EnsureLockDir(const fs::path& dir, const LockDirKind& kind) {
  const std::string what = "the " + std::string(kind.what) + " " + dir.string();
  std::error_code ec;
  const bool existed = fs::is_directory(dir, ec);
  if (!existed) {
    fs::create_directories(dir, ec);
    if (ec && !fs::is_directory(dir)) {
      return FailedPreconditionError("cannot create " + what + ": " + ec.message() +
                                     "; create it (as root: mkdir -p -m 1777 " + dir.string() +
                                     ") or give a writable one with " + std::string(kind.option));
    }
  }
  auto opened = OpenLockDir(dir, kind);
  if (!opened) return opened.error();
  if (!existed) {
    // Shared by every user of the host, like /tmp: anyone may add lock files, nobody may
    // delete or rename another's. Changed on the descriptor that was checked.
    (void)::fchmod(*opened, 01777);
  }
  ::close(*opened);
  if (::access(dir.c_str(), W_OK | X_OK) != 0) {
    return FailedPreconditionError(what + " is not writable: " + std::strerror(errno) +
                                   "; give a writable one with " + std::string(kind.option));
  }
  return Status::OK();
}

fs::path DefaultLockDir() {
  // No fallback to a fixed name under /tmp: another user could create it first and own it.
  std::vector<fs::path> candidates = {"/run/bitfusion/devices"};
  if (const char* xdg = std::getenv("XDG_RUNTIME_DIR"); xdg != nullptr && xdg[0] == '/') {
    candidates.push_back(fs::path(xdg) / "bitfusion/devices");
  }
  for (const auto& dir : candidates) {
    if (EnsureLockDir(dir).ok()) return dir;
  }
  return candidates.front();  // EnsureLockDir's error then says how to create it
}

}  // namespace bitfusion
