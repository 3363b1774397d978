#include "bitfusion/clock.h"

#include <gtest/gtest.h>

namespace bitfusion {
namespace {

using std::chrono::nanoseconds;

TEST(ClockTest, ParseDuration) {
  EXPECT_EQ(*ParseDuration("10ms"), nanoseconds(10'000'000));
  EXPECT_EQ(*ParseDuration("1.5s"), nanoseconds(1'500'000'000));
  EXPECT_EQ(*ParseDuration("2"), nanoseconds(2'000'000'000));
  EXPECT_EQ(*ParseDuration("250ns"), nanoseconds(250));
  EXPECT_EQ(*ParseDuration("100us"), nanoseconds(100'000));
  EXPECT_EQ(*ParseDuration("2m"), nanoseconds(120'000'000'000));
  EXPECT_EQ(*ParseDuration("1h"), nanoseconds(3'600'000'000'000));
}

TEST(ClockTest, ParseDurationRejectsBadInput) {
  for (const char* bad : {"", "ms", "-1s", "10 parsecs", "1e300h", "nan"}) {
    auto r = ParseDuration(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().code(), StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_NE(ParseDuration("5parsecs").error().message().find("\"5parsecs\""), std::string::npos);
}

TEST(ClockTest, FormatDuration) {
  EXPECT_EQ(FormatDuration(nanoseconds(10'000'000)), "10ms");
  EXPECT_EQ(FormatDuration(nanoseconds(1'500'000'000)), "1.5s");
  EXPECT_EQ(FormatDuration(nanoseconds(0)), "0s");
  EXPECT_EQ(FormatDuration(nanoseconds(120'000'000'000)), "2m");
}

TEST(ClockTest, ClocksMove) {
  Timestamp a = Now();
  Timestamp b = Now();
  EXPECT_GT(a.wall_ns, 1'600'000'000'000'000'000);  // after 2020
  EXPECT_LE(a.mono_ns, b.mono_ns);
  EXPECT_EQ(DeadlineAfter(nanoseconds::max()), kNoDeadline);
  EXPECT_GT(DeadlineAfter(nanoseconds(1'000'000)), std::chrono::steady_clock::now());
}

}  // namespace
}  // namespace bitfusion
