// Accelerators: what a DeviceAllocator finds, what can be asked of it, what a lease adds to a
// container.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "bitfusion/container.h"
#include "bitfusion/export.h"
#include "bitfusion/sample.h"
#include "bitfusion/status.h"

namespace bitfusion {

enum class DeviceKind : int { kAny = 0, kGpu, kFpga, kAccelerator };

/// "any", "gpu", "fpga", "accelerator".
BITFUSION_EXPORT const char* DeviceKindName(DeviceKind kind);

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
  std::string vendor;  ///< "nvidia", "AMD", "0x10de" (case-insensitive); empty = any
  std::string model;   ///< case-insensitive substring of the model; empty = any
  int count = 1;
  std::uint64_t min_memory_bytes = 0;  ///< devices whose memory is unknown do not match
  bool same_numa_node = false;         ///< all on one NUMA node
  bool same_pcie_switch = false;       ///< all behind one PCIe switch
  bool nvlink_connected = false;  ///< every pair linked (NVLink, directly or via an NVSwitch; xGMI)
  bool exclusive = true;          ///< false: several holders may share the devices
};

/// "2 NVIDIA gpu(s) matching \"A100\" with >= 40 GiB, on one NUMA node, exclusive": for
/// messages and logs.
BITFUSION_EXPORT std::string DescribeDeviceRequest(const DeviceRequest& request);

/// Device requests from JSON, as a plan's "devices" field holds them: one object or an array
/// of them, each {"kind": "gpu"|"fpga"|"accelerator"|"any", "vendor": "nvidia", "model":
/// "A100", "count": 2, "min_memory": "40GiB" (or bytes), "topology": "same_numa_node" |
/// "same_pcie_switch" | "nvlink" (or an array of those), "exclusive": true}; every field is
/// optional (defaults as in DeviceRequest). Errors are InvalidArgument naming the field's
/// path ("[1].count: expected an integer >= 0").
BITFUSION_EXPORT Result<std::vector<DeviceRequest>> ParseDeviceRequests(std::string_view json);

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
