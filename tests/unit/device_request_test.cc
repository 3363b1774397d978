// Device requests from JSON (what a plan's "devices" field holds) and CDI spec files.
#include "devices/device_request.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "devices/cdi_spec.h"

namespace bitfusion {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(DeviceRequestTest, ParsesEveryField) {
  auto requests = ParseDeviceRequests(R"([
    {"kind": "gpu", "vendor": "nvidia", "model": "A100", "count": 2, "min_memory": "40GiB",
     "topology": ["same_numa_node", "nvlink"], "exclusive": false},
    {"kind": "fpga", "topology": "same_pcie_switch", "min_memory": 1024},
    {}])");
  ASSERT_TRUE(requests.ok()) << requests.error().ToString();
  ASSERT_EQ(requests->size(), 3u);
  const DeviceRequest& a = requests->at(0);
  EXPECT_EQ(a.kind, DeviceKind::kGpu);
  EXPECT_EQ(a.vendor, "nvidia");
  EXPECT_EQ(a.model, "A100");
  EXPECT_EQ(a.count, 2);
  EXPECT_EQ(a.min_memory_bytes, 40ull << 30);
  EXPECT_TRUE(a.same_numa_node);
  EXPECT_TRUE(a.nvlink_connected);
  EXPECT_FALSE(a.same_pcie_switch);
  EXPECT_FALSE(a.exclusive);
  EXPECT_EQ(DescribeDeviceRequest(a),
            "2 nvidia gpu(s) matching \"A100\" with >= 40 GiB, on one NUMA node, "
            "NVLink-connected, shared");
  EXPECT_EQ(requests->at(1).kind, DeviceKind::kFpga);
  EXPECT_TRUE(requests->at(1).same_pcie_switch);
  EXPECT_EQ(requests->at(1).min_memory_bytes, 1024u);
  EXPECT_EQ(requests->at(2).count, 1) << "defaults as in DeviceRequest";
  EXPECT_TRUE(requests->at(2).exclusive);

  auto single = ParseDeviceRequests(R"({"kind": "any", "count": 0})");
  ASSERT_TRUE(single.ok());
  ASSERT_EQ(single->size(), 1u);
  EXPECT_EQ(single->at(0).kind, DeviceKind::kAny);
  EXPECT_EQ(single->at(0).count, 0);
}

TEST(DeviceRequestTest, BadInputNamesTheField) {
  auto bad = [](const char* json) {
    auto r = ParseDeviceRequests(json);
    EXPECT_FALSE(r.ok()) << json;
    return r.ok() ? std::string() : r.error().message();
  };
  EXPECT_THAT(bad(R"([{}, {"count": -1}])"), HasSubstr("[1].count: expected an integer >= 0"));
  EXPECT_THAT(bad(R"({"kind": "tpu"})"), HasSubstr("kind: \"tpu\" is not a kind"));
  EXPECT_THAT(bad(R"({"min_memory": "lots"})"), HasSubstr("min_memory: \"lots\" is not a size"));
  EXPECT_THAT(bad(R"({"topology": "ring"})"), HasSubstr("topology: \"ring\" is not a topology"));
  EXPECT_THAT(bad(R"({"gpus": 2})"), HasSubstr("gpus: unknown field; known fields:"));
  EXPECT_THAT(bad(R"({"exclusive": "yes"})"), HasSubstr("exclusive: expected true or false"));
  EXPECT_THAT(bad(R"([1])"), HasSubstr("[0]: expected an object"));
  EXPECT_THAT(bad("{"), HasSubstr("not valid JSON"));
}

TEST(DeviceRequestTest, ByteSizes) {
  EXPECT_EQ(*ParseByteSize("40GiB"), 40ull << 30);
  EXPECT_EQ(*ParseByteSize("1.5 GiB"), 3ull << 29);
  EXPECT_EQ(*ParseByteSize("16GB"), 16000000000ull);
  EXPECT_EQ(*ParseByteSize("512mib"), 512ull << 20);
  EXPECT_EQ(*ParseByteSize("81920"), 81920u);
  EXPECT_FALSE(ParseByteSize("").ok());
  EXPECT_FALSE(ParseByteSize("12 parsecs").ok());
  EXPECT_FALSE(ParseByteSize("1.2.3GB").ok());
  EXPECT_FALSE(ParseByteSize("99999999999TiB").ok());
}

TEST(DeviceRequestTest, MatchingByVendorNameOrIdKindModelAndMemory) {
  Device d;
  d.kind = DeviceKind::kFpga;
  d.vendor = "Intel/Altera";
  d.vendor_id = "0x1172";
  d.model = "Stratix 10";
  d.memory_bytes = 32ull << 30;
  DeviceRequest r;
  r.kind = DeviceKind::kFpga;
  for (const char* vendor : {"intel", "ALTERA", "intel/altera", "0x1172", ""}) {
    r.vendor = vendor;
    EXPECT_TRUE(DeviceMatches(d, r)) << vendor;
  }
  r.vendor = "tel";
  EXPECT_FALSE(DeviceMatches(d, r));
  r.vendor.clear();
  r.model = "stratix";
  EXPECT_TRUE(DeviceMatches(d, r));
  r.min_memory_bytes = 64ull << 30;
  EXPECT_FALSE(DeviceMatches(d, r));
  r.min_memory_bytes = 0;
  r.kind = DeviceKind::kGpu;
  EXPECT_FALSE(DeviceMatches(d, r));
  r.kind = DeviceKind::kAny;
  EXPECT_TRUE(DeviceMatches(d, r));
}

TEST(CdiSpecTest, ReadsYamlAsGeneratorsWriteItAndJson) {
  const std::string dir = std::string(BITFUSION_TEST_FIXTURES) + "/sysfs/mixed";
  auto devices = ReadCdiSpecs({dir + "/etc/cdi", dir + "/var/run/cdi"});
  std::vector<std::string> names;
  for (const auto& d : devices) names.push_back(d.QualifiedName());
  EXPECT_THAT(
      names,
      ElementsAre("amd.com/gpu=0", "amd.com/gpu=all", "nvidia.com/gpu=0", "nvidia.com/gpu=1",
                  "nvidia.com/gpu=GPU-14000000-0000-4000-8000-000000000000", "nvidia.com/gpu=all"))
      << "broken.yaml is skipped";
  for (const auto& d : devices) {
    if (d.QualifiedName() == "nvidia.com/gpu=0") {
      EXPECT_THAT(d.device_nodes, ElementsAre("/dev/nvidia1")) << "hooks' paths are not nodes";
    }
    if (d.QualifiedName() == "nvidia.com/gpu=all") {
      EXPECT_THAT(d.device_nodes, ElementsAre("/dev/nvidia1", "/dev/nvidia0"));
    }
  }
}

TEST(CdiSpecTest, YamlDetails) {
  auto parsed = ParseCdiSpec(R"(# comment
---
kind: 'vendor.com/fpga'   # trailing comment
devices:
  - name: "a#1"
    containerEdits:
      deviceNodes:
        - path: /dev/x0
          hostPath: /host/dev/x0
        -
          path: /dev/x1
  - name: b
)",
                             true, "inline.yaml");
  ASSERT_TRUE(parsed.ok()) << parsed.error().ToString();
  ASSERT_EQ(parsed->size(), 2u);
  EXPECT_EQ(parsed->at(0).QualifiedName(), "vendor.com/fpga=a#1");
  EXPECT_THAT(parsed->at(0).device_nodes, ElementsAre("/host/dev/x0", "/dev/x1"));
  EXPECT_TRUE(parsed->at(1).device_nodes.empty());

  EXPECT_FALSE(
      ParseCdiSpec("kind: nvidia.com/gpu\ndevices:\n- name: 0\n   bad: indent\n", true, "x.yaml")
          .ok());
  auto no_kind = ParseCdiSpec(R"({"devices": []})", false, "x.json");
  ASSERT_FALSE(no_kind.ok());
  EXPECT_THAT(no_kind.error().message(), HasSubstr("vendor.com/class"));
  auto anchors = ParseCdiSpec("kind: a.com/b\ndevices: &d\n", true, "x.yaml");
  ASSERT_FALSE(anchors.ok());
  auto nameless = ParseCdiSpec(R"({"kind": "a.com/b", "devices": [{}]})", false, "x.json");
  ASSERT_FALSE(nameless.ok());
  EXPECT_THAT(nameless.error().message(), HasSubstr("no \"name\""));
}

TEST(CdiSpecTest, DeeplyNestedYamlIsRefusedInsteadOfOverflowingTheStack) {
  // One line of a million "- " would be a million nested sequences, one stack frame each.
  std::string deep = "kind: a.com/b\ndevices:\n";
  for (int i = 0; i < 1'000'000; ++i) deep += "- ";
  deep += "x\n";
  auto parsed = ParseCdiSpec(deep, true, "deep.yaml");
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.error().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(parsed.error().message(), HasSubstr("nested deeper than"));
  EXPECT_THAT(parsed.error().message(), HasSubstr("deep.yaml"));

  std::string indented = "kind: a.com/b\ndevices:\n";
  for (int i = 1; i <= 200; ++i) indented += std::string(i, ' ') + "k" + std::to_string(i) + ":\n";
  EXPECT_FALSE(ParseCdiSpec(indented, true, "indented.yaml").ok());
}

}  // namespace
}  // namespace bitfusion
