// NVIDIA facts from NVML (libnvidia-ml.so.1, loaded at run time; no NVML header is needed):
// name, UUID, memory, index, minor number, driver and CUDA versions, MIG mode, NVLink peers.
#pragma once

#include <string>
#include <vector>

#include "bitfusion/device.h"
#include "bitfusion/status.h"

namespace bitfusion {

struct NvmlEnricherOptions {
  /// Soname or path of NVML. Tests point it at a fake built beside them.
  std::string library = "libnvidia-ml.so.1";
};

/// Adds what NVML reports to the NVIDIA devices in `devices` (matched by PCI address): model,
/// memory_bytes, index, and properties uuid, minor, driver_version, cuda_version, mig_mode,
/// nvlink_peers (PCI addresses of the GPUs or NVSwitches at the other end of active links).
/// Unavailable when the library cannot be loaded or initialised — the devices then keep the
/// sysfs facts. A device NVML does not know is left as it was, with a warning.
Status EnrichWithNvml(const NvmlEnricherOptions& options, std::vector<Device>& devices);

}  // namespace bitfusion
