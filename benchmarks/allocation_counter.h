// Counts every allocation in a benchmark program (allocation_counter.cc replaces the global
// operator new), so a benchmark can show that a Collect in the steady state allocates nothing.
#pragma once

#include <cstdint>

namespace bitfusion::bench {

/// Allocations made by this program so far, from any thread.
std::int64_t Allocations();

}  // namespace bitfusion::bench
