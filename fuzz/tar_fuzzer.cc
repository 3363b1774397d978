// Tar archives from the engine (Container::CopyOut, image export): ReadTar on the whole
// archive, and TarExtractor fed the same bytes in pieces (its streaming state machine, the
// confinement of names to the destination, and its limits) into a scratch directory.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string_view>

#include "fuzz_util.h"
#include "runners/tar_archive.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view archive(reinterpret_cast<const char*>(data), size);
  auto entries = bitfusion::internal::ReadTar(archive);
  if (entries.ok()) {
    std::size_t total = 0;
    for (const auto& e : *entries) total += e.name.size() + e.link.size() + e.data.size();
    volatile std::size_t sink = total;
    (void)sink;
  }

  namespace fs = std::filesystem;
  const fs::path dest = bitfusion::fuzz::ScratchDir() / "x";
  std::error_code ec;
  fs::remove_all(dest, ec);
  fs::create_directory(dest, ec);
  bitfusion::internal::ExtractLimits limits;
  limits.max_bytes = 1 << 20;
  limits.max_entries = 256;
  auto extractor = bitfusion::internal::TarExtractor::Make(dest, limits);
  if (!extractor.ok()) return 0;
  // Pieces of varying size, as a transport would hand them over.
  std::size_t pos = 0, step = 1;
  while (pos < archive.size()) {
    const std::size_t n = std::min(step, archive.size() - pos);
    if (!(*extractor)->Write(archive.substr(pos, n)).ok()) break;
    pos += n;
    step = step * 7 % 1031 + 1;
  }
  (void)(*extractor)->Finish();
  extractor->reset();
  // Nothing may have been written outside the destination.
  for (const auto& entry : fs::directory_iterator(bitfusion::fuzz::ScratchDir())) {
    if (entry.path().filename() != "x") __builtin_trap();
  }
  return 0;
}
