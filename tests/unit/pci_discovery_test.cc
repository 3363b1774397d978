// Discovery from recorded trees (tests/fixtures/sysfs, provenance in its README): PCI facts,
// grouping, device nodes, and malformed entries skipped with a warning.
#include "devices/pci_discovery.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>

#include "bitfusion/log.h"
#include "provisioners/host_fingerprint.h"

namespace bitfusion {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

const std::string kTrees = std::string(BITFUSION_TEST_FIXTURES) + "/sysfs";

std::vector<Device> Discover(const std::string& host) {
  auto devices = DiscoverDevices(kTrees + "/" + host);
  ResolveDeviceNodes(kTrees + "/" + host, devices);
  return devices;
}

const Device& ById(const std::vector<Device>& devices, const std::string& id) {
  for (const auto& d : devices) {
    if (d.id == id) return d;
  }
  ADD_FAILURE() << "no device " << id;
  static Device none;
  return none;
}

// Collects warnings for the duration of a test.
class LogCapture {
 public:
  LogCapture() {
    SetLogLevel(LogLevel::kWarning);
    SetLogHandler([this](LogLevel level, std::string_view message) {
      std::lock_guard<std::mutex> lock(mu_);
      if (level >= LogLevel::kWarning) messages_.emplace_back(message);
    });
  }
  ~LogCapture() { SetLogHandler(nullptr); }
  std::string All() {
    std::lock_guard<std::mutex> lock(mu_);
    std::string out;
    for (const auto& m : messages_) out += m + "\n";
    return out;
  }

 private:
  std::mutex mu_;
  std::vector<std::string> messages_;
};

TEST(PciDiscoveryTest, ScansEveryFunctionWithItsSysfsFacts) {
  const auto functions = ScanPciFunctions(kTrees + "/dgx-a100/sys");
  // 8 GPUs, 6 NVSwitches, the BMC VGA, and the bridges above them.
  const PciFunction* gpu0 = nullptr;
  for (const auto& f : functions) {
    if (f.address == "0000:07:00.0") gpu0 = &f;
  }
  ASSERT_NE(gpu0, nullptr);
  EXPECT_EQ(gpu0->vendor_id, "0x10de");
  EXPECT_EQ(gpu0->device_id, "0x20b0");
  EXPECT_EQ(gpu0->class_code, "0x030200");
  EXPECT_EQ(gpu0->subsystem_vendor_id, "0x10de");
  EXPECT_EQ(gpu0->subsystem_device_id, "0x134f");
  EXPECT_EQ(gpu0->numa_node, 0);
  EXPECT_EQ(gpu0->driver, "nvidia");
  EXPECT_EQ(gpu0->iommu_group, 30);
  EXPECT_EQ(gpu0->link_speed, "16.0 GT/s PCIe");
  EXPECT_EQ(gpu0->link_width, 16);
  EXPECT_THAT(gpu0->upstream, ElementsAre("0000:00:01.1", "0000:01:00.0", "0000:02:00.0"));
  EXPECT_TRUE(std::is_sorted(functions.begin(), functions.end(),
                             [](const auto& a, const auto& b) { return a.address < b.address; }));
}

TEST(PciDiscoveryTest, EightA100sOnTwoNumaNodesBehindFourSwitches) {
  const auto devices = Discover("dgx-a100");
  ASSERT_EQ(devices.size(), 8u) << "NVSwitches (class 0x0680) and the BMC VGA are not devices";
  std::map<std::string, int> per_switch;
  for (std::size_t i = 0; i < devices.size(); ++i) {
    const Device& d = devices[i];
    EXPECT_EQ(d.kind, DeviceKind::kGpu);
    EXPECT_EQ(d.vendor, "NVIDIA");
    EXPECT_EQ(d.model, "NVIDIA A100-SXM4-40GB") << "from /proc/driver/nvidia, no NVML needed";
    EXPECT_EQ(d.index, static_cast<int>(i));
    EXPECT_EQ(d.numa_node, i < 4 ? 0 : 1);
    EXPECT_EQ(d.properties.at("driver_version"), "535.104.05");
    EXPECT_EQ(d.properties.at("subsystem"), "10de:134f");
    EXPECT_EQ(d.properties.at("pcie_link"), "16.0 GT/s PCIe x16");
    EXPECT_EQ(d.properties.at("minor"), std::to_string(i));
    EXPECT_EQ(d.memory_bytes, 0u) << "sysfs does not know NVIDIA memory sizes";
    per_switch[d.properties.at("pcie_switch")]++;
  }
  EXPECT_EQ(per_switch.size(), 4u);
  for (const auto& [sw, n] : per_switch) EXPECT_EQ(n, 2) << sw;
  EXPECT_EQ(devices[0].properties.at("uuid"), "GPU-a1000000-0000-4000-8000-000000000000");
  EXPECT_EQ(devices[0].properties.at("iommu_group"), "30");
}

TEST(PciDiscoveryTest, NvidiaNodesIncludeSharedOnesAndMigCapabilities) {
  const auto devices = Discover("dgx-a100");
  EXPECT_THAT(devices[0].device_nodes,
              ElementsAre("/dev/nvidia0", "/dev/nvidiactl", "/dev/nvidia-uvm",
                          "/dev/nvidia-uvm-tools", "/dev/nvidia-modeset"));
  EXPECT_THAT(devices[7].device_nodes,
              ElementsAre("/dev/nvidia-caps/nvidia-cap957", "/dev/nvidia-caps/nvidia-cap958",
                          "/dev/nvidia7", "/dev/nvidiactl", "/dev/nvidia-uvm",
                          "/dev/nvidia-uvm-tools", "/dev/nvidia-modeset"));
  EXPECT_TRUE(IsSharedDeviceNode("/dev/nvidiactl"));
  EXPECT_TRUE(IsSharedDeviceNode("/dev/kfd"));
  EXPECT_FALSE(IsSharedDeviceNode("/dev/nvidia0"));
}

TEST(PciDiscoveryTest, AmdGpusGetTheirOwnRenderNodesAndKfdButNoI2c) {
  const auto devices = Discover("amd-mi210-4gpu");
  ASSERT_EQ(devices.size(), 4u);
  for (std::size_t i = 0; i < devices.size(); ++i) {
    const Device& d = devices[i];
    EXPECT_EQ(d.vendor, "AMD");
    EXPECT_EQ(d.kind, DeviceKind::kGpu);
    EXPECT_EQ(d.model, "1002:740f") << "PCI ids without ROCm SMI";
    EXPECT_EQ(d.memory_bytes, 68702699520u) << "amdgpu's mem_info_vram_total";
    EXPECT_EQ(d.driver, "amdgpu");
    EXPECT_THAT(d.device_nodes,
                ElementsAre("/dev/dri/card" + std::to_string(i + 1),
                            "/dev/dri/renderD" + std::to_string(128 + i), "/dev/kfd"));
    EXPECT_FALSE(d.properties.at("pcie_switch").empty())
        << "each MI210 sits behind its on-card bridge pair";
  }
  EXPECT_NE(devices[0].properties.at("pcie_switch"), devices[1].properties.at("pcie_switch"));
  EXPECT_EQ(devices[0].numa_node, 0);
  EXPECT_EQ(devices[3].numa_node, 1);
}

TEST(PciDiscoveryTest, AlveoFunctionsBecomeOneCardWithMgmtAndRenderNodes) {
  const auto devices = Discover("alveo-u250");
  ASSERT_EQ(devices.size(), 2u);
  const Device& card = devices[0];
  EXPECT_EQ(card.id, "0000:3b:00.1") << "the user function is the one applications open";
  EXPECT_EQ(card.kind, DeviceKind::kFpga);
  EXPECT_EQ(card.vendor, "Xilinx");
  EXPECT_EQ(card.driver, "xocl");
  EXPECT_EQ(card.properties.at("functions"), "0000:3b:00.0,0000:3b:00.1");
  EXPECT_EQ(card.properties.at("mgmt_pci_address"), "0000:3b:00.0");
  EXPECT_EQ(card.properties.at("xclmgmt_instance"), "15104");
  EXPECT_THAT(card.device_nodes,
              ElementsAre("/dev/dri/card1", "/dev/dri/renderD128", "/dev/xclmgmt15104"));
  EXPECT_THAT(devices[1].device_nodes,
              ElementsAre("/dev/dri/card2", "/dev/dri/renderD129", "/dev/xclmgmt55296"));
  EXPECT_EQ(devices[1].numa_node, 1);
  EXPECT_EQ(devices[1].index, 1);
}

TEST(PciDiscoveryTest, MixedHostSkipsMalformedEntriesWithWarnings) {
  LogCapture log;
  const auto devices = Discover("mixed");
  std::vector<std::string> ids;
  for (const auto& d : devices) ids.push_back(d.id);
  EXPECT_THAT(ids, ElementsAre("0000:17:00.0", "0000:33:00.0", "0000:b1:00.0", "0000:ca:00.0"))
      << "the audio function, the BMC VGA and three malformed entries are not devices";
  const std::string warnings = log.All();
  EXPECT_THAT(warnings, HasSubstr("0000:00:05.0: vendor, device or class file missing"));
  EXPECT_THAT(warnings, HasSubstr("0000:00:06.0: malformed"));
  EXPECT_THAT(warnings, HasSubstr("0000:00:07.0: malformed"));

  const Device& l4_first = ById(devices, "0000:17:00.0");
  EXPECT_EQ(l4_first.index, 0);
  EXPECT_EQ(l4_first.properties.at("minor"), "1") << "probed out of bus order";
  EXPECT_THAT(l4_first.device_nodes,
              ElementsAre("/dev/nvidia1", "/dev/nvidiactl", "/dev/nvidia-uvm"))
      << "only shared nodes that exist";
  const Device& radeon = ById(devices, "0000:33:00.0");
  EXPECT_EQ(radeon.model, "AMD Radeon PRO W6800") << "amdgpu's product_name";
  EXPECT_EQ(radeon.memory_bytes, 34342961152u);
  const Device& n3000 = ById(devices, "0000:b1:00.0");
  EXPECT_EQ(n3000.kind, DeviceKind::kFpga);
  EXPECT_EQ(n3000.vendor, "Intel");
  EXPECT_THAT(n3000.device_nodes, ElementsAre("/dev/dfl-fme.0", "/dev/dfl-port.0"));
}

TEST(PciDiscoveryTest, MissingNodesAndMissingTreesDoNotCrash) {
  LogCapture log;
  const std::string root = ::testing::TempDir() + "/bf-nodes-missing";
  std::filesystem::remove_all(root);
  std::filesystem::copy(
      kTrees + "/alveo-u250", root,
      std::filesystem::copy_options::recursive | std::filesystem::copy_options::copy_symlinks);
  std::filesystem::remove_all(root + "/dev");
  auto devices = DiscoverDevices(root);
  ResolveDeviceNodes(root, devices);
  ASSERT_EQ(devices.size(), 2u);
  EXPECT_TRUE(devices[0].device_nodes.empty());
  EXPECT_THAT(log.All(), HasSubstr("has no device node"));
  EXPECT_TRUE(DiscoverDevices("/nonexistent/root").empty());
  std::filesystem::remove_all(root);
}

TEST(PciDiscoveryTest, InventoryReadsThroughTheSameScanner) {
  const auto accelerators = ReadPciAccelerators(kTrees + "/alveo-u250/sys");
  ASSERT_EQ(accelerators.size(), 4u) << "the inventory lists every function";
  EXPECT_EQ(accelerators[0].pci_address, "0000:3b:00.0");
  EXPECT_EQ(accelerators[0].driver, "xclmgmt");
  EXPECT_EQ(accelerators[1].driver, "xocl");
  EXPECT_EQ(accelerators[0].kind, "fpga");
}

}  // namespace
}  // namespace bitfusion
