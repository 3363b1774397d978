#include "metrics/gpu_source.h"

#include <charconv>
#include <cstdio>
#include <cstring>
#include <optional>
#include <utility>

#include "bitfusion/log.h"
#include "bitfusion/registry.h"
#include "devices/nvml_api.h"
#include "devices/rocm_smi_api.h"
#include "metrics/batch_writer.h"

namespace bitfusion {
namespace {

enum Metric : int {
  kUtilGpu,
  kUtilMemory,
  kMemoryUsed,
  kMemoryTotal,
  kPower,
  kTemperature,
  kClockGraphics,
  kClockSm,
  kClockMemory,
  kMetrics
};

// The library calls behind each of internal::kGpuMetrics (gpu_source.h), in its order.
struct MetricCalls {
  const char* nvml_call;
  const char* rocm_call;  // nullptr: ROCm SMI has no such reading
};
constexpr MetricCalls kMetricCalls[kMetrics] = {
    {"nvmlDeviceGetUtilizationRates", "rsmi_dev_busy_percent_get"},
    {"nvmlDeviceGetUtilizationRates", "rsmi_dev_memory_busy_percent_get"},
    {"nvmlDeviceGetMemoryInfo", "rsmi_dev_memory_usage_get"},
    {"nvmlDeviceGetMemoryInfo", "rsmi_dev_memory_total_get"},
    {"nvmlDeviceGetPowerUsage", "rsmi_dev_power_ave_get"},
    {"nvmlDeviceGetTemperature", "rsmi_dev_temp_metric_get"},
    {"nvmlDeviceGetClockInfo(NVML_CLOCK_GRAPHICS)", "rsmi_dev_gpu_clk_freq_get(RSMI_CLK_TYPE_SYS)"},
    {"nvmlDeviceGetClockInfo(NVML_CLOCK_SM)", nullptr},
    {"nvmlDeviceGetClockInfo(NVML_CLOCK_MEM)", "rsmi_dev_gpu_clk_freq_get(RSMI_CLK_TYPE_MEM)"},
};
static_assert(internal::kGpuMetricCount == kMetrics);

const std::vector<std::string> kRocmLibraries = {"librocm_smi64.so.1",
                                                 "/opt/rocm/lib/librocm_smi64.so.1"};

}  // namespace

struct GpuSource::Impl {
  struct Device {
    std::uint32_t index = 0;
    nvml::nvmlDevice_t handle = nullptr;  // NVML only; ROCm SMI is addressed by index
    std::string name;                     // "GPU 0 (0000:07:00.0)", for messages
    Labels labels;
    bool enabled[kMetrics] = {};
    std::uint32_t series[kMetrics] = {};
  };

  std::optional<nvml::NvmlFunctions> nvml;  // set while NVML is initialised
  std::optional<rocm_smi::RocmSmiFunctions> rocm;
  rocm_smi::FrequencyBuffer frequencies{};
  std::vector<Device> devices;

  std::size_t series_end = 0;  // batch.series.size() after this source's declarations
  bool declared = false;
  std::size_t last_samples = 0;

  ~Impl() {
    if (nvml) nvml->shutdown();
    if (rocm) rocm->shut_down();
  }

  Status OpenNvml(const std::string& library, const std::vector<std::uint32_t>& wanted);
  Status OpenRocm(const std::vector<std::string>& libraries,
                  const std::vector<std::uint32_t>& wanted);

  // Turns metrics off for one device, with one warning naming the call and its answer.
  void Disable(Device& d, Metric a, Metric b, const std::string& why) {
    std::string metrics;
    for (Metric m : {a, b}) {
      if (!d.enabled[m]) continue;
      d.enabled[m] = false;
      if (!metrics.empty()) metrics += " and ";
      metrics += internal::kGpuMetrics[m].name;
      if (a == b) break;
    }
    if (metrics.empty()) return;
    const char* call = nvml ? kMetricCalls[a].nvml_call : kMetricCalls[a].rocm_call;
    LogAt(LogLevel::kWarning, "gpu source: ", d.name, " does not support ", call, " (", why, "); ",
          metrics, " will not be sampled for it");
  }

  Status Failed(const Device& d, Metric m, const std::string& why) const {
    const char* call = nvml ? kMetricCalls[m].nvml_call : kMetricCalls[m].rocm_call;
    return UnavailableError("gpu source: " + std::string(call) + " for " + d.name +
                            " failed: " + why);
  }

  // Asks the library for each enabled metric of `d` and hands every value to
  // emit(device, metric, value). A query the device does not support disables its metrics with
  // one warning; the first other failure is returned once every query has been asked.
  template <class Emit>
  Status Query(Device& d, Emit&& emit) {
    return nvml ? QueryNvml(d, emit) : QueryRocm(d, emit);
  }

  template <class Emit>
  Status QueryNvml(Device& d, Emit& emit) {
    using namespace nvml;  // NOLINT: NVML's own names read as in its reference
    const NvmlFunctions& f = *this->nvml;
    Status first;
    auto ok = [&](nvmlReturn_t rc, Metric a, Metric b) {
      if (rc == NVML_SUCCESS) [[likely]]
        return true;
      if (rc == NVML_ERROR_NOT_SUPPORTED) {
        Disable(d, a, b, f.Why(rc));
      } else if (first.ok()) {
        first = Failed(d, a, f.Why(rc));
      }
      return false;
    };
    if (d.enabled[kUtilGpu] || d.enabled[kUtilMemory]) {
      nvmlUtilization_t u{};
      if (ok(f.utilization_rates(d.handle, &u), kUtilGpu, kUtilMemory)) {
        emit(d, kUtilGpu, u.gpu);
        emit(d, kUtilMemory, u.memory);
      }
    }
    if (d.enabled[kMemoryUsed] || d.enabled[kMemoryTotal]) {
      nvmlMemory_t m{};
      if (ok(f.memory_info(d.handle, &m), kMemoryUsed, kMemoryTotal)) {
        emit(d, kMemoryUsed, static_cast<double>(m.used));
        emit(d, kMemoryTotal, static_cast<double>(m.total));
      }
    }
    unsigned value = 0;
    if (d.enabled[kPower] && ok(f.power_usage(d.handle, &value), kPower, kPower)) {
      emit(d, kPower, value / 1e3);
    }
    if (d.enabled[kTemperature] &&
        ok(f.temperature(d.handle, NVML_TEMPERATURE_GPU, &value), kTemperature, kTemperature)) {
      emit(d, kTemperature, value);
    }
    constexpr std::pair<Metric, nvmlClockType_t> kClocks[] = {{kClockGraphics, NVML_CLOCK_GRAPHICS},
                                                              {kClockSm, NVML_CLOCK_SM},
                                                              {kClockMemory, NVML_CLOCK_MEM}};
    for (const auto& [metric, type] : kClocks) {
      if (d.enabled[metric] && ok(f.clock_info(d.handle, type, &value), metric, metric)) {
        emit(d, metric, value * 1e6);
      }
    }
    return first;
  }

  template <class Emit>
  Status QueryRocm(Device& d, Emit& emit) {
    using namespace rocm_smi;  // NOLINT: ROCm SMI's own names read as in its header
    const RocmSmiFunctions& f = *rocm;
    Status first;
    auto ok = [&](rsmi_status_t rc, Metric m) {
      if (rc == RSMI_STATUS_SUCCESS) [[likely]]
        return true;
      if (rc == RSMI_STATUS_NOT_SUPPORTED) {
        Disable(d, m, m, f.Why(rc));
      } else if (first.ok()) {
        first = Failed(d, m, f.Why(rc));
      }
      return false;
    };
    std::uint32_t percent = 0;
    if (d.enabled[kUtilGpu] && ok(f.busy_percent(d.index, &percent), kUtilGpu)) {
      emit(d, kUtilGpu, percent);
    }
    if (d.enabled[kUtilMemory] && ok(f.memory_busy_percent(d.index, &percent), kUtilMemory)) {
      emit(d, kUtilMemory, percent);
    }
    std::uint64_t value = 0;
    if (d.enabled[kMemoryUsed] &&
        ok(f.memory_usage(d.index, RSMI_MEM_TYPE_VRAM, &value), kMemoryUsed)) {
      emit(d, kMemoryUsed, static_cast<double>(value));
    }
    if (d.enabled[kMemoryTotal] &&
        ok(f.memory_total(d.index, RSMI_MEM_TYPE_VRAM, &value), kMemoryTotal)) {
      emit(d, kMemoryTotal, static_cast<double>(value));
    }
    if (d.enabled[kPower] && ok(f.power_ave(d.index, 0, &value), kPower)) {
      emit(d, kPower, static_cast<double>(value) / 1e6);
    }
    std::int64_t millidegrees = 0;
    if (d.enabled[kTemperature] &&
        ok(f.temp_metric(d.index, RSMI_TEMP_TYPE_EDGE, RSMI_TEMP_CURRENT, &millidegrees),
           kTemperature)) {
      emit(d, kTemperature, static_cast<double>(millidegrees) / 1e3);
    }
    constexpr std::pair<Metric, int> kClocks[] = {{kClockGraphics, RSMI_CLK_TYPE_SYS},
                                                  {kClockMemory, RSMI_CLK_TYPE_MEM}};
    for (const auto& [metric, type] : kClocks) {
      if (!d.enabled[metric]) continue;
      // Zeroed first: the layouts are told apart by what the library wrote.
      std::memset(frequencies.bytes, 0, sizeof frequencies.bytes);
      if (!ok(f.gpu_clk_freq(d.index, type, frequencies.bytes), metric)) continue;
      std::uint64_t hz = 0;
      if (!CurrentFrequency(frequencies, hz)) {
        if (first.ok()) {
          first = Failed(d, metric, "it wrote a frequency table in no layout bitfusion knows");
        }
        continue;
      }
      emit(d, metric, static_cast<double>(hz));
    }
    return first;
  }
};

Result<GpuSourceOptions> GpuSourceOptions::FromUri(const Uri& uri) {
  BITFUSION_RETURN_IF_ERROR(uri.CheckQueryKeys({"vendor", "library", "devices"}));
  if (!uri.host.empty() || !uri.path.empty()) {
    return InvalidArgumentError("metric source " + uri.ToString() +
                                " takes no path; write gpu, or gpu?devices=0,1 to pick GPUs");
  }
  GpuSourceOptions options;
  if (auto vendor = uri.Query("vendor")) options.vendor = *vendor;
  if (auto library = uri.Query("library")) options.library = *library;
  if (auto list = uri.Query("devices")) {
    const char* p = list->data();
    const char* const end = p + list->size();
    while (p < end) {
      std::uint32_t index = 0;
      const auto [next, ec] = std::from_chars(p, end, index);
      if (ec != std::errc() || (next != end && *next != ',')) {
        return InvalidArgumentError("option devices=" + *list + " in " + uri.ToString() +
                                    " is not a list of GPU indices; write e.g. devices=0,2");
      }
      options.devices.push_back(index);
      p = next == end ? end : next + 1;
    }
    if (options.devices.empty()) {
      return InvalidArgumentError("option devices in " + uri.ToString() +
                                  " is empty; leave it out to sample every GPU");
    }
  }
  return options;
}

Status GpuSource::Impl::OpenNvml(const std::string& library,
                                 const std::vector<std::uint32_t>& wanted) {
  using namespace nvml;  // NOLINT: NVML's own names read as in its reference
  BITFUSION_ASSIGN_OR_RETURN(NvmlFunctions f, NvmlFunctions::Load(library));
  if (f.device_count == nullptr || f.handle_by_index == nullptr) {
    return UnavailableError(library +
                            " lacks nvmlDeviceGetCount_v2 or nvmlDeviceGetHandleByIndex_v2 (a "
                            "driver older than R346?)");
  }
  const nvmlReturn_t rc = f.init();
  if (rc != NVML_SUCCESS) {
    return UnavailableError(library + " loaded but nvmlInit_v2 failed: " + f.Why(rc) +
                            " (is the NVIDIA driver loaded?)");
  }
  nvml = std::move(f);  // from here the destructor shuts NVML down
  const NvmlFunctions& api = *nvml;
  unsigned count = 0;
  if (const nvmlReturn_t c = api.device_count(&count); c != NVML_SUCCESS) {
    return UnavailableError("nvmlDeviceGetCount_v2 failed: " + api.Why(c));
  }
  if (count == 0) return UnavailableError("NVML (" + library + ") reports no GPU");
  std::vector<std::uint32_t> indices = wanted;
  for (std::uint32_t i : indices) {
    if (i >= count) {
      return InvalidArgumentError("gpu source: there is no GPU " + std::to_string(i) + "; NVML (" +
                                  library + ") reports " + std::to_string(count) + " (indices 0.." +
                                  std::to_string(count - 1) + ")");
    }
  }
  if (indices.empty()) {
    for (std::uint32_t i = 0; i < count; ++i) indices.push_back(i);
  }
  for (std::uint32_t i : indices) {
    Device d;
    d.index = i;
    d.name = "GPU " + std::to_string(i);
    if (const nvmlReturn_t h = api.handle_by_index(i, &d.handle); h != NVML_SUCCESS) {
      LogAt(LogLevel::kWarning, "gpu source: NVML has no handle for GPU ", i, " (", api.Why(h),
            "); it will not be sampled");
      continue;
    }
    d.labels["gpu"] = std::to_string(i);
    nvmlPciInfo_t pci{};
    if (api.pci_info && api.pci_info(d.handle, &pci) == NVML_SUCCESS) {
      std::string bus_id = NormalizeBusId(Terminated(pci.busId, sizeof pci.busId).c_str());
      if (!bus_id.empty()) {
        d.name += " (" + bus_id + ")";
        d.labels["pci_bus_id"] = std::move(bus_id);
      }
    }
    char uuid[NVML_DEVICE_UUID_V2_BUFFER_SIZE] = {};
    if (api.uuid && api.uuid(d.handle, uuid, sizeof uuid) == NVML_SUCCESS) {
      d.labels["uuid"] = Terminated(uuid, sizeof uuid);
    }
    const bool have[kMetrics] = {api.utilization_rates != nullptr, api.utilization_rates != nullptr,
                                 api.memory_info != nullptr,       api.memory_info != nullptr,
                                 api.power_usage != nullptr,       api.temperature != nullptr,
                                 api.clock_info != nullptr,        api.clock_info != nullptr,
                                 api.clock_info != nullptr};
    for (int m = 0; m < kMetrics; ++m) {
      d.enabled[m] = have[m];
      if (!have[m] && d.index == indices.front()) {
        LogAt(LogLevel::kWarning, "gpu source: ", library, " has no ", kMetricCalls[m].nvml_call,
              " (an old driver); ", internal::kGpuMetrics[m].name, " will not be sampled");
      }
    }
    devices.push_back(std::move(d));
  }
  if (devices.empty()) return UnavailableError("NVML gave no handle for any GPU");
  return Status::OK();
}

Status GpuSource::Impl::OpenRocm(const std::vector<std::string>& libraries,
                                 const std::vector<std::uint32_t>& wanted) {
  using namespace rocm_smi;  // NOLINT: ROCm SMI's own names read as in its header
  BITFUSION_ASSIGN_OR_RETURN(RocmSmiFunctions f, RocmSmiFunctions::Load(libraries));
  const rsmi_status_t rc = f.init(0);
  if (rc != RSMI_STATUS_SUCCESS) {
    return UnavailableError(f.library + " loaded but rsmi_init failed: " + f.Why(rc) +
                            " (is the amdgpu driver loaded?)");
  }
  rocm = std::move(f);  // from here the destructor shuts ROCm SMI down
  const RocmSmiFunctions& api = *rocm;
  std::uint32_t count = 0;
  if (const rsmi_status_t c = api.num_monitor_devices(&count); c != RSMI_STATUS_SUCCESS) {
    return UnavailableError("rsmi_num_monitor_devices failed: " + api.Why(c));
  }
  if (count == 0) return UnavailableError("ROCm SMI (" + api.library + ") reports no GPU");
  std::vector<std::uint32_t> indices = wanted;
  for (std::uint32_t i : indices) {
    if (i >= count) {
      return InvalidArgumentError(
          "gpu source: there is no GPU " + std::to_string(i) + "; ROCm SMI (" + api.library +
          ") reports " + std::to_string(count) + " (indices 0.." + std::to_string(count - 1) + ")");
    }
  }
  if (indices.empty()) {
    for (std::uint32_t i = 0; i < count; ++i) indices.push_back(i);
  }
  for (std::uint32_t i : indices) {
    Device d;
    d.index = i;
    d.name = "GPU " + std::to_string(i);
    d.labels["gpu"] = std::to_string(i);
    std::uint64_t value = 0;
    if (api.pci_id(i, &value) == RSMI_STATUS_SUCCESS) {
      std::string address = AddressOf(value);
      d.name += " (" + address + ")";
      d.labels["pci_bus_id"] = std::move(address);
    }
    if (api.unique_id && api.unique_id(i, &value) == RSMI_STATUS_SUCCESS) {
      char hex[24];
      std::snprintf(hex, sizeof hex, "0x%llx", static_cast<unsigned long long>(value));
      d.labels["uuid"] = hex;
    }
    const bool have[kMetrics] = {api.busy_percent != nullptr, api.memory_busy_percent != nullptr,
                                 api.memory_usage != nullptr, api.memory_total != nullptr,
                                 api.power_ave != nullptr,    api.temp_metric != nullptr,
                                 api.gpu_clk_freq != nullptr, false,
                                 api.gpu_clk_freq != nullptr};
    for (int m = 0; m < kMetrics; ++m) {
      d.enabled[m] = have[m];
      if (!have[m] && kMetricCalls[m].rocm_call != nullptr && d.index == indices.front()) {
        LogAt(LogLevel::kWarning, "gpu source: ", api.library, " has no ",
              kMetricCalls[m].rocm_call, " (an old release); ", internal::kGpuMetrics[m].name,
              " will not be sampled");
      }
    }
    devices.push_back(std::move(d));
  }
  return Status::OK();
}

GpuSource::GpuSource() : impl_(std::make_unique<Impl>()) {}
GpuSource::~GpuSource() = default;

std::size_t GpuSource::device_count() const { return impl_->devices.size(); }

Result<std::shared_ptr<GpuSource>> GpuSource::Make(const GpuSourceOptions& options) {
  const std::string& vendor = options.vendor;
  if (vendor != "auto" && vendor != "nvml" && vendor != "rocm") {
    return InvalidArgumentError("gpu source: unknown vendor \"" + vendor +
                                "\"; use nvml (NVIDIA), rocm (AMD) or auto");
  }
  if (!options.library.empty() && vendor == "auto") {
    return InvalidArgumentError("gpu source: library=" + options.library +
                                " needs vendor=nvml or vendor=rocm to say which library it is");
  }
  std::shared_ptr<GpuSource> source(new GpuSource());
  source->uri_ = "gpu";
  std::string query;
  if (vendor != "auto") query += "&vendor=" + vendor;
  if (!options.library.empty()) query += "&library=" + options.library;
  if (!options.devices.empty()) {
    query += "&devices=";
    for (std::size_t i = 0; i < options.devices.size(); ++i) {
      // Not (i ? "," : "") + std::to_string(...): GCC 12 at -O3 reports a bogus -Wrestrict
      // overlap for a one-character literal plus a temporary string (GCC bug 105329).
      if (i > 0) query += ',';
      query += std::to_string(options.devices[i]);
    }
  }
  if (!query.empty()) source->uri_ += "?" + query.substr(1);

  std::string reasons;
  auto attempt = [&](const char* name, Status status) -> Status {
    if (status.ok()) {
      source->vendor_ = name;
      return Status::OK();
    }
    // A library that was initialised before the failure is shut down again (it stays loaded:
    // see DynamicLibrary).
    source->impl_ = std::make_unique<Impl>();
    if (status.code() == StatusCode::kInvalidArgument) return status;
    reasons += (reasons.empty() ? "" : "; ") + status.message();
    return Status::OK();
  };
  if (vendor == "auto" || vendor == "nvml") {
    const std::string library = options.library.empty() ? "libnvidia-ml.so.1" : options.library;
    BITFUSION_RETURN_IF_ERROR(attempt("nvml", source->impl_->OpenNvml(library, options.devices)));
  }
  if (source->vendor_.empty() && (vendor == "auto" || vendor == "rocm")) {
    const std::vector<std::string> libraries =
        options.library.empty() ? kRocmLibraries : std::vector<std::string>{options.library};
    BITFUSION_RETURN_IF_ERROR(attempt("rocm", source->impl_->OpenRocm(libraries, options.devices)));
  }
  if (source->vendor_.empty()) {
    source->disabled_why_ = "no GPU library, driver or GPU on this host: " + reasons;
    // Once per process and reason: a program may make a source for every run.
    LogOnceAt(LogLevel::kWarning, "gpu-source-disabled:" + reasons,
              "gpu source disabled, no GPU metrics will be sampled: ", reasons,
              ". On a GPU host, install the NVIDIA driver (NVML) or ROCm, or name the library "
              "with gpu?vendor=nvml&library=PATH (or vendor=rocm)");
    return source;
  }
  // Ask every query once now, so that what a device does not support is said (once) when the
  // source is made rather than on the first tick.
  auto ignore = [](Impl::Device&, int, double) {};
  for (auto& d : source->impl_->devices) (void)source->impl_->Query(d, ignore);
  source->enabled_ = true;
  return source;
}

Status GpuSource::Collect(Timestamp now, SampleBatch& batch) {
  if (!enabled_) return Status::OK();
  Impl& m = *impl_;
  if (!m.declared || batch.series.size() != m.series_end) {
    for (auto& d : m.devices) {
      for (int k = 0; k < kMetrics; ++k) {
        if (!d.enabled[k]) continue;
        d.series[k] = batch.AddSeries(
            {internal::kGpuMetrics[k].name, internal::kGpuMetrics[k].unit, d.labels, false});
      }
    }
    m.declared = true;
  }
  m.series_end = batch.series.size();

  const std::size_t before = batch.size();
  internal::BatchWriter out(batch, now, m.last_samples);
  auto emit = [&out](Impl::Device& d, int metric, double value) {
    if (d.enabled[metric]) out.Append(d.series[metric], value);
  };
  Status result;
  for (auto& d : m.devices) {
    Status status = m.Query(d, emit);
    if (result.ok() && !status.ok()) result = std::move(status);
  }
  m.last_samples = out.size() - before;
  return result;
}

BITFUSION_REGISTER(MetricSource, "gpu", GpuSourceOptions, GpuSource);

}  // namespace bitfusion
