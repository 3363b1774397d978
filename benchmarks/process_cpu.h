// CPU time of a whole process, for benchmarks that weigh what another process (an engine, an
// sshd, a probe) spends on our behalf.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>

namespace bitfusion::bench {

/// CPU time process `pid` has used, in ns, summed over its threads'
/// /proc/PID/task/TID/schedstat (nanosecond run times; /proc/PID/stat counts 10 ms ticks, too
/// coarse for a few calls); -1 when unknown.
inline std::int64_t ProcessCpuNs(pid_t pid) {
  if (pid <= 0) return -1;
  std::int64_t total = 0;
  std::error_code ec;
  for (const auto& task :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    std::ifstream in(task.path() / "schedstat");
    std::int64_t run_ns = 0;
    if (in >> run_ns) total += run_ns;
  }
  return ec ? -1 : total;
}

}  // namespace bitfusion::bench
