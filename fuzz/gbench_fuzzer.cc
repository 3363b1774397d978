// Google Benchmark JSON (bitfusion import gbench): ImportGoogleBenchmarkJson, whose exact
// number reading goes through JsonNumbersAsText.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "bitfusion/gbench_import.h"
#include "core/json_numbers.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  bitfusion::GbenchImportOptions options;
  options.run_id = "fuzz";  // skip hashing the input: SHA-256 is not what is fuzzed here
  auto imported = bitfusion::ImportGoogleBenchmarkJson(text, options);
  volatile std::size_t sink = imported.ok() && imported->samples.size();
  (void)sink;
  (void)bitfusion::internal::JsonNumbersAsText(text);
  return 0;
}
