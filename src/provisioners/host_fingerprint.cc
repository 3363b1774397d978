#include "provisioners/host_fingerprint.h"

#include <sys/utsname.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include "core/cpu_list.h"
#include "core/text_file.h"
#include "devices/pci_discovery.h"

namespace bitfusion {
namespace {

namespace fs = std::filesystem;
using internal::ParseNumber;
using internal::ReadInt;
using internal::ReadTextFile;
using internal::ReadTrimmed;
using internal::Trim;

// "32K", "1024K", "32M" -> bytes.
std::uint64_t ParseSize(std::string_view text) {
  const char unit = text.empty() ? ' ' : text.back();
  const int shift = unit == 'K' ? 10 : unit == 'M' ? 20 : unit == 'G' ? 30 : 0;
  auto n = ParseNumber<std::uint64_t>(shift == 0 ? text : text.substr(0, text.size() - 1));
  return n ? *n << shift : 0;
}

// "key : value" lines of /proc/cpuinfo, one map per processor block.
std::vector<std::map<std::string, std::string>> ParseCpuinfo(const std::string& text) {
  std::vector<std::map<std::string, std::string>> blocks(1);
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (Trim(line).empty()) {
      if (!blocks.back().empty()) blocks.emplace_back();
      continue;
    }
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    blocks.back()[Trim(line.substr(0, colon))] = Trim(line.substr(colon + 1));
  }
  if (blocks.back().empty()) blocks.pop_back();
  return blocks;
}

const std::set<std::string>& InterestingFlags() {
  static const std::set<std::string> flags = {
      "sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
      "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8", "aes", "sha_ni", "vaes", "vpclmulqdq",
      // arm64 "Features"
      "asimd", "sve", "sve2", "sha2", "sha3", "atomics", "bf16", "i8mm"};
  return flags;
}

void ReadCpu(const FingerprintRoots& roots, const std::string& cpuinfo, CpuInfo& cpu) {
  const auto blocks = ParseCpuinfo(cpuinfo);
  std::map<std::string, std::string> first;
  for (const auto& b : blocks) {
    if (b.count("processor")) {
      first = b;
      break;
    }
  }
  auto get = [&](const char* key) {
    auto it = first.find(key);
    return it == first.end() ? std::string() : it->second;
  };
  cpu.vendor = get("vendor_id");
  if (cpu.vendor.empty()) cpu.vendor = get("CPU implementer");
  cpu.model_name = get("model name");
  if (cpu.model_name.empty()) {
    // arm64 has no model name; "Hardware"/"CPU part" at least identify the core type.
    for (const auto& b : blocks) {
      if (auto it = b.find("Hardware"); it != b.end()) cpu.model_name = it->second;
    }
    if (cpu.model_name.empty() && !get("CPU part").empty()) {
      cpu.model_name = "CPU part " + get("CPU part");
    }
  }
  std::istringstream flags(get("flags").empty() ? get("Features") : get("flags"));
  for (std::string f; flags >> f;) {
    if (InterestingFlags().count(f)) cpu.flags.push_back(f);
  }

  const fs::path cpu_dir = fs::path(roots.sys) / "devices/system/cpu";
  std::vector<int> online;
  // A list naming CPUs no Linux machine has is not believed (cpuinfo's processors count then).
  if (auto list = ReadTrimmed(cpu_dir / "online")) {
    for (const unsigned id : internal::CpuIds(*list).value_or(std::vector<unsigned>{})) {
      online.push_back(static_cast<int>(id));
    }
  }
  if (online.empty()) {
    for (const auto& b : blocks) {
      if (auto it = b.find("processor"); it != b.end()) {
        if (auto n = ParseNumber<int>(it->second)) online.push_back(*n);
      }
    }
  }
  cpu.threads = static_cast<int>(online.size());

  std::set<int> packages;
  std::set<std::pair<int, int>> cores;
  // By (level, type); an instance is one distinct set of CPUs sharing the cache.
  std::map<std::pair<int, std::string>, CacheInfo> caches;
  std::map<std::pair<int, std::string>, std::set<std::string>> cache_instances;
  double max_khz = 0;
  for (int id : online) {
    const fs::path dir = cpu_dir / ("cpu" + std::to_string(id));
    const auto package = ReadInt(dir / "topology/physical_package_id");
    const auto core = ReadInt(dir / "topology/core_id");
    if (package) packages.insert(*package);
    if (package && core) cores.insert({*package, *core});
    if (auto khz = ReadInt(dir / "cpufreq/cpuinfo_max_freq")) {
      max_khz = std::max(max_khz, static_cast<double>(*khz));
    }
    std::error_code ec;
    for (const auto& index : fs::directory_iterator(dir / "cache", ec)) {
      if (index.path().filename().string().rfind("index", 0) != 0) continue;
      const auto level = ReadInt(index.path() / "level");
      const auto type = ReadTrimmed(index.path() / "type");
      const auto size = ReadTrimmed(index.path() / "size");
      if (!level || !type || !size) continue;
      const auto shared =
          ReadTrimmed(index.path() / "shared_cpu_list").value_or("cpu" + std::to_string(id));
      CacheInfo& info = caches[{*level, *type}];
      info.level = *level;
      info.type = *type;
      info.size_bytes = ParseSize(*size);
      info.line_bytes = ReadInt(index.path() / "coherency_line_size").value_or(0);
      cache_instances[{*level, *type}].insert(shared);
    }
  }
  // Without sysfs topology fall back to cpuinfo's physical id / core id.
  if (packages.empty()) {
    for (const auto& b : blocks) {
      auto p = b.find("physical id");
      auto c = b.find("core id");
      if (p == b.end()) continue;
      const int pid = ParseNumber<int>(p->second).value_or(0);
      packages.insert(pid);
      if (c != b.end()) cores.insert({pid, ParseNumber<int>(c->second).value_or(0)});
    }
  }
  cpu.sockets = packages.empty() ? 1 : static_cast<int>(packages.size());
  cpu.cores = cores.empty() ? cpu.threads : static_cast<int>(cores.size());
  for (auto& [key, info] : caches) {  // map order: by level, then type
    info.instances = static_cast<int>(cache_instances[key].size());
    cpu.caches.push_back(info);
  }
  if (max_khz > 0) {
    cpu.max_mhz = max_khz / 1000.0;
  } else {
    for (const auto& b : blocks) {
      if (auto it = b.find("cpu MHz"); it != b.end()) {
        cpu.max_mhz = std::max(cpu.max_mhz, std::atof(it->second.c_str()));
      }
    }
  }
  int nodes = 0;
  std::error_code ec;
  for (const auto& entry :
       fs::directory_iterator(fs::path(roots.sys) / "devices/system/node", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.size() > 4 && name.rfind("node", 0) == 0 &&
        std::all_of(name.begin() + 4, name.end(), ::isdigit)) {
      ++nodes;
    }
  }
  cpu.numa_nodes = std::max(nodes, 1);
}

}  // namespace

std::vector<AcceleratorInfo> ReadPciAccelerators(const std::string& sys_root) {
  std::vector<AcceleratorInfo> out;
  for (const auto& fn : ScanPciFunctions(sys_root)) {
    auto cls = ClassifyAccelerator(fn);
    if (!cls) continue;
    AcceleratorInfo acc;
    acc.kind = cls->kind;
    acc.vendor = cls->vendor;
    acc.vendor_id = fn.vendor_id;
    acc.device_id = fn.device_id;
    acc.class_code = fn.class_code;
    acc.pci_address = fn.address;
    acc.numa_node = fn.numa_node;
    acc.driver = fn.driver;
    out.push_back(std::move(acc));
  }
  return out;
}

Result<MachineInfo> ReadHostFingerprint(const FingerprintRoots& roots) {
  MachineInfo m;
  const fs::path proc(roots.proc);
  const auto cpuinfo = ReadTextFile(proc / "cpuinfo");
  if (!cpuinfo) return NotFoundError("cannot read " + (proc / "cpuinfo").string());
  const auto meminfo = ReadTextFile(proc / "meminfo");
  if (!meminfo) return NotFoundError("cannot read " + (proc / "meminfo").string());
  ReadCpu(roots, *cpuinfo, m.cpu);
  std::istringstream mem(*meminfo);
  for (std::string line; std::getline(mem, line);) {
    if (line.rfind("MemTotal:", 0) == 0) {
      std::istringstream fields(line.substr(9));
      std::uint64_t kib = 0;
      fields >> kib;
      m.memory_bytes = kib * 1024;
    }
  }
  utsname uts{};
  ::uname(&uts);
  m.hostname = roots.hostname.empty() ? uts.nodename : roots.hostname;
  m.kernel = roots.kernel.empty() ? uts.release : roots.kernel;
  m.cpu.architecture = roots.architecture.empty() ? uts.machine : roots.architecture;
  if (auto os = ReadTextFile(roots.os_release)) {
    std::istringstream lines(*os);
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind("PRETTY_NAME=", 0) == 0) {
        std::string name = Trim(line.substr(12));  // os-release may quote the value
        if (name.size() >= 2 && (name.front() == '"' || name.front() == '\'') &&
            name.back() == name.front()) {
          name = name.substr(1, name.size() - 2);
        }
        m.os = name;
      }
    }
  }
  m.accelerators = ReadPciAccelerators(roots.sys);
  return m;
}

}  // namespace bitfusion
