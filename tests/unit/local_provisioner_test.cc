#include "provisioners/local_provisioner.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

namespace bitfusion {
namespace {

const std::string kFixture = std::string(BITFUSION_TEST_FIXTURES) + "/hosts/dual-xeon-a100-alveo";

std::shared_ptr<Provisioner> FixtureProvisioner() {
  auto p = ProvisionerFromUri("local://?proc_root=" + kFixture + "/proc&sys_root=" + kFixture +
                              "/sys&os_release=" + kFixture + "/etc/os-release");
  EXPECT_TRUE(p.ok()) << p.error().ToString();
  return *p;
}

TEST(LocalProvisionerTest, FingerprintOfARecordedDualSocketHost) {
  auto m = FixtureProvisioner()->WaitReady("local", kNoDeadline);
  ASSERT_TRUE(m.ok()) << m.error().ToString();
  EXPECT_EQ(m->id, "local");
  EXPECT_EQ(m->provider, "local");
  EXPECT_EQ(m->state, "running");
  EXPECT_GT(m->ready_ns, 0);
  EXPECT_EQ(m->cpu.vendor, "GenuineIntel");
  EXPECT_EQ(m->cpu.model_name, "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz");
  EXPECT_EQ(m->cpu.sockets, 2);
  EXPECT_EQ(m->cpu.cores, 4);
  EXPECT_EQ(m->cpu.threads, 8);
  EXPECT_EQ(m->cpu.numa_nodes, 2);
  EXPECT_DOUBLE_EQ(m->cpu.max_mhz, 3200.0);
  EXPECT_EQ(m->memory_bytes, 263856032ull * 1024);
  EXPECT_EQ(m->os, "Ubuntu 22.04.4 LTS");
  const std::set<std::string> flags(m->cpu.flags.begin(), m->cpu.flags.end());
  EXPECT_TRUE(flags.count("avx512f"));
  EXPECT_TRUE(flags.count("sha_ni"));
  EXPECT_FALSE(flags.count("fpu")) << "only ISA extensions worth knowing are kept";

  ASSERT_EQ(m->cpu.caches.size(), 4u);
  const CacheInfo& l1d = m->cpu.caches[0];
  EXPECT_EQ(l1d.level, 1);
  EXPECT_EQ(l1d.type, "Data");
  EXPECT_EQ(l1d.size_bytes, 48u * 1024);
  EXPECT_EQ(l1d.instances, 4) << "one L1d per physical core";
  const CacheInfo& l3 = m->cpu.caches[3];
  EXPECT_EQ(l3.level, 3);
  EXPECT_EQ(l3.size_bytes, 48u << 20);
  EXPECT_EQ(l3.instances, 2) << "one L3 per socket";
  EXPECT_EQ(l3.line_bytes, 64);
}

TEST(LocalProvisionerTest, AcceleratorsByVendorIdSkipBmcVgaAndAudio) {
  auto m = FixtureProvisioner()->WaitReady("local", kNoDeadline);
  ASSERT_TRUE(m.ok());
  ASSERT_EQ(m->accelerators.size(), 2u);
  const AcceleratorInfo& gpu = m->accelerators[0];
  EXPECT_EQ(gpu.kind, "gpu");
  EXPECT_EQ(gpu.vendor, "NVIDIA");
  EXPECT_EQ(gpu.vendor_id, "0x10de");
  EXPECT_EQ(gpu.device_id, "0x20b5");
  EXPECT_EQ(gpu.pci_address, "0000:17:00.0");
  EXPECT_EQ(gpu.driver, "nvidia");
  EXPECT_EQ(gpu.numa_node, 0);
  const AcceleratorInfo& fpga = m->accelerators[1];
  EXPECT_EQ(fpga.kind, "fpga");
  EXPECT_EQ(fpga.vendor, "Xilinx");
  EXPECT_EQ(fpga.numa_node, 1);
  EXPECT_EQ(fpga.driver, "xocl");
}

TEST(LocalProvisionerTest, AgreesWithThisHost) {
  auto p = ProvisionerFromUri("local://");
  ASSERT_TRUE(p.ok());
  auto m = (*p)->WaitReady("local", kNoDeadline);
  ASSERT_TRUE(m.ok()) << m.error().ToString();
  EXPECT_EQ(m->cpu.threads, static_cast<int>(::sysconf(_SC_NPROCESSORS_ONLN)));
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  std::uint64_t kib = 0;
  meminfo >> key >> kib;
  ASSERT_EQ(key, "MemTotal:");
  EXPECT_EQ(m->memory_bytes, kib * 1024);
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line, model;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("model name", 0) == 0) {
      model = line.substr(line.find(':') + 2);
      break;
    }
  }
  if (!model.empty()) EXPECT_EQ(m->cpu.model_name, model);
  EXPECT_GE(m->cpu.sockets, 1);
  EXPECT_GE(m->cpu.cores, m->cpu.sockets);
  EXPECT_LE(m->cpu.cores, m->cpu.threads);
  EXPECT_FALSE(m->kernel.empty());
  EXPECT_FALSE(m->hostname.empty());
}

TEST(LocalProvisionerTest, LifecycleAndBadRequests) {
  auto p = FixtureProvisioner();
  MachineRequest req;
  auto created = p->Create(req);
  ASSERT_TRUE(created.ok());
  ASSERT_EQ(created->size(), 1u);
  EXPECT_GT(created->at(0).created_ns, 0);
  EXPECT_EQ(p->List()->size(), 1u);
  EXPECT_TRUE(p->Destroy({"local"}).ok());
  EXPECT_EQ(p->Destroy({"i-123"}).code(), StatusCode::kNotFound);
  EXPECT_EQ(p->WaitReady("i-123", kNoDeadline).error().code(), StatusCode::kNotFound);
  req.count = 2;
  EXPECT_EQ(p->Create(req).error().code(), StatusCode::kInvalidArgument);
  req.count = 1;
  req.type = "p4d.24xlarge";
  EXPECT_EQ(p->Create(req).error().code(), StatusCode::kInvalidArgument);
  auto types = p->Types();
  ASSERT_TRUE(types.ok());
  EXPECT_EQ(types->at(0).vcpus, 8);
  EXPECT_EQ(types->at(0).accelerators.size(), 2u);
  EXPECT_FALSE(ProvisionerFromUri("local://elsewhere").ok());
}

TEST(LocalProvisionerTest, MissingProcFilesAreNotFound) {
  auto p = ProvisionerFromUri("local://?proc_root=/nonexistent");
  ASSERT_TRUE(p.ok());
  auto m = (*p)->List();
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.error().code(), StatusCode::kNotFound);
  EXPECT_NE(m.error().message().find("/nonexistent/cpuinfo"), std::string::npos);
}

TEST(LocalProvisionerTest, MalformedPciEntriesAreSkipped) {
  const std::string root = ::testing::TempDir() + "/bf-pci-malformed";
  std::filesystem::remove_all(root);
  std::filesystem::create_directories(root + "/bus/pci/devices/0000:01:00.0");
  std::filesystem::create_directories(root + "/bus/pci/devices/0000:02:00.0");
  std::ofstream(root + "/bus/pci/devices/0000:01:00.0/vendor") << "0x10de\n";  // no class
  std::ofstream(root + "/bus/pci/devices/0000:02:00.0/vendor") << "0x10de\n";
  std::ofstream(root + "/bus/pci/devices/0000:02:00.0/device") << "0x2330\n";
  std::ofstream(root + "/bus/pci/devices/0000:02:00.0/class") << "garbage\n";
  EXPECT_TRUE(ReadPciAccelerators(root).empty());
  std::filesystem::remove_all(root);
}

}  // namespace
}  // namespace bitfusion
