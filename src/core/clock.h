// Clock readings for the library's own use, beside the public ones of bitfusion/clock.h (both
// are implemented in clock.cc).
#pragma once

#include <cstdint>

namespace bitfusion::internal {

/// The calling thread's CPU time (CLOCK_THREAD_CPUTIME_ID) in ns; 0 when it cannot be read.
/// What a source's background work costs: read before and after the work, on its thread.
std::int64_t ThreadCpuNs();

}  // namespace bitfusion::internal
