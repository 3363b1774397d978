// The "host" metric source against recorded procfs trees (exact values) and the live /proc.
#include "metrics/host_source.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "bitfusion/log.h"
#include "bitfusion/metric_stream.h"
#include "metrics/batch_writer.h"
#include "metrics/proc_file.h"

namespace bitfusion {
namespace {

namespace fs = std::filesystem;

const std::string kFixtures = std::string(BITFUSION_TEST_FIXTURES) + "/proc";

double Tick() { return 1.0 / static_cast<double>(::sysconf(_SC_CLK_TCK)); }

// The value of the only sample of `metric` whose series has label key=value.
std::optional<double> ValueOf(const SampleBatch& batch, const std::string& metric,
                              const std::string& key = "", const std::string& value = "") {
  std::optional<double> found;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const Series& s = batch.series[batch.series_index[i]];
    if (s.metric != metric) continue;
    if (!key.empty()) {
      auto it = s.labels.find(key);
      if (it == s.labels.end() || it->second != value) continue;
    }
    EXPECT_FALSE(found.has_value()) << "two samples of " << metric << " " << key << "=" << value;
    found = batch.value[i];
  }
  return found;
}

// Label values of `key` over the series of `metric` that have samples.
std::set<std::string> LabelValues(const SampleBatch& batch, const std::string& metric,
                                  const std::string& key) {
  std::set<std::string> out;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const Series& s = batch.series[batch.series_index[i]];
    if (s.metric != metric) continue;
    auto it = s.labels.find(key);
    if (it != s.labels.end()) out.insert(it->second);
  }
  return out;
}

// Each recorded tree carries its sysfs (for the CPU frequencies) in sys/.
std::shared_ptr<HostSource> MakeHost(const std::string& root) {
  HostSourceOptions options;
  options.proc_root = root;
  options.sys_root = root + "/sys";
  auto source = HostSource::Make(options);
  EXPECT_TRUE(source.ok()) << source.status().ToString();
  return source.ok() ? *source : nullptr;
}

// Collects log lines at warning level and above while alive.
class LogCapture {
 public:
  LogCapture() {
    SetLogHandler([this](LogLevel, std::string_view m) { lines_.emplace_back(m); });
  }
  ~LogCapture() { SetLogHandler(nullptr); }
  int Count(const std::string& needle) const {
    int n = 0;
    for (const auto& l : lines_) n += l.find(needle) != std::string::npos ? 1 : 0;
    return n;
  }
  const std::vector<std::string>& lines() const { return lines_; }

 private:
  std::vector<std::string> lines_;
};

TEST(HostSourceTest, RecordedTreeGivesExactValues) {
  auto host = MakeHost(kFixtures + "/host_a");
  ASSERT_NE(host, nullptr);
  SampleBatch batch;
  ASSERT_TRUE(host->Collect(Timestamp{111, 222}, batch).ok());

  // cpu: all, 0, 1 x 8 fields; 18 memory fields; 5 load; cpu, memory, io pressure x 8; vda x 8
  // (loop and zram skipped); lo, ifb0, ifb1, eth0 x 8; 2 CPU frequencies. One sample per series.
  EXPECT_EQ(batch.series.size(), 3u * 8 + 18 + 5 + 3 * 8 + 8 + 4 * 8 + 2);
  EXPECT_EQ(batch.size(), batch.series.size());
  for (std::size_t i = 0; i < batch.size(); ++i) {
    EXPECT_EQ(batch.timestamp_ns[i], 111);
    EXPECT_EQ(batch.monotonic_ns[i], 222);
  }

  EXPECT_DOUBLE_EQ(*ValueOf(batch, "cpu.user", "cpu", "all"), 40155 * Tick());
  EXPECT_DOUBLE_EQ(*ValueOf(batch, "cpu.nice", "cpu", "all"), 5561 * Tick());
  EXPECT_DOUBLE_EQ(*ValueOf(batch, "cpu.idle", "cpu", "0"), 104570 * Tick());
  EXPECT_DOUBLE_EQ(*ValueOf(batch, "cpu.iowait", "cpu", "1"), 1390 * Tick());
  EXPECT_DOUBLE_EQ(*ValueOf(batch, "cpu.softirq", "cpu", "1"), 78 * Tick());
  EXPECT_DOUBLE_EQ(*ValueOf(batch, "cpu.steal", "cpu", "1"), 52 * Tick());
  EXPECT_EQ(LabelValues(batch, "cpu.system", "cpu"), (std::set<std::string>{"all", "0", "1"}));

  EXPECT_EQ(*ValueOf(batch, "mem.total"), 24683652.0 * 1024);
  EXPECT_EQ(*ValueOf(batch, "mem.available"), 24328532.0 * 1024);
  EXPECT_EQ(*ValueOf(batch, "mem.buffers"), 2308.0 * 1024);
  EXPECT_EQ(*ValueOf(batch, "mem.dirty"), 244.0 * 1024);
  EXPECT_EQ(*ValueOf(batch, "mem.swap_total"), 0.0);
  EXPECT_EQ(*ValueOf(batch, "mem.committed"), 51872.0 * 1024);

  EXPECT_DOUBLE_EQ(*ValueOf(batch, "load.1m"), 0.37);
  EXPECT_DOUBLE_EQ(*ValueOf(batch, "load.5m"), 0.60);
  EXPECT_DOUBLE_EQ(*ValueOf(batch, "load.15m"), 0.45);
  EXPECT_EQ(*ValueOf(batch, "tasks.running"), 1.0);
  EXPECT_EQ(*ValueOf(batch, "tasks.total"), 83.0);

  EXPECT_EQ(LabelValues(batch, "disk.reads", "device"), (std::set<std::string>{"vda"}));
  EXPECT_EQ(*ValueOf(batch, "disk.reads", "device", "vda"), 48575.0);
  EXPECT_EQ(*ValueOf(batch, "disk.read_bytes", "device", "vda"), 3200074.0 * 512);
  EXPECT_DOUBLE_EQ(*ValueOf(batch, "disk.read_time", "device", "vda"), 72.913);
  EXPECT_EQ(*ValueOf(batch, "disk.writes", "device", "vda"), 35571.0);
  EXPECT_EQ(*ValueOf(batch, "disk.write_bytes", "device", "vda"), 4642336.0 * 512);
  EXPECT_DOUBLE_EQ(*ValueOf(batch, "disk.write_time", "device", "vda"), 16.294);
  EXPECT_EQ(*ValueOf(batch, "disk.in_flight", "device", "vda"), 0.0);
  EXPECT_DOUBLE_EQ(*ValueOf(batch, "disk.io_time", "device", "vda"), 20.2);

  EXPECT_EQ(LabelValues(batch, "net.rx_bytes", "iface"),
            (std::set<std::string>{"lo", "ifb0", "ifb1", "eth0"}));
  EXPECT_EQ(*ValueOf(batch, "net.rx_bytes", "iface", "eth0"), 51544808.0);
  EXPECT_EQ(*ValueOf(batch, "net.rx_packets", "iface", "eth0"), 1377.0);
  EXPECT_EQ(*ValueOf(batch, "net.tx_bytes", "iface", "eth0"), 58561.0);
  EXPECT_EQ(*ValueOf(batch, "net.tx_packets", "iface", "eth0"), 634.0);
  EXPECT_EQ(*ValueOf(batch, "net.tx_bytes", "iface", "lo"), 3319.0);

  // Pressure as recorded from this project's build machine (Linux 6.18).
  EXPECT_DOUBLE_EQ(*ValueOf(batch, "pressure.some.avg10", "resource", "cpu"), 23.69);
  EXPECT_DOUBLE_EQ(*ValueOf(batch, "pressure.some.avg60", "resource", "cpu"), 67.59);
  EXPECT_DOUBLE_EQ(*ValueOf(batch, "pressure.some.avg300", "resource", "cpu"), 57.58);
  EXPECT_DOUBLE_EQ(*ValueOf(batch, "pressure.some.total", "resource", "cpu"), 5466.105798);
  EXPECT_DOUBLE_EQ(*ValueOf(batch, "pressure.full.total", "resource", "cpu"), 0.0);
  EXPECT_DOUBLE_EQ(*ValueOf(batch, "pressure.some.total", "resource", "memory"), 0.014086);
  EXPECT_DOUBLE_EQ(*ValueOf(batch, "pressure.full.total", "resource", "memory"), 0.004854);
  EXPECT_DOUBLE_EQ(*ValueOf(batch, "pressure.some.avg10", "resource", "io"), 0.12);
  EXPECT_DOUBLE_EQ(*ValueOf(batch, "pressure.some.avg300", "resource", "io"), 0.24);
  EXPECT_DOUBLE_EQ(*ValueOf(batch, "pressure.full.total", "resource", "io"), 32.802329);

  // cpufreq's kHz; the policy directory beside the CPUs is not a CPU.
  EXPECT_EQ(LabelValues(batch, "cpu.frequency", "cpu"), (std::set<std::string>{"0", "1"}));
  EXPECT_EQ(*ValueOf(batch, "cpu.frequency", "cpu", "0"), 2596146e3);
  EXPECT_EQ(*ValueOf(batch, "cpu.frequency", "cpu", "1"), 1200000e3);

  // Units travel with the series, and counters are marked as such.
  for (const Series& s : batch.series) {
    if (s.metric.starts_with("cpu.") && s.metric != "cpu.frequency") {
      EXPECT_EQ(s.unit, "s") << s.metric;
      EXPECT_TRUE(s.counter) << s.metric;
    }
    if (s.metric.starts_with("mem.")) {
      EXPECT_EQ(s.unit, "bytes") << s.metric;
      EXPECT_FALSE(s.counter) << s.metric;
    }
    if (s.metric.starts_with("net.")) EXPECT_TRUE(s.counter) << s.metric;
    if (s.metric.starts_with("pressure.")) {
      EXPECT_EQ(s.counter, s.metric.ends_with(".total")) << s.metric;
      EXPECT_EQ(s.unit, s.counter ? "s" : "%") << s.metric;
    }
  }
}

TEST(HostSourceTest, SteadyStateReusesSeriesAndStorage) {
  auto host = MakeHost(kFixtures + "/host_a");
  ASSERT_NE(host, nullptr);
  SampleBatch batch;
  ASSERT_TRUE(host->Collect(Timestamp{1, 1}, batch).ok());
  const std::size_t series = batch.series.size();
  const std::size_t samples = batch.size();
  const std::vector<double> first = batch.value;
  batch.ClearSamples();
  const double* storage = batch.value.data();
  ASSERT_TRUE(host->Collect(Timestamp{2, 2}, batch).ok());
  EXPECT_EQ(batch.series.size(), series) << "series are declared once";
  EXPECT_EQ(batch.size(), samples);
  EXPECT_EQ(batch.value, first);
  EXPECT_EQ(batch.value.data(), storage) << "no reallocation in the steady state";
  EXPECT_EQ(batch.timestamp_ns.front(), 2);
}

TEST(HostSourceTest, SkipsPartitionsAndVirtualDisksAndReadsEveryLayout) {
  auto host = MakeHost(kFixtures + "/host_b");
  ASSERT_NE(host, nullptr);
  SampleBatch batch;
  ASSERT_TRUE(host->Collect(Timestamp{5, 6}, batch).ok());

  EXPECT_EQ(LabelValues(batch, "cpu.user", "cpu"), (std::set<std::string>{"all", "0", "1", "3"}));
  EXPECT_DOUBLE_EQ(*ValueOf(batch, "cpu.steal", "cpu", "all"), 800 * Tick());
  EXPECT_DOUBLE_EQ(*ValueOf(batch, "cpu.user", "cpu", "3"), 12345 * Tick());
  EXPECT_DOUBLE_EQ(*ValueOf(batch, "cpu.idle", "cpu", "3"), 1000000 * Tick());

  EXPECT_EQ(LabelValues(batch, "disk.reads", "device"),
            (std::set<std::string>{"sda", "nvme0n1", "nvme0n10", "dm-0", "md0"}));
  EXPECT_EQ(*ValueOf(batch, "disk.reads", "device", "sda"), 1000.0);
  EXPECT_EQ(*ValueOf(batch, "disk.read_bytes", "device", "sda"), 2000.0 * 512);
  EXPECT_DOUBLE_EQ(*ValueOf(batch, "disk.read_time", "device", "sda"), 1.5);
  EXPECT_EQ(*ValueOf(batch, "disk.write_bytes", "device", "sda"), 4000.0 * 512);
  EXPECT_EQ(*ValueOf(batch, "disk.in_flight", "device", "sda"), 3.0);
  EXPECT_DOUBLE_EQ(*ValueOf(batch, "disk.io_time", "device", "sda"), 3.0);
  // An older kernel's 11-field line still parses.
  EXPECT_EQ(*ValueOf(batch, "disk.writes", "device", "nvme0n10"), 5.0);
  EXPECT_DOUBLE_EQ(*ValueOf(batch, "disk.io_time", "device", "nvme0n10"), 0.010);

  EXPECT_EQ(LabelValues(batch, "net.rx_bytes", "iface"),
            (std::set<std::string>{"lo", "eth0", "veth1234abc"}));
  EXPECT_EQ(*ValueOf(batch, "net.rx_errs", "iface", "eth0"), 1.0);
  EXPECT_EQ(*ValueOf(batch, "net.rx_drop", "iface", "eth0"), 2.0);
  EXPECT_EQ(*ValueOf(batch, "net.tx_errs", "iface", "eth0"), 3.0);
  EXPECT_EQ(*ValueOf(batch, "net.tx_drop", "iface", "eth0"), 4.0);
  // A long name touching its first number, and a counter at its 64-bit limit.
  EXPECT_EQ(*ValueOf(batch, "net.rx_bytes", "iface", "veth1234abc"), 18446744073709551615.0);
  EXPECT_EQ(*ValueOf(batch, "net.tx_drop", "iface", "veth1234abc"), 12.0);

  EXPECT_EQ(*ValueOf(batch, "mem.total"), 65536000.0 * 1024);
  EXPECT_EQ(*ValueOf(batch, "mem.swap_free"), 4194304.0 * 1024);
  EXPECT_FALSE(ValueOf(batch, "mem.anon").has_value()) << "not in this meminfo";
  EXPECT_DOUBLE_EQ(*ValueOf(batch, "load.1m"), 12.5);
  EXPECT_EQ(*ValueOf(batch, "tasks.running"), 7.0);
  EXPECT_EQ(*ValueOf(batch, "tasks.total"), 1234.0);

  // A kernel before 5.13 has no "full" line for CPU pressure.
  EXPECT_DOUBLE_EQ(*ValueOf(batch, "pressure.some.avg10", "resource", "cpu"), 12.5);
  EXPECT_DOUBLE_EQ(*ValueOf(batch, "pressure.some.total", "resource", "cpu"), 1.234567);
  EXPECT_FALSE(ValueOf(batch, "pressure.full.avg10", "resource", "cpu").has_value());
  EXPECT_DOUBLE_EQ(*ValueOf(batch, "pressure.full.avg300", "resource", "io"), 2.5);
  EXPECT_DOUBLE_EQ(*ValueOf(batch, "pressure.full.total", "resource", "io"), 42e-6);
  EXPECT_FALSE(ValueOf(batch, "cpu.frequency", "cpu", "0").has_value()) << "no sysfs here";
}

TEST(HostSourceTest, MissingOptionalFilesAreWarnedOnceAndSkipped) {
  LogCapture log;
  auto host = MakeHost(kFixtures + "/host_c");
  ASSERT_NE(host, nullptr);
  EXPECT_EQ(log.Count("loadavg"), 1);
  EXPECT_EQ(log.Count("diskstats"), 1);
  EXPECT_EQ(log.Count("net/dev"), 1);
  EXPECT_EQ(log.Count("pressure/cpu, pressure/memory, pressure/io will not be sampled"), 1)
      << "one warning for the three pressure files";
  EXPECT_EQ(log.Count("cpu.frequency will not be sampled"), 1);
  SampleBatch batch;
  ASSERT_TRUE(host->Collect(Timestamp{1, 1}, batch).ok());
  batch.ClearSamples();
  ASSERT_TRUE(host->Collect(Timestamp{1, 1}, batch).ok());
  EXPECT_EQ(log.lines().size(), 5u) << "nothing more is logged while sampling";
  EXPECT_TRUE(ValueOf(batch, "mem.total").has_value());
  EXPECT_TRUE(ValueOf(batch, "cpu.user", "cpu", "all").has_value());
  for (const Series& s : batch.series) {
    EXPECT_FALSE(s.metric.starts_with("disk.") || s.metric.starts_with("net.") ||
                 s.metric.starts_with("pressure.") || s.metric == "cpu.frequency")
        << s.metric;
  }
  EXPECT_FALSE(ValueOf(batch, "load.1m").has_value());
}

TEST(HostSourceTest, MissingProcRootIsAnError) {
  HostSourceOptions options;
  options.proc_root = kFixtures + "/does_not_exist";
  auto host = HostSource::Make(options);
  ASSERT_FALSE(host.ok());
  EXPECT_EQ(host.error().code(), StatusCode::kNotFound);
  EXPECT_NE(host.error().message().find("does_not_exist"), std::string::npos)
      << host.error().message();
}

class HostLayoutTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("bitfusion_host_layout_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::copy(kFixtures + "/host_b", root_, fs::copy_options::recursive);
  }
  void TearDown() override { fs::remove_all(root_); }

  // Rewrites in place (same inode), as the kernel does: the source keeps its file open.
  void Rewrite(const std::string& name, const std::string& text) {
    std::ofstream out(root_ / name, std::ios::trunc);
    out << text;
  }

  fs::path root_;
};

TEST_F(HostLayoutTest, NewInterfacesAndCpusAddSeriesAndKeepOldOnes) {
  auto host = MakeHost(root_.string());
  ASSERT_NE(host, nullptr);
  SampleBatch batch;
  ASSERT_TRUE(host->Collect(Timestamp{1, 1}, batch).ok());
  const std::vector<Series> before = batch.series;

  Rewrite("net/dev",
          "Inter-|   Receive |  Transmit\n"
          " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets\n"
          "    lo:    3319      30    0    0    0     0          0         0     3319      30    "
          "0    0    0     0       0          0\n"
          " wlan0:     500       5    0    0    0     0          0         0      600       6    "
          "0    0    0     0       0          0\n"
          "  eth0:     999       9    0    0    0     0          0         0      888       8    "
          "0    0    0     0       0          0\n");
  Rewrite("stat",
          "cpu  1 2 3 4 5 6 7 8 0 0\n"
          "cpu0 1 1 1 1 1 1 1 1 0 0\n"
          "cpu1 2 2 2 2 2 2 2 2 0 0\n"
          "cpu2 7 7 7 7 7 7 7 7 0 0\n"
          "cpu3 3 3 3 3 3 3 3 3 0 0\n"
          "intr 0\n");
  batch.ClearSamples();
  ASSERT_TRUE(host->Collect(Timestamp{2, 2}, batch).ok());

  ASSERT_EQ(batch.series.size(), before.size() + 8 + 8) << "one interface and one CPU more";
  for (std::size_t i = 0; i < before.size(); ++i) {
    EXPECT_EQ(batch.series[i].metric, before[i].metric) << "old series keep their index";
    EXPECT_EQ(batch.series[i].labels, before[i].labels);
  }
  EXPECT_EQ(*ValueOf(batch, "net.rx_bytes", "iface", "wlan0"), 500.0);
  EXPECT_EQ(*ValueOf(batch, "net.tx_packets", "iface", "wlan0"), 6.0);
  EXPECT_EQ(*ValueOf(batch, "net.rx_bytes", "iface", "eth0"), 999.0);
  EXPECT_EQ(*ValueOf(batch, "net.tx_bytes", "iface", "eth0"), 888.0);
  EXPECT_FALSE(ValueOf(batch, "net.rx_bytes", "iface", "veth1234abc").has_value())
      << "an interface that went away has no sample";
  EXPECT_DOUBLE_EQ(*ValueOf(batch, "cpu.user", "cpu", "2"), 7 * Tick());
  EXPECT_DOUBLE_EQ(*ValueOf(batch, "cpu.user", "cpu", "3"), 3 * Tick());

  // And back: the table remembers both layouts without adding series.
  fs::copy_file(kFixtures + "/host_b/net/dev", root_ / "net/dev.orig");
  std::ifstream orig(root_ / "net/dev.orig");
  std::stringstream text;
  text << orig.rdbuf();
  Rewrite("net/dev", text.str());
  const std::size_t series = batch.series.size();
  batch.ClearSamples();
  ASSERT_TRUE(host->Collect(Timestamp{3, 3}, batch).ok());
  EXPECT_EQ(batch.series.size(), series);
  EXPECT_EQ(*ValueOf(batch, "net.rx_bytes", "iface", "eth0"), 51544808.0);
}

TEST(HostSourceTest, RedeclaresForABatchItDidNotBuild) {
  auto host = MakeHost(kFixtures + "/host_a");
  ASSERT_NE(host, nullptr);
  SampleBatch first;
  ASSERT_TRUE(host->Collect(Timestamp{1, 1}, first).ok());

  SampleBatch shared;
  const auto other = shared.AddSeries({"other.metric", "1", {}});
  shared.Append(other, 0, 0, 42);
  ASSERT_TRUE(host->Collect(Timestamp{1, 1}, shared).ok());
  EXPECT_EQ(shared.series.size(), first.series.size() + 1);
  EXPECT_EQ(shared.size(), first.size() + 1);
  EXPECT_EQ(*ValueOf(shared, "other.metric"), 42.0);
  EXPECT_EQ(*ValueOf(shared, "mem.total"), 24683652.0 * 1024);
  EXPECT_DOUBLE_EQ(*ValueOf(shared, "cpu.user", "cpu", "0"), 18510 * Tick());
}

TEST(HostSourceTest, FromUri) {
  auto plain = HostSourceOptions::FromUri(*Uri::Parse("host"));
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  EXPECT_EQ(plain->proc_root, "/proc");

  auto rooted = HostSourceOptions::FromUri(*Uri::Parse("host:?proc_root=/tmp/tree"));
  ASSERT_TRUE(rooted.ok()) << rooted.status().ToString();
  EXPECT_EQ(rooted->proc_root, "/tmp/tree");

  auto typo = HostSourceOptions::FromUri(*Uri::Parse("host:?proc_rot=/tmp"));
  ASSERT_FALSE(typo.ok());
  EXPECT_EQ(typo.error().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(typo.error().message().find("proc_rot"), std::string::npos);

  auto path = HostSourceOptions::FromUri(*Uri::Parse("host:something"));
  ASSERT_FALSE(path.ok());
  EXPECT_EQ(path.error().code(), StatusCode::kInvalidArgument);

  auto empty = HostSourceOptions::FromUri(*Uri::Parse("host:?proc_root="));
  EXPECT_FALSE(empty.ok());

  auto both = HostSourceOptions::FromUri(*Uri::Parse("host?proc_root=/p&sys_root=/s"));
  ASSERT_TRUE(both.ok()) << both.status().ToString();
  EXPECT_EQ(both->proc_root, "/p");
  EXPECT_EQ(both->sys_root, "/s");
  EXPECT_FALSE(HostSourceOptions::FromUri(*Uri::Parse("host?sys_root=")).ok());
  auto made = HostSource::Make(*HostSourceOptions::FromUri(*Uri::Parse(
      "host?proc_root=" + kFixtures + "/host_a&sys_root=" + kFixtures + "/host_a/sys")));
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  EXPECT_EQ((*made)->uri(),
            "host?proc_root=" + kFixtures + "/host_a&sys_root=" + kFixtures + "/host_a/sys");

  auto registered = MetricSourceFromUri("host:?proc_root=" + kFixtures + "/host_a");
  ASSERT_TRUE(registered.ok()) << registered.status().ToString();
  SampleBatch batch;
  ASSERT_TRUE((*registered)->Collect(Timestamp{1, 1}, batch).ok());
  EXPECT_EQ(*ValueOf(batch, "tasks.total"), 83.0);
}

TEST(HostSourceTest, LiveProcIsSane) {
  auto made = MetricSourceFromUri("host");
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  auto host = *made;
  EXPECT_EQ(host->uri(), "host");

  SampleBatch batch;
  ASSERT_TRUE(host->Collect(Now(), batch).ok());

  std::ifstream stat("/proc/stat");
  std::string line;
  std::size_t cpu_lines = 0;
  while (std::getline(stat, line)) {
    if (line.size() > 3 && line.starts_with("cpu") && line[3] != ' ') ++cpu_lines;
  }
  auto cpus = LabelValues(batch, "cpu.user", "cpu");
  ASSERT_EQ(cpus.count("all"), 1u);
  EXPECT_EQ(cpus.size() - 1, cpu_lines);
  EXPECT_GE(cpus.size() - 1, 1u);
  EXPECT_LE(cpus.size() - 1, static_cast<std::size_t>(::sysconf(_SC_NPROCESSORS_CONF)));

  const double total = *ValueOf(batch, "mem.total");
  EXPECT_GT(total, 0);
  EXPECT_LE(*ValueOf(batch, "mem.available"), total);
  EXPECT_LE(*ValueOf(batch, "mem.free"), total);
  EXPECT_GE(*ValueOf(batch, "load.1m"), 0);
  EXPECT_GE(*ValueOf(batch, "tasks.total"), 1);
  EXPECT_TRUE(ValueOf(batch, "net.rx_bytes", "iface", "lo").has_value());
  if (fs::exists("/proc/pressure/cpu")) {
    EXPECT_GE(*ValueOf(batch, "pressure.some.total", "resource", "cpu"), 0.0);
    EXPECT_GE(*ValueOf(batch, "pressure.some.avg10", "resource", "memory"), 0.0);
    EXPECT_LE(*ValueOf(batch, "pressure.some.avg10", "resource", "io"), 100.0);
  }
  for (const Series& s : batch.series) {
    if (s.metric.starts_with("disk.")) {
      const std::string& dev = s.labels.at("device");
      EXPECT_FALSE(dev.starts_with("loop") || dev.starts_with("ram")) << dev;
    }
  }

  const double busy_before =
      *ValueOf(batch, "cpu.user", "cpu", "all") + *ValueOf(batch, "cpu.system", "cpu", "all");
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(30);
  volatile std::uint64_t spin = 0;
  while (std::chrono::steady_clock::now() < until) spin = spin + 1;
  batch.ClearSamples();
  ASSERT_TRUE(host->Collect(Now(), batch).ok());
  const double busy_after =
      *ValueOf(batch, "cpu.user", "cpu", "all") + *ValueOf(batch, "cpu.system", "cpu", "all");
  EXPECT_GE(busy_after, busy_before) << "CPU time counters never go back";
}

TEST(ProcParsingTest, NumbersAreExactAndOverflowIsRefused) {
  using internal::ParseI64;
  using internal::ParseU64;
  const auto u64 = [](std::string_view text) -> std::optional<std::uint64_t> {
    const char* p = text.data();
    std::uint64_t v = 0;
    if (!ParseU64(p, text.data() + text.size(), v)) return std::nullopt;
    return v;
  };
  EXPECT_EQ(u64("0"), 0u);
  EXPECT_EQ(u64("  \t42 rest"), 42u);
  EXPECT_EQ(u64("1234567890123456789"), 1234567890123456789u);    // 19 digits
  EXPECT_EQ(u64("18446744073709551615"), 18446744073709551615u);  // 2^64 - 1
  EXPECT_EQ(u64("00000000000000000000042"), 42u);                 // long, but in range
  EXPECT_EQ(u64("18446744073709551616"), std::nullopt);           // 2^64
  EXPECT_EQ(u64("99999999999999999999"), std::nullopt);
  EXPECT_EQ(u64(""), std::nullopt);
  EXPECT_EQ(u64(" \n5"), std::nullopt) << "numbers never continue on the next line";
  EXPECT_EQ(u64("-1"), std::nullopt);

  const auto i64 = [](std::string_view text) -> std::optional<std::int64_t> {
    const char* p = text.data();
    std::int64_t v = 0;
    if (!ParseI64(p, text.data() + text.size(), v)) return std::nullopt;
    return v;
  };
  EXPECT_EQ(i64(" -1"), -1);
  EXPECT_EQ(i64("17"), 17);
  EXPECT_EQ(i64("9223372036854775807"), INT64_MAX);
  EXPECT_EQ(i64("9223372036854775808"), std::nullopt);
  EXPECT_EQ(i64("-"), std::nullopt);
  EXPECT_EQ(i64("- 3"), std::nullopt);
}

TEST(BatchWriterTest, GrowsAndTrimsToWhatWasWritten) {
  SampleBatch batch;
  const auto s = batch.AddSeries({"m", "1", {}});
  batch.Append(s, 1, 2, 3.0);
  {
    internal::BatchWriter out(batch, Timestamp{10, 20}, 2);
    for (int i = 0; i < 100; ++i) out.Append(s, i);  // far beyond the room made up front
    EXPECT_EQ(out.size(), 101u);
  }
  ASSERT_EQ(batch.size(), 101u);
  EXPECT_EQ(batch.series_index.size(), 101u);
  EXPECT_EQ(batch.timestamp_ns.size(), 101u);
  EXPECT_EQ(batch.monotonic_ns.size(), 101u);
  EXPECT_EQ(batch.value[0], 3.0) << "what was there stays";
  EXPECT_EQ(batch.timestamp_ns[0], 1);
  EXPECT_EQ(batch.value[100], 99.0);
  EXPECT_EQ(batch.timestamp_ns[100], 10);
  EXPECT_EQ(batch.monotonic_ns[100], 20);
  { internal::BatchWriter unused(batch, Timestamp{0, 0}, 50); }
  EXPECT_EQ(batch.size(), 101u) << "room made but not used is trimmed";
}

TEST(IsPartitionOfTest, FollowsKernelNaming) {
  using internal::IsPartitionOf;
  EXPECT_TRUE(IsPartitionOf("sda1", "sda"));
  EXPECT_TRUE(IsPartitionOf("sda15", "sda"));
  EXPECT_FALSE(IsPartitionOf("sdaa", "sda"));
  EXPECT_FALSE(IsPartitionOf("sda", "sda"));
  EXPECT_TRUE(IsPartitionOf("nvme0n1p2", "nvme0n1"));
  EXPECT_FALSE(IsPartitionOf("nvme0n10", "nvme0n1")) << "a disk, not a partition";
  EXPECT_FALSE(IsPartitionOf("nvme0n1p", "nvme0n1"));
  EXPECT_TRUE(IsPartitionOf("mmcblk0p1", "mmcblk0"));
  EXPECT_FALSE(IsPartitionOf("mmcblk0boot0", "mmcblk0"));
  EXPECT_FALSE(IsPartitionOf("vdb1", "vda"));
}

}  // namespace
}  // namespace bitfusion
