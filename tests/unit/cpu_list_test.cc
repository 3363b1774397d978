// The kernel's CPU lists, as cpusets are checked and as a host's online CPUs are counted.
#include "core/cpu_list.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace bitfusion::internal {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(CpuListTest, ParsesRangesAndSingleCpus) {
  auto r = ParseCpuList("0-3,6,8-9");
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  ASSERT_EQ(r->size(), 3u);
  EXPECT_EQ((*r)[0].first, 0u);
  EXPECT_EQ((*r)[0].last, 3u);
  EXPECT_EQ((*r)[1].first, 6u);
  EXPECT_EQ((*r)[1].last, 6u);
  EXPECT_EQ((*r)[2].first, 8u);
  EXPECT_EQ((*r)[2].last, 9u);
}

TEST(CpuListTest, RefusesWhatIsNotAListAndNamesIt) {
  for (const char* bad : {"", ",", "0,", "3-1", "a", "0-", "-1", "1 ", "0-3,,4", "99999999999"}) {
    auto r = ParseCpuList(bad);
    ASSERT_FALSE(r.ok()) << '"' << bad << '"';
    EXPECT_THAT(r.error().message(), HasSubstr(std::string("\"") + bad + "\""));
    EXPECT_THAT(r.error().message(), HasSubstr("0-3,6"));
  }
}

TEST(CpuListTest, IdsAreAscendingAndCountedOnce) {
  EXPECT_THAT(CpuIds("0-3").value(), ElementsAre(0u, 1u, 2u, 3u));
  EXPECT_THAT(CpuIds("5,0-2,1-3").value(), ElementsAre(0u, 1u, 2u, 3u, 5u));
  EXPECT_THAT(CpuIds("7,7,7").value(), ElementsAre(7u));
  EXPECT_EQ(CpuIds("0-8191")->size(), 8192u);
}

// A list beyond any Linux machine (from a remote host) is not expanded.
TEST(CpuListTest, IdsRefuseCpusNoMachineHasAndBadLists) {
  EXPECT_FALSE(CpuIds("0-8192").has_value());
  EXPECT_FALSE(CpuIds("8192").has_value());
  EXPECT_FALSE(CpuIds("0-4294967295").has_value());
  EXPECT_FALSE(CpuIds("0-3,x").has_value());
  EXPECT_FALSE(CpuIds("").has_value());
}

}  // namespace
}  // namespace bitfusion::internal
