// procfs and sysfs files as the host and process:PID metric sources read them: /proc/stat,
// meminfo, loadavg, diskstats, net/dev, pressure/{cpu,memory,io}, cpufreq's scaling_cur_freq,
// and /proc/PID/{stat,status,io}. The input is those twelve files' contents in that order,
// separated by NUL bytes; each is written into a scratch tree, the sources are made on it and
// collect twice (the first tick declares the series, the second is the steady state).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "fuzz_util.h"
#include "metrics/host_source.h"
#include "metrics/process_source.h"

namespace {

constexpr const char* kFiles[] = {
    "proc/stat",
    "proc/meminfo",
    "proc/loadavg",
    "proc/diskstats",
    "proc/net/dev",
    "proc/pressure/cpu",
    "proc/pressure/memory",
    "proc/pressure/io",
    "sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq",
    "proc/4242/stat",
    "proc/4242/status",
    "proc/4242/io",
};
constexpr std::size_t kCount = sizeof(kFiles) / sizeof(kFiles[0]);

struct Tree {
  std::vector<std::unique_ptr<bitfusion::fuzz::RewrittenFile>> files;
  std::string proc, sys;
  Tree() {
    const auto& root = bitfusion::fuzz::ScratchDir();
    for (const char* name : kFiles) {
      files.push_back(std::make_unique<bitfusion::fuzz::RewrittenFile>(root / name));
    }
    proc = (root / "proc").string();
    sys = (root / "sys").string();
  }
};

template <class Source>
void CollectTwice(Source& source) {
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
      std::string_view(reinterpret_cast<const char*>(data), size), kCount);
  for (std::size_t i = 0; i < kCount; ++i) tree.files[i]->Set(parts[i]);

  bitfusion::HostSourceOptions host;
  host.proc_root = tree.proc;
  host.sys_root = tree.sys;
  if (auto source = bitfusion::HostSource::Make(host); source.ok()) CollectTwice(**source);

  bitfusion::ProcessSourceOptions process;
  process.pid = 4242;
  process.proc_root = tree.proc;
  if (auto source = bitfusion::ProcessSource::Make(process); source.ok()) CollectTwice(**source);
  return 0;
}
