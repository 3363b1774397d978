#include "bitfusion/clock.h"

#include <gtest/gtest.h>

#include "core/rfc3339.h"

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

namespace bitfusion::internal {
namespace {

TEST(Rfc3339Test, ReadsWhatDockerEc2AwsAndKeystoneSend) {
  constexpr std::int64_t k2026 = 1'795'585'461;  // 2026-11-25T05:44:21Z
  EXPECT_EQ(ParseRfc3339("2026-11-25T05:44:21Z"), k2026 * 1'000'000'000);
  EXPECT_EQ(ParseRfc3339("2026-11-25T05:44:21.607427873Z"), k2026 * 1'000'000'000 + 607427873);
  EXPECT_EQ(ParseRfc3339("2026-11-25T05:44:21.000Z"), k2026 * 1'000'000'000);  // EC2
  EXPECT_EQ(ParseRfc3339("2026-11-25T05:44:21.1234567891234Z"),  // past nine digits: cut
            k2026 * 1'000'000'000 + 123456789);
  EXPECT_EQ(ParseRfc3339("2026-11-25T07:44:21+02:00"), k2026 * 1'000'000'000);
  EXPECT_EQ(ParseRfc3339("2026-11-24T23:44:21-0600"), k2026 * 1'000'000'000);  // SoftLayer
  EXPECT_EQ(ParseRfc3339("2026-11-25T05:44:21.500000"), k2026 * 1'000'000'000 + 500'000'000);
  EXPECT_EQ(ParseRfc3339("2026-11-25t05:44:21z"), k2026 * 1'000'000'000);
  EXPECT_EQ(ParseRfc3339("1970-01-01T00:00:00Z"), 0);
  EXPECT_FALSE(ParseRfc3339("0001-01-01T00:00:00Z"));  // Docker's zero time: past ns range
  EXPECT_EQ(ParseRfc3339Seconds("2999-01-01T00:00:00Z"), 32'472'144'000);
  EXPECT_EQ(ParseRfc3339Seconds("2026-11-25T05:44:21.9Z"), k2026);
}

TEST(Rfc3339Test, RefusesWhatIsNotOne) {
  for (const char* bad :
       {"", "2026-11-25", "2026-11-25 05:44:21Z", "2026-13-25T05:44:21Z", "2026-02-30T05:44:21Z",
        "2026-11-25T24:00:00Z", "2026-11-25T05:44:21.Z", "2026-11-25T05:44:21+2:00",
        "2026-11-25T05:44:21 UTC", "2026-11-25T05:44:21+02:00x", "2O26-11-25T05:44:21Z"}) {
    EXPECT_FALSE(ParseRfc3339(bad).has_value()) << bad;
  }
}

}  // namespace
}  // namespace bitfusion::internal
