// static:// inventory files: ParseInventory (hosts, ports, keys with "~", labels).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "provisioners/static_provisioner.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto hosts = bitfusion::ParseInventory(text, "/etc/bitfusion/hosts.json", "/home/fuzz");
  if (hosts.ok()) {
    std::size_t total = 0;
    for (const auto& h : *hosts) total += h.name.size() + h.address.size() + h.labels.size();
    volatile std::size_t sink = total;
    (void)sink;
  }
  return 0;
}
