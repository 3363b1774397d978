// Time: wall-clock and monotonic nanoseconds, deadlines, and duration strings ("10ms").
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "bitfusion/export.h"
#include "bitfusion/status.h"

namespace bitfusion {

/// A moment read from both clocks at once: wall time for people and stores (ns since the Unix
/// epoch, CLOCK_REALTIME), monotonic time for intervals (ns, CLOCK_MONOTONIC, same clock as
/// std::chrono::steady_clock on Linux).
struct Timestamp {
  std::int64_t wall_ns = 0;
  std::int64_t mono_ns = 0;
};

/// Both clocks, read back to back.
BITFUSION_EXPORT Timestamp Now();
BITFUSION_EXPORT std::int64_t WallNowNs();
BITFUSION_EXPORT std::int64_t MonoNowNs();

/// Every blocking call takes one. `kNoDeadline` waits forever.
using Deadline = std::chrono::steady_clock::time_point;
inline constexpr Deadline kNoDeadline = Deadline::max();

/// now + d, saturating at kNoDeadline.
BITFUSION_EXPORT Deadline DeadlineAfter(std::chrono::nanoseconds d);

/// "250ns", "100us", "10ms", "1.5s", "2m", "1h" (a bare number is seconds). Negative, empty or
/// unknown units are InvalidArgument with the text quoted.
BITFUSION_EXPORT Result<std::chrono::nanoseconds> ParseDuration(std::string_view text);

/// Shortest exact-ish human form: "10ms", "1.5s".
BITFUSION_EXPORT std::string FormatDuration(std::chrono::nanoseconds d);

}  // namespace bitfusion
