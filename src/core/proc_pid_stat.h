// /proc/PID/stat as text: what a runner reads of one process for Container::Stats (whether it
// reads the file itself or receives it from another host, process+ssh://), and what tells a
// live process from a zombie or a reused PID (ownership, device leases). The one reader of it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace bitfusion::internal {

struct ProcPidStat {
  char state = '?';               ///< 'R', 'S', 'Z' (exited, not yet reaped), ...
  std::int64_t ppid = 0;          ///< the parent's PID
  std::int64_t cpu_ticks = 0;     ///< utime + stime + cutime + cstime, in clock ticks
  std::int64_t threads = 0;       ///< num_threads
  std::int64_t rss_pages = 0;     ///< resident set, in pages
  std::uint64_t start_ticks = 0;  ///< starttime: clock ticks after boot (with the PID, an identity)
};

/// The fields above from one /proc/PID/stat line; nullopt when it is not one. The command name
/// (in parentheses) may hold any byte, so fields are counted from the last ')'.
std::optional<ProcPidStat> ParseProcPidStat(std::string_view text);

/// This host's /proc/PID/stat text; empty when it cannot be read (no such process, hidepid).
std::string ReadProcPidStat(int pid);

}  // namespace bitfusion::internal
