// What a static:// host's fingerprint script prints over SSH (marker lines "@@BF-FILE /proc/...",
// "@@BF-LINK ...", "@@BF-UNAME ...", "@@BF-END" and file bodies): ParseRemoteFingerprint, which
// writes the files into a private tree and reads it with the inventory's parsers of
// /proc/cpuinfo, /proc/meminfo, /etc/os-release and sysfs (CPU topology, caches, NUMA, PCI).
#include <cstddef>
#include <cstdint>
#include <string>

#include "provisioners/static_provisioner.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto machine = bitfusion::ParseRemoteFingerprint(text);
  if (machine.ok()) {
    volatile std::size_t sink = machine->hostname.size() + machine->accelerators.size();
    (void)sink;
  }
  return 0;
}
