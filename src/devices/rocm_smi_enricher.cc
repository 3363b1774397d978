#include "devices/rocm_smi_enricher.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <map>

#include "bitfusion/log.h"
#include "devices/rocm_smi_api.h"

namespace bitfusion {

Status EnrichWithRocmSmi(const RocmSmiEnricherOptions& options, std::vector<Device>& devices) {
  using namespace rocm_smi;  // NOLINT: ROCm SMI's own names read as in its header
  bool any_amd = false;
  for (const auto& d : devices) any_amd = any_amd || d.vendor == "AMD";
  if (!any_amd) return Status::OK();

  BITFUSION_ASSIGN_OR_RETURN(const RocmSmiFunctions api, RocmSmiFunctions::Load(options.libraries));
  auto* const init = api.init;
  auto* const shut_down = api.shut_down;
  auto* const num_devices = api.num_monitor_devices;
  auto* const pci_id = api.pci_id;
  auto* const name_fn = api.name;
  auto* const memory_fn = api.memory_total;
  auto* const unique_fn = api.unique_id;
  auto* const version_fn = api.version_str;
  auto* const link_fn = api.link_type;

  const rsmi_status_t rc = init(0);
  if (rc != RSMI_STATUS_SUCCESS) {
    return UnavailableError(api.library + " loaded but rsmi_init failed: " + api.Why(rc) +
                            " (is the amdgpu driver loaded?)");
  }
  std::uint32_t count = 0;
  if (num_devices(&count) != RSMI_STATUS_SUCCESS) count = 0;
  std::map<std::string, std::uint32_t> index_of;  // PCI address -> rocm-smi index
  std::vector<std::string> address_of(count);
  for (std::uint32_t i = 0; i < count; ++i) {
    std::uint64_t bdfid = 0;
    if (pci_id(i, &bdfid) != RSMI_STATUS_SUCCESS) continue;
    address_of[i] = AddressOf(bdfid);
    index_of[address_of[i]] = i;
  }
  std::string driver_version;
  char text[256] = {};
  if (version_fn && version_fn(RSMI_SW_COMP_DRIVER, text, sizeof text) == RSMI_STATUS_SUCCESS) {
    driver_version = Terminated(text, sizeof text);
  }
  for (auto& d : devices) {
    if (d.vendor != "AMD") continue;
    auto it = index_of.find(d.pci_address);
    if (it == index_of.end()) {
      LogAt(LogLevel::kWarning, "ROCm SMI does not know GPU ", d.pci_address,
            "; keeping what sysfs says about it");
      continue;
    }
    const std::uint32_t i = it->second;
    d.index = static_cast<int>(i);
    char name[256] = {};
    if (name_fn && name_fn(i, name, sizeof name) == RSMI_STATUS_SUCCESS && name[0] != '\0') {
      d.model = Terminated(name, sizeof name);
    }
    std::uint64_t value = 0;
    if (memory_fn && memory_fn(i, RSMI_MEM_TYPE_VRAM, &value) == RSMI_STATUS_SUCCESS) {
      d.memory_bytes = value;
    }
    if (unique_fn && unique_fn(i, &value) == RSMI_STATUS_SUCCESS) {
      char hex[24];
      std::snprintf(hex, sizeof hex, "0x%llx", static_cast<unsigned long long>(value));
      d.properties["unique_id"] = hex;
    }
    if (!driver_version.empty()) d.properties["driver_version"] = driver_version;
    if (link_fn) {
      std::string peers;
      for (std::uint32_t j = 0; j < count; ++j) {
        if (j == i || address_of[j].empty()) continue;
        std::uint64_t hops = 0;
        int type = 0;
        if (link_fn(i, j, &hops, &type) == RSMI_STATUS_SUCCESS && type == RSMI_IOLINK_TYPE_XGMI &&
            hops == 1) {
          peers += (peers.empty() ? "" : ",") + address_of[j];
        }
      }
      if (!peers.empty()) d.properties["xgmi_peers"] = peers;
    }
  }
  shut_down();
  return Status::OK();
}

}  // namespace bitfusion
