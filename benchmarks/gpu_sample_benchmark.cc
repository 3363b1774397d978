// What one sample of the "gpu" source costs next to the floor: the same sequence of library
// calls (NVML: utilisation, memory, power, temperature, three clocks per GPU; ROCm SMI: busy,
// memory busy, VRAM used and total, power, temperature, two clocks) made directly on handles
// taken once, doing nothing with the answers. Both sides call the fake libraries the unit tests
// use (tests/fakes), set up with eight GPUs, so the figure is the source's own overhead over
// whatever the library costs; a real NVML call is an ioctl to the driver and costs far more.
//
// Target: gpu sample / raw calls <= 1.10. The pairs run interleaved in rounds; the ratio is the
// median over rounds of the per-round ratio of CPU time per iteration. Allocations per
// iteration are counted on both sides (the fakes allocate too); the difference is the source's.
//
// With --nvml=LIBRARY (libnvidia-ml.so.1 on a machine with an NVIDIA driver) the NVML pair runs
// on that library and every GPU it reports instead of the fake, and the ROCm SMI pair is left
// out: the real cost of a sample, driver calls included, and the source's share of it.
//
//   gpu_sample_benchmark [--rounds=N] [--nvml=LIBRARY] [Google Benchmark flags]
#include <benchmark/benchmark.h>
#include <dlfcn.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "allocation_counter.h"
#include "bitfusion/log.h"
#include "devices/nvml_api.h"
#include "devices/rocm_smi_api.h"
#include "metrics/gpu_source.h"
#include "round_reporter.h"

namespace {

using bitfusion::SampleBatch;
using bitfusion::Timestamp;
namespace nvml = bitfusion::nvml;
namespace rocm_smi = bitfusion::rocm_smi;

constexpr int kGpus = 8;

// The NVML library both sides of the NVML pair use: the fake, or --nvml=LIBRARY.
std::string nvml_library = BITFUSION_FAKE_NVML;
bool real_nvml = false;

// Eight GPUs whose every telemetry query answers, for each fake; the files are named by the
// fakes' environment variables.
void WriteConfigs() {
  std::string nvml = R"({"devices": [)";
  std::string rocm = R"({"devices": [)";
  for (int i = 0; i < kGpus; ++i) {
    char bus[8];
    std::snprintf(bus, sizeof bus, "%02X", 0x10 + i * 0x10);
    nvml += std::string(i ? "," : "") + R"({"bus_id": "00000000:)" + bus +
            R"(:00.0", "name": "GPU", "uuid": "GPU-)" + std::to_string(i) +
            R"(", "memory_total": 42949672960, "telemetry": {"utilization_gpu": [10, 90],
             "utilization_memory": [5, 50], "memory_used": [1024, 2048],
             "power_mw": [100000, 250000], "temperature_c": [40, 70],
             "clock_graphics_mhz": [1400, 1410], "clock_sm_mhz": [1400, 1410],
             "clock_mem_mhz": [1215, 1215]}})";
    rocm += std::string(i ? "," : "") + R"({"address": "0000:)" + bus +
            R"(:00.0", "name": "GPU", "vram_total": 68702699520, "unique_id": )" +
            std::to_string(1000 + i) + R"(, "telemetry": {"busy_percent": [10, 90],
             "memory_busy_percent": [5, 50], "vram_used": [1024, 2048],
             "power_uw": [100000000, 300000000], "temp_edge_mc": [40000, 70000],
             "sclk_hz": [500000000, 1700000000], "mclk_hz": [400000000, 1600000000]}})";
  }
  nvml += "]}";
  rocm += "]}";
  const std::string dir = "/tmp/bitfusion_gpu_benchmark_" + std::to_string(::getpid());
  std::ofstream(dir + "_nvml.json") << nvml;
  std::ofstream(dir + "_rocm.json") << rocm;
  ::setenv("BITFUSION_FAKE_NVML_CONFIG", (dir + "_nvml.json").c_str(), 1);
  ::setenv("BITFUSION_FAKE_ROCM_SMI_CONFIG", (dir + "_rocm.json").c_str(), 1);
}

void RemoveConfigs() {
  const std::string dir = "/tmp/bitfusion_gpu_benchmark_" + std::to_string(::getpid());
  std::remove((dir + "_nvml.json").c_str());
  std::remove((dir + "_rocm.json").c_str());
}

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "gpu_sample_benchmark: %s\n", what.c_str());
  RemoveConfigs();  // the fake libraries' configs it wrote in /tmp
  std::exit(1);
}

// The floor for NVML: the calls the source makes, on handles taken once.
struct RawNvml {
  nvml::NvmlFunctions f;
  std::vector<nvml::nvmlDevice_t> handles;

  static RawNvml& Get() {
    static RawNvml* raw = [] {
      auto f = nvml::NvmlFunctions::Load(nvml_library);
      if (!f || f->init() != nvml::NVML_SUCCESS) Die("cannot load or initialise " + nvml_library);
      auto* r = new RawNvml{*f, {}};
      unsigned count = kGpus;
      if (real_nvml && (f->device_count(&count) != nvml::NVML_SUCCESS || count == 0)) {
        Die(nvml_library + " reports no GPU");
      }
      for (unsigned i = 0; i < count; ++i) {
        nvml::nvmlDevice_t h = nullptr;
        if (r->f.handle_by_index(i, &h) != nvml::NVML_SUCCESS) Die("no NVML handle");
        r->handles.push_back(h);
      }
      return r;
    }();
    return *raw;
  }

  double Sample() const {
    double sum = 0;
    for (nvml::nvmlDevice_t h : handles) {
      nvml::nvmlUtilization_t u{};
      nvml::nvmlMemory_t m{};
      unsigned v = 0;
      if (f.utilization_rates(h, &u) == nvml::NVML_SUCCESS) sum += u.gpu + u.memory;
      if (f.memory_info(h, &m) == nvml::NVML_SUCCESS) sum += static_cast<double>(m.used + m.total);
      if (f.power_usage(h, &v) == nvml::NVML_SUCCESS) sum += v;
      if (f.temperature(h, nvml::NVML_TEMPERATURE_GPU, &v) == nvml::NVML_SUCCESS) sum += v;
      for (int type : {nvml::NVML_CLOCK_GRAPHICS, nvml::NVML_CLOCK_SM, nvml::NVML_CLOCK_MEM}) {
        if (f.clock_info(h, type, &v) == nvml::NVML_SUCCESS) sum += v;
      }
    }
    return sum;
  }
};

// The floor for ROCm SMI.
struct RawRocm {
  rocm_smi::RocmSmiFunctions f;
  mutable rocm_smi::FrequencyBuffer frequencies{};

  static RawRocm& Get() {
    static RawRocm* raw = [] {
      auto f = rocm_smi::RocmSmiFunctions::Load({BITFUSION_FAKE_ROCM_SMI});
      if (!f || f->init(0) != rocm_smi::RSMI_STATUS_SUCCESS) {
        Die("cannot load or initialise the fake ROCm SMI");
      }
      return new RawRocm{*f};
    }();
    return *raw;
  }

  double Sample() const {
    using rocm_smi::RSMI_STATUS_SUCCESS;
    double sum = 0;
    for (std::uint32_t i = 0; i < kGpus; ++i) {
      std::uint32_t percent = 0;
      std::uint64_t value = 0;
      std::int64_t temp = 0;
      if (f.busy_percent(i, &percent) == RSMI_STATUS_SUCCESS) sum += percent;
      if (f.memory_busy_percent(i, &percent) == RSMI_STATUS_SUCCESS) sum += percent;
      if (f.memory_usage(i, rocm_smi::RSMI_MEM_TYPE_VRAM, &value) == RSMI_STATUS_SUCCESS) {
        sum += static_cast<double>(value);
      }
      if (f.memory_total(i, rocm_smi::RSMI_MEM_TYPE_VRAM, &value) == RSMI_STATUS_SUCCESS) {
        sum += static_cast<double>(value);
      }
      if (f.power_ave(i, 0, &value) == RSMI_STATUS_SUCCESS) sum += static_cast<double>(value);
      if (f.temp_metric(i, rocm_smi::RSMI_TEMP_TYPE_EDGE, rocm_smi::RSMI_TEMP_CURRENT, &temp) ==
          RSMI_STATUS_SUCCESS) {
        sum += static_cast<double>(temp);
      }
      for (int type : {rocm_smi::RSMI_CLK_TYPE_SYS, rocm_smi::RSMI_CLK_TYPE_MEM}) {
        std::memset(frequencies.bytes, 0, sizeof frequencies.bytes);
        std::uint64_t hz = 0;
        if (f.gpu_clk_freq(i, type, frequencies.bytes) == RSMI_STATUS_SUCCESS &&
            rocm_smi::CurrentFrequency(frequencies, hz)) {
          sum += static_cast<double>(hz);
        }
      }
    }
    return sum;
  }
};

std::shared_ptr<bitfusion::GpuSource> Source(const char* vendor, const std::string& library,
                                             std::size_t gpus) {
  bitfusion::GpuSourceOptions options;
  options.vendor = vendor;
  options.library = library;
  auto made = bitfusion::GpuSource::Make(options);
  if (!made || !(*made)->enabled() || (*made)->device_count() != gpus) {
    Die(std::string("gpu source on ") + library + " is not sampling " + std::to_string(gpus) +
        " GPUs");
  }
  return *made;
}

bitfusion::GpuSource& NvmlSource() {
  static auto source = Source("nvml", nvml_library, RawNvml::Get().handles.size());
  return *source;
}

bitfusion::GpuSource& RocmSource() {
  static auto source = Source("rocm", BITFUSION_FAKE_ROCM_SMI, kGpus);
  return *source;
}

void CountAllocations(benchmark::State& state, std::int64_t before) {
  state.counters["allocs_per_iteration"] =
      static_cast<double>(bitfusion::bench::Allocations() - before) /
      static_cast<double>(std::max<benchmark::IterationCount>(1, state.iterations()));
}

template <class Raw>
void RawCalls(benchmark::State& state, const Raw& raw) {
  const std::int64_t before = bitfusion::bench::Allocations();
  for (auto _ : state) benchmark::DoNotOptimize(raw.Sample());
  CountAllocations(state, before);
}

void Collect(benchmark::State& state, bitfusion::GpuSource& source) {
  SampleBatch batch;
  const Timestamp now = bitfusion::Now();
  // The first call declares the series; the benchmark measures the steady state after it.
  if (!source.Collect(now, batch).ok()) {
    state.SkipWithError("Collect failed");
    return;
  }
  const std::int64_t before = bitfusion::bench::Allocations();
  for (auto _ : state) {
    batch.ClearSamples();
    const bitfusion::Status status = source.Collect(now, batch);
    benchmark::DoNotOptimize(status.ok());
    benchmark::DoNotOptimize(batch.value.data());
  }
  state.counters["samples"] = static_cast<double>(batch.size());
  CountAllocations(state, before);
}

void Report(const bitfusion::bench::RoundReporter& r, const char* what, std::size_t gpus,
            const std::string& raw, const std::string& sample, double target) {
  const double raw_ns = r.MedianCpu(raw);
  const double sample_ns = r.MedianCpu(sample);
  if (raw_ns <= 0 || sample_ns <= 0) return;
  const double ratio = r.MedianRatio(sample, raw);
  std::printf(
      "%s: gpu sample %.0f ns, raw library calls %.0f ns (%zu GPUs); allocations per "
      "sample beyond the library's own: %.2f\n",
      what, sample_ns, raw_ns, gpus,
      r.Counter(sample, "allocs_per_iteration") - r.Counter(raw, "allocs_per_iteration"));
  std::printf("%s gpu sample / raw calls ratio: %.3f (target <= %.2f): %s\n", what, ratio, target,
              ratio <= target ? "met" : "MISSED");
}

}  // namespace

int main(int argc, char** argv) {
  int rounds = 7;
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    if (std::strncmp(argv[i], "--nvml=", 7) == 0) {
      nvml_library = argv[i] + 7;
      real_nvml = true;
    } else {
      args.push_back(argv[i]);
    }
  }
  if (!bitfusion::bench::InitializeRounds(static_cast<int>(args.size()), args.data(), rounds)) {
    return 1;
  }

  WriteConfigs();
  RawNvml::Get();
  NvmlSource();
  if (!real_nvml) {
    RawRocm::Get();
    RocmSource();
  }
  for (int round = 0; round < rounds; ++round) {
    benchmark::RegisterBenchmark("nvml_raw_calls",
                                 [](benchmark::State& s) { RawCalls(s, RawNvml::Get()); });
    benchmark::RegisterBenchmark("nvml_gpu_collect",
                                 [](benchmark::State& s) { Collect(s, NvmlSource()); });
    if (real_nvml) continue;
    benchmark::RegisterBenchmark("rocm_raw_calls",
                                 [](benchmark::State& s) { RawCalls(s, RawRocm::Get()); });
    benchmark::RegisterBenchmark("rocm_gpu_collect",
                                 [](benchmark::State& s) { Collect(s, RocmSource()); });
  }
  bitfusion::bench::RoundReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  RemoveConfigs();

  std::printf(
      "\nmedians over %d interleaved rounds of CPU time per iteration (ratios: median of the "
      "per-round ratios), on %s:\n",
      rounds, real_nvml ? nvml_library.c_str() : "the fake libraries");
  Report(reporter, "NVML", RawNvml::Get().handles.size(), "nvml_raw_calls", "nvml_gpu_collect",
         1.10);
  if (!real_nvml) Report(reporter, "ROCm SMI", kGpus, "rocm_raw_calls", "rocm_gpu_collect", 1.10);
  return 0;
}
