// The readers of SoftLayer's answers (provisioners/softlayer_internal.h) without an endpoint:
// flavours, presets, listings and error bodies, as the fake (tests/fakes/softlayer_fake.py)
// and the API write them, and the numbers in key names no int holds.
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "bitfusion/ownership.h"
#include "provisioners/softlayer_internal.h"

namespace bitfusion {
namespace {

namespace json = boost::json;

json::object Parse(const char* text) { return json::parse(text).as_object(); }

TEST(SoftLayerAnswersTest, FlavoursAndPresetsAreRead) {
  const auto flavor = Parse(R"({"keyName":"AC1_8X60X25","totalMinimumHourlyFee":"1.950",
    "prices":[{"item":{"description":"1 x P100 GPU","itemCategory":
      {"categoryCode":"guest_pcie_device0"}}}]})");
  const MachineType t = internal::ParseSoftLayerFlavor(&flavor);
  EXPECT_EQ(t.name, "AC1_8X60X25");
  EXPECT_EQ(t.vcpus, 8);
  EXPECT_EQ(t.memory_bytes, 60ull << 30);
  ASSERT_EQ(t.accelerators.size(), 1u);
  EXPECT_EQ(t.accelerators[0].model, "P100");
  const auto preset = Parse(R"({"keyName":"D2620V4_128GB_2X800GB_SSD_RAID_1_K80_GPU2",
    "description":"Dual Xeon E5-2620 v4, 128GB Ram, 2x800GB SSD disks, RAID 1, 2 x K80 GPU"})");
  const MachineType p = internal::ParseSoftLayerPreset(&preset);
  EXPECT_EQ(p.memory_bytes, 128ull << 30);
  EXPECT_EQ(p.cpu_vendor, "Intel");
  ASSERT_EQ(p.accelerators.size(), 1u);
  EXPECT_EQ(p.accelerators[0].count, 2);
  EXPECT_EQ(internal::ParseSoftLayerFlavor(nullptr).name, "");
}

// std::stoi / std::stoull threw std::out_of_range on these, out of Types() and so out of the
// public API; a number no int (or no byte count) holds now reads as unknown.
TEST(SoftLayerAnswersTest, NumbersInKeyNamesThatDoNotFitAreUnknownNotThrown) {
  const auto flavor = Parse(R"({"keyName":"B1_99999999999X99999999999999999999999X100"})");
  MachineType t;
  ASSERT_NO_THROW(t = internal::ParseSoftLayerFlavor(&flavor));
  EXPECT_EQ(t.name, "B1_99999999999X99999999999999999999999X100");
  EXPECT_EQ(t.vcpus, 0);
  EXPECT_EQ(t.memory_bytes, 0u);
  const auto big =
      Parse(R"({"keyName":"B1_2X17179869185X100"})");  // (2^34 + 1) GB: past 2^64 bytes
  EXPECT_EQ(internal::ParseSoftLayerFlavor(&big).memory_bytes, 0u);
  const auto preset = Parse(R"({"keyName":"S1270_99999999999999999999GB_NORAID",
    "description":"Single Xeon 1270, 99999999999 x K80 GPU"})");
  MachineType p;
  ASSERT_NO_THROW(p = internal::ParseSoftLayerPreset(&preset));
  EXPECT_EQ(p.memory_bytes, 0u);
  EXPECT_TRUE(p.accelerators.empty());
}

// A flavour's GPU price item was read with sscanf("%d x %63s"): a count no int holds was
// undefined behaviour. It reads as no GPU now; well-formed items read as before.
TEST(SoftLayerAnswersTest, AGuestGpuCountNoIntHoldsIsNoGpu) {
  auto gpus = [](const std::string& description) {
    const auto flavor =
        Parse((R"({"keyName":"AC1_8X60X25","prices":[{"item":{"description":")" + description +
               R"(","itemCategory":{"categoryCode":"guest_pcie_device0"}}}]})")
                  .c_str());
    return internal::ParseSoftLayerFlavor(&flavor).accelerators;
  };
  EXPECT_TRUE(gpus("99999999999 x P100 GPU").empty());
  EXPECT_TRUE(gpus("2147483648 x P100 GPU").empty());
  EXPECT_TRUE(gpus("0 x P100 GPU").empty());
  EXPECT_TRUE(gpus("x P100 GPU").empty());
  EXPECT_TRUE(gpus("2 x").empty());
  EXPECT_TRUE(gpus("2 P100").empty());
  const auto two = gpus("2 x V100 GPU");
  ASSERT_EQ(two.size(), 1u);
  EXPECT_EQ(two[0].count, 2);
  EXPECT_EQ(two[0].model, "V100");
  const auto spaced = gpus("  2147483647  x  M60");
  ASSERT_EQ(spaced.size(), 1u);
  EXPECT_EQ(spaced[0].count, 2147483647);
  EXPECT_EQ(spaced[0].model, "M60");
}

TEST(SoftLayerAnswersTest, GuestsServersAndErrorsAreRead) {
  const auto guest = Parse(R"({"id":101,"fullyQualifiedDomainName":"bf-x-0.example.com",
    "startCpus":2,"maxMemory":4096,"createDate":"2026-01-02T03:04:05-06:00",
    "provisionDate":"2026-01-02T03:09:05-06:00","primaryIpAddress":"169.48.1.2",
    "primaryBackendIpAddress":"10.0.1.2","datacenter":{"name":"dal13"},
    "powerState":{"keyName":"RUNNING"},"billingItem":{"orderItem":{"preset":{"keyName":"B1"}}},
    "tagReferences":[{"tag":{"name":"bitfusion.creator:bitfusion"}},{"tag":{"name":"plain"}}]})");
  const MachineInfo g = internal::SoftLayerMachine(false, guest, false);
  EXPECT_EQ(g.id, "101");
  EXPECT_EQ(g.state, "running");
  EXPECT_EQ(g.address, "169.48.1.2");
  EXPECT_EQ(internal::SoftLayerMachine(false, guest, true).address, "10.0.1.2");
  EXPECT_EQ(g.memory_bytes, 4096ull << 20);
  EXPECT_EQ(g.labels.at("plain"), "");
  const auto server = Parse(R"({"globalIdentifier":"u-1","memoryCapacity":8,
    "createDate":"2026-01-02T03:04:05Z"})");
  const MachineInfo s = internal::SoftLayerMachine(true, server, false);
  EXPECT_EQ(s.id, "u-1");
  EXPECT_EQ(s.state, "shutting-down");  // no billing item: cancelled
  EXPECT_EQ(s.labels.at("bitfusion.untagged"), "true");
  const auto e = internal::ParseSoftLayerError(R"({"error":"no","code":"SoftLayer_Exception_X"})");
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->code, "SoftLayer_Exception_X");
  EXPECT_FALSE(internal::ParseSoftLayerError("<html>").has_value());
}

}  // namespace
}  // namespace bitfusion
