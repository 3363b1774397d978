// The checks of a ContainerSpec that mean the same whichever runner runs it (process://,
// docker://), kept once so that both refuse the same mistakes with the same words.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "bitfusion/status.h"

namespace bitfusion::internal {

/// InvalidArgument naming the first variable whose name is empty or holds '=' or a NUL byte.
Status CheckEnvironmentNames(const std::map<std::string, std::string>& env);

/// One item of a CPU list: CPUs first..last (equal for a single CPU).
struct CpuRange {
  unsigned first = 0;
  unsigned last = 0;
};

/// Parses a cpuset like "0-3,6" (ranges ascending inside each item); InvalidArgument naming the
/// cpuset for anything else, the empty string included.
Result<std::vector<CpuRange>> ParseCpuList(const std::string& cpuset);

/// InvalidArgument when ContainerSpec::timeout_ns is negative.
Status CheckTimeout(std::int64_t timeout_ns);

}  // namespace bitfusion::internal
