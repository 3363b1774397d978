#include "devices/rocm_smi_enricher.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <map>

#include "bitfusion/log.h"
#include "devices/dynamic_library.h"

namespace bitfusion {
namespace {

// From rocm_smi/rocm_smi.h (ROCm SMI 5.x, Debian librocm-smi-dev 5.2.3): enums are plain ints.
using rsmi_status_t = int;
constexpr rsmi_status_t RSMI_STATUS_SUCCESS = 0;
constexpr int RSMI_MEM_TYPE_VRAM = 0;
constexpr int RSMI_SW_COMP_DRIVER = 0;
constexpr int RSMI_IOLINK_TYPE_XGMI = 2;

using InitFn = rsmi_status_t(std::uint64_t);
using ShutDownFn = rsmi_status_t();
using NumDevicesFn = rsmi_status_t(std::uint32_t*);
using PciIdFn = rsmi_status_t(std::uint32_t, std::uint64_t*);
using NameFn = rsmi_status_t(std::uint32_t, char*, std::size_t);
using MemoryTotalFn = rsmi_status_t(std::uint32_t, int, std::uint64_t*);
using UniqueIdFn = rsmi_status_t(std::uint32_t, std::uint64_t*);
using VersionStrFn = rsmi_status_t(int, char*, std::uint32_t);
using LinkTypeFn = rsmi_status_t(std::uint32_t, std::uint32_t, std::uint64_t*, int*);

// BDFID = domain << 32 | bus << 8 | device << 3 | function (rsmi_dev_pci_id_get).
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

}  // namespace

Status EnrichWithRocmSmi(const RocmSmiEnricherOptions& options, std::vector<Device>& devices) {
  bool any_amd = false;
  for (const auto& d : devices) any_amd = any_amd || d.vendor == "AMD";
  if (!any_amd) return Status::OK();

  BITFUSION_ASSIGN_OR_RETURN(auto lib, DynamicLibrary::Open(options.libraries));
  BITFUSION_ASSIGN_OR_RETURN(auto init, lib.Function<InitFn>("rsmi_init"));
  BITFUSION_ASSIGN_OR_RETURN(auto shut_down, lib.Function<ShutDownFn>("rsmi_shut_down"));
  BITFUSION_ASSIGN_OR_RETURN(auto num_devices,
                             lib.Function<NumDevicesFn>("rsmi_num_monitor_devices"));
  BITFUSION_ASSIGN_OR_RETURN(auto pci_id, lib.Function<PciIdFn>("rsmi_dev_pci_id_get"));
  auto* name_fn = lib.OptionalFunction<NameFn>("rsmi_dev_name_get");
  auto* memory_fn = lib.OptionalFunction<MemoryTotalFn>("rsmi_dev_memory_total_get");
  auto* unique_fn = lib.OptionalFunction<UniqueIdFn>("rsmi_dev_unique_id_get");
  auto* version_fn = lib.OptionalFunction<VersionStrFn>("rsmi_version_str_get");
  auto* link_fn = lib.OptionalFunction<LinkTypeFn>("rsmi_topo_get_link_type");

  const rsmi_status_t rc = init(0);
  if (rc != RSMI_STATUS_SUCCESS) {
    return UnavailableError(lib.name() + " loaded but rsmi_init failed with status " +
                            std::to_string(rc) + " (is the amdgpu driver loaded?)");
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
