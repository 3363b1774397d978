// One suite every ContainerRunner backend must pass (TEST_P bodies only). A backend joins by
// instantiating RunnerConformanceTest with a RunnerCase: its URI, the image to run (empty for
// process://) and, for backends that need a service, a check that it is up. process:// is
// instantiated in the unit tests; docker:// in tests/integration/docker_integration_test.cc
// against a dockerd of its own; slurm:// in tests/integration/slurm_runner_test.cc. Cases that
// need exec, copies or stats check, on a runner whose Capabilities() say it has none, that the
// call is refused as Unimplemented instead.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "bitfusion/container_runner.h"
#include "integration/service.h"

namespace bitfusion {

using namespace std::chrono_literals;

struct RunnerCase {
  std::string name;
  std::string uri;
  std::string image;
  /// Empty when the backend's service is up; else why not (the test skips, or fails in CI).
  std::string (*unavailable)() = nullptr;
};

inline void PrintTo(const RunnerCase& c, std::ostream* os) { *os << c.name << " " << c.uri; }

class RunnerConformanceTest : public ::testing::TestWithParam<RunnerCase> {
 protected:
  void SetUp() override {
    const std::string why = GetParam().unavailable ? GetParam().unavailable() : "";
    BITFUSION_REQUIRE_SERVICE(why.empty(), why);
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

  /// For a case that needs `what` of the runner (exec, copy, stats): false when the runner says
  /// it cannot, after checking that the call is refused as Unimplemented rather than faked.
  bool Can(bool RunnerCapabilities::*what, const char* name) {
    auto caps = runner_->Capabilities();
    EXPECT_TRUE(caps.ok()) << caps.error().ToString();
    if (!caps.ok() || (*caps).*what) return true;
    auto c = Create(Shell("true"));
    if (c == nullptr) return false;
    Status refused;
    if (what == &RunnerCapabilities::exec) {
      refused = c->Exec(ExecSpec{{"true"}, {}, {}, {}}, DeadlineAfter(5s)).status();
    } else if (what == &RunnerCapabilities::copy) {
      refused = c->CopyIn(::testing::TempDir(), "/tmp");
    } else {
      refused = c->Stats([](const ContainerStats&) {}).status();
    }
    EXPECT_EQ(refused.code(), StatusCode::kUnimplemented) << name << ": " << refused.ToString();
    return false;
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

TEST_P(RunnerConformanceTest, EmptyCommandIsRejectedOrRunsTheImageDefault) {
  ContainerSpec spec;
  spec.image = GetParam().image;
  auto c = runner_->Create(spec);
  if (spec.image.empty()) {
    // Nothing to run: refused before anything starts.
    ASSERT_FALSE(c.ok());
    EXPECT_EQ(c.error().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(c.error().message().find("no command"), std::string::npos);
  } else {
    // The image's own command runs (a shell with no input: exits 0 at once).
    ASSERT_TRUE(c.ok()) << c.error().ToString();
    ASSERT_TRUE((*c)->Start().ok());
    auto exit = (*c)->Wait(DeadlineAfter(30s));
    ASSERT_TRUE(exit.ok()) << exit.error().ToString();
    EXPECT_TRUE(exit->success()) << exit->exit_code;
  }
}

// A name no other test run on this host uses, for files both backends see under /tmp.
inline std::string UniqueName(const std::string& what) {
  static int counter = 0;
  return "bf-" + what + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
}

TEST_P(RunnerConformanceTest, ExecReturnsExitCodeAndBothStreams) {
  if (!Can(&RunnerCapabilities::exec, "Exec")) return;
  auto c = Create(Shell("sleep 30"));
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->Start().ok());
  ExecSpec exec;
  exec.command = {"/bin/sh", "-c", "echo \"out $BF_X\"; echo err >&2; exit 4"};
  exec.env["BF_X"] = "x1";
  auto r = c->Exec(exec, DeadlineAfter(30s));
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->exit_code, 4);
  EXPECT_EQ(r->output, "out x1\n");
  EXPECT_EQ(r->errors, "err\n");
  ASSERT_TRUE(c->Kill(SIGKILL).ok());
}

TEST_P(RunnerConformanceTest, CopyInAndOutRoundTrip) {
  if (!Can(&RunnerCapabilities::copy, "CopyIn")) return;
  const auto host = std::filesystem::path(::testing::TempDir()) / UniqueName("copy");
  const std::string name = UniqueName("payload");
  std::filesystem::create_directories(host / name / "sub");
  std::ofstream(host / name / "a.txt") << "alpha\n";
  std::ofstream(host / name / "sub" / "b.txt") << "beta";
  std::filesystem::create_symlink("a.txt", host / name / "link");
  auto c = Create(Shell("sleep 30"));
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->Start().ok());
  ASSERT_TRUE(c->CopyIn(host / name, "/tmp").ok());
  ExecSpec cat;
  cat.command = {"cat", "/tmp/" + name + "/sub/b.txt", "/tmp/" + name + "/link"};
  auto seen = c->Exec(cat, DeadlineAfter(30s));
  ASSERT_TRUE(seen.ok()) << seen.error().ToString();
  EXPECT_EQ(seen->output, "betaalpha\n");
  auto exists = c->PathExists("/tmp/" + name + "/a.txt");
  ASSERT_TRUE(exists.ok()) << exists.error().ToString();
  EXPECT_TRUE(*exists);
  EXPECT_FALSE(*c->PathExists("/tmp/" + name + "/missing"));

  const auto out = host / "out";
  std::filesystem::create_directories(out);
  ASSERT_TRUE(c->CopyOut("/tmp/" + name, out).ok());
  std::ifstream b(out / name / "sub" / "b.txt");
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(b), {}), "beta");
  EXPECT_TRUE(std::filesystem::is_symlink(out / name / "link"));
  auto missing = c->CopyOut("/tmp/" + name + "/missing", out);
  EXPECT_EQ(missing.code(), StatusCode::kNotFound) << missing.ToString();
  ASSERT_TRUE(c->Kill(SIGKILL).ok());
  // process:// copies onto this host's /tmp.
  if (GetParam().image.empty()) std::filesystem::remove_all("/tmp/" + name);
  std::filesystem::remove_all(host);
}

TEST_P(RunnerConformanceTest, InspectFollowsTheLifecycle) {
  ContainerSpec spec = Shell("read line; exit 5");
  spec.labels["bf-conformance"] = UniqueName("inspect");
  auto c = Create(spec);
  ASSERT_NE(c, nullptr);
  auto created = c->Inspect();
  ASSERT_TRUE(created.ok()) << created.error().ToString();
  EXPECT_EQ(created->state, "created");
  EXPECT_EQ(created->labels.at("bf-conformance"), spec.labels["bf-conformance"]);
  auto listed = runner_->ListContainers({{"bf-conformance", spec.labels["bf-conformance"]}});
  ASSERT_TRUE(listed.ok()) << listed.error().ToString();
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ(listed->front().id, c->id());
  ASSERT_TRUE(c->Start().ok());
  auto exit = c->Wait(DeadlineAfter(30s));
  ASSERT_TRUE(exit.ok()) << exit.error().ToString();
  auto ended = c->Inspect();
  ASSERT_TRUE(ended.ok());
  EXPECT_EQ(ended->state, "exited");
  EXPECT_EQ(ended->exit_code, 5);
  EXPECT_GT(ended->finished_ns, 0);
}

TEST_P(RunnerConformanceTest, StatsArriveWhileItRuns) {
  if (!Can(&RunnerCapabilities::stats, "Stats")) return;
  auto c = Create(Shell("sleep 30"));
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->Start().ok());
  std::mutex mu;
  std::vector<ContainerStats> got;
  auto sub = c->Stats(
      [&](const ContainerStats& s) {
        std::lock_guard lock(mu);
        got.push_back(s);
      },
      100ms);
  ASSERT_TRUE(sub.ok()) << sub.error().ToString();
  // A reading taken while the command is still being exec'd may show no memory yet.
  auto with_memory = [&] {
    std::lock_guard lock(mu);
    return std::find_if(got.begin(), got.end(),
                        [](const ContainerStats& s) { return s.memory_bytes > 0; }) != got.end();
  };
  const auto until = std::chrono::steady_clock::now() + 20s;
  while (!with_memory() && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(20ms);
  }
  sub->Cancel();
  ASSERT_TRUE(with_memory()) << "no stats reading with memory in use within 20 s";
  std::lock_guard lock(mu);
  EXPECT_GT(got.back().time_ns, 0);
  EXPECT_GE(got.back().pids, 1);
  ASSERT_TRUE(c->Kill(SIGKILL).ok());
}

TEST_P(RunnerConformanceTest, WaitForLogLineFileAndPort) {
  // Files and ports are looked for inside the container, with Exec.
  if (!Can(&RunnerCapabilities::exec, "Exec")) return;
  const std::string file = "/tmp/" + UniqueName("ready");
  const int port = 20000 + (::getpid() % 20000);
  auto c = Create(Shell("echo starting; sleep 0.2; echo 'server ready'; touch " + file +
                        "; exec busybox nc -l -p " + std::to_string(port)));
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->Start().ok());
  Status ready =
      c->WaitFor(WaitStrategy::AllOf(
                     {WaitStrategy::LogMatches("^server ready$"), WaitStrategy::FilePresent(file),
                      WaitStrategy::PortListening(static_cast<std::uint16_t>(port))})
                     .WithTimeout(20s),
                 DeadlineAfter(30s));
  EXPECT_TRUE(ready.ok()) << ready.ToString();
  ASSERT_TRUE(c->Kill(SIGKILL).ok());
  if (GetParam().image.empty()) std::filesystem::remove(file);
}

TEST_P(RunnerConformanceTest, WaitForFailsWhenItExitsFirstOrItsOwnTimeoutPasses) {
  auto quits = Create(Shell("echo nope; exit 2"));
  ASSERT_NE(quits, nullptr);
  ASSERT_TRUE(quits->Start().ok());
  Status s = quits->WaitFor(WaitStrategy::LogMatches("ready"), DeadlineAfter(30s));
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
  EXPECT_NE(s.message().find("exited (code 2)"), std::string::npos) << s.ToString();
  // AnyOf holds as soon as one holds; exit is one.
  EXPECT_TRUE(quits
                  ->WaitFor(WaitStrategy::AnyOf(
                                {WaitStrategy::LogMatches("never"), WaitStrategy::Exited()}),
                            DeadlineAfter(30s))
                  .ok());

  auto sleeps = Create(Shell("sleep 30"));
  ASSERT_NE(sleeps, nullptr);
  ASSERT_TRUE(sleeps->Start().ok());
  const auto began = std::chrono::steady_clock::now();
  s = sleeps->WaitFor(WaitStrategy::LogMatches("never").WithTimeout(300ms), DeadlineAfter(30s));
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
  EXPECT_NE(s.message().find("not within 300ms"), std::string::npos) << s.ToString();
  EXPECT_LT(std::chrono::steady_clock::now() - began, 10s);
  s = sleeps->WaitFor(WaitStrategy::Exited(), DeadlineAfter(200ms));
  EXPECT_EQ(s.code(), StatusCode::kDeadlineExceeded) << s.ToString();
  EXPECT_EQ(sleeps->WaitFor(WaitStrategy::LogMatches("(unclosed"), DeadlineAfter(1s)).code(),
            StatusCode::kInvalidArgument);
  ASSERT_TRUE(sleeps->Kill(SIGKILL).ok());
}

// A container's output is not ours: a long line must not take the waiter down. std::regex
// matched recursively, a frame or more per character, so "(a|b)*ready" on a 60,000-byte line of
// 'a' overflowed the stack; RE2 matches in linear time without recursion.
TEST_P(RunnerConformanceTest, WaitForLogMatchesSurvivesALongLine) {
  auto c = Create(Shell("head -c 60000 /dev/zero | tr '\\0' a; echo; echo ready; sleep 30"));
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->Start().ok());
  const Status ready =
      c->WaitFor(WaitStrategy::LogMatches("^(a|b)*ready$").WithTimeout(20s), DeadlineAfter(30s));
  EXPECT_TRUE(ready.ok()) << ready.ToString();
  ASSERT_TRUE(c->Kill(SIGKILL).ok());
}

TEST_P(RunnerConformanceTest, TailLogsGivesTheLastLines) {
  auto c = Create(Shell("echo a; echo b; echo c; sleep 0.2; echo oops >&2"));
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->Start().ok());
  ASSERT_TRUE(c->Wait(DeadlineAfter(30s)).ok());
  auto tail = runner_->TailLogs(c->id(), 3);
  ASSERT_TRUE(tail.ok()) << tail.error().ToString();
  // Engines keep stdout and stderr apart, so only the order within one stream is given.
  std::vector<std::string> out, err;
  for (const auto& l : *tail) (l.stream == LogStream::kStdout ? out : err).push_back(l.text);
  ASSERT_EQ(tail->size(), 3u);
  EXPECT_EQ(err, std::vector<std::string>{"oops"});
  EXPECT_EQ(out, (std::vector<std::string>{"b", "c"}));
  auto missing = runner_->TailLogs("bf-no-such-container", 3);
  EXPECT_EQ(missing.error().code(), StatusCode::kNotFound);
}

TEST_P(RunnerConformanceTest, LifecycleEventsReachSubscribers) {
  struct Seen {
    std::mutex mu;
    std::vector<Event> events;
  };
  auto seen = std::make_shared<Seen>();
  auto sub = runner_->Events([seen](const Event& e) {
    std::lock_guard lock(seen->mu);
    seen->events.push_back(e);
  });
  ASSERT_TRUE(sub.ok()) << sub.error().ToString();
  std::string id;
  {
    auto c = Create(Shell("exit 3"));
    ASSERT_NE(c, nullptr);
    id = c->id();
    ASSERT_TRUE(c->Start().ok());
    ASSERT_TRUE(c->Wait(DeadlineAfter(30s)).ok());
  }
  auto types = [&] {
    std::vector<EventType> out;
    std::lock_guard lock(seen->mu);
    for (const auto& e : seen->events) {
      if (e.subject == id && e.type != EventType::kOther) out.push_back(e.type);
    }
    return out;
  };
  const std::vector<EventType> want = {EventType::kContainerCreated, EventType::kContainerStarted,
                                       EventType::kContainerDied, EventType::kContainerDestroyed};
  const auto until = std::chrono::steady_clock::now() + 10s;
  while (types() != want && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(types(), want);
  std::lock_guard lock(seen->mu);
  for (const auto& e : seen->events) {
    if (e.subject == id && e.type == EventType::kContainerDied) {
      EXPECT_EQ(e.attributes.at("exitCode"), "3");
      EXPECT_EQ(e.action, "die");
    }
  }
}

}  // namespace bitfusion
