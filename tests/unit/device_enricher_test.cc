// Vendor enrichment through the fake libraries built beside the tests (tests/fakes), loaded
// with dlopen exactly as the real ones are.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include "devices/nvml_enricher.h"
#include "devices/pci_discovery.h"
#include "devices/rocm_smi_enricher.h"
#include "devices/xrt_enricher.h"
#include "scoped_env.h"
#include "scratch_dir.h"

namespace bitfusion {
namespace {

using ::testing::HasSubstr;

const std::string kFixtures = BITFUSION_TEST_FIXTURES;

std::vector<Device> Tree(const std::string& host) {
  return DiscoverDevices(kFixtures + "/sysfs/" + host);
}

using testing::ScopedEnv;

TEST(NvmlEnricherTest, FillsNameMemoryUuidVersionsMigAndNvSwitchPeers) {
  const std::string env_value = kFixtures + "/vendor/nvml-dgx-a100.json";
  ScopedEnv env({{"BITFUSION_FAKE_NVML_CONFIG", env_value.c_str()}});
  auto devices = Tree("dgx-a100");
  ASSERT_TRUE(EnrichWithNvml({BITFUSION_FAKE_NVML}, devices).ok());
  const Device& d = devices[0];
  EXPECT_EQ(d.model, "NVIDIA A100-SXM4-40GB");
  EXPECT_EQ(d.memory_bytes, 42949672960u);
  EXPECT_EQ(d.properties.at("uuid"), "GPU-a1000000-0000-4000-8000-000000000000");
  EXPECT_EQ(d.properties.at("driver_version"), "535.104.05");
  EXPECT_EQ(d.properties.at("cuda_version"), "12.2");
  EXPECT_EQ(d.properties.at("mig_mode"), "disabled");
  EXPECT_EQ(devices[7].properties.at("mig_mode"), "enabled");
  EXPECT_EQ(d.properties.at("nvlink_peers"),
            "0000:c4:00.0,0000:c5:00.0,0000:c6:00.0,0000:c7:00.0,0000:c8:00.0,0000:c9:00.0")
      << "NVML's upper-case 8-digit-domain bus ids become sysfs addresses, each once";
  for (std::size_t i = 0; i < devices.size(); ++i) EXPECT_EQ(devices[i].index, static_cast<int>(i));
}

TEST(NvmlEnricherTest, MinorNumbersFromNvmlReplaceThePciOrderGuess) {
  const std::string env_value = kFixtures + "/vendor/nvml-mixed.json";
  ScopedEnv env({{"BITFUSION_FAKE_NVML_CONFIG", env_value.c_str()}});
  const std::string root = testing::ScratchPath("bf-nvml-minor");
  std::filesystem::remove_all(root);
  std::filesystem::copy(
      kFixtures + "/sysfs/mixed", root,
      std::filesystem::copy_options::recursive | std::filesystem::copy_options::copy_symlinks);
  std::filesystem::remove_all(root + "/proc");  // no /proc/driver/nvidia: minors unknown
  auto devices = DiscoverDevices(root);
  ASSERT_TRUE(EnrichWithNvml({BITFUSION_FAKE_NVML}, devices).ok());
  ResolveDeviceNodes(root, devices);
  EXPECT_EQ(devices[0].id, "0000:17:00.0");
  EXPECT_EQ(devices[0].device_nodes.front(), "/dev/nvidia1");
  EXPECT_EQ(devices[0].properties.count("minor_source"), 0u);
  EXPECT_EQ(devices[0].properties.count("nvlink_peers"), 0u) << "L4 has no NVLink";
  EXPECT_EQ(devices[0].properties.count("mig_mode"), 0u) << "not supported on L4";
  std::filesystem::remove_all(root);
}

TEST(NvmlEnricherTest, AbsentLibraryOrDriverLeavesSysfsFacts) {
  auto devices = Tree("dgx-a100");
  const auto before = devices;
  Status missing = EnrichWithNvml({"/nonexistent/libnvidia-ml.so.1"}, devices);
  EXPECT_EQ(missing.code(), StatusCode::kUnavailable);
  EXPECT_THAT(missing.message(), HasSubstr("/nonexistent/libnvidia-ml.so.1"));
  ::unsetenv("BITFUSION_FAKE_NVML_CONFIG");  // the fake then acts as a host without a driver
  Status no_driver = EnrichWithNvml({BITFUSION_FAKE_NVML}, devices);
  EXPECT_EQ(no_driver.code(), StatusCode::kUnavailable);
  EXPECT_THAT(no_driver.message(), HasSubstr("Driver Not Loaded"));
  ASSERT_EQ(devices.size(), before.size());
  EXPECT_EQ(devices[0].model, before[0].model);
  EXPECT_EQ(devices[0].memory_bytes, 0u);
}

TEST(NvmlEnricherTest, NoNvidiaDevicesMeansNothingIsLoaded) {
  auto devices = Tree("alveo-u250");
  EXPECT_TRUE(EnrichWithNvml({"/nonexistent/libnvidia-ml.so.1"}, devices).ok());
}

TEST(NvmlEnricherTest, GpusNvmlDoesNotKnowKeepTheirSysfsFacts) {
  const std::string config = testing::ScratchPath("bf-nvml-one.json");
  std::ofstream(config) << R"({"devices": [{"bus_id": "0000:0f:00.0", "name": "Only One",
      "uuid": "GPU-1", "memory_total": 1024}]})";
  ScopedEnv env({{"BITFUSION_FAKE_NVML_CONFIG", config.c_str()}});
  auto devices = Tree("dgx-a100");
  ASSERT_TRUE(EnrichWithNvml({BITFUSION_FAKE_NVML}, devices).ok());
  EXPECT_EQ(devices[0].model, "NVIDIA A100-SXM4-40GB");
  EXPECT_EQ(devices[1].model, "Only One");
  EXPECT_EQ(devices[1].memory_bytes, 1024u);
}

TEST(RocmSmiEnricherTest, FillsNameVramIndexUniqueIdAndXgmiPeers) {
  const std::string env_value = kFixtures + "/vendor/rocm-smi-mi210.json";
  ScopedEnv env({{"BITFUSION_FAKE_ROCM_SMI_CONFIG", env_value.c_str()}});
  auto devices = Tree("amd-mi210-4gpu");
  RocmSmiEnricherOptions options;
  options.libraries = {BITFUSION_FAKE_ROCM_SMI};
  ASSERT_TRUE(EnrichWithRocmSmi(options, devices).ok());
  EXPECT_EQ(devices[0].model, "Aldebaran/MI200 [Instinct MI210]");
  EXPECT_EQ(devices[0].memory_bytes, 68702699520u);
  EXPECT_EQ(devices[0].properties.at("driver_version"), "6.2.4");
  EXPECT_EQ(devices[0].properties.at("unique_id"), "0x2a2d9b3c1f4e5a60");
  EXPECT_EQ(devices[0].properties.at("xgmi_peers"), "0000:43:00.0,0000:83:00.0,0000:c3:00.0");
  EXPECT_EQ(devices[3].index, 3);
}

TEST(RocmSmiEnricherTest, InitFailureIsUnavailable) {
  ::unsetenv("BITFUSION_FAKE_ROCM_SMI_CONFIG");
  auto devices = Tree("amd-mi210-4gpu");
  RocmSmiEnricherOptions options;
  options.libraries = {"/nonexistent/librocm_smi64.so.1", BITFUSION_FAKE_ROCM_SMI};
  Status s = EnrichWithRocmSmi(options, devices);
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_THAT(s.message(), HasSubstr("rsmi_init failed"));
  EXPECT_EQ(devices[0].model, "1002:740f");
}

TEST(XrtEnricherTest, FillsPlatformNameAndDdr) {
  const std::string env_value = kFixtures + "/vendor/xrt-u250.json";
  ScopedEnv env({{"BITFUSION_FAKE_XRT_CONFIG", env_value.c_str()}});
  auto devices = Tree("alveo-u250");
  XrtEnricherOptions options;
  options.libraries = {BITFUSION_FAKE_XRT};
  ASSERT_TRUE(EnrichWithXrt(options, devices).ok());
  EXPECT_EQ(devices[0].model, "xilinx_u250_gen3x16_xdma_shell_4_1");
  EXPECT_EQ(devices[0].memory_bytes, 68719476736u);
  EXPECT_EQ(devices[0].properties.at("xrt_hal_version"), "2.13");
}

TEST(XrtEnricherTest, DevicesXrtCannotOpenKeepSysfsFacts) {
  ::unsetenv("BITFUSION_FAKE_XRT_CONFIG");
  auto devices = Tree("alveo-u250");
  XrtEnricherOptions options;
  options.libraries = {BITFUSION_FAKE_XRT};
  EXPECT_TRUE(EnrichWithXrt(options, devices).ok());
  EXPECT_EQ(devices[0].model, "10ee:5005");
  options.libraries = {"/nonexistent/libxrt_core.so.2"};
  EXPECT_EQ(EnrichWithXrt(options, devices).code(), StatusCode::kUnavailable);
}

}  // namespace
}  // namespace bitfusion
