// Reads a Linux host's fingerprint (CPU, caches, NUMA, memory, kernel, distribution, PCI
// accelerators) from procfs, sysfs and os-release. The roots are parameters so recorded trees
// drive the tests and so other provisioners can reuse it on copied trees.
#pragma once

#include <string>

#include "bitfusion/machine.h"
#include "bitfusion/status.h"

namespace bitfusion {

struct FingerprintRoots {
  std::string proc = "/proc";  ///< cpuinfo, meminfo
  std::string sys = "/sys";    ///< devices/system/cpu, devices/system/node, bus/pci
  std::string os_release = "/etc/os-release";
  /// uname(2) fields; when empty they are read from this host.
  std::string hostname, kernel, architecture;
};

/// Fills cpu, memory_bytes, kernel, os, hostname and accelerators of a MachineInfo. Missing
/// optional files (no cpufreq, no NUMA directory, no PCI bus) leave those fields at their
/// defaults; missing /proc/cpuinfo or /proc/meminfo is NotFound naming the file.
Result<MachineInfo> ReadHostFingerprint(const FingerprintRoots& roots);

/// Accelerators on the PCI bus under `sys_root`/bus/pci/devices: functions of display class
/// (0x03) or processing-accelerator class (0x12) from 0x10de NVIDIA and 0x1002 AMD ("gpu" for
/// display, "accelerator" otherwise), 0x10ee Xilinx and 0x1172 Altera ("fpga"), and 0x8086
/// Intel of class 0x12 ("fpga", Intel FPGA PAC). Other classes (audio, bridges, management
/// functions) and other vendors (a BMC's VGA chip) are skipped.
std::vector<AcceleratorInfo> ReadPciAccelerators(const std::string& sys_root);

}  // namespace bitfusion
