#include "core/proc_pid_stat.h"

#include <gtest/gtest.h>
#include <unistd.h>

namespace bitfusion::internal {
namespace {

TEST(ProcPidStatTest, ReadsTheFieldsAfterTheLastParenthesis) {
  // A command name holding ") " and spaces must not shift the fields.
  const std::string line =
      "4242 (we ird) (x) S 17 4242 4242 0 -1 4194560 120 0 0 0 7 3 2 1 20 0 3 0 100 "
      "9000000 250 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
  auto st = ParseProcPidStat(line);
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->state, 'S');
  EXPECT_EQ(st->ppid, 17);
  EXPECT_EQ(st->cpu_ticks, 7 + 3 + 2 + 1);
  EXPECT_EQ(st->threads, 3);
  EXPECT_EQ(st->rss_pages, 250);
  EXPECT_EQ(st->start_ticks, 100u);
}

TEST(ProcPidStatTest, ThisProcessIsReadFromProc) {
  auto st = ParseProcPidStat(ReadProcPidStat(static_cast<int>(::getpid())));
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->state, 'R');
  EXPECT_EQ(st->ppid, ::getppid());
  EXPECT_GT(st->start_ticks, 0u);
  EXPECT_GE(st->threads, 1);
  EXPECT_EQ(ReadProcPidStat(-1), "");
}

TEST(ProcPidStatTest, RefusesWhatIsNotAStatLine) {
  EXPECT_FALSE(ParseProcPidStat("").has_value());
  EXPECT_FALSE(ParseProcPidStat("12 (sh) S 1 2 3").has_value());
  EXPECT_FALSE(ParseProcPidStat("no parenthesis at all").has_value());
  EXPECT_FALSE(
      ParseProcPidStat("1 (sh) S 1 1 1 0 -1 0 0 0 0 0 x 3 2 1 20 0 3 0 1 2 250").has_value());
}

}  // namespace
}  // namespace bitfusion::internal
