// Plan files (bitfusion run SPEC): ParsePlan, and the device requests a plan's benchmarks carry.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "bitfusion/device.h"
#include "bitfusion/experiment.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto plan = bitfusion::ParsePlan(text, "fuzz.json");
  if (plan.ok()) {
    // Touch what was parsed, so a dangling view or bad value shows up under ASan.
    std::size_t total = plan->name.size() + plan->runner.size();
    for (const auto& b : plan->benchmarks) total += b.name.size();
    volatile std::size_t sink = total;
    (void)sink;
  }
  (void)bitfusion::ParseDeviceRequests(text);
  return 0;
}
