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

/// Accelerators on the PCI bus under `sys_root`/bus/pci/devices, one entry per PCI function,
/// as devices/pci_discovery.h scans and classifies them (ClassifyAccelerator): NVIDIA and AMD
/// display or processing functions, Xilinx and Altera FPGAs, Intel FPGA cards. Malformed
/// entries are skipped with a warning.
std::vector<AcceleratorInfo> ReadPciAccelerators(const std::string& sys_root);

}  // namespace bitfusion
