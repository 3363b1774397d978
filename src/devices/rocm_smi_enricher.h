// AMD facts from ROCm SMI (librocm_smi64.so.1, loaded at run time): name, VRAM, unique id,
// driver version, rocm-smi index, xGMI peers.
#pragma once

#include <string>
#include <vector>

#include "bitfusion/device.h"
#include "bitfusion/status.h"

namespace bitfusion {

struct RocmSmiEnricherOptions {
  /// Sonames or paths tried in order (Debian's package, then a ROCm install).
  std::vector<std::string> libraries = {"librocm_smi64.so.1", "/opt/rocm/lib/librocm_smi64.so.1"};
};

/// Adds what ROCm SMI reports to the AMD devices in `devices` (matched by PCI address): model,
/// memory_bytes, index (rocm-smi's, which HIP_VISIBLE_DEVICES counts in), and properties
/// unique_id, driver_version, xgmi_peers. Unavailable when the library cannot be loaded or
/// initialised; the devices keep the sysfs facts.
Status EnrichWithRocmSmi(const RocmSmiEnricherOptions& options, std::vector<Device>& devices);

}  // namespace bitfusion
