// Accelerators: what a DeviceAllocator finds, what can be asked of it, what a lease adds to a
// container.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "bitfusion/container.h"
#include "bitfusion/export.h"
#include "bitfusion/sample.h"

namespace bitfusion {

enum class DeviceKind : int { kAny = 0, kGpu, kFpga, kAccelerator };

/// One leasable device.
struct Device {
  std::string id;  ///< stable on this host: PCI address, or vendor index
  DeviceKind kind = DeviceKind::kGpu;
  std::string vendor;     ///< "NVIDIA", "AMD", "Xilinx", "Intel"
  std::string vendor_id;  ///< "0x10de"
  std::string device_id;
  std::string model;  ///< from a vendor library when loaded, else the PCI ids
  std::string pci_address;
  int numa_node = -1;
  int index = -1;  ///< vendor's own index (nvidia-smi / rocm-smi order)
  std::uint64_t memory_bytes = 0;
  std::string driver;
  std::vector<std::string> device_nodes;  ///< everything a container needs, e.g. /dev/nvidia0
  Labels properties;                      ///< uuid, driver_version, iommu_group, pcie_link, ...
};

/// What to lease.
struct DeviceRequest {
  DeviceKind kind = DeviceKind::kGpu;
  std::string vendor;  ///< empty = any
  std::string model;   ///< substring match; empty = any
  int count = 1;
  std::uint64_t min_memory_bytes = 0;
  bool same_numa_node = false;
  bool exclusive = true;  ///< false: several holders may share the devices
};

/// What a lease adds to a ContainerSpec (or a process environment).
struct BITFUSION_EXPORT ContainerEdits {
  std::vector<DeviceMapping> devices;
  std::vector<DeviceRequestEntry> device_requests;
  std::vector<std::string> cdi_devices;
  std::vector<std::string> device_cgroup_rules;
  std::vector<Mount> mounts;
  std::map<std::string, std::string> env;

  /// Merges these edits into `spec` (env entries override).
  void ApplyTo(ContainerSpec& spec) const;
};

}  // namespace bitfusion
