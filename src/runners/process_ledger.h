// The ledger of the process groups process:// starts: one small file per group under
// StateDir()/processes, written right after the group's leader starts and removed once the
// group is ended and reaped. A bitfusion killed with SIGKILL (or by the kernel) cannot end its
// groups, and posix_spawn cannot give them PR_SET_PDEATHSIG; the ledger lets the next plan on
// this host, or `bitfusion reap --runner process://`, find and end them, as labels do for
// Docker containers. An entry holds the group id, its leader's start time (so a reused pid is
// never mistaken for it) and the owner labels (creator, host, pid and its start, boot id, run
// id); ReapReason decides, as for every other kind of object.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>

#include "bitfusion/container_runner.h"
#include "bitfusion/ownership.h"

namespace bitfusion::internal {

class ProcessLedger {
 public:
  /// Records group `pgid`, whose leader has just started, with the owner labels of this process
  /// and `labels` (e.g. the run id). Returns the entry's path; empty when no entry could be
  /// written (no state directory): that is logged once and the process runs unrecorded.
  static std::filesystem::path Record(pid_t pgid, const Labels& labels, const std::string& what);
  /// A kept process outlives its handle: its entry loses the creator-process labels, so that
  /// reaping takes it only by run id (or expiry), not when this process ends.
  static void Keep(const std::filesystem::path& entry);
  /// The group has ended and its leader was reaped.
  static void Remove(const std::filesystem::path& entry);
  /// Ends the groups whose entries `policy` says were left behind (SIGKILL to each member that
  /// started no earlier than the leader), and drops entries of groups that are gone.
  static Result<ReapReport> Reap(const ReapPolicy& policy);
  /// StateDir()/processes.
  static Result<std::filesystem::path> Dir();
};

}  // namespace bitfusion::internal
