// What only process:// does: host paths, process groups, rusage, and its refusals.
#include "runners/process_runner.h"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>

#include "integration/service.h"
#include "process_status.h"
#include "scoped_env.h"
#include "scoped_signal.h"

namespace bitfusion {
namespace {

using namespace std::chrono_literals;

std::shared_ptr<ContainerRunner> Runner(const std::string& uri = "process://") {
  auto r = ContainerRunnerFromUri(uri);
  EXPECT_TRUE(r.ok()) << r.error().ToString();
  return *r;
}

ContainerSpec Shell(const std::string& script) {
  ContainerSpec spec;
  spec.command = {"sh", "-c", script};
  return spec;
}

struct Lines {
  std::mutex mu;
  std::vector<std::string> out;
  LogCallback Callback() {
    return [this](LogStream s, std::string_view l) {
      std::lock_guard lock(mu);
      if (s == LogStream::kStdout) out.emplace_back(l);
    };
  }
  std::vector<std::string> Get() {
    std::lock_guard lock(mu);
    return out;
  }
};

// Running, not merely a zombie waiting for whoever adopted it (init here may never reap).
bool Alive(pid_t pid) {
  if (::kill(pid, 0) != 0) return false;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string pid_field, comm, state;
  stat >> pid_field >> comm >> state;
  return state != "Z";
}

pid_t WaitForPid(Lines& lines, std::size_t index) {
  for (int i = 0; i < 500; ++i) {
    auto got = lines.Get();
    if (got.size() > index) return static_cast<pid_t>(std::stoi(got[index]));
    std::this_thread::sleep_for(10ms);
  }
  return -1;
}

TEST(ProcessRunnerTest, DestroyingTheHandleKillsTheProcessGroup) {
  auto runner = Runner();
  auto c = *runner->Create(Shell("sleep 60 & echo $!; echo $$; wait"));
  Lines lines;
  auto sub = c->Logs(lines.Callback());
  ASSERT_TRUE(c->Start().ok());
  const pid_t background = WaitForPid(lines, 0);
  const pid_t shell = WaitForPid(lines, 1);
  ASSERT_GT(background, 0);
  ASSERT_GT(shell, 0);
  EXPECT_TRUE(Alive(background));
  sub.Cancel();
  c.reset();
  EXPECT_FALSE(Alive(shell)) << "the command must be killed and reaped";
  // The background child is killed with the group; it is reaped by init, so give it a moment.
  for (int i = 0; i < 200 && Alive(background); ++i) std::this_thread::sleep_for(10ms);
  EXPECT_FALSE(Alive(background)) << "its background child must be killed too";
}

// Forks a child that makes itself a process group leader and waits, trying to give it `pid`
// (writing ns_last_pid, root only). The child's pid, or -1 when it did not get `pid`.
pid_t GroupLeaderWithPid(pid_t pid) {
  for (int attempt = 0; attempt < 50; ++attempt) {
    {
      std::ofstream last("/proc/sys/kernel/ns_last_pid");
      last << (pid - 1);
      if (!last.flush()) return -1;
    }
    const pid_t child = ::fork();
    if (child == 0) {
      ::setpgid(0, 0);
      ::pause();
      ::_exit(0);
    }
    if (child == pid) {
      // Wait until it leads its own group, as the stranger in the test must.
      for (int i = 0; i < 1000 && ::getpgid(child) != child; ++i) std::this_thread::sleep_for(1ms);
      return child;
    }
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
  }
  return -1;
}

TEST(ProcessRunnerTest, AnExitedProcessGroupIdCannotBeReusedBeforeTheHandleIsDestroyed) {
  BITFUSION_REQUIRE_SERVICE(::geteuid() == 0, "choosing the next pid (ns_last_pid) needs root");
  auto runner = Runner();
  auto c = *runner->Create(Shell("echo $$"));
  Lines lines;
  auto sub = c->Logs(lines.Callback());
  ASSERT_TRUE(c->Start().ok());
  const pid_t leader = WaitForPid(lines, 0);
  ASSERT_GT(leader, 0);
  ASSERT_TRUE(c->Wait(DeadlineAfter(30s)).ok());
  // The command has exited. If its pid were free again, a stranger could become the leader of
  // a process group with that id, and destroying the handle (kill(-pid, SIGKILL)) would kill
  // the stranger's whole group.
  const pid_t stranger = GroupLeaderWithPid(leader);
  sub.Cancel();
  c.reset();
  if (stranger < 0) {
    SUCCEED() << "pid " << leader << " stayed taken until the handle was destroyed";
    return;
  }
  std::this_thread::sleep_for(50ms);
  int status = 0;
  const pid_t waited = ::waitpid(stranger, &status, WNOHANG);
  EXPECT_EQ(waited, 0) << "destroying the handle killed an unrelated process group that reused "
                          "the pid "
                       << leader;
  ::kill(stranger, SIGKILL);
  ::waitpid(stranger, nullptr, 0);
}

TEST(ProcessRunnerTest, StopReachesTheWholeGroup) {
  auto runner = Runner();
  auto c = *runner->Create(Shell("sleep 60 & echo $!; wait"));
  Lines lines;
  auto sub = c->Logs(lines.Callback());
  ASSERT_TRUE(c->Start().ok());
  const pid_t background = WaitForPid(lines, 0);
  ASSERT_GT(background, 0);
  ASSERT_TRUE(c->Stop(5s).ok());
  for (int i = 0; i < 200 && Alive(background); ++i) std::this_thread::sleep_for(10ms);
  EXPECT_FALSE(Alive(background));
}

TEST(ProcessRunnerTest, ResourceUsageIsReported) {
  auto runner = Runner();
  auto c = *runner->Create(
      Shell("i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; head -c 8000000 /dev/zero | "
            "tail -c 1 >/dev/null"));
  ASSERT_TRUE(c->Start().ok());
  auto exit = c->Wait(DeadlineAfter(60s));
  ASSERT_TRUE(exit.ok());
  ASSERT_TRUE(exit->success());
  EXPECT_GT(exit->usage.user_cpu_ns + exit->usage.system_cpu_ns, 10'000'000)
      << "a 300k-iteration shell loop costs well over 10 ms of CPU";
  EXPECT_GT(exit->usage.max_rss_bytes, 100'000);
  EXPECT_GT(exit->usage.minor_faults, 0);
}

TEST(ProcessRunnerTest, CpusetPinsTheChild) {
  auto runner = Runner();
  ContainerSpec spec = Shell("grep Cpus_allowed_list /proc/self/status");
  spec.cpuset = "0";
  auto c = *runner->Create(spec);
  Lines lines;
  auto sub = c->Logs(lines.Callback());
  ASSERT_TRUE(c->Start().ok());
  ASSERT_TRUE(c->Wait(DeadlineAfter(30s))->success());
  ASSERT_EQ(lines.Get().size(), 1u);
  EXPECT_EQ(lines.Get()[0], "Cpus_allowed_list:\t0");
}

TEST(ProcessRunnerTest, PinningTheChildLeavesTheCallersAffinityAlone) {
  cpu_set_t before, after;
  ASSERT_EQ(::sched_getaffinity(0, sizeof before, &before), 0);
  ContainerSpec spec = Shell("true");
  spec.cpuset = "0";
  auto c = *Runner()->Create(spec);
  ASSERT_TRUE(c->Start().ok());
  ASSERT_TRUE(c->Wait(DeadlineAfter(30s))->success());
  ASSERT_EQ(::sched_getaffinity(0, sizeof after, &after), 0);
  EXPECT_TRUE(CPU_EQUAL(&before, &after));
}

// A host that ignores SIGPIPE (Python does) or holds descriptors without O_CLOEXEC must not pass
// either on: the command starts with default signal dispositions, an empty signal mask, /dev/null
// as stdin and no descriptor but 0, 1 and 2.
TEST(ProcessRunnerTest, TheCommandInheritsNoIgnoredSignalsBlockedSignalsOrStrayDescriptors) {
  const testing::ScopedIgnoreSignal no_sigpipe(SIGPIPE);
  sigset_t usr1, old_mask;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  ASSERT_EQ(::pthread_sigmask(SIG_BLOCK, &usr1, &old_mask), 0);
  const int stray = ::open("/dev/null", O_RDONLY);  // no O_CLOEXEC
  ASSERT_GE(stray, 3);

  auto c = *Runner()->Create(
      Shell("grep -E '^Sig(Ign|Blk)' /proc/self/status; readlink /proc/self/fd/0; ls /proc/$$/fd"));
  Lines lines;
  auto sub = c->Logs(lines.Callback());
  ASSERT_TRUE(c->Start().ok());
  ASSERT_TRUE(c->Wait(DeadlineAfter(30s))->success());
  ::close(stray);
  ::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);

  const auto got = lines.Get();
  ASSERT_GE(got.size(), 3u);
  EXPECT_EQ(got[0], "SigBlk:\t0000000000000000");
  // Signals 1-31 at their defaults; glibc's posix_spawn leaves its own two internal real-time
  // signals (32, 33) ignored, which every glibc program resets when it starts.
  ASSERT_EQ(got[1].rfind("SigIgn:\t", 0), 0u) << got[1];
  EXPECT_EQ(std::stoull(got[1].substr(8), nullptr, 16) & 0x7fffffffULL, 0u) << got[1];
  EXPECT_EQ(got[2], "/dev/null");
  // The shell's own descriptors: 0, 1, 2, and none of ours.
  std::vector<std::string> fds(got.begin() + 3, got.end());
  EXPECT_EQ(fds, (std::vector<std::string>{"0", "1", "2"}));
}

std::vector<std::string> EnvOf(const std::string& uri, const Labels& spec_env = {}) {
  ContainerSpec spec;
  spec.command = {"env"};
  spec.env = spec_env;
  auto c = *Runner(uri)->Create(spec);
  Lines lines;
  auto sub = c->Logs(lines.Callback());
  EXPECT_TRUE(c->Start().ok());
  EXPECT_TRUE(c->Wait(DeadlineAfter(30s))->success());
  auto env = lines.Get();
  std::sort(env.begin(), env.end());
  return env;
}

bool Has(const std::vector<std::string>& env, const std::string& entry) {
  return std::find(env.begin(), env.end(), entry) != env.end();
}

TEST(ProcessRunnerTest, CredentialsInOurEnvironmentAreNotPassedToCommandsUnlessAsked) {
  testing::ScopedEnv vars({{"AWS_SECRET_ACCESS_KEY", "s3cr3t"},
                           {"PGPASSWORD", "pgpw"},
                           {"OS_APPLICATION_CREDENTIAL_SECRET", "appsecret"},
                           {"GITHUB_TOKEN", "ghp"},
                           {"SL_API_KEY", "slkey"},
                           {"BENCH_THREADS", "8"},
                           {"LC_ALL", "C"}});
  const auto host = EnvOf("process://");
  EXPECT_TRUE(Has(host, "BENCH_THREADS=8"));
  for (const char* secret : {"s3cr3t", "pgpw", "appsecret", "ghp", "slkey"}) {
    for (const auto& entry : host) EXPECT_EQ(entry.find(secret), std::string::npos) << entry;
  }
  // The spec's own env always passes; ?env=all passes everything.
  EXPECT_TRUE(Has(EnvOf("process://", {{"PGPASSWORD", "given"}}), "PGPASSWORD=given"));
  const auto all = EnvOf("process://?env=all");
  EXPECT_TRUE(Has(all, "PGPASSWORD=pgpw") && Has(all, "BENCH_THREADS=8"));
  // ?env=minimal: the basics only.
  const auto minimal = EnvOf("process://?env=minimal", {{"MINE", "1"}});
  EXPECT_TRUE(Has(minimal, "LC_ALL=C") && Has(minimal, "MINE=1"));
  EXPECT_FALSE(Has(minimal, "BENCH_THREADS=8"));
  for (const auto& entry : minimal) {
    const std::string name = entry.substr(0, entry.find('='));
    EXPECT_TRUE(name == "PATH" || name == "HOME" || name == "USER" || name == "LOGNAME" ||
                name == "SHELL" || name == "LANG" || name == "TZ" || name == "TERM" ||
                name == "TMPDIR" || name.starts_with("LC_") || name == "MINE" || name == "PWD" ||
                name == "SHLVL" || name == "_")
        << entry;
  }
  auto bad = ContainerRunnerFromUri("process://?env=some");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("expected host"), std::string::npos);
}

TEST(ProcessRunnerTest, LongLinesArriveInPieces) {
  auto runner = Runner("process://?max_line_bytes=1000");
  auto c = *runner->Create(Shell("head -c 2500 /dev/zero | tr '\\0' x; echo"));
  Lines lines;
  auto sub = c->Logs(lines.Callback());
  ASSERT_TRUE(c->Start().ok());
  ASSERT_TRUE(c->Wait(DeadlineAfter(30s))->success());
  auto got = lines.Get();
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].size(), 1000u);
  EXPECT_EQ(got[1].size(), 1000u);
  EXPECT_EQ(got[2].size(), 500u);
}

// The long line and its newline in one write (so usually in one read): still cut in pieces; and
// a line of exactly twice the limit is two pieces, with no empty line after them.
TEST(ProcessRunnerTest, LongLinesWithTheirNewlineInOneReadArriveInPieces) {
  auto runner = Runner("process://?max_line_bytes=1000");
  auto c =
      *runner->Create(Shell("x=$(head -c 2500 /dev/zero | tr '\\0' x); "
                            "y=$(head -c 2000 /dev/zero | tr '\\0' y); "
                            "printf '%s\\n%s\\nend\\n' \"$x\" \"$y\""));
  Lines lines;
  auto sub = c->Logs(lines.Callback());
  ASSERT_TRUE(c->Start().ok());
  ASSERT_TRUE(c->Wait(DeadlineAfter(30s))->success());
  auto got = lines.Get();
  ASSERT_EQ(got.size(), 6u);
  EXPECT_EQ(got[0], std::string(1000, 'x'));
  EXPECT_EQ(got[1], std::string(1000, 'x'));
  EXPECT_EQ(got[2], std::string(500, 'x'));
  EXPECT_EQ(got[3], std::string(1000, 'y'));
  EXPECT_EQ(got[4], std::string(1000, 'y'));
  EXPECT_EQ(got[5], "end");
}

TEST(ProcessRunnerTest, OutputWithoutTrailingNewlineIsDelivered) {
  auto runner = Runner();
  auto c = *runner->Create(Shell("printf 'no newline'"));
  Lines lines;
  auto sub = c->Logs(lines.Callback());
  ASSERT_TRUE(c->Start().ok());
  ASSERT_TRUE(c->Wait(DeadlineAfter(30s))->success());
  EXPECT_EQ(lines.Get(), (std::vector<std::string>{"no newline"}));
}

TEST(ProcessRunnerTest, BadSpecsAreRejectedAtCreate) {
  auto runner = Runner();
  ContainerSpec image = Shell("true");
  image.image = "busybox";
  EXPECT_EQ(runner->Create(image).error().code(), StatusCode::kInvalidArgument);

  ContainerSpec mounts = Shell("true");
  mounts.mounts.push_back({"bind", "/tmp", "/data", false, 0});
  mounts.memory_bytes = 1 << 20;
  auto m = runner->Create(mounts);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.error().message().find("mounts, memory_bytes"), std::string::npos)
      << m.error().message();

  ContainerSpec missing;
  missing.command = {"bitfusion-no-such-command-xyz"};
  auto nf = runner->Create(missing);
  ASSERT_FALSE(nf.ok());
  EXPECT_EQ(nf.error().code(), StatusCode::kNotFound);
  EXPECT_NE(nf.error().message().find("bitfusion-no-such-command-xyz"), std::string::npos);

  ContainerSpec dir = Shell("true");
  dir.working_dir = "/no/such/dir";
  EXPECT_EQ(runner->Create(dir).error().code(), StatusCode::kNotFound);

  for (const char* bad : {"x", "3-1", "0,", "99999"}) {
    ContainerSpec cpus = Shell("true");
    cpus.cpuset = bad;
    EXPECT_EQ(runner->Create(cpus).error().code(), StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_EQ(runner->EnsureImage("busybox", kNoDeadline).code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(runner->EnsureImage("", kNoDeadline).ok());
  EXPECT_FALSE(ContainerRunnerFromUri("process://somehost").ok());
  EXPECT_FALSE(ContainerRunnerFromUri("process://?max_line_bytes=0").ok());
}

TEST(ProcessRunnerTest, SpecPathIsUsedToFindTheCommand) {
  auto runner = Runner();
  ContainerSpec spec;
  spec.command = {"sh", "-c", "true"};
  spec.env["PATH"] = "/nonexistent";
  EXPECT_EQ(runner->Create(spec).error().code(), StatusCode::kNotFound);
}

TEST(ProcessRunnerTest, StatsEndWithOneReadingMarkedNotRunning) {
  auto runner = Runner();
  auto c = runner->Create(Shell("sleep 0.3"));
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE((*c)->Start().ok());
  std::mutex mu;
  std::vector<bool> running;
  auto sub = (*c)->Stats(
      [&](const ContainerStats& s) {
        std::lock_guard lock(mu);
        running.push_back(s.running);
      },
      20ms);
  ASSERT_TRUE(sub.ok());
  ASSERT_TRUE((*c)->Wait(DeadlineAfter(10s)).ok());
  for (int i = 0; i < 200; ++i) {
    {
      std::lock_guard lock(mu);
      if (!running.empty() && !running.back()) break;
    }
    std::this_thread::sleep_for(10ms);
  }
  sub->Cancel();
  std::lock_guard lock(mu);
  ASSERT_GE(running.size(), 2u);
  EXPECT_FALSE(running.back()) << "the last reading says the process is gone";
  EXPECT_EQ(std::count(running.begin(), running.end(), false), 1);
}

// Processes, their output and their Stats are followed on the library's event loop: this
// process's thread count does not grow with how many run.
TEST(ProcessRunnerTest, ThreadsDoNotGrowWithTheNumberOfProcesses) {
  auto runner = Runner();
  ContainerSpec spec = Shell("echo up; sleep 60");
  spec.timeout_ns = std::chrono::nanoseconds(1h).count();
  std::vector<std::unique_ptr<Container>> fleet;
  std::vector<Subscription> subs;
  Lines lines;
  auto add = [&] {
    auto c = runner->Create(spec);
    ASSERT_TRUE(c.ok()) << c.error().ToString();
    subs.push_back((*c)->Logs(lines.Callback()));
    ASSERT_TRUE((*c)->Start().ok());
    auto stats = (*c)->Stats([](const ContainerStats&) {}, 10ms);
    ASSERT_TRUE(stats.ok());
    subs.push_back(std::move(*stats));
    fleet.push_back(std::move(*c));
  };
  add();  // the loop's threads start with the first process
  const long threads = testing::ThreadsOfThisProcess();
  for (int i = 0; i < 50; ++i) add();
  for (int i = 0; i < 500 && lines.Get().size() < fleet.size(); ++i) {
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(lines.Get().size(), fleet.size());
  EXPECT_EQ(testing::ThreadsOfThisProcess(), threads);
}

TEST(ProcessRunnerTest, GroupsOfAKilledCreatorAreReapedThroughTheLedger) {
  namespace fs = std::filesystem;
  const fs::path state =
      fs::temp_directory_path() / ("bitfusion-ledger-test-" + std::to_string(::getpid()));
  fs::remove_all(state);
  testing::ScopedEnv env({{"XDG_STATE_HOME", state.c_str()}});
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t creator = ::fork();
  if (creator == 0) {
    // A bitfusion that starts a group and is then killed with SIGKILL: it cleans up nothing.
    Lines lines;
    auto runner = ContainerRunnerFromUri("process://");
    ContainerSpec spec = Shell("echo $$; exec sleep 300");
    spec.labels[kLabelRunId] = "ledger-run";
    if (!runner.ok()) ::_exit(1);
    auto c = (*runner)->Create(spec);
    if (!c.ok()) ::_exit(1);
    auto sub = (*c)->Logs(lines.Callback());
    if (!(*c)->Start().ok()) ::_exit(1);
    const pid_t leader = WaitForPid(lines, 0);
    [[maybe_unused]] auto n = ::write(ready[1], &leader, sizeof leader);
    ::pause();
    ::_exit(0);
  }
  ::close(ready[1]);
  pid_t leader = -1;
  pollfd p{ready[0], POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 20000), 1) << "the creator did not start its group";
  ASSERT_EQ(::read(ready[0], &leader, sizeof leader), static_cast<ssize_t>(sizeof leader));
  ::close(ready[0]);
  ASSERT_GT(leader, 0);
  ::kill(creator, SIGKILL);
  ::waitpid(creator, nullptr, 0);
  EXPECT_TRUE(Alive(leader)) << "the group outlives its creator";

  auto runner = Runner();
  ASSERT_TRUE(runner->Capabilities()->reap);
  ReapPolicy dry;
  dry.dry_run = true;
  auto would = runner->Reap(dry);
  ASSERT_TRUE(would.ok()) << would.error().ToString();
  ASSERT_EQ(would->containers.size(), 1u);
  EXPECT_NE(would->containers[0].find("process group " + std::to_string(leader)), std::string::npos)
      << would->containers[0];
  EXPECT_NE(would->containers[0].find("is gone"), std::string::npos) << would->containers[0];
  EXPECT_TRUE(Alive(leader)) << "a dry run killed it";

  // A group whose creator lives (this process) is left alone.
  Lines mine_lines;
  auto mine = runner->Create(Shell("echo $$; exec sleep 300"));
  ASSERT_TRUE(mine.ok());
  auto mine_sub = (*mine)->Logs(mine_lines.Callback());
  ASSERT_TRUE((*mine)->Start().ok());
  const pid_t mine_pid = WaitForPid(mine_lines, 0);

  auto reaped = runner->Reap(ReapPolicy{});
  ASSERT_TRUE(reaped.ok()) << reaped.error().ToString();
  EXPECT_EQ(reaped->containers.size(), 1u);
  for (int i = 0; i < 500 && Alive(leader); ++i) std::this_thread::sleep_for(10ms);
  EXPECT_FALSE(Alive(leader)) << "the dead creator's group still runs";
  EXPECT_TRUE(Alive(mine_pid)) << "reap took a live creator's group";
  // Its run id still selects it, whoever made it.
  ReapPolicy by_run;
  by_run.run_id = "ledger-run";
  by_run.dry_run = true;
  EXPECT_TRUE(runner->Reap(by_run)->containers.empty()) << "the reaped entry is gone";
  mine_sub.Cancel();
  mine->reset();
  EXPECT_FALSE(Alive(mine_pid));
  std::size_t entries = 0;
  for (const auto& e : fs::directory_iterator(state / "bitfusion" / "processes")) {
    entries += e.path().extension() == ".json";
  }
  EXPECT_EQ(entries, 0u) << "entries of ended groups are removed";
  fs::remove_all(state);
}

}  // namespace
}  // namespace bitfusion
