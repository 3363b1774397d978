// Machines: what a Provisioner hands out and what a run record names as its hardware.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "bitfusion/export.h"
#include "bitfusion/sample.h"
#include "bitfusion/status.h"

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

/// How to log in to a machine.
struct SshEndpoint {
  std::string host;  ///< IP or DNS name; empty = not reachable over SSH (yet)
  int port = 22;
  std::string user;      ///< the image's login user when the provider says; empty = unknown
  std::string key_name;  ///< the provider's name of the key pair put on the machine
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
  Labels labels;      ///< tags
  std::string zone;   ///< availability zone or data centre; empty when it has none
  bool spot = false;  ///< interruptible (spot / preemptible) capacity
  SshEndpoint ssh;
  /// Lifecycle, wall clock ns since the epoch (0 = not yet), as PerfKit's boot benchmark
  /// records it: the create call returned; the provider reported it running; its SSH port
  /// answered; WaitReady found it usable.
  std::int64_t created_ns = 0;
  std::int64_t running_ns = 0;
  std::int64_t ssh_ready_ns = 0;
  std::int64_t ready_ns = 0;
};

/// Hardware a request needs; empty / zero fields ask for nothing. Matching is
/// case-insensitive; "arm64" and "aarch64" (and "x86_64" and "amd64") are the same.
struct MachineRequirements {
  std::string cpu_architecture;  ///< "x86_64", "arm64"
  std::string cpu_vendor;        ///< "intel", "amd", "aws" (a substring of the type's vendor)
  int min_vcpus = 0;
  std::uint64_t min_memory_bytes = 0;
  std::string accelerator_kind;    ///< "gpu", "fpga", "accelerator"; empty = none needed
  std::string accelerator_vendor;  ///< "NVIDIA", "AMD", "Xilinx"
  std::string accelerator_model;   ///< a substring of the model: "A10G", "H100"
  int accelerator_count = 0;       ///< at least this many; 0 with a kind = at least 1

  BITFUSION_EXPORT bool empty() const;
  /// "gpu:NVIDIA A10G x1, >= 8 vCPUs, >= 32 GiB, x86_64"; "anything" when empty.
  BITFUSION_EXPORT std::string ToString() const;
};

/// What to ask a Provisioner for.
struct MachineRequest {
  std::string type;                  ///< instance type; empty = resolve `requirements`
  MachineRequirements requirements;  ///< used when `type` is empty (ResolveMachineType)
  int count = 1;
  std::string image;         ///< OS image / AMI; empty = the provider's default
  std::string zone;          ///< availability zone; empty = the provider's choice
  bool spot = false;         ///< interruptible (spot) capacity instead of on-demand
  std::string ssh_key_name;  ///< the provider's key pair to install; empty = none
  Labels labels;             ///< tags put on every machine (besides the ownership tags)
  std::string run_id;        ///< written as the run id tag; empty = none
  /// Written as the expiry tag (creation + ttl) that reapers act on; PerfKit's default 4 h.
  /// 0 = never expires.
  std::int64_t ttl_s = 4 * 3600;
  /// Makes a retried Create idempotent where the provider supports it (EC2 ClientToken); empty =
  /// the provisioner makes one per call.
  std::string client_token;
};

/// A machine type a provider offers.
struct MachineType {
  std::string name;
  int vcpus = 0;
  std::uint64_t memory_bytes = 0;
  std::string cpu_architecture;  ///< "x86_64", "arm64"; empty = unknown
  std::string cpu_vendor;        ///< "Intel", "AMD", "AWS"; empty = unknown
  std::vector<AcceleratorInfo> accelerators;
  /// On-demand price in US dollars per hour, from the provider or data the project ships;
  /// negative = unknown.
  double hourly_price_usd = -1.0;
};

/// The type a request resolves to, and why.
struct TypeResolution {
  MachineType type;
  /// One line per type considered: "g5.xlarge: ok, $1.006/h" or "t3.micro: 2 vCPUs < 8".
  std::vector<std::string> explanation;
  /// One line saying what was chosen and why it won.
  std::string summary;
};

/// The cheapest type in `catalogue` that satisfies `requirements`: the lowest known hourly
/// price; types without a price come after priced ones, smallest first (vCPUs, memory,
/// accelerators, name). NotFound (naming the closest misses) when none satisfies them.
BITFUSION_EXPORT Result<TypeResolution> ResolveMachineType(
    const std::vector<MachineType>& catalogue, const MachineRequirements& requirements);

/// Reads an accelerator requirement as `--gpu` and plans write it: "KIND[:COUNT]", where KIND
/// is a model ("A10G"), a vendor ("nvidia", "amd", "xilinx", "intel", "habana", "qualcomm",
/// "aws") or "any", and COUNT 1..64 (default 1). `kind` is "gpu" or "fpga"; sets
/// accelerator_kind, _count and _vendor or _model. InvalidArgument naming `what` otherwise.
BITFUSION_EXPORT Status ParseAcceleratorRequirement(const std::string& kind,
                                                    const std::string& spec,
                                                    const std::string& what,
                                                    MachineRequirements& out);

/// Whether `type` satisfies `requirements`; empty, or the first reason it does not.
BITFUSION_EXPORT std::string UnmetRequirement(const MachineType& type,
                                              const MachineRequirements& requirements);

}  // namespace bitfusion
