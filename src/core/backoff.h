// The library's one backoff formula, for every retry loop (HTTP requests, event stream
// reconnects, cloud API polling, a sink's failing store): exponential, capped, with full
// jitter so that many clients do not retry in step.
#pragma once

#include <chrono>

namespace bitfusion::internal {

/// The wait before the retry that follows failed attempt `attempt` (1 = the first): a random
/// duration from 0 up to min(max, initial * 2^(attempt-1)) ("full jitter"; see the AWS
/// Architecture Blog, "Exponential Backoff And Jitter"). Attempts below 1 count as 1; the
/// doubling saturates at `max` (no overflow however many attempts).
std::chrono::nanoseconds JitteredBackoff(std::chrono::nanoseconds initial,
                                         std::chrono::nanoseconds max, int attempt);

/// The bound JitteredBackoff draws below: min(max, initial * 2^(attempt-1)).
std::chrono::nanoseconds BackoffBound(std::chrono::nanoseconds initial,
                                      std::chrono::nanoseconds max, int attempt);

}  // namespace bitfusion::internal
