// The one backoff formula (core/backoff.h) that the HTTP client, the cloud provisioners, the
// Docker event stream and the sinks share.
#include "core/backoff.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>

#include "net/http_client.h"

namespace bitfusion::internal {
namespace {

using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using std::chrono::seconds;

TEST(BackoffTest, TheBoundDoublesFromInitialUpToMax) {
  EXPECT_EQ(BackoffBound(milliseconds(100), seconds(30), 1), milliseconds(100));
  EXPECT_EQ(BackoffBound(milliseconds(100), seconds(30), 0), milliseconds(100));
  EXPECT_EQ(BackoffBound(milliseconds(100), seconds(30), -7), milliseconds(100));
  EXPECT_EQ(BackoffBound(milliseconds(100), seconds(30), 2), milliseconds(200));
  EXPECT_EQ(BackoffBound(milliseconds(100), seconds(30), 9), milliseconds(25'600));
  EXPECT_EQ(BackoffBound(milliseconds(100), seconds(30), 10), seconds(30));
  // No overflow however long the outage or large the bounds.
  EXPECT_EQ(BackoffBound(milliseconds(100), seconds(30), 1'000'000), seconds(30));
  EXPECT_EQ(BackoffBound(std::chrono::hours(1), nanoseconds::max(), 200), nanoseconds::max());
  EXPECT_EQ(BackoffBound(seconds(5), seconds(1), 1), seconds(1));
}

TEST(BackoffTest, WaitsAreFullJitterBelowTheBound) {
  for (int attempt = 1; attempt < 14; ++attempt) {
    const nanoseconds bound = BackoffBound(milliseconds(100), seconds(30), attempt);
    nanoseconds lowest = bound;
    nanoseconds highest{0};
    for (int k = 0; k < 200; ++k) {
      const nanoseconds wait = JitteredBackoff(milliseconds(100), seconds(30), attempt);
      ASSERT_GE(wait.count(), 0);
      ASSERT_LE(wait, bound);
      lowest = std::min(lowest, wait);
      highest = std::max(highest, wait);
    }
    // 200 uniform draws all in one half: a chance of 2^-199.
    EXPECT_LT(lowest, bound / 2) << "attempt " << attempt;
    EXPECT_GT(highest, bound / 2) << "attempt " << attempt;
  }
  EXPECT_EQ(JitteredBackoff(nanoseconds(0), seconds(1), 3), nanoseconds(0));
}

TEST(BackoffTest, TheHttpRetryPolicyUsesTheSameFormulaInMilliseconds) {
  net::RetryPolicy policy;
  policy.initial_backoff = milliseconds(100);
  policy.max_backoff = milliseconds(1'000);
  for (int attempt = 1; attempt < 8; ++attempt) {
    for (int k = 0; k < 50; ++k) {
      const milliseconds wait = net::JitteredBackoff(policy, attempt);
      EXPECT_GE(wait.count(), 0);
      EXPECT_LE(wait, BackoffBound(policy.initial_backoff, policy.max_backoff, attempt));
    }
  }
}

}  // namespace
}  // namespace bitfusion::internal
