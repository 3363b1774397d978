// "gpu" metric source: utilisation, memory, power, temperature and clocks of each GPU, read
// through NVML (NVIDIA, libnvidia-ml.so.1) or ROCm SMI (AMD, librocm_smi64.so.1), both loaded
// with dlopen at run time (src/devices/nvml_api.h, rocm_smi_api.h).
//
// Metrics (all gauges), each with labels gpu="N" (the library's device index), pci_bus_id
// ("0000:07:00.0") and uuid (NVML's "GPU-...", ROCm SMI's unique id as "0x..."; absent when the
// library does not say):
//   gpu.utilization.gpu     %      NVML: share of the last sample period a kernel ran;
//                                  ROCm SMI: rsmi_dev_busy_percent_get
//   gpu.utilization.memory  %      NVML: share of it device memory was read or written;
//                                  ROCm SMI: rsmi_dev_memory_busy_percent_get
//   gpu.memory.used         bytes  device memory (VRAM) in use
//   gpu.memory.total        bytes
//   gpu.power               W      NVML: power usage (mW); ROCm SMI: average power (µW)
//   gpu.temperature         Cel    degrees Celsius; NVML: the GPU sensor; ROCm SMI: the edge
//                                  sensor (m°C)
//   gpu.clock.graphics      Hz     NVML: graphics clock (MHz); ROCm SMI: sclk's current level
//   gpu.clock.sm            Hz     NVML only: SM clock (MHz)
//   gpu.clock.memory        Hz     NVML: memory clock (MHz); ROCm SMI: mclk's current level
//
// Cost: the library is loaded, initialised and every device handle taken once, in Make; Collect
// only calls the per-device query functions and writes the values straight into the batch's
// columns, so the steady state makes no allocation (benchmarks/gpu_sample_benchmark.cc).
//
// A host without the library, the driver or any GPU gets a source that is disabled with one
// warning saying why (once per process and reason, however many sources a plan makes) and
// appends nothing, so `--source gpu` can be named everywhere. A query a
// device does not support (NVML_ERROR_NOT_SUPPORTED, RSMI_STATUS_NOT_SUPPORTED) drops that metric
// for that device with one warning, when the source is made or whenever the device first says
// so. Any other failure is returned by Collect naming the call and the library's own words
// (nvmlErrorString, rsmi_status_string).
#pragma once

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "bitfusion/metric_stream.h"
#include "bitfusion/uri.h"

namespace bitfusion {

namespace internal {

/// The metrics above, in the order every GPU source delivers them (this one, and gpu+ssh://'s
/// from nvidia-smi): name and unit.
struct GpuMetric {
  const char* name;
  const char* unit;
};
inline constexpr GpuMetric kGpuMetrics[] = {
    {"gpu.utilization.gpu", "%"}, {"gpu.utilization.memory", "%"},
    {"gpu.memory.used", "bytes"}, {"gpu.memory.total", "bytes"},
    {"gpu.power", "W"},           {"gpu.temperature", "Cel"},
    {"gpu.clock.graphics", "Hz"}, {"gpu.clock.sm", "Hz"},
    {"gpu.clock.memory", "Hz"}};
inline constexpr std::size_t kGpuMetricCount = std::size(kGpuMetrics);

}  // namespace internal

struct GpuSourceOptions {
  /// Which library: "nvml", "rocm", or "auto" (NVML, then ROCm SMI). Query key `vendor`;
  /// default "auto".
  std::string vendor = "auto";
  /// Soname or path of the library, instead of the vendor's usual ones (tests name a fake).
  /// Query key `library`; needs `vendor` nvml or rocm. Empty: libnvidia-ml.so.1, or
  /// librocm_smi64.so.1 then /opt/rocm/lib/librocm_smi64.so.1.
  std::string library;
  /// Device indices (the library's numbering) to sample; empty = all. Query key `devices`,
  /// a comma-separated list: "gpu?devices=0,2".
  std::vector<std::uint32_t> devices;

  /// "gpu", "gpu?vendor=nvml&devices=0,1", "gpu?vendor=rocm&library=/path/librocm_smi64.so.1".
  /// Unknown query keys, an unknown vendor or a malformed device list are InvalidArgument.
  static Result<GpuSourceOptions> FromUri(const Uri& uri);
};

/// Concurrency: one sampling thread at a time (see MetricSource). The library stays initialised
/// while the source lives (nvmlShutdown / rsmi_shut_down when it is destroyed).
class GpuSource final : public MetricSource {
 public:
  /// InvalidArgument for a bad vendor or a device index the library does not have. A missing
  /// library, driver or GPU is not an error: see enabled().
  static Result<std::shared_ptr<GpuSource>> Make(const GpuSourceOptions& options);
  ~GpuSource() override;

  const std::string& uri() const override { return uri_; }
  /// One value per supported metric per device, all stamped `now`.
  Status Collect(Timestamp now, SampleBatch& batch) override;

  /// False when no library, driver or GPU was found (the one warning said why); Collect then
  /// appends nothing.
  bool enabled() const { return enabled_; }
  /// What was tried and why it failed, when not enabled.
  std::string WhyDisabled() const override { return disabled_why_; }
  /// "nvml" or "rocm" when enabled, else "".
  const std::string& vendor() const { return vendor_; }
  /// Devices sampled.
  std::size_t device_count() const;

  GpuSource(const GpuSource&) = delete;
  GpuSource& operator=(const GpuSource&) = delete;

 private:
  struct Impl;
  GpuSource();

  std::string uri_;
  std::string vendor_;
  bool enabled_ = false;
  std::string disabled_why_;
  std::unique_ptr<Impl> impl_;  // the library's functions and the devices' handles
};

}  // namespace bitfusion
