#include "devices/nvml_enricher.h"

#include <algorithm>
#include <cstdio>

#include "bitfusion/log.h"
#include "devices/nvml_api.h"

namespace bitfusion {

Status EnrichWithNvml(const NvmlEnricherOptions& options, std::vector<Device>& devices) {
  using namespace nvml;  // NOLINT: NVML's own names read as in its reference
  bool any_nvidia = false;
  for (const auto& d : devices) any_nvidia = any_nvidia || d.vendor == "NVIDIA";
  if (!any_nvidia) return Status::OK();

  BITFUSION_ASSIGN_OR_RETURN(const NvmlFunctions api, NvmlFunctions::Load(options.library));
  if (api.handle_by_pci_bus_id == nullptr) {
    return NotFoundError(options.library +
                         " has no symbol nvmlDeviceGetHandleByPciBusId_v2; the library is older "
                         "than bitfusion expects");
  }
  auto why = [&](nvmlReturn_t rc) { return api.Why(rc); };

  const nvmlReturn_t rc = api.init();
  if (rc != NVML_SUCCESS) {
    return UnavailableError(options.library + " loaded but nvmlInit_v2 failed: " + why(rc) +
                            " (is the NVIDIA driver loaded?)");
  }
  // Every call below is optional: an old driver lacking one still yields the others.
  auto* const count_fn = api.device_count;
  auto* const by_bus_id = api.handle_by_pci_bus_id;
  auto* const name_fn = api.name;
  auto* const uuid_fn = api.uuid;
  auto* const memory_fn = api.memory_info;
  auto* const index_fn = api.index;
  auto* const minor_fn = api.minor_number;
  auto* const driver_fn = api.driver_version;
  auto* const cuda_fn = api.cuda_driver_version;
  auto* const mig_fn = api.mig_mode;
  auto* const link_state_fn = api.nvlink_state;
  auto* const remote_fn = api.nvlink_remote_pci_info;

  std::string driver_version, cuda_version;
  char text[NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE] = {};
  if (driver_fn && driver_fn(text, sizeof text) == NVML_SUCCESS) {
    driver_version = Terminated(text, sizeof text);
  }
  int cuda = 0;
  if (cuda_fn && cuda_fn(&cuda) == NVML_SUCCESS && cuda > 0) {
    cuda_version = std::to_string(cuda / 1000) + "." + std::to_string(cuda % 1000 / 10);
  }
  unsigned nvml_count = 0;
  if (count_fn && count_fn(&nvml_count) != NVML_SUCCESS) nvml_count = 0;

  unsigned matched = 0;
  for (auto& d : devices) {
    if (d.vendor != "NVIDIA") continue;
    nvmlDevice_t handle = nullptr;
    const nvmlReturn_t found = by_bus_id(d.pci_address.c_str(), &handle);
    if (found != NVML_SUCCESS) {
      LogAt(LogLevel::kWarning, "NVML does not know GPU ", d.pci_address, ": ", why(found),
            "; keeping what sysfs says about it");
      continue;
    }
    ++matched;
    char buffer[NVML_DEVICE_NAME_V2_BUFFER_SIZE] = {};
    if (name_fn && name_fn(handle, buffer, sizeof buffer) == NVML_SUCCESS) {
      d.model = Terminated(buffer, sizeof buffer);
    }
    char uuid[NVML_DEVICE_UUID_V2_BUFFER_SIZE] = {};
    if (uuid_fn && uuid_fn(handle, uuid, sizeof uuid) == NVML_SUCCESS) {
      d.properties["uuid"] = Terminated(uuid, sizeof uuid);
    }
    nvmlMemory_t memory{};
    if (memory_fn && memory_fn(handle, &memory) == NVML_SUCCESS) d.memory_bytes = memory.total;
    unsigned value = 0;
    if (index_fn && index_fn(handle, &value) == NVML_SUCCESS) d.index = static_cast<int>(value);
    if (minor_fn && minor_fn(handle, &value) == NVML_SUCCESS) {
      d.properties["minor"] = std::to_string(value);
      d.properties.erase("minor_source");
    }
    if (!driver_version.empty()) d.properties["driver_version"] = driver_version;
    if (!cuda_version.empty()) d.properties["cuda_version"] = cuda_version;
    unsigned current = 0, pending = 0;
    if (mig_fn && mig_fn(handle, &current, &pending) == NVML_SUCCESS) {
      d.properties["mig_mode"] = current == 1 ? "enabled" : "disabled";
    }
    if (link_state_fn && remote_fn) {
      std::vector<std::string> peers;
      for (unsigned link = 0; link < NVML_NVLINK_MAX_LINKS; ++link) {
        nvmlEnableState_t active = 0;
        const nvmlReturn_t state = link_state_fn(handle, link, &active);
        // Past the device's last link NVML answers INVALID_ARGUMENT; without NVLink at all,
        // NOT_SUPPORTED.
        if (state == NVML_ERROR_INVALID_ARGUMENT || state == NVML_ERROR_NOT_SUPPORTED) break;
        if (state != NVML_SUCCESS || active != 1) continue;
        nvmlPciInfo_t remote{};
        if (remote_fn(handle, link, &remote) != NVML_SUCCESS) continue;
        std::string peer = NormalizeBusId(Terminated(remote.busId, sizeof remote.busId).c_str());
        if (!peer.empty() && std::find(peers.begin(), peers.end(), peer) == peers.end()) {
          peers.push_back(peer);
        }
      }
      std::sort(peers.begin(), peers.end());
      std::string list;
      for (const auto& p : peers) list += (list.empty() ? "" : ",") + p;
      if (!list.empty()) d.properties["nvlink_peers"] = list;
    }
  }
  if (nvml_count > matched) {
    LogAt(LogLevel::kInfo, "NVML reports ", nvml_count, " GPU(s), sysfs showed ", matched,
          " of them; the others are hidden from this allocator's root");
  }
  api.shutdown();
  return Status::OK();
}

}  // namespace bitfusion
