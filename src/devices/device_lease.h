// Cross-process device locks: flock(2) on <lock_dir>/<device id>.lock, LOCK_EX for exclusive
// leases and LOCK_SH for shared ones. The kernel drops a flock when its holder's last
// descriptor closes, so a crashed holder's lease frees itself. Who holds what is written to
// <lock_dir>/<device id>.holders (one line per holder, edited under its own flock), so a
// refused request can say who holds the rest.
//
// The lock directory is shared by every user of the host, so nothing in it is trusted: it
// must be owned by root or by this user and, when others may write to it, carry the sticky
// bit; files in it are opened with O_NOFOLLOW and used only when they are regular files with a
// single link, so a symlink, hard link or FIFO another user planted there cannot make a lease
// write to (or hang on) anything else. The holders file's flock is waited for with a deadline
// (a few seconds), never forever: a user who holds it only loses the "who holds it" report.
//
// Lock files are never removed. Unlinking a flock file races: a process that opened it just
// before the unlink locks the old inode while the next one creates and locks a new file, and
// both believe they hold the device. An empty file per device is the price of that guarantee.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "bitfusion/status.h"

namespace bitfusion {

/// One holder of a device, as recorded in its .holders file.
struct LeaseHolder {
  int pid = 0;
  std::uint64_t start_ticks = 0;  ///< /proc/PID/stat starttime: tells a live holder from PID reuse
  std::string host;
  std::string run_id;         ///< empty = not given
  std::int64_t since_ns = 0;  ///< wall clock
  bool exclusive = true;

  /// "pid 4242 on gpu-host-1 (run r-1f2e, exclusive) since 2024-05-01T10:00:00Z"
  std::string ToString() const;
};

/// What a lock directory is for and the setting that moves it, both named in errors about it.
struct LockDirKind {
  std::string_view what;    ///< e.g. "device lock directory"
  std::string_view option;  ///< e.g. "?lock_dir=DIR in the allocator URI"
};
/// A device allocator's (gpu://, sysfs://, fpga://).
inline constexpr LockDirKind kDeviceLockDir = {"device lock directory",
                                               "?lock_dir=DIR in the allocator URI"};

/// This process as a holder, now.
LeaseHolder CurrentHolder(const std::string& run_id, bool exclusive);

/// A held flock on one device's lock file. Destroying it removes this holder's record and
/// closes the descriptor, which releases the lock. Descriptors are close-on-exec, so programs a
/// holder starts do not keep its leases alive.
class DeviceLock {
 public:
  /// Takes the lock without waiting. ResourceExhausted (naming the current holders) when
  /// another holder has it in a conflicting mode; IOError/PermissionDenied when the lock file
  /// cannot be opened.
  /// `kind` names the directory and the setting that moves it, for the errors that say so.
  static Result<std::unique_ptr<DeviceLock>> TryAcquire(const std::filesystem::path& lock_dir,
                                                        const std::string& device_id,
                                                        const LeaseHolder& holder,
                                                        const LockDirKind& kind = kDeviceLockDir);
  ~DeviceLock();
  DeviceLock(const DeviceLock&) = delete;
  DeviceLock& operator=(const DeviceLock&) = delete;

  const std::string& device_id() const { return device_id_; }

 private:
  DeviceLock(int fd, std::filesystem::path lock_dir, std::string device_id, LeaseHolder holder,
             const LockDirKind& kind)
      : fd_(fd),
        lock_dir_(std::move(lock_dir)),
        device_id_(std::move(device_id)),
        holder_(std::move(holder)),
        kind_(kind) {}

  int fd_ = -1;
  std::filesystem::path lock_dir_;
  std::string device_id_;
  LeaseHolder holder_;
  LockDirKind kind_;  // views of string literals
};

/// The live holders of `device_id` (records of processes that have exited are ignored).
std::vector<LeaseHolder> ReadHolders(const std::filesystem::path& lock_dir,
                                     const std::string& device_id);

/// /run/bitfusion/devices when it can be created and written, else $XDG_RUNTIME_DIR/bitfusion/
/// devices (then only this user's processes see each other's leases), else
/// /run/bitfusion/devices anyway, so that EnsureLockDir's error says how to create it. There is
/// no fallback under /tmp: another user could create that directory first. A directory created
/// here is made world-writable with the sticky bit (like /tmp), so every user shares one set
/// of locks.
std::filesystem::path DefaultLockDir();

/// Creates `dir` (and parents) if needed and checks it can be trusted: owned by root or this
/// user, sticky when others may write to it. FailedPrecondition saying what to do when it
/// cannot be created or written; PermissionDenied when it is another user's or not sticky.
/// `kind` names the directory and the setting that moves it (static://'s host leases use
/// their own).
Status EnsureLockDir(const std::filesystem::path& dir, const LockDirKind& kind = kDeviceLockDir);

}  // namespace bitfusion
