#include "devices/rocm_smi_api.h"

#include <cstdio>
#include <cstring>
#include <type_traits>

namespace bitfusion::rocm_smi {

Result<RocmSmiFunctions> RocmSmiFunctions::Load(const std::vector<std::string>& libraries) {
  BITFUSION_ASSIGN_OR_RETURN(auto lib, DynamicLibrary::Open(libraries));
  RocmSmiFunctions f;
  f.library = lib.name();
  auto required = [&lib](auto& pointer, const char* name) -> Status {
    using F = std::remove_pointer_t<std::remove_reference_t<decltype(pointer)>>;
    BITFUSION_ASSIGN_OR_RETURN(pointer, lib.Function<F>(name));
    return Status::OK();
  };
  auto optional = [&lib](auto& pointer, const char* name) {
    using F = std::remove_pointer_t<std::remove_reference_t<decltype(pointer)>>;
    pointer = lib.OptionalFunction<F>(name);
  };
  BITFUSION_RETURN_IF_ERROR(required(f.init, "rsmi_init"));
  BITFUSION_RETURN_IF_ERROR(required(f.shut_down, "rsmi_shut_down"));
  BITFUSION_RETURN_IF_ERROR(required(f.num_monitor_devices, "rsmi_num_monitor_devices"));
  BITFUSION_RETURN_IF_ERROR(required(f.pci_id, "rsmi_dev_pci_id_get"));
  optional(f.status_string, "rsmi_status_string");
  optional(f.version, "rsmi_version_get");
  optional(f.name, "rsmi_dev_name_get");
  optional(f.memory_total, "rsmi_dev_memory_total_get");
  optional(f.memory_usage, "rsmi_dev_memory_usage_get");
  optional(f.unique_id, "rsmi_dev_unique_id_get");
  optional(f.version_str, "rsmi_version_str_get");
  optional(f.link_type, "rsmi_topo_get_link_type");
  optional(f.busy_percent, "rsmi_dev_busy_percent_get");
  optional(f.memory_busy_percent, "rsmi_dev_memory_busy_percent_get");
  optional(f.power_ave, "rsmi_dev_power_ave_get");
  optional(f.temp_metric, "rsmi_dev_temp_metric_get");
  optional(f.gpu_clk_freq, "rsmi_dev_gpu_clk_freq_get");
  return f;
}

std::string RocmSmiFunctions::Why(rsmi_status_t rc) const {
  const std::string code = "ROCm SMI status " + std::to_string(rc);
  const char* text = nullptr;
  if (status_string == nullptr || status_string(rc, &text) != RSMI_STATUS_SUCCESS ||
      text == nullptr) {
    return code;
  }
  return std::string(text) + " (" + code + ")";
}

bool CurrentFrequency(const FrequencyBuffer& buffer, std::uint64_t& hz) {
  // {num_supported, current, frequency[]} at offsets {0, 4, 8}, or after has_deep_sleep at
  // {4, 8, 16}.
  constexpr std::size_t kLayouts[2][3] = {{0, 4, 8}, {4, 8, 16}};
  for (const auto& at : kLayouts) {
    std::uint32_t count = 0, current = 0;
    std::memcpy(&count, buffer.bytes + at[0], sizeof count);
    std::memcpy(&current, buffer.bytes + at[1], sizeof current);
    if (count == 0 || count > 33 || current >= count) continue;
    std::uint64_t value = 0;
    std::memcpy(&value, buffer.bytes + at[2] + current * sizeof value, sizeof value);
    if (value == 0) continue;
    hz = value;
    return true;
  }
  return false;
}

std::string AddressOf(std::uint64_t bdfid) {
  char out[16];
  std::snprintf(out, sizeof out, "%04x:%02x:%02x.%x", static_cast<unsigned>((bdfid >> 32) & 0xffff),
                static_cast<unsigned>((bdfid >> 8) & 0xff),
                static_cast<unsigned>((bdfid >> 3) & 0x1f), static_cast<unsigned>(bdfid & 0x7));
  return out;
}

std::string Terminated(const char* buffer, std::size_t size) {
  std::size_t n = 0;
  while (n < size && buffer[n] != '\0') ++n;
  return std::string(buffer, n);
}

}  // namespace bitfusion::rocm_smi
