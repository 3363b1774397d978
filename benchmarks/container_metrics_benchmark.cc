// container:ID (the cgroup metrics of containers) against a real engine, in one run:
//   - BM_HostPlusTenContainersAt100Hz: a MetricStream sampling "host" plus 10 container sources
//     (busybox `sleep` containers) every 10 ms for a few seconds; the observer's CPU (sampling
//     thread + delivery thread + the sources' own threads, StreamOverhead) over wall time, in
//     percent of one core. Target: <= 0.5 %. Measured four ways one after the other: host
//     alone (the reference the per-container increment is taken against), host + containers
//     reading every cgroup file every tick, the same with detail_every=10 (memory.stat, block
//     I/O, throttling, limits and pids at 10 Hz; CPU and memory usage at 100 Hz), and the
//     containers alone with detail_every=10. The reference, measured in the same run: the floor
//     any 100 Hz sampler of these files pays — a bare thread that wakes on the same absolute
//     10 ms deadlines and preads the same files (host's procfs files and every container's
//     cgroup files, kept open) and does nothing else; its thread CPU in percent of one core.
//     vs_floor = observer / floor (host + containers, every file every tick).
//   - BM_ContainerSampleVsEngineStats: one Collect of a container source (all its cgroup files)
//     against one GET /containers/ID/stats?stream=false and one with one-shot=true (API 1.41+)
//     on the same container, over a kept-open libcurl handle: wall time per call each way, the
//     engine's (dockerd's) CPU per stats call, and the ratios.
//
// It starts a dockerd of its own (root needed), or uses BITFUSION_DOCKER_SOCKET when set (then
// the engine's CPU is not measured). Without root or dockerd each benchmark says so and is
// skipped; the program exits 0.
#include <benchmark/benchmark.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bitfusion/container_runner.h"
#include "bitfusion/metric_stream.h"
#include "private_dockerd.h"
#include "process_cpu.h"

namespace bitfusion {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

constexpr const char* kImage = "bfbench/busybox-sleep:1";
constexpr int kContainers = 10;

using Engine = bench::PrivateDockerd;

struct Fixture {
  Engine engine{"bfcm"};
  std::string unavailable;
  std::shared_ptr<ContainerRunner> runner;
  std::vector<std::unique_ptr<Container>> containers;  // removed (before the engine stops)
  CURL* curl = nullptr;

  Fixture() {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    unavailable = engine.Start();
    if (!unavailable.empty()) return;
    auto r = ContainerRunnerFromUri("docker://" + engine.socket());
    if (!r) {
      unavailable = r.error().ToString();
      return;
    }
    runner = *r;
    if (Status s = ImportImage(); !s.ok()) {
      unavailable = "importing the busybox image: " + s.ToString();
      return;
    }
    for (int i = 0; i < kContainers; ++i) {
      ContainerSpec spec;
      spec.image = kImage;
      spec.command = {"sleep", "3600"};
      spec.network_mode = "none";
      spec.memory_bytes = 64ll << 20;
      auto c = runner->Create(spec);
      if (!c || !(*c)->Start().ok()) {
        unavailable = "starting a sleep container: " +
                      (c ? std::string("Start failed") : c.error().ToString());
        return;
      }
      containers.push_back(std::move(*c));
    }
    curl = curl_easy_init();
  }
  ~Fixture() {
    if (curl != nullptr) curl_easy_cleanup(curl);
    containers.clear();
    runner.reset();
  }

  Status ImportImage() { return bench::ImportBusybox(*runner, kImage, {"sh", "true", "sleep"}); }

  // One GET on the kept-open handle; the HTTP status (0 on a transport error).
  long Get(const std::string& path) {
    curl_easy_reset(curl);
    curl_easy_setopt(curl, CURLOPT_UNIX_SOCKET_PATH, engine.socket().c_str());
    const std::string url = "http://localhost/v1.41" + path;
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    body.clear();
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(
        curl, CURLOPT_WRITEFUNCTION, +[](char* d, size_t s, size_t n, void* u) {
          static_cast<std::string*>(u)->append(d, s * n);
          return s * n;
        });
    long status = 0;
    if (curl_easy_perform(curl) == CURLE_OK) {
      curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    }
    return status;
  }
  std::string body;
};

Fixture& Shared() {
  static Fixture f;
  return f;
}

// Times the Collect calls of the source it wraps (steady_clock, a vDSO call), to tell the
// sources' own cost in the stream (cold caches between ticks included) from the stream's.
class TimedSource final : public MetricSource {
 public:
  TimedSource(std::shared_ptr<MetricSource> inner, std::int64_t* total_ns)
      : inner_(std::move(inner)), total_ns_(total_ns) {}
  const std::string& uri() const override { return inner_->uri(); }
  std::int64_t BackgroundCpuNs() const override { return inner_->BackgroundCpuNs(); }
  Status Collect(Timestamp now, SampleBatch& batch) override {
    const auto t0 = std::chrono::steady_clock::now();
    Status s = inner_->Collect(now, batch);
    *total_ns_ +=
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0)
            .count();
    return s;
  }

 private:
  std::shared_ptr<MetricSource> inner_;
  std::int64_t* total_ns_;  // written by the sampling thread only, read after Stop
};

// The files a host source and the containers' cgroup sources read, opened once.
std::vector<int> OpenFloorFiles(ContainerRunner& runner,
                                const std::vector<std::unique_ptr<Container>>& containers) {
  std::vector<std::string> paths = {
      "/proc/stat",    "/proc/meminfo",      "/proc/loadavg",         "/proc/diskstats",
      "/proc/net/dev", "/proc/pressure/cpu", "/proc/pressure/memory", "/proc/pressure/io"};
  static const char* const kCgroupFiles[] = {"cpuacct.usage",
                                             "cpuacct.stat",
                                             "cpu.stat",
                                             "memory.usage_in_bytes",
                                             "memory.limit_in_bytes",
                                             "memory.stat",
                                             "memory.current",
                                             "memory.max",
                                             "blkio.throttle.io_service_bytes",
                                             "blkio.throttle.io_serviced",
                                             "io.stat",
                                             "pids.current",
                                             "pids.max"};
  for (const auto& c : containers) {
    auto info = runner.InspectContainer(c->id());
    if (!info || info->pid <= 0) continue;
    std::ifstream in("/proc/" + std::to_string(info->pid) + "/cgroup");
    std::vector<std::string> dirs;
    for (std::string line; std::getline(in, line);) {
      // "N:controllers:/path" (v1: one line per hierarchy) or "0::/path" (v2).
      const auto a = line.find(':'), b = line.find(':', a + 1);
      if (a == std::string::npos || b == std::string::npos) continue;
      std::string controllers = line.substr(a + 1, b - a - 1);
      const std::string path = line.substr(b + 1);
      if (controllers.empty()) {
        dirs.push_back("/sys/fs/cgroup" + path);
        continue;
      }
      for (std::size_t at = 0; at <= controllers.size();) {
        const auto comma = controllers.find(',', at);
        const std::string one = controllers.substr(at, comma - at);
        dirs.push_back("/sys/fs/cgroup/" + one + path);
        if (comma == std::string::npos) break;
        at = comma + 1;
      }
    }
    std::vector<std::string> seen;
    for (const char* name : kCgroupFiles) {
      for (const auto& dir : dirs) {
        const std::string file = dir + "/" + name;
        if (!fs::exists(file)) continue;
        // One hierarchy may be mounted under several names (cpu,cpuacct): read each file once.
        std::error_code ec;
        const std::string real = fs::canonical(file, ec).string();
        if (ec || std::find(seen.begin(), seen.end(), real) != seen.end()) continue;
        seen.push_back(real);
        paths.push_back(file);
        break;
      }
    }
  }
  std::vector<int> fds;
  for (const auto& path : paths) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd >= 0) fds.push_back(fd);
  }
  return fds;
}

// The floor: wake on absolute 10 ms deadlines, pread every file to its end, nothing else. Its
// thread's CPU over wall time, in percent of one core.
double FloorPercent(const std::vector<int>& fds, double seconds) {
  double pct = 0;
  std::thread t([&] {
    char buffer[65536];
    timespec cpu0{}, cpu1{}, next{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu0);
    ::clock_gettime(CLOCK_MONOTONIC, &next);
    const auto t0 = std::chrono::steady_clock::now();
    const long ticks = static_cast<long>(seconds * 100);
    for (long k = 0; k < ticks; ++k) {
      for (int fd : fds) {
        for (off_t off = 0;;) {
          const ssize_t n = ::pread(fd, buffer, sizeof buffer, off);
          if (n <= 0) break;
          off += n;
        }
      }
      next.tv_nsec += 10'000'000;
      if (next.tv_nsec >= 1'000'000'000) {
        next.tv_nsec -= 1'000'000'000;
        ++next.tv_sec;
      }
      while (::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, nullptr) == EINTR) {
      }
    }
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu1);
    const double wall_ns =
        std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
    const double cpu_ns = (cpu1.tv_sec - cpu0.tv_sec) * 1e9 + (cpu1.tv_nsec - cpu0.tv_nsec);
    pct = 100.0 * cpu_ns / wall_ns;
  });
  t.join();
  return pct;
}

// Runs a stream of `sources` at 10 ms for `seconds`; observer CPU in percent of one core.
Result<double> ObserverPercent(const std::vector<std::shared_ptr<MetricSource>>& sources,
                               double seconds, std::int64_t* samples) {
  MetricStreamOptions o;
  o.interval = 10ms;
  BITFUSION_ASSIGN_OR_RETURN(auto stream, MetricStream::Make(o));
  for (const auto& s : sources) BITFUSION_RETURN_IF_ERROR(stream->Add(s));
  std::int64_t delivered = 0;
  auto sub = stream->Subscribe([&](const SampleBatch& b) { delivered += b.size(); });
  const auto t0 = std::chrono::steady_clock::now();
  BITFUSION_RETURN_IF_ERROR(stream->Start());
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  BITFUSION_RETURN_IF_ERROR(stream->Stop());
  const double wall_ns =
      std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
  const StreamOverhead over = stream->Overhead();
  if (over.sources_dropped != 0 || over.source_errors != 0) {
    return InternalError("a source failed while measured (" + std::to_string(over.source_errors) +
                         " errors, " + std::to_string(over.sources_dropped) + " dropped)");
  }
  *samples = over.samples;
  const double cpu =
      static_cast<double>(over.sampler_cpu_ns + over.delivery_cpu_ns + over.source_cpu_ns);
  return 100.0 * cpu / wall_ns;
}

void BM_HostPlusTenContainersAt100Hz(benchmark::State& state) {
  Fixture& f = Shared();
  if (!f.unavailable.empty()) {
    state.SkipWithError(("no engine: " + f.unavailable).c_str());
    return;
  }
  const double seconds = static_cast<double>(state.range(0));
  // [0] host alone, [1] host + 10 containers reading every file every tick, [2] the same with
  // detail_every=10 (costly files at 10 Hz), [3] the 10 containers alone with detail_every=10.
  double pct[4] = {};
  std::int64_t samples[4] = {};
  std::int64_t collect_ns = 0;  // in Collect of the container sources of config 3
  double floor_pct = 0;         // the bare wake-and-pread loop over the same files
  std::size_t floor_files = 0;
  for (auto _ : state) {
    for (int config = 0; config < 4; ++config) {
      std::vector<std::shared_ptr<MetricSource>> sources;
      if (config != 3) {
        auto host = MetricSourceFromUri("host");
        if (!host) {
          state.SkipWithError(host.error().ToString().c_str());
          return;
        }
        sources.push_back(*host);
      }
      for (std::size_t i = 0; config != 0 && i < f.containers.size(); ++i) {
        auto source = ContainerMetricSource(f.runner, f.containers[i]->id(), config == 1 ? 1 : 10);
        if (!source) {
          state.SkipWithError(source.error().ToString().c_str());
          return;
        }
        sources.push_back(config == 3 ? std::make_shared<TimedSource>(*source, &collect_ns)
                                      : *source);
      }
      auto measured = ObserverPercent(sources, seconds, &samples[config]);
      if (!measured) {
        state.SkipWithError(measured.error().ToString().c_str());
        return;
      }
      pct[config] = *measured;
    }
    const std::vector<int> fds = OpenFloorFiles(*f.runner, f.containers);
    floor_pct = FloorPercent(fds, seconds);
    floor_files = fds.size();
    for (int fd : fds) ::close(fd);
  }
  state.counters["observer_pct_of_core"] = pct[1];
  state.counters["observer_pct_detail10"] = pct[2];
  state.counters["containers_only_pct_detail10"] = pct[3];
  // The share of config 3's observer CPU spent inside the container sources' Collect.
  const double collect_pct = 100.0 * static_cast<double>(collect_ns) / (seconds * 1e9);
  state.counters["containers_only_collect_pct_detail10"] = collect_pct;
  state.counters["target_pct"] = 0.5;
  state.counters["floor_pct"] = floor_pct;
  state.counters["vs_floor"] = floor_pct > 0 ? pct[1] / floor_pct : 0;
  state.counters["host_only_pct"] = pct[0];
  state.counters["per_container_pct"] = (pct[1] - pct[0]) / kContainers;
  state.counters["per_container_pct_detail10"] = (pct[2] - pct[0]) / kContainers;
  state.counters["samples_per_s"] = static_cast<double>(samples[1]) / seconds;
  std::printf(
      "\nhost + %d containers at 100 Hz, %.0f s each, observer CPU in %% of one core "
      "(target <= 0.5 %%):\n"
      "  host alone                                 %7.3f %%\n"
      "  host + containers, every file every tick   %7.3f %%  (+%.4f %% per container) %s\n"
      "  host + containers, detail_every=10         %7.3f %%  (+%.4f %% per container) %s\n"
      "  containers alone, detail_every=10          %7.3f %%  %s\n"
      "    of which inside the sources' Collect     %7.3f %%\n"
      "  floor: wake at 100 Hz + pread the same %zu files  %7.3f %%  (host + containers / "
      "floor = %.2fx)\n\n",
      kContainers, seconds, pct[0], pct[1], (pct[1] - pct[0]) / kContainers,
      pct[1] <= 0.5 ? "met" : "NOT met", pct[2], (pct[2] - pct[0]) / kContainers,
      pct[2] <= 0.5 ? "met" : "NOT met", pct[3], pct[3] <= 0.5 ? "met" : "NOT met", collect_pct,
      floor_files, floor_pct, floor_pct > 0 ? pct[1] / floor_pct : 0.0);
}
BENCHMARK(BM_HostPlusTenContainersAt100Hz)
    ->Arg(3)
    ->Iterations(1)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

void BM_ContainerSampleVsEngineStats(benchmark::State& state) {
  Fixture& f = Shared();
  if (!f.unavailable.empty()) {
    state.SkipWithError(("no engine: " + f.unavailable).c_str());
    return;
  }
  const std::string id = f.containers.front()->id();
  auto source = ContainerMetricSource(f.runner, id);
  auto detail10 = ContainerMetricSource(f.runner, id, 10);
  if (!source || !detail10) {
    state.SkipWithError((source ? detail10.error() : source.error()).ToString().c_str());
    return;
  }
  constexpr int kCollects = 2000, kStatsCalls = 3;
  double collect_us = 0, collect10_us = 0, stream_false_ms = 0, one_shot_ms = 0;
  double engine_cpu_ms = -1, engine_cpu_one_shot_ms = -1;
  std::size_t samples_per_collect = 0;
  for (auto _ : state) {
    SampleBatch batch;
    (void)(*source)->Collect(Now(), batch);  // declares the series
    samples_per_collect = batch.size();
    const auto c0 = std::chrono::steady_clock::now();
    for (int i = 0; i < kCollects; ++i) {
      batch.ClearSamples();
      if (Status s = (*source)->Collect(Now(), batch); !s.ok()) {
        state.SkipWithError(s.ToString().c_str());
        return;
      }
    }
    collect_us =
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - c0).count() /
        kCollects;
    SampleBatch batch10;
    const auto d0 = std::chrono::steady_clock::now();
    for (int i = 0; i < kCollects; ++i) {
      batch10.ClearSamples();
      if (Status s = (*detail10)->Collect(Now(), batch10); !s.ok()) {
        state.SkipWithError(s.ToString().c_str());
        return;
      }
    }
    collect10_us =
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - d0).count() /
        kCollects;
    for (const bool one_shot : {false, true}) {
      const std::string path =
          "/containers/" + id + "/stats?stream=false" + (one_shot ? "&one-shot=true" : "");
      const std::int64_t cpu0 = bench::ProcessCpuNs(f.engine.pid());
      const auto t0 = std::chrono::steady_clock::now();
      for (int i = 0; i < kStatsCalls; ++i) {
        if (f.Get(path) != 200) {
          state.SkipWithError(("GET " + path + " failed: " + f.body).c_str());
          return;
        }
      }
      const double ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() /
          kStatsCalls;
      const std::int64_t cpu1 = bench::ProcessCpuNs(f.engine.pid());
      const double cpu_ms =
          cpu0 >= 0 && cpu1 >= 0 ? static_cast<double>(cpu1 - cpu0) / 1e6 / kStatsCalls : -1;
      (one_shot ? one_shot_ms : stream_false_ms) = ms;
      (one_shot ? engine_cpu_one_shot_ms : engine_cpu_ms) = cpu_ms;
    }
  }
  state.counters["collect_us"] = collect_us;
  state.counters["collect_us_detail10"] = collect10_us;
  state.counters["samples_per_collect"] = static_cast<double>(samples_per_collect);
  state.counters["stats_ms"] = stream_false_ms;
  state.counters["stats_one_shot_ms"] = one_shot_ms;
  state.counters["stats_vs_collect"] = stream_false_ms * 1000 / collect_us;
  state.counters["one_shot_vs_collect"] = one_shot_ms * 1000 / collect_us;
  state.counters["engine_cpu_ms_per_stats"] = engine_cpu_ms;
  state.counters["engine_cpu_ms_per_one_shot"] = engine_cpu_one_shot_ms;
  // Collect runs on the calling thread without waiting, so its wall time is its CPU time.
  state.counters["engine_cpu_vs_collect"] = engine_cpu_ms * 1000 / collect_us;
  std::printf(
      "\none container sample, same container:\n"
      "  container source Collect (%zu values)  %10.1f us\n"
      "  the same with detail_every=10, mean    %10.1f us\n"
      "  GET stats?stream=false               %10.1f ms = %.0fx (dockerd CPU %.2f ms/call)\n"
      "  GET stats?stream=false&one-shot=true %10.1f ms = %.0fx (dockerd CPU %.2f ms/call)\n\n",
      samples_per_collect, collect_us, collect10_us, stream_false_ms,
      stream_false_ms * 1000 / collect_us, engine_cpu_ms, one_shot_ms,
      one_shot_ms * 1000 / collect_us, engine_cpu_one_shot_ms);
}
BENCHMARK(BM_ContainerSampleVsEngineStats)
    ->Iterations(1)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace bitfusion

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  const std::string why = bitfusion::Shared().unavailable;
  if (!why.empty()) {
    std::printf("container_metrics_benchmark: skipped: %s\n", why.c_str());
    return 0;
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
