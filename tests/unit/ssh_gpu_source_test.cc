// gpu+ssh://'s pieces that need no machine: the URI and nvidia-smi's query lines (the lines are
// the shapes of nvidia-smi(1)'s CSV query output, as tests/fakes/nvidia-smi prints them).
#include "metrics/ssh_gpu_source.h"

#include <gtest/gtest.h>

#include <string>

#include "metrics/gpu_source.h"

namespace bitfusion {
namespace {

using internal::ParseNvidiaSmiLine;

TEST(NvidiaSmiLineTest, AFullLineBecomesValuesInTheGpuSourcesUnits) {
  const auto line = ParseNvidiaSmiLine(
      "2026/12/05 11:30:00.123, 0, 00000000:07:00.0, GPU-3f1c2a9e-0000-4c1d-9a51-5e0c2b7d1a00, 37, "
      "12, 1024, 23034, 71.25, 35, 1980, 1410, 6251");
  ASSERT_TRUE(line.has_value());
  EXPECT_EQ(line->wall_ns, 1796470200123000000LL) << "read as UTC, milliseconds kept";
  EXPECT_EQ(line->index, "0");
  EXPECT_EQ(line->pci_bus_id, "0000:07:00.0");
  EXPECT_EQ(line->uuid, "GPU-3f1c2a9e-0000-4c1d-9a51-5e0c2b7d1a00");
  const double want[9] = {37,     12,    1024.0 * 1048576, 23034.0 * 1048576, 71.25, 35, 1980e6,
                          1410e6, 6251e6};
  for (int k = 0; k < 9; ++k) {
    ASSERT_TRUE(line->values[k].has_value()) << internal::kGpuMetrics[k].name;
    EXPECT_DOUBLE_EQ(*line->values[k], want[k]) << internal::kGpuMetrics[k].name;
  }
  EXPECT_STREQ(internal::kGpuMetrics[2].name, "gpu.memory.used");
  EXPECT_STREQ(internal::kGpuMetrics[2].unit, "bytes");
  EXPECT_STREQ(internal::kGpuMetrics[8].unit, "Hz");
}

TEST(NvidiaSmiLineTest, ValuesAGpuLacksAreLeftOutAndTheRestKept) {
  const auto line = ParseNvidiaSmiLine(
      "2026/12/05 11:30:00.5, 1, 00000000:0A:00.0, [N/A], 0, 0, 3, 23034, [N/A], 30, 1980, "
      "[Not Supported], N/A");
  ASSERT_TRUE(line.has_value());
  EXPECT_EQ(line->wall_ns % 1'000'000'000, 500'000'000);
  EXPECT_EQ(line->pci_bus_id, "0000:0a:00.0");
  EXPECT_EQ(line->uuid, "");
  EXPECT_FALSE(line->values[4].has_value()) << "power";
  EXPECT_FALSE(line->values[7].has_value()) << "SM clock";
  EXPECT_FALSE(line->values[8].has_value()) << "memory clock";
  EXPECT_TRUE(line->values[5].has_value());
}

TEST(NvidiaSmiLineTest, WhatIsNotAQueryLineIsNotTakenForOne) {
  for (const char* text : {
           "",
           "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.",
           "Field \"clocks.sm\" is not a valid field to query.",
           // the header a query without noheader prints
           "timestamp, index, pci.bus_id, uuid, utilization.gpu [%], utilization.memory [%], "
           "memory.used [MiB], memory.total [MiB], power.draw [W], temperature.gpu, clocks.gr "
           "[MHz], clocks.sm [MHz], clocks.mem [MHz]",
           // units left in (no nounits)
           "2026/12/05 11:30:00.123, 0, 00000000:07:00.0, GPU-1, 37 %, 12 %, 1024 MiB, 23034 MiB, "
           "71.25 W, 35, 1980 MHz, 1980 MHz, 6251 MHz",
           // one field short, a bad stamp, a bad index, a bad bus id
           "2026/12/05 11:30:00.123, 0, 00000000:07:00.0, GPU-1, 37, 12, 1024, 23034, 71.25, 35, "
           "1980, 1980",
           "2026-12-05T11:30:00Z, 0, 00000000:07:00.0, GPU-1, 37, 12, 1024, 23034, 71.25, 35, "
           "1980, 1980, 6251",
           "2026/13/05 11:30:00.123, 0, 00000000:07:00.0, GPU-1, 37, 12, 1024, 23034, 71.25, 35, "
           "1980, 1980, 6251",
           "2026/12/05 11:30:00.123, x, 00000000:07:00.0, GPU-1, 37, 12, 1024, 23034, 71.25, 35, "
           "1980, 1980, 6251",
           "2026/12/05 11:30:00.123, 0, bus, GPU-1, 37, 12, 1024, 23034, 71.25, 35, 1980, 1980, "
           "6251",
       }) {
    EXPECT_FALSE(ParseNvidiaSmiLine(text).has_value()) << text;
  }
}

TEST(SshGpuSourceOptionsTest, TheLoginIsHostSshsAndTheRestIsNvidiaSmis) {
  auto uri = Uri::Parse(
      "gpu+ssh://bench@10.0.0.7:2222?connect_timeout=5&interval=250ms&machine=gpu-1"
      "&nvidia_smi=/usr/local/bin/nvidia-smi&probe=/opt/bf/bitfusion-probe");
  ASSERT_TRUE(uri.ok());
  auto o = SshGpuSourceOptions::FromUri(*uri);
  ASSERT_TRUE(o.ok()) << o.error().ToString();
  EXPECT_EQ(o->interval, std::chrono::milliseconds(250));
  EXPECT_EQ(o->nvidia_smi, "/usr/local/bin/nvidia-smi");
  EXPECT_EQ(o->machine, "gpu-1");
  EXPECT_EQ(o->probe_path, "/opt/bf/bitfusion-probe");
  EXPECT_EQ(o->login.rfind("host+ssh://bench@10.0.0.7:2222?", 0), 0u) << o->login;
  EXPECT_EQ(o->login.find("interval"), std::string::npos) << o->login;
  EXPECT_EQ(o->login.find("nvidia_smi"), std::string::npos) << o->login;

  auto plain = SshGpuSourceOptions::FromUri(*Uri::Parse("gpu+ssh://bench@10.0.0.7"));
  ASSERT_TRUE(plain.ok()) << plain.error().ToString();
  EXPECT_EQ(plain->nvidia_smi, "nvidia-smi");
  EXPECT_EQ(plain->interval, std::chrono::milliseconds(100));
  EXPECT_EQ(plain->machine, "bench@10.0.0.7");
}

TEST(SshGpuSourceOptionsTest, BadOptionsAreNamed) {
  for (const auto& [text, says] : std::vector<std::pair<std::string, std::string>>{
           {"gpu+ssh://bench@10.0.0.7?interval=5ms", "interval"},
           {"gpu+ssh://bench@10.0.0.7?interval=2h", "interval"},
           {"gpu+ssh://bench@10.0.0.7?nvidia_smi=", "nvidia_smi"},
           {"gpu+ssh://bench@10.0.0.7?devices=0", "devices"},
           {"gpu+ssh://bench:secret@10.0.0.7", "password"},
       }) {
    auto uri = Uri::Parse(text);
    ASSERT_TRUE(uri.ok()) << text;
    auto o = SshGpuSourceOptions::FromUri(*uri);
    ASSERT_FALSE(o.ok()) << text;
    EXPECT_NE(o.error().message().find(says), std::string::npos) << o.error().message();
    EXPECT_EQ(o.error().message().find("secret"), std::string::npos) << o.error().message();
  }
}

}  // namespace
}  // namespace bitfusion
