// Xilinx/AMD Alveo facts from XRT (libxrt_core.so.2, loaded at run time): the platform (shell)
// name, DDR size, and the driver's PCIe link as XRT sees it.
#pragma once

#include <string>
#include <vector>

#include "bitfusion/device.h"
#include "bitfusion/status.h"

namespace bitfusion {

struct XrtEnricherOptions {
  /// Sonames or paths tried in order (Debian's libxrt, then an XRT install). The shim library
  /// pulls in libxrt_coreutil.so.2, where the xrtDevice* entry points live.
  std::vector<std::string> libraries = {"libxrt_core.so.2", "/opt/xilinx/xrt/lib/libxrt_core.so.2"};
};

/// Adds what XRT reports to the Xilinx devices in `devices`, opening each by its user
/// function's BDF: model (the platform name, e.g. "xilinx_u250_gen3x16_xdma_shell_4_1"),
/// memory_bytes (DDR), property xrt_hal_version. Unavailable when the library cannot be loaded.
Status EnrichWithXrt(const XrtEnricherOptions& options, std::vector<Device>& devices);

}  // namespace bitfusion
