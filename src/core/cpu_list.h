// The kernel's CPU lists ("0-3,8-11"): cpusets, /sys/devices/system/cpu/online and the like.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "bitfusion/status.h"

namespace bitfusion::internal {

/// One item of a CPU list: CPUs first..last (equal for a single CPU).
struct CpuRange {
  unsigned first = 0;
  unsigned last = 0;
};

/// The most CPUs a Linux kernel is built for (NR_CPUS with x86-64's MAXSMP); a list naming a CPU
/// numbered this or above does not describe a real machine.
inline constexpr unsigned kMaxLinuxCpus = 8192;

/// Parses a cpuset like "0-3,6" (ranges ascending inside each item); InvalidArgument naming the
/// cpuset for anything else, the empty string included.
Result<std::vector<CpuRange>> ParseCpuList(const std::string& cpuset);

/// The CPUs a list names, ascending and each once ("0-3,2-5" is six); nullopt when it is not a
/// list or names a CPU numbered kMaxLinuxCpus or above (a remote host's list is not trusted to
/// be bounded).
std::optional<std::vector<unsigned>> CpuIds(const std::string& list);

}  // namespace bitfusion::internal
