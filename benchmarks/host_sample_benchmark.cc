// What one sample of the "host", "process:PID" and "cgroup:PATH" sources costs next to the
// floor: reading the same procfs/cgroupfs files, kept open, with pread into a buffer and doing
// nothing else. The cgroup pair samples this process's own group(s).
//
// Target: host sample / raw pread <= 1.15 (parsing and appending add at most 15% to the reads
// the kernel has to do anyway). The pairs run interleaved in rounds so that both sides see the
// same machine; the ratio is the median over rounds of the per-round ratio of CPU time per
// iteration. Allocations per sample are counted too: the steady state should make none. A third
// pair reads a copy of the files from a regular directory, where reading is nearly free, to
// show the parsing cost alone.
//
//   host_sample_benchmark [--rounds=N] [Google Benchmark flags]
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "allocation_counter.h"
#include "bitfusion/metric_stream.h"
#include "metrics/cgroup_source.h"
#include "metrics/host_source.h"
#include "metrics/process_source.h"
#include "round_reporter.h"

namespace {

using bitfusion::SampleBatch;
using bitfusion::Timestamp;

// The floor: the files the source reads, opened once, read whole with as few preads as the
// kernel allows (one for files generated in one piece, until EOF for record-per-line files).
class RawFiles {
 public:
  void Add(const std::string& path, bool until_eof) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      std::perror(path.c_str());
      std::exit(1);
    }
    files_.push_back({fd, until_eof});
  }
  ~RawFiles() {
    for (const File& f : files_) ::close(f.fd);
  }
  std::size_t ReadAll() {
    std::size_t bytes = 0;
    for (const File& f : files_) {
      if (!f.until_eof) {
        bytes += static_cast<std::size_t>(
            std::max<ssize_t>(0, ::pread(f.fd, buffer_, sizeof buffer_, 0)));
        continue;
      }
      std::size_t offset = 0;
      for (;;) {
        const ssize_t n =
            ::pread(f.fd, buffer_ + offset, sizeof buffer_ - offset, static_cast<off_t>(offset));
        if (n <= 0) break;
        offset += static_cast<std::size_t>(n);
      }
      bytes += offset;
    }
    return bytes;
  }

 private:
  struct File {
    int fd;
    bool until_eof;
  };
  std::vector<File> files_;
  char buffer_[256 * 1024];
};

RawFiles& HostRaw() {
  static RawFiles* files = [] {
    auto* f = new RawFiles();
    f->Add("/proc/stat", false);
    f->Add("/proc/meminfo", false);
    f->Add("/proc/loadavg", false);
    f->Add("/proc/diskstats", true);
    f->Add("/proc/net/dev", true);
    // The optional parts the source reads where the kernel has them: PSI and cpufreq.
    for (const char* resource : {"cpu", "memory", "io"}) {
      const std::string path = std::string("/proc/pressure/") + resource;
      if (::access(path.c_str(), R_OK) == 0) f->Add(path, false);
    }
    for (int cpu = 0;; ++cpu) {
      const std::string dir = "/sys/devices/system/cpu/cpu" + std::to_string(cpu);
      if (::access(dir.c_str(), F_OK) != 0) break;
      const std::string freq = dir + "/cpufreq/scaling_cur_freq";
      if (::access(freq.c_str(), R_OK) == 0) f->Add(freq, false);
    }
    return f;
  }();
  return *files;
}

RawFiles& ProcessRaw() {
  static RawFiles* files = [] {
    auto* f = new RawFiles();
    const std::string dir = "/proc/" + std::to_string(::getpid()) + "/";
    f->Add(dir + "stat", false);
    f->Add(dir + "status", false);
    f->Add(dir + "io", false);
    return f;
  }();
  return *files;
}

std::shared_ptr<bitfusion::MetricSource> HostSource() {
  static auto source = [] {
    auto made = bitfusion::HostSource::Make(bitfusion::HostSourceOptions{});
    if (!made) {
      std::fprintf(stderr, "host source: %s\n", made.error().ToString().c_str());
      std::exit(1);
    }
    return std::shared_ptr<bitfusion::MetricSource>(*made);
  }();
  return source;
}

std::shared_ptr<bitfusion::MetricSource> ProcessSource() {
  static auto source = [] {
    bitfusion::ProcessSourceOptions options;
    options.pid = ::getpid();
    auto made = bitfusion::ProcessSource::Make(options);
    if (!made) {
      std::fprintf(stderr, "process source: %s\n", made.error().ToString().c_str());
      std::exit(1);
    }
    return std::shared_ptr<bitfusion::MetricSource>(*made);
  }();
  return source;
}

// This process's own control group(s), as /proc/self/cgroup names them: the "cgroup" source on
// them, and the floor reading the same files (the file of each part the source reads, where it
// exists, one pread for single-value files and until EOF for the keyed/per-device ones).
const bitfusion::CgroupDirs& OwnCgroup() {
  static const bitfusion::CgroupDirs dirs = [] {
    std::ifstream in("/proc/self/cgroup");
    const std::string text((std::istreambuf_iterator<char>(in)), {});
    auto made = bitfusion::CgroupDirs::FromProcCgroup("/sys/fs/cgroup", text);
    if (!made) {
      std::fprintf(stderr, "own cgroup: %s\n", made.error().ToString().c_str());
      std::exit(1);
    }
    return *made;
  }();
  return dirs;
}

RawFiles& CgroupRaw() {
  static RawFiles* files = [] {
    auto* f = new RawFiles();
    const bitfusion::CgroupDirs& d = OwnCgroup();
    auto add = [f](const std::string& dir, const char* name, bool until_eof) {
      const std::string path = dir + "/" + name;
      if (!dir.empty() && ::access(path.c_str(), R_OK) == 0) f->Add(path, until_eof);
    };
    if (d.v2) {
      for (const char* name :
           {"cpu.stat", "memory.current", "memory.max", "pids.current", "pids.max"}) {
        add(d.unified, name, false);
      }
      add(d.unified, "memory.stat", true);
      add(d.unified, "io.stat", true);
    } else {
      add(d.cpu, "cpu.stat", false);
      add(d.cpuacct, "cpuacct.usage", false);
      add(d.cpuacct, "cpuacct.stat", false);
      add(d.memory, "memory.usage_in_bytes", false);
      add(d.memory, "memory.limit_in_bytes", false);
      add(d.memory, "memory.stat", true);
      add(d.blkio, "blkio.throttle.io_service_bytes", true);
      add(d.blkio, "blkio.throttle.io_serviced", true);
      add(d.pids, "pids.current", false);
      add(d.pids, "pids.max", false);
    }
    return f;
  }();
  return *files;
}

std::shared_ptr<bitfusion::MetricSource> CgroupSource() {
  static auto source = [] {
    auto made = bitfusion::CgroupSource::Make(OwnCgroup(), "cgroup:self", {});
    if (!made) {
      std::fprintf(stderr, "cgroup source: %s\n", made.error().ToString().c_str());
      std::exit(1);
    }
    return std::shared_ptr<bitfusion::MetricSource>(*made);
  }();
  return source;
}

// The same files copied once to a directory: reading them is then almost free, so the
// difference between the pair below is the cost of parsing and appending alone.
const std::string& SnapshotDir() {
  static const std::string dir = [] {
    char name[] = "/tmp/bitfusion_host_snapshot_XXXXXX";
    if (::mkdtemp(name) == nullptr || ::mkdir((std::string(name) + "/net").c_str(), 0700) != 0) {
      std::perror("snapshot directory");
      std::exit(1);
    }
    for (const char* file : {"stat", "meminfo", "loadavg", "diskstats", "net/dev"}) {
      const std::string from = std::string("/proc/") + file;
      const std::string to = std::string(name) + "/" + file;
      const int in = ::open(from.c_str(), O_RDONLY | O_CLOEXEC);
      const int out = ::open(to.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
      char buf[256 * 1024];
      const ssize_t n = in < 0 ? -1 : ::read(in, buf, sizeof buf);
      if (out < 0 || n < 0 || ::write(out, buf, static_cast<std::size_t>(n)) != n) {
        std::perror(to.c_str());
        std::exit(1);
      }
      ::close(in);
      ::close(out);
    }
    return std::string(name);
  }();
  return dir;
}

void RemoveSnapshot() {
  for (const char* file : {"stat", "meminfo", "loadavg", "diskstats", "net/dev", "net", ""}) {
    ::remove((SnapshotDir() + "/" + file).c_str());
  }
}

RawFiles& SnapshotRaw() {
  static RawFiles* files = [] {
    auto* f = new RawFiles();
    f->Add(SnapshotDir() + "/stat", false);
    f->Add(SnapshotDir() + "/meminfo", false);
    f->Add(SnapshotDir() + "/loadavg", false);
    f->Add(SnapshotDir() + "/diskstats", true);
    f->Add(SnapshotDir() + "/net/dev", true);
    return f;
  }();
  return *files;
}

std::shared_ptr<bitfusion::MetricSource> SnapshotSource() {
  static auto source = [] {
    bitfusion::HostSourceOptions options;
    options.proc_root = SnapshotDir();
    auto made = bitfusion::HostSource::Make(options);
    if (!made) {
      std::fprintf(stderr, "host source on a snapshot: %s\n", made.error().ToString().c_str());
      std::exit(1);
    }
    return std::shared_ptr<bitfusion::MetricSource>(*made);
  }();
  return source;
}

void RawPread(benchmark::State& state, RawFiles& files) {
  std::size_t bytes = 0;
  for (auto _ : state) {
    bytes = files.ReadAll();
    benchmark::DoNotOptimize(bytes);
  }
  state.counters["bytes"] = static_cast<double>(bytes);
}

void Collect(benchmark::State& state, bitfusion::MetricSource& source) {
  SampleBatch batch;
  const Timestamp now = bitfusion::Now();
  // The first call declares the series; the benchmark measures the steady state after it.
  if (!source.Collect(now, batch).ok()) {
    state.SkipWithError("Collect failed");
    return;
  }
  const std::int64_t allocations_before = bitfusion::bench::Allocations();
  for (auto _ : state) {
    batch.ClearSamples();
    const bitfusion::Status status = source.Collect(now, batch);
    benchmark::DoNotOptimize(status.ok());
    benchmark::DoNotOptimize(batch.value.data());
  }
  state.counters["samples"] = static_cast<double>(batch.size());
  state.counters["allocs_per_sample"] =
      static_cast<double>(bitfusion::bench::Allocations() - allocations_before) /
      static_cast<double>(std::max<benchmark::IterationCount>(1, state.iterations()));
}

// A whole MetricStream sampling "host" every millisecond and delivering every tick to a
// subscriber: after warming up, how many allocations does a tick cost, sampling and delivery
// together? The stream recycles its batches, so the answer should be 0.
void StreamAllocations() {
  bitfusion::MetricStreamOptions options;
  options.interval = std::chrono::milliseconds(1);
  options.delivery_interval = std::chrono::nanoseconds(0);
  auto made = bitfusion::MetricStream::Make(options);
  if (!made || !(*made)->Add("host").ok()) {
    std::fprintf(stderr, "cannot set up the metric stream\n");
    return;
  }
  auto& stream = **made;
  std::atomic<std::int64_t> delivered{0};
  bitfusion::Subscription sub =
      stream.Subscribe([&](const SampleBatch& batch) { delivered += batch.size(); });
  if (!stream.Start().ok()) return;
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const std::int64_t allocations_before = bitfusion::bench::Allocations();
  const bitfusion::StreamOverhead before = stream.Overhead();
  std::this_thread::sleep_for(std::chrono::seconds(1));
  const std::int64_t allocations = bitfusion::bench::Allocations() - allocations_before;
  const bitfusion::StreamOverhead after = stream.Overhead();
  (void)stream.Stop();
  const std::int64_t ticks = after.ticks - before.ticks;
  std::printf(
      "metric stream (host, 1 ms, delivery every tick): %lld allocations in %lld ticks; "
      "sampler %.1f us and delivery %.1f us of CPU per tick\n",
      static_cast<long long>(allocations), static_cast<long long>(ticks),
      static_cast<double>(after.sampler_cpu_ns - before.sampler_cpu_ns) / 1e3 /
          static_cast<double>(std::max<std::int64_t>(1, ticks)),
      static_cast<double>(after.delivery_cpu_ns - before.delivery_cpu_ns) / 1e3 /
          static_cast<double>(std::max<std::int64_t>(1, ticks)));
}

void Report(const bitfusion::bench::RoundReporter& r, const char* what, const std::string& raw,
            const std::string& sample, double target) {
  const double raw_ns = r.MedianCpu(raw);
  const double sample_ns = r.MedianCpu(sample);
  if (raw_ns <= 0 || sample_ns <= 0) return;
  const double ratio = r.MedianRatio(sample, raw);
  if (target < 0) {
    std::printf(
        "%s: parsing and appending cost %.0f ns per sample (%.0f ns with reads of "
        "regular files, %.0f ns for the reads alone)\n",
        what, sample_ns - raw_ns, sample_ns, raw_ns);
    return;
  }
  std::printf("%s sample: %.0f ns (real %.0f ns); raw pread floor: %.0f ns (real %.0f ns)\n", what,
              sample_ns, r.MedianReal(sample), raw_ns, r.MedianReal(raw));
  if (target > 0) {
    std::printf("%s sample / raw pread ratio: %.3f (target <= %.2f): %s\n", what, ratio, target,
                ratio <= target ? "met" : "MISSED");
  } else {
    std::printf("%s sample / raw pread ratio: %.3f\n", what, ratio);
  }
}

}  // namespace

int main(int argc, char** argv) {
  int rounds = 7;
  if (!bitfusion::bench::InitializeRounds(argc, argv, rounds)) return 1;

  HostRaw();
  ProcessRaw();
  HostSource();
  ProcessSource();
  CgroupRaw();
  CgroupSource();
  SnapshotRaw();
  SnapshotSource();
  for (int round = 0; round < rounds; ++round) {
    benchmark::RegisterBenchmark("host_raw_pread",
                                 [](benchmark::State& s) { RawPread(s, HostRaw()); });
    benchmark::RegisterBenchmark("host_collect",
                                 [](benchmark::State& s) { Collect(s, *HostSource()); });
    benchmark::RegisterBenchmark("process_raw_pread",
                                 [](benchmark::State& s) { RawPread(s, ProcessRaw()); });
    benchmark::RegisterBenchmark("process_collect",
                                 [](benchmark::State& s) { Collect(s, *ProcessSource()); });
    benchmark::RegisterBenchmark("cgroup_raw_pread",
                                 [](benchmark::State& s) { RawPread(s, CgroupRaw()); });
    benchmark::RegisterBenchmark("cgroup_collect",
                                 [](benchmark::State& s) { Collect(s, *CgroupSource()); });
    benchmark::RegisterBenchmark("snapshot_raw_pread",
                                 [](benchmark::State& s) { RawPread(s, SnapshotRaw()); });
    benchmark::RegisterBenchmark("snapshot_collect",
                                 [](benchmark::State& s) { Collect(s, *SnapshotSource()); });
  }
  bitfusion::bench::RoundReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();

  std::printf(
      "\nmedians over %d interleaved rounds of CPU time per iteration (ratios: median of "
      "the per-round ratios):\n",
      rounds);
  Report(reporter, "host", "host_raw_pread", "host_collect", 1.15);
  Report(reporter, "process", "process_raw_pread", "process_collect", 0);
  Report(reporter, "cgroup (this process's own group)", "cgroup_raw_pread", "cgroup_collect", 0);
  Report(reporter, "host (snapshot in regular files)", "snapshot_raw_pread", "snapshot_collect",
         -1);
  RemoveSnapshot();
  StreamAllocations();
  return 0;
}
