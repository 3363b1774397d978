// core/spawn: starting a child with posix_spawn, and reaping it within a bound.
#include "core/spawn.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>

namespace bitfusion::internal {
namespace {

pid_t Start(const char* script) {
  SpawnSpec spec;
  spec.program = "/bin/sh";
  spec.argv = {"sh", "-c", script};
  auto pid = Spawn(spec);
  EXPECT_TRUE(pid.ok()) << pid.error().ToString();
  return pid.ok() ? *pid : -1;
}

TEST(SpawnTest, AMissingProgramIsNamed) {
  SpawnSpec spec;
  spec.program = "/nonexistent/bitfusion-no-such-program";
  spec.argv = {"x"};
  auto pid = Spawn(spec);
  ASSERT_FALSE(pid.ok());
  EXPECT_NE(pid.error().message().find("/nonexistent/bitfusion-no-such-program"), std::string::npos)
      << pid.error().message();
}

TEST(SpawnTest, ReapWithinCollectsAChildThatExitsInTime) {
  const pid_t pid = Start("sleep 0.05; exit 7");
  ASSERT_GT(pid, 0);
  const Reaped r = ReapWithin(pid, std::chrono::seconds(30));
  EXPECT_TRUE(r.reaped);
  EXPECT_FALSE(r.killed);
  ASSERT_TRUE(WIFEXITED(r.status));
  EXPECT_EQ(WEXITSTATUS(r.status), 7);
  EXPECT_EQ(::kill(pid, 0), -1) << "the pid is still there: not reaped";
}

TEST(SpawnTest, ReapWithinKillsAChildPastItsPatience) {
  const pid_t pid = Start("exec sleep 60");
  ASSERT_GT(pid, 0);
  const Reaped r = ReapWithin(pid, std::chrono::milliseconds(50));
  EXPECT_TRUE(r.reaped);
  EXPECT_TRUE(r.killed);
  ASSERT_TRUE(WIFSIGNALED(r.status));
  EXPECT_EQ(WTERMSIG(r.status), SIGKILL);
  EXPECT_EQ(::kill(pid, 0), -1) << "the pid is still there: not reaped";
}

TEST(SpawnTest, ReapWithinWithNoPatienceKillsAtOnce) {
  const pid_t pid = Start("exec sleep 60");
  ASSERT_GT(pid, 0);
  EXPECT_TRUE(ReapWithin(pid, std::chrono::seconds(0)).killed);
}

TEST(SpawnTest, ReapWithinLeavesWhatIsNotItsChild) {
  // pid 1 is not this process's child: nothing is waited for and nothing is killed.
  const Reaped r = ReapWithin(1, std::chrono::seconds(30));
  EXPECT_FALSE(r.reaped);
  EXPECT_FALSE(r.killed);
  EXPECT_FALSE(ReapWithin(-1, std::chrono::seconds(30)).killed);
}

}  // namespace
}  // namespace bitfusion::internal
