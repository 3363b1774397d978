// Observer effect: how much slower a workload runs while a MetricStream samples at 100 Hz.
//
// Two workloads, each timed in pairs: once with no stream, once with a stream sampling "host"
// and "process:<this process>" every 10 ms (delivered to a subscriber that touches every
// sample, the way a sink would). The order within a pair alternates (with-first, then
// without-first) so drift in the machine's state (frequency, other tenants) falls on both sides
// alike. The stream is started before and stopped after the timed section, so what is measured
// is the steady state a benchmark sees, not the start-up. The stream lives in the workload's own
// process — the embedded case, where the observer shares caches, the allocator and the
// scheduler with what it measures — which is the worst case for bitfusion.
//
//   cpu:    a dependent chain of integer multiplies and xorshifts (registers only)
//   memory: a STREAM-style triad over three 64 MiB arrays (bandwidth-bound, beyond any cache)
//
// Target: median over pairs of (time with) / (time without) - 1 <= 1% for both. Counters:
// slowdown_pct (the median), slowdown_p25/p75_pct (spread), observer_core_pct (the stream's own
// CPU over wall time), pairs. Each pair takes ~0.1-0.3 s; use --benchmark_min_time=30 or more
// for a figure worth quoting (the CI smoke run does one pair).
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "bitfusion/log.h"
#include "bitfusion/metric_stream.h"

namespace {

using Clock = std::chrono::steady_clock;

// ~50 ms of dependent integer work on this machine; the result is kept alive.
std::uint64_t CpuWork() {
  std::uint64_t x = 0x9e3779b97f4a7c15ULL;
  for (int i = 0; i < 8'000'000; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x *= 0x2545f4914f6cdd1dULL;
  }
  return x;
}

struct Arrays {
  static constexpr std::size_t kN = 8u << 20;  // 8 Mi doubles = 64 MiB per array
  std::vector<double> a = std::vector<double>(kN, 1.0);
  std::vector<double> b = std::vector<double>(kN, 2.0);
  std::vector<double> c = std::vector<double>(kN, 0.0);
};

double MemoryWork(Arrays& m) {
  const double s = 3.0;
  for (int pass = 0; pass < 2; ++pass) {
    double* __restrict c = m.c.data();
    const double* __restrict a = m.a.data();
    const double* __restrict b = m.b.data();
    for (std::size_t i = 0; i < Arrays::kN; ++i) c[i] = a[i] + s * b[i];
  }
  return m.c[Arrays::kN / 2];
}

// A running 100 Hz stream on host + this process; stopped on destruction.
class Observer {
 public:
  Observer() {
    bitfusion::MetricStreamOptions options;
    options.interval = std::chrono::milliseconds(10);
    auto stream = bitfusion::MetricStream::Make(options);
    if (!stream) return;
    stream_ = std::move(*stream);
    const std::string self = "process:" + std::to_string(getpid());
    if (!stream_->Add("host").ok() || !stream_->Add(self).ok()) {
      stream_.reset();
      return;
    }
    subscription_ = stream_->Subscribe([this](const bitfusion::SampleBatch& batch) {
      for (double v : batch.value) sum_ += v;
    });
    if (!stream_->Start().ok()) stream_.reset();
  }
  ~Observer() {
    if (stream_) (void)stream_->Stop();
  }
  bool ok() const { return stream_ != nullptr; }
  std::int64_t cpu_ns() const {
    const auto o = stream_->Overhead();
    return o.sampler_cpu_ns + o.delivery_cpu_ns + o.source_cpu_ns;
  }
  std::int64_t ticks() const { return stream_->Overhead().ticks; }

 private:
  std::unique_ptr<bitfusion::MetricStream> stream_;
  bitfusion::Subscription subscription_;
  double sum_ = 0;
};

double Quantile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  const double pos = q * static_cast<double>(v.size() - 1);
  const auto lo = static_cast<std::size_t>(pos);
  const std::size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (pos - static_cast<double>(lo));
}

template <class Work>
void ObserverEffect(benchmark::State& state, Work work) {
  std::vector<double> ratios;
  double observer_cpu_ns = 0, observed_wall_ns = 0;
  std::int64_t ticks = 0;
  bool with_first = true;
  for (auto _ : state) {
    double without_ns = 0, with_ns = 0;
    for (int half = 0; half < 2; ++half) {
      const bool with = (half == 0) == with_first;
      std::unique_ptr<Observer> observer;
      if (with) {
        observer = std::make_unique<Observer>();
        if (!observer->ok()) {
          state.SkipWithError("could not start a host + process metric stream");
          return;
        }
      }
      const std::int64_t cpu_before = with ? observer->cpu_ns() : 0;
      const auto t0 = Clock::now();
      benchmark::DoNotOptimize(work());
      const double ns = std::chrono::duration<double, std::nano>(Clock::now() - t0).count();
      if (with) {
        with_ns = ns;
        observer_cpu_ns += static_cast<double>(observer->cpu_ns() - cpu_before);
        observed_wall_ns += ns;
        ticks += observer->ticks();
      } else {
        without_ns = ns;
      }
    }
    with_first = !with_first;
    ratios.push_back(with_ns / without_ns);
    state.SetIterationTime(with_ns / 1e9);
  }
  if (ratios.empty()) return;
  state.counters["slowdown_pct"] = (Quantile(ratios, 0.5) - 1) * 100;
  state.counters["slowdown_p25_pct"] = (Quantile(ratios, 0.25) - 1) * 100;
  state.counters["slowdown_p75_pct"] = (Quantile(ratios, 0.75) - 1) * 100;
  state.counters["target_pct"] = 1.0;
  state.counters["observer_core_pct"] =
      observed_wall_ns > 0 ? observer_cpu_ns / observed_wall_ns * 100 : 0;
  state.counters["pairs"] = static_cast<double>(ratios.size());
  state.counters["ticks"] = static_cast<double>(ticks);
}

void BM_ObserverEffect_Cpu(benchmark::State& state) { ObserverEffect(state, CpuWork); }

void BM_ObserverEffect_Memory(benchmark::State& state) {
  Arrays arrays;
  MemoryWork(arrays);  // fault the pages in before timing
  ObserverEffect(state, [&arrays] { return MemoryWork(arrays); });
}

BENCHMARK(BM_ObserverEffect_Cpu)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ObserverEffect_Memory)->UseManualTime()->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
  // Each pair makes a new stream; the sources' one-time warnings (no cpufreq in a VM) would
  // repeat for every pair.
  bitfusion::SetLogLevel(bitfusion::LogLevel::kError);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
