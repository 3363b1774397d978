// bitfusion devices: the accelerators a DeviceAllocator finds, with who holds them.
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "bitfusion/device_allocator.h"
#include "bitfusion/serialize.h"
#include "cli/commands.h"

namespace bitfusion::cli {
namespace {

namespace po = boost::program_options;

std::string Gib(std::uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f GiB", static_cast<double>(bytes) / (1ull << 30));
  return buf;
}

void PrintText(const std::vector<Device>& devices, const std::string& where) {
  if (devices.empty()) {
    std::printf("no accelerators found (%s)\n", where.c_str());
    return;
  }
  for (const auto& d : devices) {
    std::printf("%s  %s %s %s (index %d, NUMA node %d, driver %s)\n", d.id.c_str(),
                DeviceKindName(d.kind), d.vendor.c_str(), d.model.c_str(), d.index, d.numa_node,
                d.driver.empty() ? "none" : d.driver.c_str());
    auto row = [](const char* key, const std::string& value) {
      if (!value.empty()) std::printf("  %-16s %s\n", key, value.c_str());
    };
    row("memory", d.memory_bytes > 0 ? Gib(d.memory_bytes) : "");
    std::string nodes;
    for (const auto& n : d.device_nodes) nodes += (nodes.empty() ? "" : " ") + n;
    row("nodes", nodes.empty() ? "(none under /dev)" : nodes);
    for (const auto& [key, value] : d.properties) row(key.c_str(), value);
  }
}

}  // namespace

int DevicesCommand(const std::vector<std::string>& args) {
  po::options_description options("options");
  options.add_options()("json", "print the devices as a JSON array")(
      "sysfs-root", po::value<std::string>(),
      "read a recorded tree instead of this host: a directory holding sys/, dev/ and "
      "optionally proc/ and etc/cdi (same as --allocator sysfs://DIR)")(
      "allocator", po::value<std::string>()->default_value("local://"),
      "the DeviceAllocator to ask (local:// is this host)");
  po::variables_map vm;
  if (auto exit = ParseOptions("devices", "[--json] [--sysfs-root DIR] [--allocator URI]", options,
                               {}, args, vm)) {
    return *exit;
  }
  std::string uri = vm["allocator"].as<std::string>();
  if (vm.count("sysfs-root")) {
    if (!vm["allocator"].defaulted()) {
      std::cerr << "bitfusion devices: give --sysfs-root or --allocator, not both\n";
      return kExitUsage;
    }
    std::error_code ec;
    const auto root = std::filesystem::absolute(vm["sysfs-root"].as<std::string>(), ec);
    uri = "sysfs://" + root.lexically_normal().string();
  }
  auto allocator = DeviceAllocatorFromUri(uri);
  if (!allocator) {
    std::cerr << "bitfusion devices: " << allocator.error().message() << "\n";
    return allocator.error().code() == StatusCode::kInvalidArgument ||
                   allocator.error().code() == StatusCode::kNotFound
               ? kExitUsage
               : kExitFailed;
  }
  auto devices = (*allocator)->Discover();
  if (!devices) {
    std::cerr << "bitfusion devices: " << devices.error().message() << "\n";
    return kExitFailed;
  }
  if (vm.count("json")) {
    std::cout << "[";
    for (std::size_t i = 0; i < devices->size(); ++i) {
      std::cout << (i ? ",\n" : "\n") << ToJson((*devices)[i], /*pretty=*/true);
    }
    std::cout << (devices->empty() ? "]\n" : "\n]\n");
  } else {
    PrintText(*devices, uri);
  }
  return kExitOk;
}

}  // namespace bitfusion::cli
