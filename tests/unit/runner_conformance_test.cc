// One suite every ContainerRunner backend must pass. A backend joins by adding a RunnerCase:
// its URI, the image to run (empty for process://) and how to run a shell snippet.
#include <gtest/gtest.h>

#include <signal.h>

#include <mutex>
#include <string>
#include <vector>

#include "bitfusion/container_runner.h"

namespace bitfusion {
namespace {

using namespace std::chrono_literals;

struct RunnerCase {
  std::string name;
  std::string uri;
  std::string image;
};

class RunnerConformanceTest : public ::testing::TestWithParam<RunnerCase> {
 protected:
  void SetUp() override {
    auto runner = ContainerRunnerFromUri(GetParam().uri);
    ASSERT_TRUE(runner.ok()) << runner.error().ToString();
    runner_ = *runner;
  }

  ContainerSpec Shell(const std::string& script) const {
    ContainerSpec spec;
    spec.image = GetParam().image;
    spec.command = {"/bin/sh", "-c", script};
    return spec;
  }

  std::unique_ptr<Container> Create(const ContainerSpec& spec) {
    auto c = runner_->Create(spec);
    EXPECT_TRUE(c.ok()) << c.error().ToString();
    return c.ok() ? std::move(*c) : nullptr;
  }

  std::shared_ptr<ContainerRunner> runner_;
};

struct Captured {
  std::mutex mu;
  std::vector<std::string> out, err;
  void Add(LogStream s, std::string_view line) {
    std::lock_guard lock(mu);
    (s == LogStream::kStdout ? out : err).emplace_back(line);
  }
};

TEST_P(RunnerConformanceTest, ExitCodeAndSeparatedOutput) {
  auto c = Create(Shell("echo one; echo two; echo oops >&2; exit 3"));
  ASSERT_NE(c, nullptr);
  Captured got;
  auto sub = c->Logs([&](LogStream s, std::string_view l) { got.Add(s, l); });
  ASSERT_TRUE(c->Start().ok());
  auto exit = c->Wait(DeadlineAfter(30s));
  ASSERT_TRUE(exit.ok()) << exit.error().ToString();
  EXPECT_EQ(exit->exit_code, 3);
  EXPECT_EQ(exit->signal, 0);
  EXPECT_FALSE(exit->success());
  EXPECT_GE(exit->end_ns, exit->start_ns);
  EXPECT_GT(exit->wall_time_ns, 0);
  EXPECT_EQ(got.out, (std::vector<std::string>{"one", "two"}));
  EXPECT_EQ(got.err, (std::vector<std::string>{"oops"}));
}

TEST_P(RunnerConformanceTest, EnvironmentAndWorkingDirectory) {
  ContainerSpec spec = Shell("echo \"$BF_GREETING\"; pwd");
  spec.env["BF_GREETING"] = "hello world";
  spec.working_dir = "/tmp";
  auto c = Create(spec);
  ASSERT_NE(c, nullptr);
  Captured got;
  auto sub = c->Logs([&](LogStream s, std::string_view l) { got.Add(s, l); });
  ASSERT_TRUE(c->Start().ok());
  ASSERT_TRUE(c->Wait(DeadlineAfter(30s))->success());
  EXPECT_EQ(got.out, (std::vector<std::string>{"hello world", "/tmp"}));
}

TEST_P(RunnerConformanceTest, LateSubscriberGetsWhatWasPrinted) {
  auto c = Create(Shell("echo early"));
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->Start().ok());
  ASSERT_TRUE(c->Wait(DeadlineAfter(30s)).ok());
  Captured got;
  auto sub = c->Logs([&](LogStream s, std::string_view l) { got.Add(s, l); });
  EXPECT_EQ(got.out, (std::vector<std::string>{"early"}));
}

TEST_P(RunnerConformanceTest, WaitDeadlineThenStop) {
  auto c = Create(Shell("sleep 60"));
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->Start().ok());
  auto early = c->Wait(DeadlineAfter(50ms));
  ASSERT_FALSE(early.ok());
  EXPECT_EQ(early.error().code(), StatusCode::kDeadlineExceeded);
  ASSERT_TRUE(c->Stop(5s).ok());
  auto exit = c->Wait(DeadlineAfter(30s));
  ASSERT_TRUE(exit.ok());
  EXPECT_FALSE(exit->success());
  EXPECT_TRUE(exit->signal == SIGTERM || exit->exit_code == 128 + SIGTERM)
      << "exit " << exit->exit_code << " signal " << exit->signal;
}

TEST_P(RunnerConformanceTest, KillDeliversTheSignal) {
  auto c = Create(Shell("sleep 60"));
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->Start().ok());
  ASSERT_TRUE(c->Kill(SIGKILL).ok());
  auto exit = c->Wait(DeadlineAfter(30s));
  ASSERT_TRUE(exit.ok());
  EXPECT_TRUE(exit->signal == SIGKILL || exit->exit_code == 128 + SIGKILL);
  EXPECT_TRUE(c->Kill(SIGKILL).ok()) << "signalling an exited container is not an error";
}

TEST_P(RunnerConformanceTest, TimeoutKills) {
  ContainerSpec spec = Shell("sleep 60");
  spec.timeout_ns = std::chrono::nanoseconds(200ms).count();
  auto c = Create(spec);
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->Start().ok());
  auto exit = c->Wait(DeadlineAfter(30s));
  ASSERT_TRUE(exit.ok());
  EXPECT_TRUE(exit->timed_out);
  EXPECT_FALSE(exit->success());
}

TEST_P(RunnerConformanceTest, StartTwiceAndWaitBeforeStartAreErrors) {
  auto c = Create(Shell("true"));
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->Wait(kNoDeadline).error().code(), StatusCode::kFailedPrecondition);
  ASSERT_TRUE(c->Start().ok());
  EXPECT_EQ(c->Start().code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(c->Wait(DeadlineAfter(30s))->success());
}

TEST_P(RunnerConformanceTest, EmptyCommandIsRejectedBeforeAnythingRuns) {
  ContainerSpec spec;
  spec.image = GetParam().image;
  if (spec.image.empty()) {
    auto c = runner_->Create(spec);
    ASSERT_FALSE(c.ok());
    EXPECT_EQ(c.error().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(c.error().message().find("no command"), std::string::npos);
  }
}

INSTANTIATE_TEST_SUITE_P(Runners, RunnerConformanceTest,
                         ::testing::Values(RunnerCase{"process", "process://", ""}),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace bitfusion
