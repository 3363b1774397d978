// The NTP-style offset arithmetic of host+ssh:// (src/metrics/clock_offset.h), on crafted
// timestamps: a remote clock ahead or behind, asymmetric paths, and the choice of the
// minimum-delay exchange.
#include "metrics/clock_offset.h"

#include <gtest/gtest.h>

#include <vector>

namespace bitfusion::internal {
namespace {

// An exchange with a remote clock `offset` ahead of this host's, `out` ns on the way there,
// `hold` ns on the remote, `back` ns on the way back; t1 on this host's clock.
ClockExchange Exchange(std::int64_t t1, std::int64_t offset, std::int64_t out, std::int64_t hold,
                       std::int64_t back) {
  const std::int64_t t2 = t1 + out + offset;
  const std::int64_t t3 = t2 + hold;
  const std::int64_t t4 = t1 + out + hold + back;
  return {t1, t2, t3, t4};
}

TEST(ClockOffsetTest, SymmetricPathsGiveTheExactOffset) {
  for (std::int64_t offset : {0LL, 5'000'000LL, -3'000'000'000LL}) {
    const auto o = OffsetOf(Exchange(1'000'000'000'000, offset, 200'000, 30'000, 200'000));
    ASSERT_TRUE(o.has_value());
    EXPECT_EQ(o->offset_ns, offset);
    EXPECT_EQ(o->delay_ns, 400'000);  // the remote's 30 us hold is not part of the delay
    EXPECT_EQ(o->uncertainty_ns, 200'000);
  }
}

TEST(ClockOffsetTest, AsymmetricPathsErrByHalfTheDifferenceWithinTheBound) {
  // 900 us out, 100 us back: the estimate is off by (900 - 100) / 2 = 400 us, which the
  // uncertainty (delay / 2 = 500 us) covers.
  const std::int64_t offset = 7'000'000;
  const auto o = OffsetOf(Exchange(5'000'000'000, offset, 900'000, 10'000, 100'000));
  ASSERT_TRUE(o.has_value());
  EXPECT_EQ(o->offset_ns, offset + 400'000);
  EXPECT_EQ(o->delay_ns, 1'000'000);
  EXPECT_EQ(o->uncertainty_ns, 500'000);
  EXPECT_LE(std::abs(o->offset_ns - offset), o->uncertainty_ns);
  // Mapping a remote stamp back: the remote's receive time t2 lands between t1 and t4.
  const ClockExchange e = Exchange(5'000'000'000, offset, 900'000, 10'000, 100'000);
  EXPECT_GE(o->ToLocal(e.t2), e.t1);
  EXPECT_LE(o->ToLocal(e.t3), e.t4);
}

TEST(ClockOffsetTest, TheMinimumDelayExchangeIsKept) {
  const std::int64_t offset = -42'000'000;
  std::vector<ClockExchange> exchanges = {
      Exchange(1'000'000'000, offset, 3'000'000, 5'000, 100'000),  // queued on the way out
      Exchange(2'000'000'000, offset, 150'000, 5'000, 160'000),    // the quiet one
      Exchange(3'000'000'000, offset, 100'000, 5'000, 2'500'000),  // queued on the way back
  };
  const auto best = EstimateClockOffset(exchanges);
  ASSERT_TRUE(best.has_value());
  EXPECT_EQ(best->delay_ns, 310'000);
  EXPECT_EQ(best->offset_ns, offset - 5'000);  // (150 - 160) / 2 us off
  EXPECT_EQ(best->uncertainty_ns, 155'000);
  EXPECT_EQ(best->exchanges, 3);
}

TEST(ClockOffsetTest, ImpossibleStampsAreSkipped) {
  // The remote answered before it received, and a round trip shorter than the remote's hold.
  const ClockExchange backwards{100, 500, 400, 900};
  const ClockExchange too_short{100, 1'000, 2'000, 200};
  EXPECT_FALSE(OffsetOf(backwards).has_value());
  EXPECT_FALSE(OffsetOf(too_short).has_value());
  EXPECT_FALSE(EstimateClockOffset(std::vector<ClockExchange>{backwards, too_short}).has_value());
  const auto one = EstimateClockOffset(
      std::vector<ClockExchange>{backwards, Exchange(10'000, 50, 10, 0, 10), too_short});
  ASSERT_TRUE(one.has_value());
  EXPECT_EQ(one->offset_ns, 50);
  EXPECT_EQ(one->exchanges, 1);
  // An odd delay rounds the bound up, never under the true error.
  const auto odd = OffsetOf(Exchange(0, 0, 1, 0, 2));
  ASSERT_TRUE(odd.has_value());
  EXPECT_EQ(odd->delay_ns, 3);
  EXPECT_EQ(odd->uncertainty_ns, 2);
}

}  // namespace
}  // namespace bitfusion::internal
