// One benchmark execution, end to end.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "bitfusion/container.h"
#include "bitfusion/export.h"
#include "bitfusion/machine.h"
#include "bitfusion/sample.h"

namespace bitfusion {

/// What the observers (metric streams) cost while a run was measured.
struct ObserverOverhead {
  std::int64_t cpu_ns =
      0;  ///< CPU time of sampling and delivery, and of sources' own threads and probes
  std::int64_t samples = 0;          ///< samples taken
  std::int64_t samples_dropped = 0;  ///< samples lost to a full queue (never silently)
  std::int64_t interval_ns = 0;      ///< the sampling interval
};

/// Outcome words used in RunRecord::status.
inline constexpr const char* kRunOk = "ok";
inline constexpr const char* kRunFailed = "failed";  ///< non-zero exit or signal
inline constexpr const char* kRunTimedOut = "timed_out";
inline constexpr const char* kRunInterrupted = "interrupted";  ///< Ctrl-C / cancelled
inline constexpr const char* kRunError = "error";              ///< could not be started

struct RunRecord {
  std::string run_id;       ///< unique (128 random bits, hex)
  std::string plan;         ///< name of the plan it belongs to
  std::string plan_run_id;  ///< id shared by every run of one plan execution
  std::string benchmark;
  int repetition = 0;  ///< 0-based among measured runs; warm-ups count separately
  bool warmup = false;
  std::string runner;  ///< runner URI (redacted)
  std::vector<std::string> command;
  std::string image;
  std::string image_digest;  ///< for container runs
  MachineInfo machine;       ///< fingerprint of where it ran
  std::string status = kRunOk;
  std::string error;  ///< why, when status is not ok
  ExitStatus exit;
  std::vector<Sample> results;  ///< metrics the benchmark reported, plus wall_time
  ObserverOverhead overhead;
  Labels labels;
};

/// 128 random bits from the kernel (getrandom), as 32 lower-case hex digits.
BITFUSION_EXPORT std::string NewRunId();

}  // namespace bitfusion
