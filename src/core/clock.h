// Clock readings for the library's own use, beside the public ones of bitfusion/clock.h (both
// are implemented in clock.cc).
#pragma once

#include <cstdint>

namespace bitfusion::internal {

/// The calling thread's CPU time (CLOCK_THREAD_CPUTIME_ID) in ns; 0 when it cannot be read.
/// What a source's background work costs: read before and after the work, on its thread.
std::int64_t ThreadCpuNs();

/// Milliseconds from now to `deadline_mono_ns` (CLOCK_MONOTONIC) for poll(2): rounded up, 0 once
/// past, at most a minute per call (a caller polling in a loop checks its deadline again).
int PollMsUntil(std::int64_t deadline_mono_ns);

}  // namespace bitfusion::internal
