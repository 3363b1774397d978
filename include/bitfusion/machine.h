// Machines: what a Provisioner hands out and what a run record names as its hardware.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "bitfusion/sample.h"

namespace bitfusion {

struct CacheInfo {
  int level = 0;     ///< 1, 2, 3
  std::string type;  ///< "Data", "Instruction", "Unified"
  std::uint64_t size_bytes = 0;
  int line_bytes = 0;
  int instances = 0;  ///< how many of this cache the machine has
};

struct CpuInfo {
  std::string vendor;        ///< "GenuineIntel", "AuthenticAMD", ARM implementer
  std::string model_name;    ///< /proc/cpuinfo "model name"
  std::string architecture;  ///< uname machine: "x86_64", "aarch64"
  int sockets = 0;
  int cores = 0;    ///< physical cores, all sockets
  int threads = 0;  ///< logical CPUs online (= nproc without affinity limits)
  int numa_nodes = 0;
  double max_mhz = 0.0;  ///< cpufreq max, or /proc/cpuinfo MHz when cpufreq is absent
  std::vector<CacheInfo> caches;
  std::vector<std::string> flags;  ///< ISA extensions worth knowing (avx2, avx512f, sve, ...)
};

/// An accelerator seen on the PCI bus (or reported by a cloud's type catalogue).
struct AcceleratorInfo {
  std::string kind;         ///< "gpu", "fpga", "accelerator"
  std::string vendor;       ///< "NVIDIA", "AMD", "Xilinx", "Intel/Altera"
  std::string vendor_id;    ///< "0x10de"
  std::string device_id;    ///< "0x2330"
  std::string class_code;   ///< "0x030200"
  std::string pci_address;  ///< "0000:17:00.0"; empty for catalogue entries
  std::string driver;       ///< bound kernel driver, if any
  std::string model;        ///< from a vendor library or catalogue, when known
  int numa_node = -1;
  int count = 1;  ///< for catalogue entries: how many per machine
};

/// A machine: its identity, where it is, its state and its fingerprint.
struct MachineInfo {
  std::string id;        ///< provider's id ("local", "i-0abc...", a hostname)
  std::string provider;  ///< URI scheme of the provisioner: "local", "aws", ...
  std::string hostname;
  std::string address;  ///< how to reach it (IP or host name); empty for local
  std::string type;     ///< instance type; "local" for this host
  std::string state;    ///< "pending", "running", "terminated", ...
  CpuInfo cpu;
  std::uint64_t memory_bytes = 0;  ///< MemTotal
  std::string kernel;              ///< uname release
  std::string os;                  ///< /etc/os-release PRETTY_NAME
  std::vector<AcceleratorInfo> accelerators;
  Labels labels;                ///< tags
  std::int64_t created_ns = 0;  ///< wall clock: the create call was accepted
  std::int64_t ready_ns = 0;    ///< wall clock: WaitReady saw it usable
};

/// What to ask a Provisioner for.
struct MachineRequest {
  std::string type;  ///< instance type; empty = the provider's default
  int count = 1;
  std::string image;                ///< OS image / AMI; empty = the provider's default
  Labels labels;                    ///< tags put on every machine
  std::int64_t max_lifetime_s = 0;  ///< written as an expiry label for reapers; 0 = none
};

/// A machine type a provider offers.
struct MachineType {
  std::string name;
  int vcpus = 0;
  std::uint64_t memory_bytes = 0;
  std::vector<AcceleratorInfo> accelerators;
};

}  // namespace bitfusion
