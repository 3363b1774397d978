// The part of NVML (libnvidia-ml.so.1) bitfusion calls, declared as nvml.h publishes it (NVML API
// Reference: "Initialization and Cleanup", "System Queries", "Device Queries", "NvLink Methods")
// and loaded at run time, so no NVML header or library is needed to build. Shared by the NVML
// device enricher and the "gpu" metric source. Struct layouts must match exactly: the library
// writes into them.
#pragma once

#include <string>

#include "bitfusion/status.h"
#include "devices/dynamic_library.h"

namespace bitfusion::nvml {

using nvmlReturn_t = int;
constexpr nvmlReturn_t NVML_SUCCESS = 0;
constexpr nvmlReturn_t NVML_ERROR_INVALID_ARGUMENT = 2;
constexpr nvmlReturn_t NVML_ERROR_NOT_SUPPORTED = 3;
using nvmlDevice_t = struct nvmlDevice_st*;
using nvmlEnableState_t = int;         // NVML_FEATURE_DISABLED = 0, NVML_FEATURE_ENABLED = 1
using nvmlTemperatureSensors_t = int;  // NVML_TEMPERATURE_GPU = 0
using nvmlClockType_t = int;
constexpr nvmlTemperatureSensors_t NVML_TEMPERATURE_GPU = 0;
constexpr nvmlClockType_t NVML_CLOCK_GRAPHICS = 0;
constexpr nvmlClockType_t NVML_CLOCK_SM = 1;
constexpr nvmlClockType_t NVML_CLOCK_MEM = 2;

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
  unsigned long long total;  // bytes
  unsigned long long free;
  unsigned long long used;
};

struct nvmlUtilization_t {
  unsigned int gpu;     // % of the last sample period a kernel ran
  unsigned int memory;  // % of it device memory was read or written
};

/// The NVML entry points, looked up once. init and shutdown are always there (Load fails
/// without them); every other pointer is null when the library lacks that symbol (an older
/// driver), and each caller checks the ones it needs.
struct NvmlFunctions {
  std::string library;  ///< soname or path it was loaded from

  nvmlReturn_t (*init)() = nullptr;  // nvmlInit_v2
  nvmlReturn_t (*shutdown)() = nullptr;
  const char* (*error_string)(nvmlReturn_t) = nullptr;
  nvmlReturn_t (*device_count)(unsigned int*) = nullptr;                   // nvmlDeviceGetCount_v2
  nvmlReturn_t (*handle_by_index)(unsigned int, nvmlDevice_t*) = nullptr;  // _v2
  nvmlReturn_t (*handle_by_pci_bus_id)(const char*, nvmlDevice_t*) = nullptr;  // _v2
  nvmlReturn_t (*pci_info)(nvmlDevice_t, nvmlPciInfo_t*) = nullptr;            // _v3
  nvmlReturn_t (*name)(nvmlDevice_t, char*, unsigned int) = nullptr;
  nvmlReturn_t (*uuid)(nvmlDevice_t, char*, unsigned int) = nullptr;
  nvmlReturn_t (*memory_info)(nvmlDevice_t, nvmlMemory_t*) = nullptr;
  nvmlReturn_t (*index)(nvmlDevice_t, unsigned int*) = nullptr;
  nvmlReturn_t (*minor_number)(nvmlDevice_t, unsigned int*) = nullptr;
  nvmlReturn_t (*driver_version)(char*, unsigned int) = nullptr;
  nvmlReturn_t (*cuda_driver_version)(int*) = nullptr;  // _v2, else the first one
  nvmlReturn_t (*mig_mode)(nvmlDevice_t, unsigned int*, unsigned int*) = nullptr;
  nvmlReturn_t (*nvlink_state)(nvmlDevice_t, unsigned int, nvmlEnableState_t*) = nullptr;
  nvmlReturn_t (*nvlink_remote_pci_info)(nvmlDevice_t, unsigned int,
                                         nvmlPciInfo_t*) = nullptr;  // _v2
  nvmlReturn_t (*utilization_rates)(nvmlDevice_t, nvmlUtilization_t*) = nullptr;
  nvmlReturn_t (*power_usage)(nvmlDevice_t, unsigned int*) = nullptr;  // mW
  nvmlReturn_t (*temperature)(nvmlDevice_t, nvmlTemperatureSensors_t,
                              unsigned int*) = nullptr;                                // °C
  nvmlReturn_t (*clock_info)(nvmlDevice_t, nvmlClockType_t, unsigned int*) = nullptr;  // MHz

  /// Opens `library` and looks the functions up (it does not call nvmlInit). Unavailable when
  /// the library cannot be loaded, NotFound when it lacks nvmlInit_v2 or nvmlShutdown.
  static Result<NvmlFunctions> Load(const std::string& library);

  /// "Driver Not Loaded (NVML error 9)": nvmlErrorString's words and the code.
  std::string Why(nvmlReturn_t rc) const;
};

/// NVML writes bus ids as "00000000:C4:00.0"; sysfs as "0000:c4:00.0". Empty when unparsable.
std::string NormalizeBusId(const char* bus_id);

/// The text in a fixed-size buffer the library filled, up to its first NUL.
std::string Terminated(const char* buffer, std::size_t size);

}  // namespace bitfusion::nvml
