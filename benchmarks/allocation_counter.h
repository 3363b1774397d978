// Counts every allocation in a benchmark program (allocation_counter.cc replaces the global
// operator new), so a benchmark can show that a Collect in the steady state allocates nothing,
// and how much heap an operation needs at its peak.
#pragma once

#include <cstdint>

namespace bitfusion::bench {

/// Allocations made by this program so far, from any thread.
std::int64_t Allocations();

/// Bytes allocated with operator new and not yet freed (malloc_usable_size of each block).
std::int64_t LiveBytes();
/// The most LiveBytes() has been since the last ResetPeakBytes() (or the start).
std::int64_t PeakBytes();
/// Starts a new peak at the current LiveBytes().
void ResetPeakBytes();

}  // namespace bitfusion::bench
