// CDI spec files (/etc/cdi, /var/run/cdi): ParseCdiSpec, as JSON and as the block-style YAML
// subset it reads. The first byte chooses the syntax.
#include <cstddef>
#include <cstdint>
#include <string>

#include "devices/cdi_spec.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const bool yaml = (data[0] & 1) != 0;
  const std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  auto devices = bitfusion::ParseCdiSpec(text, yaml, yaml ? "fuzz.yaml" : "fuzz.json");
  if (devices.ok()) {
    std::size_t total = 0;
    for (const auto& d : *devices) total += d.QualifiedName().size() + d.device_nodes.size();
    volatile std::size_t sink = total;
    (void)sink;
  }
  return 0;
}
