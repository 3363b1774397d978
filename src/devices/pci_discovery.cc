#include "devices/pci_discovery.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "bitfusion/log.h"
#include "core/text_file.h"

namespace bitfusion {
namespace {

namespace fs = std::filesystem;
using internal::ParseColonLines;
using internal::ParseNumber;
using internal::ReadInt;
using internal::ReadTextFile;
using internal::ReadTrimmed;
using internal::Trim;

// "0x10de" -> "10de", for the lspci-style "10de:20b0" model fallback.
std::string HexDigits(const std::string& id) { return id.rfind("0x", 0) == 0 ? id.substr(2) : id; }

bool LooksLikePciAddress(const std::string& name) {
  // dddd:bb:dd.f
  if (name.size() != 12) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    if (i == 4 || i == 7) {
      if (c != ':') return false;
    } else if (i == 10) {
      if (c != '.') return false;
    } else if (!std::isxdigit(static_cast<unsigned char>(c))) {
      return false;
    }
  }
  return true;
}

// /sys/bus/pci/devices/X is a link into /sys/devices/pciDDDD:BB/<root port>/.../X; the PCI
// addresses between the host bridge and X are its upstream bridges.
std::vector<std::string> UpstreamBridges(const fs::path& entry, const std::string& address) {
  std::error_code ec;
  if (!fs::is_symlink(entry, ec)) return {};
  const fs::path resolved = fs::canonical(entry, ec);
  if (ec) return {};
  std::vector<std::string> chain;
  bool below_host_bridge = false;
  for (const auto& part : resolved) {
    const std::string name = part.string();
    if (name.rfind("pci", 0) == 0 && name.size() > 3 && name.find(':') != std::string::npos) {
      below_host_bridge = true;
      chain.clear();
      continue;
    }
    if (below_host_bridge && LooksLikePciAddress(name)) chain.push_back(name);
  }
  if (!chain.empty() && chain.back() == address) chain.pop_back();
  return chain;
}

std::string LinkName(const fs::path& link) {
  std::error_code ec;
  if (!fs::is_symlink(link, ec)) return {};
  return fs::read_symlink(link, ec).filename().string();
}

DeviceKind KindOf(const std::string& kind) {
  if (kind == "gpu") return DeviceKind::kGpu;
  if (kind == "fpga") return DeviceKind::kFpga;
  return DeviceKind::kAccelerator;
}

// "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug 19 ..." -> "535.104.05"
std::string NvidiaDriverVersion(const fs::path& root) {
  auto text = ReadTextFile(root / "proc/driver/nvidia/version");
  if (!text) return {};
  std::istringstream words(text->substr(0, text->find('\n')));
  for (std::string w; words >> w;) {
    const bool numeric_dotted =
        w.find('.') != std::string::npos && std::isdigit(static_cast<unsigned char>(w[0])) &&
        std::all_of(w.begin(), w.end(), [](char c) { return std::isdigit(c) || c == '.'; });
    if (numeric_dotted) return w;
  }
  return {};
}

std::string DomainBusDevice(const std::string& address) {
  const auto dot = address.rfind('.');
  return dot == std::string::npos ? address : address.substr(0, dot);
}

void AddPciProperties(const PciFunction& fn, Device& d) {
  d.properties["class"] = fn.class_code;
  if (!fn.subsystem_vendor_id.empty()) {
    d.properties["subsystem"] =
        HexDigits(fn.subsystem_vendor_id) + ":" + HexDigits(fn.subsystem_device_id);
  }
  if (fn.iommu_group >= 0) d.properties["iommu_group"] = std::to_string(fn.iommu_group);
  if (!fn.link_speed.empty()) {
    d.properties["pcie_link"] =
        fn.link_speed + (fn.link_width > 0 ? " x" + std::to_string(fn.link_width) : "");
  }
  // A root port has one link, so devices that share one reach it through a PCIe switch.
  if (fn.upstream.size() >= 2) d.properties["pcie_switch"] = fn.upstream.front();
}

// Class devices an accelerator's user needs: DRM card/render minors (amdgpu, xocl), DFL FME and
// port devices (drivers/fpga/dfl.c), the older intel-fpga ones and XRT's management device.
// Other class devices under a GPU (i2c-N, drm_dp_auxN, hwmon) are deliberately left out.
bool IsAcceleratorNodeName(const std::string& name) {
  auto digits_after = [&](std::string_view prefix) {
    return name.size() > prefix.size() && name.compare(0, prefix.size(), prefix) == 0 &&
           std::all_of(name.begin() + static_cast<long>(prefix.size()), name.end(),
                       [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
  };
  return digits_after("card") || digits_after("renderD") || digits_after("dfl-fme.") ||
         digits_after("dfl-port.") || digits_after("intel-fpga-fme.") ||
         digits_after("intel-fpga-port.") || digits_after("xclmgmt");
}

// Device nodes below a function's sysfs directory: class devices carry "dev" (major:minor) and
// a uevent whose DEVNAME is the node's path under /dev.
std::vector<std::string> ClassDeviceNodes(const fs::path& function_dir) {
  std::vector<std::string> nodes;
  std::error_code ec;
  // Without follow_directory_symlink the walk stays inside the device: driver, subsystem,
  // iommu_group and firmware_node are links.
  fs::recursive_directory_iterator it(function_dir, fs::directory_options::skip_permission_denied,
                                      ec);
  for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it.depth() >= 3) it.disable_recursion_pending();
    const fs::path& p = it->path();
    std::error_code sec;
    if (it->is_symlink(sec) || !it->is_directory(sec)) continue;
    const std::string name = p.filename().string();
    if (!IsAcceleratorNodeName(name) || !fs::exists(p / "dev", sec)) continue;
    std::string devname;
    if (auto uevent = ReadTextFile(p / "uevent")) {
      std::istringstream lines(*uevent);
      for (std::string line; std::getline(lines, line);) {
        if (line.rfind("DEVNAME=", 0) == 0) devname = Trim(line.substr(8));
      }
    }
    if (devname.empty()) devname = p.parent_path().filename() == "drm" ? "dri/" + name : name;
    nodes.push_back("/dev/" + devname);
  }
  std::sort(nodes.begin(), nodes.end());
  nodes.erase(std::unique(nodes.begin(), nodes.end()), nodes.end());
  return nodes;
}

const std::vector<std::string>& NvidiaSharedNodes() {
  static const std::vector<std::string> nodes = {"/dev/nvidiactl", "/dev/nvidia-uvm",
                                                 "/dev/nvidia-uvm-tools", "/dev/nvidia-modeset"};
  return nodes;
}

// MIG instances are reached through capability nodes (NVIDIA MIG user guide, "Device Nodes
// and Capabilities"): /proc/driver/nvidia/capabilities/gpu<minor>/mig/gi<g>[/ci<c>]/access
// holds "DeviceFileMinor: N" for /dev/nvidia-caps/nvidia-capN.
std::vector<std::string> NvidiaMigCapabilityNodes(const fs::path& root, const std::string& minor) {
  std::vector<std::string> nodes;
  const fs::path mig = root / "proc/driver/nvidia/capabilities" / ("gpu" + minor) / "mig";
  std::error_code ec;
  for (fs::recursive_directory_iterator it(mig, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->path().filename() != "access") continue;
    auto text = ReadTextFile(it->path());
    if (!text) continue;
    const auto fields = ParseColonLines(*text);
    auto m = fields.find("DeviceFileMinor");
    if (m == fields.end() || !ParseNumber<int>(m->second)) {
      LogAt(LogLevel::kWarning, "skipping MIG capability ", it->path().string(),
            ": no DeviceFileMinor line");
      continue;
    }
    nodes.push_back("/dev/nvidia-caps/nvidia-cap" + m->second);
  }
  std::sort(nodes.begin(), nodes.end());
  return nodes;
}

bool NodeExists(const fs::path& root, const std::string& node) {
  std::error_code ec;
  return fs::exists(root / fs::path(node).relative_path(), ec);
}

}  // namespace

std::vector<PciFunction> ScanPciFunctions(const fs::path& sys_root) {
  std::vector<PciFunction> out;
  std::error_code ec;
  const fs::path bus = sys_root / "bus/pci/devices";
  std::vector<fs::path> entries;
  for (const auto& entry : fs::directory_iterator(bus, ec)) entries.push_back(entry.path());
  std::sort(entries.begin(), entries.end());
  for (const auto& dev : entries) {
    const auto vendor = ReadTrimmed(dev / "vendor");
    const auto device = ReadTrimmed(dev / "device");
    const auto klass = ReadTrimmed(dev / "class");
    if (!vendor || !device || !klass) {
      LogAt(LogLevel::kWarning, "skipping PCI device ", dev.string(),
            ": vendor, device or class file missing");
      continue;
    }
    if (!ParseNumber<unsigned>(*klass, 16) || !ParseNumber<unsigned>(*vendor, 16) ||
        !ParseNumber<unsigned>(*device, 16)) {
      LogAt(LogLevel::kWarning, "skipping PCI device ", dev.string(),
            ": malformed vendor, device or class (\"", *vendor, "\", \"", *device, "\", \"", *klass,
            "\")");
      continue;
    }
    PciFunction fn;
    fn.address = dev.filename().string();
    fn.vendor_id = *vendor;
    fn.device_id = *device;
    fn.class_code = *klass;
    fn.subsystem_vendor_id = ReadTrimmed(dev / "subsystem_vendor").value_or("");
    fn.subsystem_device_id = ReadTrimmed(dev / "subsystem_device").value_or("");
    fn.numa_node = ReadInt(dev / "numa_node").value_or(-1);
    fn.driver = LinkName(dev / "driver");
    if (auto group = ParseNumber<int>(LinkName(dev / "iommu_group"))) fn.iommu_group = *group;
    fn.link_speed = ReadTrimmed(dev / "current_link_speed").value_or("");
    fn.link_width = ReadInt(dev / "current_link_width").value_or(0);
    fn.upstream = UpstreamBridges(dev, fn.address);
    fn.sysfs_dir = dev;
    out.push_back(std::move(fn));
  }
  return out;
}

std::optional<AcceleratorClass> ClassifyAccelerator(const PciFunction& fn) {
  const unsigned base_class = ParseNumber<unsigned>(fn.class_code, 16).value_or(0) >> 16;
  const bool display = base_class == 0x03;
  const bool processing = base_class == 0x12;
  // Audio functions, bridges (an NVSwitch is class 0x0680), network and storage are not leased.
  if (!display && !processing) return std::nullopt;
  if (fn.vendor_id == "0x10de") return AcceleratorClass{display ? "gpu" : "accelerator", "NVIDIA"};
  if (fn.vendor_id == "0x1002") return AcceleratorClass{display ? "gpu" : "accelerator", "AMD"};
  if (fn.vendor_id == "0x10ee") return AcceleratorClass{"fpga", "Xilinx"};
  if (fn.vendor_id == "0x1172") return AcceleratorClass{"fpga", "Intel/Altera"};
  // Intel's processing accelerators on PCI are its FPGA cards (PAC, N3000, D5005).
  if (fn.vendor_id == "0x8086" && processing) return AcceleratorClass{"fpga", "Intel"};
  return std::nullopt;  // e.g. a BMC's VGA chip: display class, but not an accelerator
}

std::vector<Device> DiscoverDevices(const fs::path& root) {
  const auto functions = ScanPciFunctions(root / "sys");
  std::vector<Device> devices;
  // FPGA cards expose several functions (Alveo: management PF .0 and user PF .1) that are
  // leased together: collect them by domain:bus:device first.
  std::map<std::string, std::vector<const PciFunction*>> fpga_cards;
  std::vector<std::pair<const PciFunction*, AcceleratorClass>> gpus;
  for (const auto& fn : functions) {
    auto cls = ClassifyAccelerator(fn);
    if (!cls) continue;
    if (cls->kind == "fpga") {
      fpga_cards[cls->vendor + "|" + DomainBusDevice(fn.address)].push_back(&fn);
    } else {
      gpus.emplace_back(&fn, *cls);
    }
  }

  const std::string nvidia_driver_version = NvidiaDriverVersion(root);
  std::map<std::string, int> per_vendor_index;
  for (const auto& [fn, cls] : gpus) {  // already in PCI address order
    Device d;
    d.id = fn->address;
    d.kind = KindOf(cls.kind);
    d.vendor = cls.vendor;
    d.vendor_id = fn->vendor_id;
    d.device_id = fn->device_id;
    d.model = HexDigits(fn->vendor_id) + ":" + HexDigits(fn->device_id);
    d.pci_address = fn->address;
    d.numa_node = fn->numa_node;
    d.driver = fn->driver;
    // nvidia-smi / NVML and rocm-smi number devices in PCI bus order; the vendor libraries
    // replace this when they are present.
    d.index = per_vendor_index[cls.vendor]++;
    d.properties["functions"] = fn->address;
    AddPciProperties(*fn, d);
    if (cls.vendor == "NVIDIA") {
      const fs::path info = root / "proc/driver/nvidia/gpus" / fn->address / "information";
      if (auto text = ReadTextFile(info)) {
        const auto fields = ParseColonLines(*text);
        auto get = [&](const char* key) {
          auto it = fields.find(key);
          return it == fields.end() ? std::string() : it->second;
        };
        if (!get("Model").empty()) d.model = get("Model");
        const std::string uuid = get("GPU UUID");
        if (uuid.rfind("GPU-", 0) == 0 && uuid.find('?') == std::string::npos) {
          d.properties["uuid"] = uuid;
        }
        if (ParseNumber<int>(get("Device Minor"))) d.properties["minor"] = get("Device Minor");
      }
      if (!nvidia_driver_version.empty()) d.properties["driver_version"] = nvidia_driver_version;
    } else if (cls.vendor == "AMD") {
      if (auto vram = ReadTrimmed(fn->sysfs_dir / "mem_info_vram_total")) {
        if (auto bytes = ParseNumber<std::uint64_t>(*vram)) d.memory_bytes = *bytes;
      }
      if (auto name = ReadTrimmed(fn->sysfs_dir / "product_name"); name && !name->empty()) {
        d.model = *name;
      }
      if (auto uid = ReadTrimmed(fn->sysfs_dir / "unique_id"); uid && !uid->empty()) {
        d.properties["unique_id"] = *uid;
      }
    }
    devices.push_back(std::move(d));
  }

  for (const auto& [key, fns] : fpga_cards) {
    // The user function (xocl, with a DRM render node) is the one applications open; the
    // management function (xclmgmt) is passed along with it.
    const PciFunction* primary = fns.front();
    const PciFunction* mgmt = nullptr;
    for (const auto* fn : fns) {
      if (fn->driver == "xocl" || fs::exists(fn->sysfs_dir / "drm")) primary = fn;
      if (fn->driver == "xclmgmt") mgmt = fn;
    }
    AcceleratorClass cls = *ClassifyAccelerator(*primary);
    Device d;
    d.id = primary->address;
    d.kind = DeviceKind::kFpga;
    d.vendor = cls.vendor;
    d.vendor_id = primary->vendor_id;
    d.device_id = primary->device_id;
    d.model = HexDigits(primary->vendor_id) + ":" + HexDigits(primary->device_id);
    d.pci_address = primary->address;
    d.numa_node = primary->numa_node;
    d.driver = primary->driver;
    d.index = per_vendor_index[cls.vendor]++;
    std::string list;
    for (const auto* fn : fns) list += (list.empty() ? "" : ",") + fn->address;
    d.properties["functions"] = list;
    AddPciProperties(*primary, d);
    if (mgmt) {
      d.properties["mgmt_pci_address"] = mgmt->address;
      // XRT opens /dev/xclmgmt<instance>, the instance read from this attribute (XRT
      // core/pcie/linux/pcidev.cpp).
      if (auto instance = ReadTrimmed(mgmt->sysfs_dir / "instance")) {
        if (ParseNumber<unsigned>(*instance)) d.properties["xclmgmt_instance"] = *instance;
      }
    }
    devices.push_back(std::move(d));
  }
  // Order by address so every listing and allocation is deterministic.
  std::sort(devices.begin(), devices.end(),
            [](const Device& a, const Device& b) { return a.pci_address < b.pci_address; });
  return devices;
}

bool IsSharedDeviceNode(const std::string& path) {
  if (path == "/dev/kfd") return true;
  const auto& shared = NvidiaSharedNodes();
  return std::find(shared.begin(), shared.end(), path) != shared.end();
}

void ResolveDeviceNodes(const fs::path& root, std::vector<Device>& devices) {
  const fs::path sys = root / "sys/bus/pci/devices";
  for (auto& d : devices) {
    std::vector<std::string> own;
    std::vector<std::string> shared;
    if (d.vendor == "NVIDIA") {
      // The driver names the node by its minor number, which is not the NVML index when GPUs
      // were probed out of bus order; the PCI-order index is the last resort.
      std::string minor = d.properties.count("minor") ? d.properties.at("minor") : "";
      if (minor.empty()) {
        minor = std::to_string(d.index);
        d.properties["minor"] = minor;
        d.properties["minor_source"] = "pci-order";
      }
      own.push_back("/dev/nvidia" + minor);
      for (auto& cap : NvidiaMigCapabilityNodes(root, minor)) own.push_back(std::move(cap));
      shared = NvidiaSharedNodes();
    } else {
      std::istringstream functions(d.properties.count("functions") ? d.properties.at("functions")
                                                                   : d.pci_address);
      for (std::string address; std::getline(functions, address, ',');) {
        for (auto& node : ClassDeviceNodes(sys / address)) own.push_back(std::move(node));
      }
      if (d.properties.count("xclmgmt_instance")) {
        own.push_back("/dev/xclmgmt" + d.properties.at("xclmgmt_instance"));
      }
      if (d.vendor == "AMD") shared = {"/dev/kfd"};
    }
    std::sort(own.begin(), own.end());
    own.erase(std::unique(own.begin(), own.end()), own.end());
    d.device_nodes.clear();
    bool have_own = false;
    for (const auto& node : own) {
      if (!NodeExists(root, node)) continue;
      d.device_nodes.push_back(node);
      have_own = true;
    }
    if (!have_own) {
      LogAt(LogLevel::kWarning, "device ", d.id, " (", d.vendor, " ", d.model,
            ") has no device node under ", (root / "dev").string(), " (looked for ",
            own.empty() ? std::string("DRM or class devices in sysfs") : own.front(),
            "); is its driver loaded? It can be leased but not passed into a container");
    }
    for (const auto& node : shared) {
      if (NodeExists(root, node)) d.device_nodes.push_back(node);
    }
  }
}

}  // namespace bitfusion
