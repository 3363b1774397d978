// The "process:PID" metric source against recorded /proc/PID trees and a real child process.
#include "metrics/process_source.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "bitfusion/log.h"
#include "bitfusion/metric_stream.h"

extern char** environ;

namespace bitfusion {
namespace {

const std::string kFixtures = std::string(BITFUSION_TEST_FIXTURES) + "/proc";

double Tick() { return 1.0 / static_cast<double>(::sysconf(_SC_CLK_TCK)); }
double Page() { return static_cast<double>(::sysconf(_SC_PAGESIZE)); }

std::optional<double> ValueOf(const SampleBatch& batch, const std::string& metric) {
  std::optional<double> found;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    if (batch.series[batch.series_index[i]].metric != metric) continue;
    EXPECT_FALSE(found.has_value()) << "two samples of " << metric;
    found = batch.value[i];
  }
  return found;
}

Result<std::shared_ptr<ProcessSource>> MakeProcess(pid_t pid, const std::string& root) {
  ProcessSourceOptions options;
  options.pid = pid;
  options.proc_root = root;
  return ProcessSource::Make(options);
}

// A `sleep` child that is killed (and reaped) when the test ends, whatever happens.
class SleepChild {
 public:
  SleepChild() {
    char arg0[] = "sleep";
    char arg1[] = "30";
    char* argv[] = {arg0, arg1, nullptr};
    EXPECT_EQ(::posix_spawnp(&pid_, "sleep", nullptr, nullptr, argv, environ), 0);
  }
  ~SleepChild() {
    Kill();
    Reap();
  }
  pid_t pid() const { return pid_; }
  void Kill() {
    if (pid_ > 0 && !killed_) ::kill(pid_, SIGKILL);
    killed_ = true;
  }
  void Reap() {
    if (pid_ > 0 && !reaped_) ::waitpid(pid_, nullptr, 0);
    reaped_ = true;
  }

 private:
  pid_t pid_ = -1;
  bool killed_ = false;
  bool reaped_ = false;
};

TEST(ProcessSourceTest, RecordedProcessGivesExactValues) {
  auto made = MakeProcess(5417, kFixtures + "/host_a");
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  auto source = *made;
  EXPECT_EQ(source->uri(), "process:5417?proc_root=" + kFixtures + "/host_a");
  SampleBatch batch;
  ASSERT_TRUE(source->Collect(Timestamp{7, 8}, batch).ok());

  EXPECT_EQ(batch.series.size(), 15u);
  EXPECT_EQ(batch.size(), 15u);
  for (const Series& s : batch.series) EXPECT_EQ(s.labels, (Labels{{"pid", "5417"}}));
  EXPECT_DOUBLE_EQ(*ValueOf(batch, "proc.cpu.user"), 1 * Tick());
  EXPECT_DOUBLE_EQ(*ValueOf(batch, "proc.cpu.system"), 5 * Tick());
  EXPECT_DOUBLE_EQ(*ValueOf(batch, "proc.cpu.children_user"), 80 * Tick());
  EXPECT_DOUBLE_EQ(*ValueOf(batch, "proc.cpu.children_system"), 31 * Tick());
  // Counters are marked, so that rates can be made of them; gauges are not.
  for (const Series& s : batch.series) {
    const bool gauge =
        s.metric == "proc.threads" || s.metric == "proc.rss" || s.metric == "proc.vsize";
    EXPECT_EQ(s.counter, !gauge) << s.metric;
  }
  EXPECT_EQ(*ValueOf(batch, "proc.minflt"), 5674.0);
  EXPECT_EQ(*ValueOf(batch, "proc.majflt"), 0.0);
  EXPECT_EQ(*ValueOf(batch, "proc.threads"), 1.0);
  EXPECT_EQ(*ValueOf(batch, "proc.rss"), 1010 * Page());
  EXPECT_EQ(*ValueOf(batch, "proc.vsize"), 5246976.0);
  EXPECT_EQ(*ValueOf(batch, "proc.ctxt.voluntary"), 141.0);
  EXPECT_EQ(*ValueOf(batch, "proc.ctxt.nonvoluntary"), 19.0);
  EXPECT_EQ(*ValueOf(batch, "proc.io.rchar"), 9227704.0);
  EXPECT_EQ(*ValueOf(batch, "proc.io.wchar"), 328837.0);
  EXPECT_EQ(*ValueOf(batch, "proc.io.read_bytes"), 3215360.0);
  EXPECT_EQ(*ValueOf(batch, "proc.io.write_bytes"), 946176.0);
  for (std::size_t i = 0; i < batch.size(); ++i) {
    EXPECT_EQ(batch.timestamp_ns[i], 7);
    EXPECT_EQ(batch.monotonic_ns[i], 8);
  }

  // The steady state: same series, same storage.
  const double* storage = batch.value.data();
  batch.ClearSamples();
  ASSERT_TRUE(source->Collect(Timestamp{9, 9}, batch).ok());
  EXPECT_EQ(batch.series.size(), 15u);
  EXPECT_EQ(batch.size(), 15u);
  EXPECT_EQ(batch.value.data(), storage);
}

TEST(ProcessSourceTest, OddCommandNameAndMissingIoFile) {
  std::vector<std::string> warnings;
  SetLogHandler([&](LogLevel, std::string_view m) { warnings.emplace_back(m); });
  auto made = MakeProcess(4242, kFixtures + "/host_b");
  SetLogHandler(nullptr);
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("proc.io"), std::string::npos) << warnings[0];

  SampleBatch batch;
  ASSERT_TRUE((*made)->Collect(Timestamp{1, 1}, batch).ok());
  EXPECT_EQ(batch.size(), 11u) << "no proc.io series without /proc/PID/io";
  EXPECT_DOUBLE_EQ(*ValueOf(batch, "proc.cpu.user"), 250 * Tick());
  EXPECT_DOUBLE_EQ(*ValueOf(batch, "proc.cpu.system"), 75 * Tick());
  EXPECT_EQ(*ValueOf(batch, "proc.minflt"), 1500.0);
  EXPECT_EQ(*ValueOf(batch, "proc.majflt"), 3.0);
  EXPECT_EQ(*ValueOf(batch, "proc.threads"), 12.0);
  EXPECT_EQ(*ValueOf(batch, "proc.vsize"), 104857600.0);
  EXPECT_EQ(*ValueOf(batch, "proc.rss"), 2560 * Page());
  EXPECT_EQ(*ValueOf(batch, "proc.ctxt.voluntary"), 1000.0);
  EXPECT_EQ(*ValueOf(batch, "proc.ctxt.nonvoluntary"), 2000.0);
  EXPECT_FALSE(ValueOf(batch, "proc.io.read_bytes").has_value());
}

TEST(ProcessSourceTest, ZombieIsGone) {
  auto made = MakeProcess(777, kFixtures + "/host_b");
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  SampleBatch batch;
  Status status = (*made)->Collect(Timestamp{1, 1}, batch);
  EXPECT_EQ(status.code(), StatusCode::kNotFound);
  EXPECT_NE(status.message().find("777"), std::string::npos) << status.message();
  EXPECT_TRUE(batch.empty());
}

TEST(ProcessSourceTest, FromUriValidatesThePid) {
  auto ok = ProcessSourceOptions::FromUri(*Uri::Parse("process:1234"));
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->pid, 1234);
  EXPECT_EQ(ok->proc_root, "/proc");

  auto rooted = ProcessSourceOptions::FromUri(*Uri::Parse("process:99?proc_root=/x"));
  ASSERT_TRUE(rooted.ok()) << rooted.status().ToString();
  EXPECT_EQ(rooted->pid, 99);
  EXPECT_EQ(rooted->proc_root, "/x");

  for (const char* bad : {"process:abc", "process:", "process:-5", "process:0", "process:12x",
                          "process:99999999999"}) {
    auto uri = Uri::Parse(bad);
    ASSERT_TRUE(uri.ok()) << bad;
    auto options = ProcessSourceOptions::FromUri(*uri);
    ASSERT_FALSE(options.ok()) << bad;
    EXPECT_EQ(options.error().code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(options.error().message().find(uri->ToString()), std::string::npos)
        << options.error().message();
  }
  auto typo = ProcessSourceOptions::FromUri(*Uri::Parse("process:1?proc_roots=/x"));
  ASSERT_FALSE(typo.ok());
  EXPECT_EQ(typo.error().code(), StatusCode::kInvalidArgument);

  auto via_registry = MetricSourceFromUri("process:abc");
  ASSERT_FALSE(via_registry.ok());
  EXPECT_EQ(via_registry.error().code(), StatusCode::kInvalidArgument);
}

TEST(ProcessSourceTest, NoSuchProcessIsNotFound) {
  auto made = MakeProcess(999999, kFixtures + "/host_b");
  ASSERT_FALSE(made.ok());
  EXPECT_EQ(made.error().code(), StatusCode::kNotFound);
  EXPECT_NE(made.error().message().find("999999"), std::string::npos);
}

TEST(ProcessSourceTest, LiveChildThenKilledAndReaped) {
  SleepChild child;
  ASSERT_GT(child.pid(), 0);
  auto made = MetricSourceFromUri("process:" + std::to_string(child.pid()));
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  auto source = *made;

  SampleBatch batch;
  ASSERT_TRUE(source->Collect(Now(), batch).ok());
  EXPECT_EQ(*ValueOf(batch, "proc.threads"), 1.0);
  EXPECT_GT(*ValueOf(batch, "proc.vsize"), 0.0);
  EXPECT_GE(*ValueOf(batch, "proc.cpu.user"), 0.0);
  EXPECT_GE(*ValueOf(batch, "proc.ctxt.voluntary"), 0.0);
  const std::size_t samples = batch.size();
  EXPECT_GE(samples, 9u);
  EXPECT_EQ(batch.series.front().labels.at("pid"), std::to_string(child.pid()));

  child.Kill();
  child.Reap();
  batch.ClearSamples();
  Status gone = source->Collect(Now(), batch);
  EXPECT_EQ(gone.code(), StatusCode::kNotFound) << gone.ToString();
  EXPECT_NE(gone.message().find(std::to_string(child.pid())), std::string::npos);
}

TEST(ProcessSourceTest, KilledButNotReapedChildIsGone) {
  SleepChild child;
  ASSERT_GT(child.pid(), 0);
  auto made = MakeProcess(child.pid(), "/proc");
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  SampleBatch batch;
  ASSERT_TRUE((*made)->Collect(Now(), batch).ok());

  child.Kill();
  // SIGKILL is delivered asynchronously; the zombie shows up within moments.
  Status status;
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  do {
    batch.ClearSamples();
    status = (*made)->Collect(Now(), batch);
    if (!status.ok()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  } while (std::chrono::steady_clock::now() < until);
  EXPECT_EQ(status.code(), StatusCode::kNotFound) << status.ToString();
  EXPECT_NE(status.message().find("zombie"), std::string::npos) << status.message();
}

TEST(ProcessSourceTest, OwnProcessCountsCpuTime) {
  auto made = MakeProcess(::getpid(), "/proc");
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  SampleBatch batch;
  ASSERT_TRUE((*made)->Collect(Now(), batch).ok());
  const double before = *ValueOf(batch, "proc.cpu.user") + *ValueOf(batch, "proc.cpu.system");
  EXPECT_GE(*ValueOf(batch, "proc.threads"), 1.0);
  EXPECT_GT(*ValueOf(batch, "proc.rss"), 0.0);
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(50);
  volatile std::uint64_t spin = 0;
  while (std::chrono::steady_clock::now() < until) spin = spin + 1;
  batch.ClearSamples();
  ASSERT_TRUE((*made)->Collect(Now(), batch).ok());
  const double after = *ValueOf(batch, "proc.cpu.user") + *ValueOf(batch, "proc.cpu.system");
  EXPECT_GE(after, before) << "CPU time never goes back";
  EXPECT_GT(after, 0.0);
}

// The pids with samples of `metric`.
std::set<std::string> SampledPids(const SampleBatch& batch, const std::string& metric) {
  std::set<std::string> pids;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const Series& s = batch.series[batch.series_index[i]];
    if (s.metric == metric) pids.insert(s.labels.at("pid"));
  }
  return pids;
}

TEST(ProcessSourceTest, ChildrenAreFollowedUntilTheyExit) {
  // A shell with two children of its own.
  pid_t shell = -1;
  char arg0[] = "sh";
  char arg1[] = "-c";
  char arg2[] = "sleep 30 & sleep 30 & wait";
  char* argv[] = {arg0, arg1, arg2, nullptr};
  ASSERT_EQ(::posix_spawnp(&shell, "sh", nullptr, nullptr, argv, environ), 0);
  struct Reaper {
    pid_t pid;
    ~Reaper() {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  } reaper{shell};

  auto made = MetricSourceFromUri("process:" + std::to_string(shell) + "?children=true");
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  auto source = *made;
  EXPECT_EQ(source->uri(), "process:" + std::to_string(shell) + "?children=true");

  SampleBatch batch;
  std::set<std::string> pids;
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (pids.size() < 3 && std::chrono::steady_clock::now() < until) {
    batch.ClearSamples();
    ASSERT_TRUE(source->Collect(Now(), batch).ok());
    pids = SampledPids(batch, "proc.rss");
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(pids.size(), 3u) << "the shell and its two sleeps";
  ASSERT_EQ(pids.count(std::to_string(shell)), 1u);
  EXPECT_EQ(SampledPids(batch, "proc.cpu.user"), pids);
  EXPECT_EQ(SampledPids(batch, "proc.ctxt.voluntary"), pids);

  // A child that exits is dropped without an error; the others go on.
  pids.erase(std::to_string(shell));
  const pid_t first = static_cast<pid_t>(std::stol(*pids.begin()));
  ASSERT_EQ(::kill(first, SIGKILL), 0);
  std::set<std::string> after;
  const auto until_dropped = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  do {
    batch.ClearSamples();
    ASSERT_TRUE(source->Collect(Now(), batch).ok());
    after = SampledPids(batch, "proc.rss");
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  } while (after.size() == 3 && std::chrono::steady_clock::now() < until_dropped);
  EXPECT_EQ(after.size(), 2u);
  EXPECT_EQ(after.count(std::to_string(first)), 0u);

  // The named process ending ends the source.
  ::kill(shell, SIGKILL);
  ::waitpid(shell, nullptr, 0);
  batch.ClearSamples();
  EXPECT_EQ(source->Collect(Now(), batch).code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace bitfusion
