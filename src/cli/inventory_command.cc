#include <cstdio>
#include <iostream>
#include <sstream>

#include "bitfusion/provisioner.h"
#include "bitfusion/serialize.h"
#include "cli/commands.h"

namespace bitfusion::cli {
namespace {

namespace po = boost::program_options;

std::string Bytes(std::uint64_t bytes) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, v == static_cast<std::uint64_t>(v) ? "%.0f %s" : "%.1f %s", v,
                kUnits[u]);
  return buf;
}

void PrintText(const MachineInfo& m) {
  auto row = [](const char* key, const std::string& value) {
    std::printf("%-13s %s\n", key, value.c_str());
  };
  row("hostname", m.hostname);
  row("os", m.os);
  row("kernel", m.kernel);
  row("cpu", m.cpu.model_name + " (" + m.cpu.vendor + ", " + m.cpu.architecture + ")");
  row("topology", std::to_string(m.cpu.sockets) + " socket(s), " + std::to_string(m.cpu.cores) +
                      " core(s), " + std::to_string(m.cpu.threads) + " thread(s), " +
                      std::to_string(m.cpu.numa_nodes) + " NUMA node(s)");
  if (m.cpu.max_mhz > 0) row("max MHz", std::to_string(static_cast<int>(m.cpu.max_mhz)));
  std::string caches;
  for (const auto& c : m.cpu.caches) {
    const char* suffix = c.type == "Data" ? "d" : c.type == "Instruction" ? "i" : "";
    caches +=
        (caches.empty() ? "" : ", ") + ("L" + std::to_string(c.level) + suffix + " " +
                                        Bytes(c.size_bytes) + " x" + std::to_string(c.instances));
  }
  row("caches", caches.empty() ? "unknown" : caches);
  std::string flags;
  for (const auto& f : m.cpu.flags) flags += (flags.empty() ? "" : " ") + f;
  row("isa", flags.empty() ? "-" : flags);
  row("memory", Bytes(m.memory_bytes));
  if (m.accelerators.empty()) row("accelerators", "none");
  for (const auto& a : m.accelerators) {
    row("accelerator", a.kind + " " + a.vendor + " " + a.vendor_id + ":" + a.device_id + " at " +
                           a.pci_address + " (driver " + (a.driver.empty() ? "none" : a.driver) +
                           ", NUMA node " + std::to_string(a.numa_node) + ")");
  }
}

}  // namespace

int InventoryCommand(const std::vector<std::string>& args) {
  po::options_description options("options");
  options.add_options()("json", "print the fingerprint as JSON")(
      "provisioner", po::value<std::string>()->default_value("local://"),
      "where to read the fingerprint (local:// is this host)");
  po::variables_map vm;
  if (auto exit =
          ParseOptions("inventory", "[--json] [--provisioner URI]", options, {}, args, vm)) {
    return *exit;
  }
  auto provisioner = ProvisionerFromUri(vm["provisioner"].as<std::string>());
  if (!provisioner) {
    std::cerr << "bitfusion inventory: " << provisioner.error().message() << "\n";
    return kExitUsage;
  }
  auto machines = (*provisioner)->List();
  if (!machines) {
    std::cerr << "bitfusion inventory: " << machines.error().message() << "\n";
    return kExitFailed;
  }
  for (const auto& m : *machines) {
    if (vm.count("json")) {
      std::cout << ToJson(m, /*pretty=*/true) << "\n";
    } else {
      PrintText(m);
    }
  }
  return kExitOk;
}

}  // namespace bitfusion::cli
