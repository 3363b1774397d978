#include "devices/nvml_api.h"

#include <cstdio>
#include <type_traits>

namespace bitfusion::nvml {

Result<NvmlFunctions> NvmlFunctions::Load(const std::string& library) {
  BITFUSION_ASSIGN_OR_RETURN(auto lib, DynamicLibrary::Open({library}));
  NvmlFunctions f;
  f.library = library;
  BITFUSION_ASSIGN_OR_RETURN(f.init, lib.Function<nvmlReturn_t()>("nvmlInit_v2"));
  BITFUSION_ASSIGN_OR_RETURN(f.shutdown, lib.Function<nvmlReturn_t()>("nvmlShutdown"));
  auto optional = [&lib](auto& pointer, const char* name) {
    using F = std::remove_pointer_t<std::remove_reference_t<decltype(pointer)>>;
    pointer = lib.OptionalFunction<F>(name);
  };
  optional(f.error_string, "nvmlErrorString");
  optional(f.device_count, "nvmlDeviceGetCount_v2");
  optional(f.handle_by_index, "nvmlDeviceGetHandleByIndex_v2");
  optional(f.handle_by_pci_bus_id, "nvmlDeviceGetHandleByPciBusId_v2");
  optional(f.pci_info, "nvmlDeviceGetPciInfo_v3");
  optional(f.name, "nvmlDeviceGetName");
  optional(f.uuid, "nvmlDeviceGetUUID");
  optional(f.memory_info, "nvmlDeviceGetMemoryInfo");
  optional(f.index, "nvmlDeviceGetIndex");
  optional(f.minor_number, "nvmlDeviceGetMinorNumber");
  optional(f.driver_version, "nvmlSystemGetDriverVersion");
  optional(f.cuda_driver_version, "nvmlSystemGetCudaDriverVersion_v2");
  if (f.cuda_driver_version == nullptr) {
    optional(f.cuda_driver_version, "nvmlSystemGetCudaDriverVersion");
  }
  optional(f.mig_mode, "nvmlDeviceGetMigMode");
  optional(f.nvlink_state, "nvmlDeviceGetNvLinkState");
  optional(f.nvlink_remote_pci_info, "nvmlDeviceGetNvLinkRemotePciInfo_v2");
  optional(f.utilization_rates, "nvmlDeviceGetUtilizationRates");
  optional(f.power_usage, "nvmlDeviceGetPowerUsage");
  optional(f.temperature, "nvmlDeviceGetTemperature");
  optional(f.clock_info, "nvmlDeviceGetClockInfo");
  return f;
}

std::string NvmlFunctions::Why(nvmlReturn_t rc) const {
  const std::string code = "NVML error " + std::to_string(rc);
  const char* text = error_string != nullptr ? error_string(rc) : nullptr;
  return text != nullptr ? std::string(text) + " (" + code + ")" : code;
}

std::string NormalizeBusId(const char* bus_id) {
  unsigned domain = 0, bus = 0, device = 0, function = 0;
  if (std::sscanf(bus_id, "%x:%x:%x.%x", &domain, &bus, &device, &function) != 4) return {};
  char out[16];
  std::snprintf(out, sizeof out, "%04x:%02x:%02x.%x", domain & 0xffff, bus & 0xff, device & 0x1f,
                function & 0x7);
  return out;
}

std::string Terminated(const char* buffer, std::size_t size) {
  std::size_t n = 0;
  while (n < size && buffer[n] != '\0') ++n;
  return std::string(buffer, n);
}

}  // namespace bitfusion::nvml
