// cgroup files as the cgroup:PATH and container:ID sources read them. The input is NUL-separated
// parts: /proc/PID/cgroup (read by CgroupDirs::FromProcCgroup), then the v2 group's cpu.stat,
// memory.current, memory.max, memory.stat, io.stat, pids.current, pids.max, then the v1 group's
// cpuacct.usage, cpuacct.stat, cpu.stat, memory.usage_in_bytes, memory.limit_in_bytes,
// memory.stat, blkio.throttle.io_service_bytes, blkio.throttle.io_serviced, pids.current,
// pids.max. Each tree gets a source that collects twice (declaring, then steady state).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_util.h"
#include "metrics/cgroup_source.h"

namespace {

constexpr const char* kFiles[] = {
    "v2/system.slice/docker-fuzz.scope/cpu.stat",
    "v2/system.slice/docker-fuzz.scope/memory.current",
    "v2/system.slice/docker-fuzz.scope/memory.max",
    "v2/system.slice/docker-fuzz.scope/memory.stat",
    "v2/system.slice/docker-fuzz.scope/io.stat",
    "v2/system.slice/docker-fuzz.scope/pids.current",
    "v2/system.slice/docker-fuzz.scope/pids.max",
    "v1/cpuacct/docker/fuzz/cpuacct.usage",
    "v1/cpuacct/docker/fuzz/cpuacct.stat",
    "v1/cpu/docker/fuzz/cpu.stat",
    "v1/memory/docker/fuzz/memory.usage_in_bytes",
    "v1/memory/docker/fuzz/memory.limit_in_bytes",
    "v1/memory/docker/fuzz/memory.stat",
    "v1/blkio/docker/fuzz/blkio.throttle.io_service_bytes",
    "v1/blkio/docker/fuzz/blkio.throttle.io_serviced",
    "v1/pids/docker/fuzz/pids.current",
    "v1/pids/docker/fuzz/pids.max",
};
constexpr std::size_t kCount = sizeof(kFiles) / sizeof(kFiles[0]);

struct Tree {
  std::vector<std::unique_ptr<bitfusion::fuzz::RewrittenFile>> files;
  std::string v1, v2;
  Tree() {
    const auto& root = bitfusion::fuzz::ScratchDir();
    for (const char* name : kFiles) {
      files.push_back(std::make_unique<bitfusion::fuzz::RewrittenFile>(root / name));
    }
    bitfusion::fuzz::RewrittenFile(root / "v2/cgroup.controllers").Set("cpu io memory pids\n");
    v1 = (root / "v1").string();
    v2 = (root / "v2").string();
  }
};

void CollectTwice(bitfusion::CgroupSource& source) {
  bitfusion::SampleBatch batch;
  (void)source.Collect(bitfusion::Timestamp{1'000'000'000, 1'000'000'000}, batch);
  batch.ClearSamples();
  (void)source.Collect(bitfusion::Timestamp{2'000'000'000, 2'000'000'000}, batch);
  for (std::size_t i = 0; i < batch.size(); ++i) {
    if (batch.series_index[i] >= batch.series.size()) __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static Tree tree;
  const auto parts = bitfusion::fuzz::SplitParts(
      std::string_view(reinterpret_cast<const char*>(data), size), kCount + 1);
  for (std::size_t i = 0; i < kCount; ++i) tree.files[i]->Set(parts[i + 1]);

  // /proc/PID/cgroup against both trees: only the parsing matters, the directories may not exist.
  for (const std::string* root : {&tree.v1, &tree.v2}) {
    auto dirs = bitfusion::CgroupDirs::FromProcCgroup(*root, parts[0]);
    if (dirs.ok() && dirs->path.size() == static_cast<std::size_t>(-1)) __builtin_trap();
  }
  for (const auto& [root, path] : {std::pair{&tree.v2, "/system.slice/docker-fuzz.scope"},
                                   std::pair{&tree.v1, "/docker/fuzz"}}) {
    bitfusion::CgroupSourceOptions options;
    options.root = *root;
    options.path = path;
    if (auto source = bitfusion::CgroupSource::Make(options); source.ok()) CollectTwice(**source);
  }
  return 0;
}
