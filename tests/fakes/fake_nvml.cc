// A fake libnvidia-ml.so.1 with the entry points bitfusion's NVML enricher calls, written from
// the NVML API Reference (docs.nvidia.com/deploy/nvml-api: "Initialization and Cleanup",
// "System Queries", "Device Queries", "NvLink Methods", "Multi Instance GPU Management") and
// nvml.h's published types. It is strict where NVML is: calls before nvmlInit are
// NVML_ERROR_UNINITIALIZED, null out-pointers NVML_ERROR_INVALID_ARGUMENT, short buffers
// NVML_ERROR_INSUFFICIENT_SIZE, unknown bus ids NVML_ERROR_NOT_FOUND, links past the device's
// last NVML_ERROR_INVALID_ARGUMENT.
//
// What it reports comes from the JSON file named by BITFUSION_FAKE_NVML_CONFIG, read at the
// first nvmlInit_v2 after a full shutdown:
//   {"init": "ok" | "driver_not_loaded", "driver_version": "535.104.05", "cuda_version": 12020,
//    "devices": [{"bus_id": "00000000:07:00.0", "name": "...", "uuid": "GPU-...",
//                 "memory_total": 42949672960, "memory_used": 0, "minor": 0,
//                 "mig_mode": 0 | 1 | null (not supported),
//                 "nvlinks": ["00000000:C4:00.0", ...] (absent = no NVLink),
//                 "telemetry": {"utilization_gpu": [..], "utilization_memory": [..],
//                               "memory_used": [..], "power_mw": [..], "temperature_c": [..],
//                               "clock_graphics_mhz": [..], "clock_sm_mhz": [..],
//                               "clock_mem_mhz": [..]}}]}
// Each telemetry query answers the next value of its list on every call (wrapping), so
// successive samples differ; a query whose list is absent answers NVML_ERROR_NOT_SUPPORTED, as
// for a device without that sensor (nvmlDeviceGetMemoryInfo then reports "memory_used"), and a
// null entry answers NVML_ERROR_NOT_SUPPORTED for that call only.
// Device indices are positions in "devices". No config file behaves like a host without the
// driver: nvmlInit_v2 returns NVML_ERROR_DRIVER_NOT_LOADED.
#include <boost/json.hpp>

#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "fakes/fake_vendor_config.h"

namespace {

// nvml.h
typedef enum nvmlReturn_enum {
  NVML_SUCCESS = 0,
  NVML_ERROR_UNINITIALIZED = 1,
  NVML_ERROR_INVALID_ARGUMENT = 2,
  NVML_ERROR_NOT_SUPPORTED = 3,
  NVML_ERROR_NOT_FOUND = 6,
  NVML_ERROR_INSUFFICIENT_SIZE = 7,
  NVML_ERROR_DRIVER_NOT_LOADED = 9,
  NVML_ERROR_UNKNOWN = 999,
} nvmlReturn_t;

typedef enum nvmlEnableState_enum {
  NVML_FEATURE_DISABLED = 0,
  NVML_FEATURE_ENABLED = 1
} nvmlEnableState_t;

struct nvmlPciInfo_t {
  char busIdLegacy[16];
  unsigned int domain;
  unsigned int bus;
  unsigned int device;
  unsigned int pciDeviceId;
  unsigned int pciSubSystemId;
  char busId[32];
};

struct nvmlMemory_t {
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
};

struct nvmlUtilization_t {
  unsigned int gpu;
  unsigned int memory;
};

typedef enum nvmlTemperatureSensors_enum { NVML_TEMPERATURE_GPU = 0 } nvmlTemperatureSensors_t;
typedef enum nvmlClockType_enum {
  NVML_CLOCK_GRAPHICS = 0,
  NVML_CLOCK_SM = 1,
  NVML_CLOCK_MEM = 2,
  NVML_CLOCK_VIDEO = 3,
} nvmlClockType_t;

// Lists of values by query name, each read in turn.
struct Telemetry {
  std::map<std::string, std::vector<unsigned long long>> values;
  std::map<std::string, std::size_t> calls;
  static constexpr unsigned long long kNotSupported = ~0ull;  // a null in the list
  bool Next(const std::string& key, unsigned long long& out) {
    auto it = values.find(key);
    if (it == values.end() || it->second.empty()) return false;
    out = it->second[calls[key]++ % it->second.size()];
    return out != kNotSupported;
  }
};

struct FakeDevice {
  unsigned domain = 0, bus = 0, dev = 0, function = 0;
  std::string name, uuid;
  unsigned long long memory_total = 0, memory_used = 0;
  unsigned minor = 0, index = 0;
  int mig_mode = -1;  // -1: not supported
  bool has_nvlink = false;
  std::vector<std::string> nvlinks;
  Telemetry telemetry;
};
}  // namespace

struct nvmlDevice_st {
  FakeDevice d;
};
typedef nvmlDevice_st* nvmlDevice_t;

namespace {

std::mutex mu;
int refcount = 0;
std::string driver_version;
int cuda_version = 0;
std::vector<nvmlDevice_st> devices;

bool ParseBusId(const char* text, unsigned& domain, unsigned& bus, unsigned& dev, unsigned& fn) {
  if (std::sscanf(text, "%x:%x:%x.%x", &domain, &bus, &dev, &fn) == 4) return true;
  domain = 0;  // NVML also accepts "bus:device.function"
  return std::sscanf(text, "%x:%x.%x", &bus, &dev, &fn) == 3;
}

nvmlReturn_t CopyString(const std::string& value, char* out, unsigned int length) {
  if (out == nullptr) return NVML_ERROR_INVALID_ARGUMENT;
  if (length < value.size() + 1) return NVML_ERROR_INSUFFICIENT_SIZE;
  std::memcpy(out, value.c_str(), value.size() + 1);
  return NVML_SUCCESS;
}

nvmlReturn_t Load() {
  auto config = bitfusion::fakes::LoadFakeConfig("BITFUSION_FAKE_NVML_CONFIG");
  if (!config || !config->is_object()) return NVML_ERROR_DRIVER_NOT_LOADED;
  const auto& root = config->get_object();
  if (const auto* init = root.if_contains("init");
      init && init->is_string() && init->get_string() == "driver_not_loaded") {
    return NVML_ERROR_DRIVER_NOT_LOADED;
  }
  devices.clear();
  driver_version = root.contains("driver_version")
                       ? std::string(root.at("driver_version").as_string())
                       : std::string("535.104.05");
  cuda_version = root.contains("cuda_version")
                     ? static_cast<int>(root.at("cuda_version").to_number<int>())
                     : 12020;
  if (const auto* list = root.if_contains("devices")) {
    unsigned index = 0;
    for (const auto& v : list->as_array()) {
      const auto& o = v.as_object();
      nvmlDevice_st entry;
      FakeDevice& d = entry.d;
      if (!ParseBusId(std::string(o.at("bus_id").as_string()).c_str(), d.domain, d.bus, d.dev,
                      d.function)) {
        return NVML_ERROR_UNKNOWN;
      }
      d.name = std::string(o.at("name").as_string());
      d.uuid = std::string(o.at("uuid").as_string());
      d.memory_total = o.at("memory_total").to_number<unsigned long long>();
      if (o.contains("memory_used"))
        d.memory_used = o.at("memory_used").to_number<unsigned long long>();
      d.minor = o.contains("minor") ? o.at("minor").to_number<unsigned>() : index;
      d.index = index++;
      if (const auto* mig = o.if_contains("mig_mode"); mig && !mig->is_null()) {
        d.mig_mode = mig->to_number<int>();
      }
      if (const auto* links = o.if_contains("nvlinks")) {
        d.has_nvlink = true;
        for (const auto& l : links->as_array()) d.nvlinks.emplace_back(l.as_string());
      }
      if (const auto* t = o.if_contains("telemetry")) {
        for (const auto& kv : t->as_object()) {
          auto& list = d.telemetry.values[std::string(kv.key())];
          for (const auto& x : kv.value().as_array()) {
            list.push_back(x.is_null() ? Telemetry::kNotSupported
                                       : x.to_number<unsigned long long>());
          }
        }
      }
      devices.push_back(std::move(entry));
    }
  }
  return NVML_SUCCESS;
}

bool Valid(nvmlDevice_t device) {
  for (auto& d : devices) {
    if (&d == device) return true;
  }
  return false;
}

}  // namespace

BITFUSION_FAKE_API nvmlReturn_t nvmlInit_v2() {
  std::lock_guard<std::mutex> lock(mu);
  if (refcount == 0) {
    const nvmlReturn_t rc = Load();
    if (rc != NVML_SUCCESS) return rc;
  }
  ++refcount;
  return NVML_SUCCESS;
}

BITFUSION_FAKE_API nvmlReturn_t nvmlShutdown() {
  std::lock_guard<std::mutex> lock(mu);
  if (refcount == 0) return NVML_ERROR_UNINITIALIZED;
  --refcount;
  return NVML_SUCCESS;
}

BITFUSION_FAKE_API const char* nvmlErrorString(nvmlReturn_t result) {
  switch (result) {
    case NVML_SUCCESS: return "Success";
    case NVML_ERROR_UNINITIALIZED: return "Uninitialized";
    case NVML_ERROR_INVALID_ARGUMENT: return "Invalid Argument";
    case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
    case NVML_ERROR_NOT_FOUND: return "Not Found";
    case NVML_ERROR_INSUFFICIENT_SIZE: return "Insufficient Size";
    case NVML_ERROR_DRIVER_NOT_LOADED: return "Driver Not Loaded";
    default: return "Unknown Error";
  }
}

BITFUSION_FAKE_API nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int* count) {
  std::lock_guard<std::mutex> lock(mu);
  if (refcount == 0) return NVML_ERROR_UNINITIALIZED;
  if (count == nullptr) return NVML_ERROR_INVALID_ARGUMENT;
  *count = static_cast<unsigned>(devices.size());
  return NVML_SUCCESS;
}

BITFUSION_FAKE_API nvmlReturn_t nvmlDeviceGetHandleByPciBusId_v2(const char* bus_id,
                                                                 nvmlDevice_t* device) {
  std::lock_guard<std::mutex> lock(mu);
  if (refcount == 0) return NVML_ERROR_UNINITIALIZED;
  if (bus_id == nullptr || device == nullptr) return NVML_ERROR_INVALID_ARGUMENT;
  unsigned domain, bus, dev, fn;
  if (!ParseBusId(bus_id, domain, bus, dev, fn)) return NVML_ERROR_INVALID_ARGUMENT;
  for (auto& d : devices) {
    if (d.d.domain == domain && d.d.bus == bus && d.d.dev == dev && d.d.function == fn) {
      *device = &d;
      return NVML_SUCCESS;
    }
  }
  return NVML_ERROR_NOT_FOUND;
}

#define FAKE_DEVICE_CHECK(device, out)                \
  std::lock_guard<std::mutex> lock(mu);               \
  if (refcount == 0) return NVML_ERROR_UNINITIALIZED; \
  if (!Valid(device) || (out) == nullptr) return NVML_ERROR_INVALID_ARGUMENT

BITFUSION_FAKE_API nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char* name,
                                                  unsigned int length) {
  FAKE_DEVICE_CHECK(device, name);
  return CopyString(device->d.name, name, length);
}

BITFUSION_FAKE_API nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char* uuid,
                                                  unsigned int length) {
  FAKE_DEVICE_CHECK(device, uuid);
  return CopyString(device->d.uuid, uuid, length);
}

BITFUSION_FAKE_API nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t* memory) {
  FAKE_DEVICE_CHECK(device, memory);
  unsigned long long used = device->d.memory_used;
  device->d.telemetry.Next("memory_used", used);
  memory->total = device->d.memory_total;
  memory->used = used;
  memory->free = device->d.memory_total - used;
  return NVML_SUCCESS;
}

BITFUSION_FAKE_API nvmlReturn_t nvmlDeviceGetIndex(nvmlDevice_t device, unsigned int* index) {
  FAKE_DEVICE_CHECK(device, index);
  *index = device->d.index;
  return NVML_SUCCESS;
}

BITFUSION_FAKE_API nvmlReturn_t nvmlDeviceGetMinorNumber(nvmlDevice_t device, unsigned int* minor) {
  FAKE_DEVICE_CHECK(device, minor);
  *minor = device->d.minor;
  return NVML_SUCCESS;
}

BITFUSION_FAKE_API nvmlReturn_t nvmlDeviceGetMigMode(nvmlDevice_t device,
                                                     unsigned int* current_mode,
                                                     unsigned int* pending_mode) {
  FAKE_DEVICE_CHECK(device, current_mode);
  if (pending_mode == nullptr) return NVML_ERROR_INVALID_ARGUMENT;
  if (device->d.mig_mode < 0) return NVML_ERROR_NOT_SUPPORTED;
  *current_mode = *pending_mode = static_cast<unsigned>(device->d.mig_mode);
  return NVML_SUCCESS;
}

BITFUSION_FAKE_API nvmlReturn_t nvmlDeviceGetNvLinkState(nvmlDevice_t device, unsigned int link,
                                                         nvmlEnableState_t* is_active) {
  FAKE_DEVICE_CHECK(device, is_active);
  if (!device->d.has_nvlink) return NVML_ERROR_NOT_SUPPORTED;
  if (link >= device->d.nvlinks.size()) return NVML_ERROR_INVALID_ARGUMENT;
  *is_active = device->d.nvlinks[link].empty() ? NVML_FEATURE_DISABLED : NVML_FEATURE_ENABLED;
  return NVML_SUCCESS;
}

BITFUSION_FAKE_API nvmlReturn_t nvmlDeviceGetNvLinkRemotePciInfo_v2(nvmlDevice_t device,
                                                                    unsigned int link,
                                                                    nvmlPciInfo_t* pci) {
  FAKE_DEVICE_CHECK(device, pci);
  if (!device->d.has_nvlink) return NVML_ERROR_NOT_SUPPORTED;
  if (link >= device->d.nvlinks.size() || device->d.nvlinks[link].empty()) {
    return NVML_ERROR_INVALID_ARGUMENT;
  }
  unsigned domain, bus, dev, fn;
  if (!ParseBusId(device->d.nvlinks[link].c_str(), domain, bus, dev, fn)) {
    return NVML_ERROR_UNKNOWN;
  }
  std::memset(pci, 0, sizeof *pci);
  pci->domain = domain;
  pci->bus = bus;
  pci->device = dev;
  std::snprintf(pci->busId, sizeof pci->busId, "%08X:%02X:%02X.%X", domain, bus, dev, fn);
  std::snprintf(pci->busIdLegacy, sizeof pci->busIdLegacy, "%04X:%02X:%02X.%X", domain, bus, dev,
                fn);
  return NVML_SUCCESS;
}

BITFUSION_FAKE_API nvmlReturn_t nvmlSystemGetDriverVersion(char* version, unsigned int length) {
  std::lock_guard<std::mutex> lock(mu);
  if (refcount == 0) return NVML_ERROR_UNINITIALIZED;
  return CopyString(driver_version, version, length);
}

BITFUSION_FAKE_API nvmlReturn_t nvmlSystemGetCudaDriverVersion(int* version) {
  std::lock_guard<std::mutex> lock(mu);
  if (version == nullptr) return NVML_ERROR_INVALID_ARGUMENT;
  *version = cuda_version;
  return NVML_SUCCESS;
}

BITFUSION_FAKE_API nvmlReturn_t nvmlSystemGetCudaDriverVersion_v2(int* version) {
  return nvmlSystemGetCudaDriverVersion(version);
}

BITFUSION_FAKE_API nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index,
                                                              nvmlDevice_t* device) {
  std::lock_guard<std::mutex> lock(mu);
  if (refcount == 0) return NVML_ERROR_UNINITIALIZED;
  if (device == nullptr || index >= devices.size()) return NVML_ERROR_INVALID_ARGUMENT;
  *device = &devices[index];
  return NVML_SUCCESS;
}

BITFUSION_FAKE_API nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t device, nvmlPciInfo_t* pci) {
  FAKE_DEVICE_CHECK(device, pci);
  const FakeDevice& d = device->d;
  std::memset(pci, 0, sizeof *pci);
  pci->domain = d.domain;
  pci->bus = d.bus;
  pci->device = d.dev;
  std::snprintf(pci->busId, sizeof pci->busId, "%08X:%02X:%02X.%X", d.domain, d.bus, d.dev,
                d.function);
  std::snprintf(pci->busIdLegacy, sizeof pci->busIdLegacy, "%04X:%02X:%02X.%X", d.domain, d.bus,
                d.dev, d.function);
  return NVML_SUCCESS;
}

BITFUSION_FAKE_API nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device,
                                                              nvmlUtilization_t* utilization) {
  FAKE_DEVICE_CHECK(device, utilization);
  unsigned long long gpu = 0, memory = 0;
  if (!device->d.telemetry.Next("utilization_gpu", gpu) ||
      !device->d.telemetry.Next("utilization_memory", memory)) {
    return NVML_ERROR_NOT_SUPPORTED;
  }
  utilization->gpu = static_cast<unsigned>(gpu);
  utilization->memory = static_cast<unsigned>(memory);
  return NVML_SUCCESS;
}

BITFUSION_FAKE_API nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t device, unsigned int* power) {
  FAKE_DEVICE_CHECK(device, power);
  unsigned long long mw = 0;
  if (!device->d.telemetry.Next("power_mw", mw)) return NVML_ERROR_NOT_SUPPORTED;
  *power = static_cast<unsigned>(mw);
  return NVML_SUCCESS;
}

BITFUSION_FAKE_API nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t device,
                                                         nvmlTemperatureSensors_t sensor,
                                                         unsigned int* temp) {
  FAKE_DEVICE_CHECK(device, temp);
  if (sensor != NVML_TEMPERATURE_GPU) return NVML_ERROR_INVALID_ARGUMENT;
  unsigned long long c = 0;
  if (!device->d.telemetry.Next("temperature_c", c)) return NVML_ERROR_NOT_SUPPORTED;
  *temp = static_cast<unsigned>(c);
  return NVML_SUCCESS;
}

BITFUSION_FAKE_API nvmlReturn_t nvmlDeviceGetClockInfo(nvmlDevice_t device, nvmlClockType_t type,
                                                       unsigned int* clock) {
  FAKE_DEVICE_CHECK(device, clock);
  const char* key = nullptr;
  switch (type) {
    case NVML_CLOCK_GRAPHICS: key = "clock_graphics_mhz"; break;
    case NVML_CLOCK_SM: key = "clock_sm_mhz"; break;
    case NVML_CLOCK_MEM: key = "clock_mem_mhz"; break;
    case NVML_CLOCK_VIDEO: return NVML_ERROR_NOT_SUPPORTED;
    default: return NVML_ERROR_INVALID_ARGUMENT;
  }
  unsigned long long mhz = 0;
  if (!device->d.telemetry.Next(key, mhz)) return NVML_ERROR_NOT_SUPPORTED;
  *clock = static_cast<unsigned>(mhz);
  return NVML_SUCCESS;
}
