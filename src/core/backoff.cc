#include "core/backoff.h"

#include <algorithm>
#include <cstdint>
#include <random>

namespace bitfusion::internal {

std::chrono::nanoseconds BackoffBound(std::chrono::nanoseconds initial,
                                      std::chrono::nanoseconds max, int attempt) {
  std::chrono::nanoseconds bound = std::max(initial, std::chrono::nanoseconds(0));
  for (int i = 1; i < attempt && bound < max; ++i) {
    bound = bound > max / 2 ? max : bound * 2;
  }
  return std::min(bound, max);
}

std::chrono::nanoseconds JitteredBackoff(std::chrono::nanoseconds initial,
                                         std::chrono::nanoseconds max, int attempt) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  const std::chrono::nanoseconds bound = BackoffBound(initial, max, attempt);
  if (bound.count() <= 0) return std::chrono::nanoseconds(0);
  std::uniform_int_distribution<std::int64_t> jitter(0, bound.count());
  return std::chrono::nanoseconds(jitter(rng));
}

}  // namespace bitfusion::internal
