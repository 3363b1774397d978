#include "devices/nvml_enricher.h"

#include <algorithm>
#include <cstdio>

#include "bitfusion/log.h"
#include "devices/dynamic_library.h"

namespace bitfusion {
namespace {

// The few NVML declarations used, as nvml.h publishes them (NVML API reference, "Device
// Queries", "System Queries", "NvLink Methods"). Struct layouts must match exactly: the
// library writes into them.
using nvmlReturn_t = int;
constexpr nvmlReturn_t NVML_SUCCESS = 0;
constexpr nvmlReturn_t NVML_ERROR_INVALID_ARGUMENT = 2;
constexpr nvmlReturn_t NVML_ERROR_NOT_SUPPORTED = 3;
using nvmlDevice_t = struct nvmlDevice_st*;
using nvmlEnableState_t = int;  // NVML_FEATURE_DISABLED = 0, NVML_FEATURE_ENABLED = 1

constexpr unsigned NVML_DEVICE_PCI_BUS_ID_BUFFER_SIZE = 32;
constexpr unsigned NVML_DEVICE_PCI_BUS_ID_BUFFER_V2_SIZE = 16;
constexpr unsigned NVML_DEVICE_NAME_V2_BUFFER_SIZE = 96;
constexpr unsigned NVML_DEVICE_UUID_V2_BUFFER_SIZE = 96;
constexpr unsigned NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE = 80;
constexpr unsigned NVML_NVLINK_MAX_LINKS = 18;

struct nvmlPciInfo_t {
  char busIdLegacy[NVML_DEVICE_PCI_BUS_ID_BUFFER_V2_SIZE];
  unsigned int domain;
  unsigned int bus;
  unsigned int device;
  unsigned int pciDeviceId;
  unsigned int pciSubSystemId;
  char busId[NVML_DEVICE_PCI_BUS_ID_BUFFER_SIZE];
};

struct nvmlMemory_t {
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
};

using InitFn = nvmlReturn_t();
using ShutdownFn = nvmlReturn_t();
using ErrorStringFn = const char*(nvmlReturn_t);
using CountFn = nvmlReturn_t(unsigned int*);
using HandleByBusIdFn = nvmlReturn_t(const char*, nvmlDevice_t*);
using StringFn = nvmlReturn_t(nvmlDevice_t, char*, unsigned int);
using MemoryFn = nvmlReturn_t(nvmlDevice_t, nvmlMemory_t*);
using UintFn = nvmlReturn_t(nvmlDevice_t, unsigned int*);
using SystemStringFn = nvmlReturn_t(char*, unsigned int);
using CudaVersionFn = nvmlReturn_t(int*);
using MigModeFn = nvmlReturn_t(nvmlDevice_t, unsigned int*, unsigned int*);
using LinkStateFn = nvmlReturn_t(nvmlDevice_t, unsigned int, nvmlEnableState_t*);
using RemotePciFn = nvmlReturn_t(nvmlDevice_t, unsigned int, nvmlPciInfo_t*);

// NVML writes bus ids as "00000000:C4:00.0"; sysfs as "0000:c4:00.0".
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

}  // namespace

Status EnrichWithNvml(const NvmlEnricherOptions& options, std::vector<Device>& devices) {
  bool any_nvidia = false;
  for (const auto& d : devices) any_nvidia = any_nvidia || d.vendor == "NVIDIA";
  if (!any_nvidia) return Status::OK();

  BITFUSION_ASSIGN_OR_RETURN(auto lib, DynamicLibrary::Open({options.library}));
  BITFUSION_ASSIGN_OR_RETURN(auto init, lib.Function<InitFn>("nvmlInit_v2"));
  BITFUSION_ASSIGN_OR_RETURN(auto shutdown, lib.Function<ShutdownFn>("nvmlShutdown"));
  BITFUSION_ASSIGN_OR_RETURN(auto by_bus_id,
                             lib.Function<HandleByBusIdFn>("nvmlDeviceGetHandleByPciBusId_v2"));
  auto* error_string = lib.OptionalFunction<ErrorStringFn>("nvmlErrorString");
  auto why = [&](nvmlReturn_t rc) {
    return error_string ? std::string(error_string(rc)) : "NVML error " + std::to_string(rc);
  };

  const nvmlReturn_t rc = init();
  if (rc != NVML_SUCCESS) {
    return UnavailableError(options.library + " loaded but nvmlInit_v2 failed: " + why(rc) +
                            " (is the NVIDIA driver loaded?)");
  }
  // Every call below is optional: an old driver lacking one still yields the others.
  auto* count_fn = lib.OptionalFunction<CountFn>("nvmlDeviceGetCount_v2");
  auto* name_fn = lib.OptionalFunction<StringFn>("nvmlDeviceGetName");
  auto* uuid_fn = lib.OptionalFunction<StringFn>("nvmlDeviceGetUUID");
  auto* memory_fn = lib.OptionalFunction<MemoryFn>("nvmlDeviceGetMemoryInfo");
  auto* index_fn = lib.OptionalFunction<UintFn>("nvmlDeviceGetIndex");
  auto* minor_fn = lib.OptionalFunction<UintFn>("nvmlDeviceGetMinorNumber");
  auto* driver_fn = lib.OptionalFunction<SystemStringFn>("nvmlSystemGetDriverVersion");
  auto* cuda_fn = lib.OptionalFunction<CudaVersionFn>("nvmlSystemGetCudaDriverVersion_v2");
  if (cuda_fn == nullptr)
    cuda_fn = lib.OptionalFunction<CudaVersionFn>("nvmlSystemGetCudaDriverVersion");
  auto* mig_fn = lib.OptionalFunction<MigModeFn>("nvmlDeviceGetMigMode");
  auto* link_state_fn = lib.OptionalFunction<LinkStateFn>("nvmlDeviceGetNvLinkState");
  auto* remote_fn = lib.OptionalFunction<RemotePciFn>("nvmlDeviceGetNvLinkRemotePciInfo_v2");

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
  shutdown();
  return Status::OK();
}

}  // namespace bitfusion
