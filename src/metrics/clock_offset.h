// A remote clock's offset from this host's, from four-timestamp exchanges as NTP makes them
// (RFC 5905, section 8): this host sends at t1 (its clock), the remote receives at t2 and answers
// at t3 (its clock), this host receives at t4. Then
//
//   offset = ((t2 - t1) + (t3 - t4)) / 2     the remote clock minus this host's
//   delay  = (t4 - t1) - (t3 - t2)           the round trip, less the time the remote held it
//
// and the true offset lies within offset ± delay / 2 whatever the split of the delay between the
// two directions (each direction took between 0 and `delay`). Of several exchanges the one with
// the smallest delay is kept: it was disturbed least by queueing, and its bound is the tightest.
#pragma once

#include <cstdint>
#include <optional>
#include <span>

namespace bitfusion::internal {

struct ClockExchange {
  std::int64_t t1 = 0, t2 = 0, t3 = 0, t4 = 0;  ///< ns: t1, t4 on this host; t2, t3 remote
};

struct ClockOffset {
  std::int64_t offset_ns = 0;       ///< remote clock minus this host's
  std::int64_t delay_ns = 0;        ///< round trip of the exchange used
  std::int64_t uncertainty_ns = 0;  ///< delay / 2 (rounded up): the offset's error bound
  int exchanges = 0;                ///< usable exchanges it was chosen from

  /// A remote stamp on this host's clock.
  std::int64_t ToLocal(std::int64_t remote_ns) const { return remote_ns - offset_ns; }
};

/// The estimate from one exchange; nullopt when its stamps are impossible (the remote held it
/// for a negative time, or the round trip is shorter than that hold).
inline std::optional<ClockOffset> OffsetOf(const ClockExchange& e) {
  if (e.t3 < e.t2 || e.t4 < e.t1) return std::nullopt;
  const std::int64_t delay = (e.t4 - e.t1) - (e.t3 - e.t2);
  if (delay < 0) return std::nullopt;
  ClockOffset o;
  // Halving each difference before adding keeps far-apart clocks from overflowing.
  const std::int64_t a = e.t2 - e.t1, b = e.t3 - e.t4;
  o.offset_ns = a / 2 + b / 2 + (a % 2 + b % 2) / 2;
  o.delay_ns = delay;
  o.uncertainty_ns = (delay + 1) / 2;
  o.exchanges = 1;
  return o;
}

/// The minimum-delay exchange's estimate; nullopt when none is usable.
inline std::optional<ClockOffset> EstimateClockOffset(std::span<const ClockExchange> exchanges) {
  std::optional<ClockOffset> best;
  int usable = 0;
  for (const ClockExchange& e : exchanges) {
    const auto o = OffsetOf(e);
    if (!o) continue;
    ++usable;
    if (!best || o->delay_ns < best->delay_ns) best = o;
  }
  if (best) best->exchanges = usable;
  return best;
}

}  // namespace bitfusion::internal
