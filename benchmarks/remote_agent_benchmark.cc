// The remote host agent (host+ssh://: a bitfusion-probe started over SSH, its records streamed
// back over the same connection) at 100 Hz against the local `host` source at 100 Hz, both
// running at once for the same seconds on the same machine (the "remote" host is an sshd on
// 127.0.0.1 started here), so both see the same load:
//   - probe_us: the remote probe process's CPU per tick (its time on a CPU from
//     /proc/PID/schedstat, over the ticks it sent), against local_us: the local stream's sampling
//     thread's CPU per tick (MetricStream's sampler_cpu_ns: its wake-ups and the source's Collect).
//     Their ratio, probe_ratio = probe_us / local_us, has a target of <= 1.1 (issue 10).
//   - What carrying the records costs, apart: remote_transport_us (the sshd session processes
//     above the probe) and local_transport_us (this user's ssh processes for the connection,
//     master included, and the source's handlers on the event loop), per tick.
//   - latency_p50_ms, latency_p99_ms, latency_max_ms: a sample's way from its tick on the remote
//     host (its stamp, moved onto this host's clock by the offset estimate) to a Collect on this
//     host that returns it, with Collect polled every millisecond. Target: p99 <= 50 ms.
//   - probe_here_us: the same probe binary run on this host without SSH (--stdout to /dev/null,
//     the same flags, as many ticks, at the same time), from its rusage: what the agent costs
//     when nothing but the way its records leave differs.
// Also samples_per_tick of both sides: they do not read the same files (the local `host`
// source adds loadavg, pressure, diskstats, net/dev and CPU frequencies to the probe's CPU,
// context switch, task and memory figures), so the ratio compares the two sources as shipped.
//
// Measured here: see docs/metrics.md ("Benchmarks").
//
// Needs root (sshd for a root login) and /usr/sbin/sshd; without them it says so and exits 0.
//
//   remote_agent_benchmark   (BITFUSION_AGENT_SECONDS overrides 10)
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bitfusion/clock.h"
#include "bitfusion/metric_stream.h"
#include "bitfusion/probe.h"
#include "core/proc_pid_stat.h"
#include "integration/sshd_server.h"
#include "metrics/ssh_probe_source.h"
#include "process_cpu.h"

namespace bitfusion {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

int Seconds() {
  const char* n = std::getenv("BITFUSION_AGENT_SECONDS");
  return n != nullptr && std::atoi(n) > 0 ? std::atoi(n) : 10;
}

// One process's command line, its parent, and its CPU time in ns (schedstat's time on a CPU,
// summed over its threads: exact, where stat's utime and stime count 10 ms ticks).
struct Proc {
  std::string cmdline;
  pid_t parent = 0;
  std::int64_t cpu_ns = 0;
};

bool ReadProc(pid_t pid, Proc& out) {
  const auto stat = internal::ParseProcPidStat(internal::ReadProcPidStat(pid));
  const std::int64_t cpu_ns = bench::ProcessCpuNs(pid);
  if (!stat || cpu_ns < 0) return false;
  std::ifstream cmd("/proc/" + std::to_string(pid) + "/cmdline");
  out.cmdline.assign(std::istreambuf_iterator<char>(cmd), {});
  std::replace(out.cmdline.begin(), out.cmdline.end(), '\0', ' ');
  out.parent = static_cast<pid_t>(stat->ppid);
  out.cpu_ns = cpu_ns;
  return true;
}

std::vector<pid_t> AllPids() {
  std::vector<pid_t> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/proc", ec)) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") == std::string::npos) {
      out.push_back(static_cast<pid_t>(std::stol(name)));
    }
  }
  return out;
}

// The processes that carry the records, found once the source runs: the probe (started from
// the source's private remote directory), the sshd session processes above it (up to the
// listening sshd, which runs with -D), and this user's ssh processes for the connection (their
// command line names the benchmark's ssh_config).
struct Carriers {
  pid_t probe = 0;
  std::vector<pid_t> remote, local;

  std::string Find(const SshProbeSource& source, const std::string& ssh_config) {
    for (pid_t pid : AllPids()) {
      Proc p;
      if (!ReadProc(pid, p)) continue;
      if (p.cmdline.rfind(source.remote_dir() + "/", 0) == 0) probe = pid;
      const std::string program = p.cmdline.substr(0, p.cmdline.find(' '));
      if (p.cmdline.find(ssh_config) != std::string::npos &&
          (program == "ssh" || program.ends_with("/ssh"))) {
        local.push_back(pid);
      }
    }
    if (probe == 0) return "the probe under " + source.remote_dir() + " was not found";
    Proc p;
    for (pid_t up = probe; ReadProc(up, p) && p.parent > 1;) {
      up = p.parent;
      Proc parent;
      if (!ReadProc(up, parent) || parent.cmdline.find(" -D ") != std::string::npos) break;
      remote.push_back(up);
    }
    return "";
  }
  static std::int64_t Cpu(const std::vector<pid_t>& pids) {
    std::int64_t sum = 0;
    for (pid_t pid : pids) {
      Proc p;
      if (ReadProc(pid, p)) sum += p.cpu_ns;
    }
    return sum;
  }
  std::int64_t ProbeCpu() const { return Cpu({probe}); }
};

struct Fixture {
  fs::path dir;
  testing::SshClientFiles client;
  std::unique_ptr<testing::TestSshd> sshd;
  std::string unavailable;

  Fixture() {
    if (!testing::IsRoot()) {
      unavailable = "the benchmark's sshd needs root";
      return;
    }
    dir = testing::FreshDir("remote-agent-bench");
    if (unavailable = client.Make(dir); !unavailable.empty()) return;
    sshd = std::make_unique<testing::TestSshd>(client, "agent", "127.0.0.1", testing::FreePort());
    unavailable = sshd->error();
  }
  ~Fixture() {
    sshd.reset();
    std::error_code ec;
    if (!dir.empty()) fs::remove_all(dir, ec);
  }
};

double At(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  return sorted[std::min(sorted.size() - 1, static_cast<std::size_t>(q * sorted.size()))];
}

void BM_RemoteAgentVsLocalHostSource(benchmark::State& state) {
  Fixture f;
  if (!f.unavailable.empty()) {
    state.SkipWithError(("not run: " + f.unavailable).c_str());
    return;
  }
  SshProbeSourceOptions o;
  o.target = SshTarget{"127.0.0.1", f.sshd->port(), "root", f.client.key};
  o.session.config_file = f.client.config;
  o.interval = 10ms;
  auto remote = SshProbeSource::Make(o);
  if (!remote.ok()) {
    state.SkipWithError(remote.error().ToString().c_str());
    return;
  }
  Carriers carriers;
  if (std::string e = carriers.Find(**remote, f.client.config.string()); !e.empty()) {
    state.SkipWithError(e.c_str());
    return;
  }
  MetricStreamOptions so;
  so.interval = 10ms;
  auto local = MetricStream::Make(so);
  if (!local.ok() || !(*local)->Add("host").ok() || !(*local)->Start().ok()) {
    state.SkipWithError("the local host stream did not start");
    return;
  }

  // The same probe run here without SSH, its records to /dev/null, for as many ticks.
  auto probe_path = FindProbe();
  if (!probe_path.ok()) {
    state.SkipWithError(probe_path.error().ToString().c_str());
    return;
  }
  const std::string count = std::to_string(Seconds() * 100);
  const pid_t here = ::fork();
  if (here == 0) {
    const int null = ::open("/dev/null", O_WRONLY);
    ::dup2(null, 1);
    ::execl(probe_path->c_str(), "bitfusion-probe", "--stdout", "--interval", "10ms", "--count",
            count.c_str(), "--no-processes", "--no-cgroup", static_cast<char*>(nullptr));
    ::_exit(127);
  }

  SampleBatch batch;
  if (Status s = (*remote)->Collect(Now(), batch); !s.ok()) {  // what the start took
    state.SkipWithError(s.ToString().c_str());
    return;
  }
  const std::int64_t probe0 = carriers.ProbeCpu(), remote0 = Carriers::Cpu(carriers.remote),
                     local0 = Carriers::Cpu(carriers.local),
                     background0 = (*remote)->BackgroundCpuNs(),
                     ticks0 = (*remote)->ticks_received();
  std::int64_t remote_samples = 0;
  std::vector<double> latency_ms;
  for (auto _ : state) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(Seconds());
    std::int64_t last_stamp = 0;
    while (std::chrono::steady_clock::now() < until) {
      batch.ClearSamples();
      if (Status s = (*remote)->Collect(Now(), batch); !s.ok()) {
        state.SkipWithError(("the remote agent: " + s.ToString()).c_str());
        return;
      }
      const std::int64_t now = WallNowNs();
      remote_samples += static_cast<std::int64_t>(batch.size());
      for (std::size_t i = 0; i < batch.size(); ++i) {
        if (batch.timestamp_ns[i] != last_stamp) {  // a tick's samples share its stamp
          last_stamp = batch.timestamp_ns[i];
          latency_ms.push_back(static_cast<double>(now - last_stamp) / 1e6);
        }
      }
      std::this_thread::sleep_for(1ms);
    }
  }
  // Read before Stop: the session processes end with it.
  const double ticks = static_cast<double>((*remote)->ticks_received() - ticks0);
  const double probe_us = static_cast<double>(carriers.ProbeCpu() - probe0) / 1e3 / ticks;
  const double remote_transport_us =
      static_cast<double>(Carriers::Cpu(carriers.remote) - remote0) / 1e3 / ticks;
  const double local_ssh_us =
      static_cast<double>(Carriers::Cpu(carriers.local) - local0) / 1e3 / ticks;
  // BackgroundCpuNs is the source's handlers on the event loop plus what the probe reports for
  // itself.
  const double reader_us =
      static_cast<double>((*remote)->BackgroundCpuNs() - background0) / 1e3 / ticks - probe_us;
  if (Status s = (*remote)->Stop(); !s.ok()) {
    state.SkipWithError(s.ToString().c_str());
    return;
  }
  if (Status s = (*local)->Stop(); !s.ok()) {
    state.SkipWithError(s.ToString().c_str());
    return;
  }
  const StreamOverhead local_overhead = (*local)->Overhead();
  int status = 0;
  rusage usage{};
  if (::wait4(here, &status, 0, &usage) != here || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    state.SkipWithError("the probe run here without SSH failed");
    return;
  }
  const double here_us = (static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1e6 +
                          static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec)) /
                         static_cast<double>(Seconds() * 100);
  const double local_us = static_cast<double>(local_overhead.sampler_cpu_ns) / 1e3 /
                          static_cast<double>(local_overhead.ticks);
  std::sort(latency_ms.begin(), latency_ms.end());
  state.counters["probe_us"] = probe_us;
  state.counters["local_us"] = local_us;
  state.counters["probe_ratio"] = probe_us / local_us;
  state.counters["probe_here_us"] = here_us;
  state.counters["remote_transport_us"] = remote_transport_us;
  state.counters["local_transport_us"] = local_ssh_us + std::max(0.0, reader_us);
  state.counters["latency_p50_ms"] = At(latency_ms, 0.5);
  state.counters["latency_p99_ms"] = At(latency_ms, 0.99);
  state.counters["latency_max_ms"] = latency_ms.empty() ? 0 : latency_ms.back();
  state.counters["remote_ticks"] = ticks;
  state.counters["local_ticks"] = static_cast<double>(local_overhead.ticks);
  state.counters["remote_samples_per_tick"] = static_cast<double>(remote_samples) / ticks;
  state.counters["local_samples_per_tick"] =
      static_cast<double>(local_overhead.samples) / static_cast<double>(local_overhead.ticks);
}

BENCHMARK(BM_RemoteAgentVsLocalHostSource)
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1)
    ->UseRealTime();

}  // namespace
}  // namespace bitfusion

BENCHMARK_MAIN();
