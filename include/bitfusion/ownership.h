// Who made a resource, and when it may be reaped: the labels (Docker) and tags (clouds) that
// every runner and provisioner puts on what it creates, and the one rule that decides whether
// a labelled resource was left behind. Shared by ContainerRunner::Reap, Provisioner::Reap and
// `bitfusion reap`.
#pragma once

#include <cstdint>
#include <string>

#include "bitfusion/export.h"
#include "bitfusion/sample.h"

namespace bitfusion {

inline constexpr const char* kLabelCreator = "bitfusion.creator";  ///< "bitfusion"
inline constexpr const char* kLabelRunId = "bitfusion.run_id";     ///< the owning run
inline constexpr const char* kLabelExpires = "bitfusion.expires";  ///< unix seconds
inline constexpr const char* kLabelHost = "bitfusion.host";        ///< creating host's name
inline constexpr const char* kLabelPid = "bitfusion.pid";          ///< creating process
/// Start time of the creating process (clock ticks since boot, /proc/PID/stat field 22): tells
/// a live creator from an unrelated process that reused its PID.
inline constexpr const char* kLabelPidStart = "bitfusion.pid_start";
/// /proc/sys/kernel/random/boot_id of the creating host: after a reboot every creator is gone,
/// whatever process now has its PID and start time.
inline constexpr const char* kLabelBootId = "bitfusion.boot_id";
/// The creating process's PID namespace (the inode of /proc/self/ns/pid): a PID is only
/// checked from the namespace it was taken in, so two containers that share a host name (and
/// an engine) never judge each other's PIDs.
inline constexpr const char* kLabelPidNs = "bitfusion.pid_ns";
/// The labels that name the creating process. A resource handed over (kept past its creator,
/// or given to its run id) loses them, so only its run id and expiry decide its end.
inline constexpr const char* kCreatorProcessLabels[] = {kLabelPid, kLabelPidStart, kLabelBootId,
                                                        kLabelPidNs};

/// The process that creates resources, as the labels name it.
struct OwnerIdentity {
  std::string host;             ///< gethostname()
  int pid = 0;                  ///< getpid()
  std::uint64_t pid_start = 0;  ///< clock ticks after boot; 0 when /proc cannot be read
  std::string boot_id;          ///< empty when the kernel does not say
  std::string pid_ns;           ///< inode of /proc/self/ns/pid; empty when unreadable

  /// This process (read once, then cached).
  BITFUSION_EXPORT static const OwnerIdentity& Self();
};

/// The labels that mark a new resource as this process's: creator, run id, host, pid, pid
/// start, boot id, pid namespace, and expiry = now + ttl_s (unix seconds; ttl_s <= 0 leaves expiry
/// out).
BITFUSION_EXPORT Labels OwnerLabels(const std::string& run_id, std::int64_t ttl_s);

/// Which leftovers Reap removes. Objects without bitfusion's creator label are never touched.
struct ReapPolicy {
  /// Objects whose creating process (on this host) no longer runs.
  bool dead_creators = true;
  /// Objects past their expiry label that were created on this host (or on no known host).
  bool expired = true;
  /// Also expired objects created on other hosts (a shared remote engine, a cloud account).
  bool expired_any_host = false;
  /// When non-empty, only objects of this run id, whatever their creator's state.
  std::string run_id;
  /// Report what would be removed without removing it.
  bool dry_run = false;
};

/// Why an object carrying `labels` should be reaped under `policy` at `now_s` (unix seconds),
/// e.g. "its creator, process 42, is gone" or "expired 30 s ago"; empty = keep it. Objects
/// without kLabelCreator = "bitfusion" are always kept.
BITFUSION_EXPORT std::string ReapReason(const Labels& labels, const ReapPolicy& policy,
                                        std::int64_t now_s);

/// Start time of process `pid` in clock ticks after boot (/proc/PID/stat field 22); 0 if gone.
BITFUSION_EXPORT std::uint64_t ProcessStartTicks(int pid);

/// Whether process `pid` with start time `start_ticks` still runs on this host (a different
/// process that reused the PID does not count, nor does a zombie; start_ticks 0 skips the start
/// time check). A process that exists but whose /proc entry cannot be read (/proc mounted with
/// hidepid, another user's process) counts as alive: nothing proves it gone.
BITFUSION_EXPORT bool ProcessAlive(int pid, std::uint64_t start_ticks);

}  // namespace bitfusion
