// The one PCI scanner: reads /sys/bus/pci/devices of a filesystem root (the host's "/" or a
// recorded tree) and finds the accelerators on it with the device nodes each needs in a
// container, from sysfs, /dev and the NVIDIA driver's procfs files alone — no vendor library.
// The inventory (host_fingerprint) and the DeviceAllocator backends both read through here.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "bitfusion/device.h"

namespace bitfusion {

/// One PCI function as sysfs describes it. Attributes the kernel did not provide stay empty /
/// -1 / 0.
struct PciFunction {
  std::string address;  ///< "0000:17:00.0"
  std::string vendor_id;
  std::string device_id;
  std::string class_code;  ///< "0x030200"
  std::string subsystem_vendor_id;
  std::string subsystem_device_id;
  int numa_node = -1;
  std::string driver;      ///< name of the bound driver; empty = none
  int iommu_group = -1;    ///< -1 = no IOMMU group
  std::string link_speed;  ///< current_link_speed, e.g. "16.0 GT/s PCIe"
  int link_width = 0;      ///< current_link_width (lanes)
  /// Bridges between the host bridge and this function, nearest to the CPU first (from the
  /// resolved /sys/devices/pciDDDD:BB/... path). Empty for a tree without those links.
  std::vector<std::string> upstream;
  std::filesystem::path sysfs_dir;  ///< the function's directory as found
};

/// Every function under `sys_root`/bus/pci/devices, sorted by address. Entries without vendor,
/// device or class, or with a malformed class, are skipped with a warning; a missing bus
/// directory gives an empty list.
std::vector<PciFunction> ScanPciFunctions(const std::filesystem::path& sys_root);

/// What a function is, if it is an accelerator: display (0x03) or processing-accelerator (0x12)
/// class from NVIDIA 0x10de or AMD 0x1002 ("gpu" for display, "accelerator" otherwise), Xilinx
/// 0x10ee or Altera 0x1172 ("fpga"), and Intel 0x8086 of class 0x12 ("fpga": PAC, N3000,
/// D5005). Audio functions, bridges (NVSwitch is 0x0680) and other vendors' display chips (a
/// BMC's VGA) are not accelerators.
struct AcceleratorClass {
  std::string kind;
  std::string vendor;  ///< "NVIDIA", "AMD", "Xilinx", "Intel/Altera", "Intel"
};
std::optional<AcceleratorClass> ClassifyAccelerator(const PciFunction& function);

/// Leasable devices under the filesystem `root` ("/" for this host): one per GPU function and
/// one per FPGA card (an Alveo card's management and user functions become one device). Filled
/// from sysfs and the NVIDIA driver's /proc files only; vendor libraries add to it later (see
/// the *_enricher files), then ResolveDeviceNodes lists the nodes.
///
/// Properties set: class, subsystem, iommu_group, pcie_link, pcie_switch (the root port above
/// a PCIe switch, when the device sits behind one), functions, and vendor facts read without a
/// library (NVIDIA: uuid and driver_version from /proc/driver/nvidia; AMD: VRAM size, product
/// name from amdgpu's sysfs files; Xilinx: xclmgmt instance).
std::vector<Device> DiscoverDevices(const std::filesystem::path& root);

/// Fills each device's `device_nodes` with the nodes under `root`/dev that a container needs:
/// its own nodes (NVIDIA /dev/nvidiaN by the driver's minor number and MIG capability nodes;
/// AMD and Xilinx DRM render/card nodes; /dev/xclmgmtN; DFL and intel-fpga nodes) followed by
/// the vendor's shared nodes (/dev/nvidiactl, /dev/nvidia-uvm, /dev/nvidia-uvm-tools,
/// /dev/nvidia-modeset; /dev/kfd). Only nodes that exist are listed; paths are as seen from
/// inside `root` ("/dev/nvidia0"). A device whose own node is missing gets a warning.
void ResolveDeviceNodes(const std::filesystem::path& root, std::vector<Device>& devices);

/// True for nodes several devices share (/dev/nvidiactl, /dev/kfd, ...), which a lease of one
/// device passes in but which name no device.
bool IsSharedDeviceNode(const std::string& path);

}  // namespace bitfusion
