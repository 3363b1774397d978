#include "metrics/host_source.h"

#include <unistd.h>

#include <charconv>
#include <cstring>
#include <iterator>
#include <utility>

#include "bitfusion/log.h"
#include "bitfusion/registry.h"

namespace bitfusion {
namespace {

using internal::BatchWriter;
using internal::NextLine;
using internal::ParseU64;
using internal::ProcFile;
using internal::RowTable;
using internal::SkipBlanks;

inline std::string_view Token(const char* begin, const char* end) {
  return std::string_view(begin, static_cast<std::size_t>(end - begin));
}

constexpr const char* kCpuFields[] = {"cpu.user",   "cpu.nice", "cpu.system",  "cpu.idle",
                                      "cpu.iowait", "cpu.irq",  "cpu.softirq", "cpu.steal"};
constexpr std::uint32_t kCpuFieldCount = 8;

struct MemField {
  std::string_view key;
  const char* metric;
};
constexpr MemField kMemFields[] = {
    {"MemTotal", "mem.total"},
    {"MemFree", "mem.free"},
    {"MemAvailable", "mem.available"},
    {"Buffers", "mem.buffers"},
    {"Cached", "mem.cached"},
    {"SwapCached", "mem.swap_cached"},
    {"Active", "mem.active"},
    {"Inactive", "mem.inactive"},
    {"AnonPages", "mem.anon"},
    {"Mapped", "mem.mapped"},
    {"Shmem", "mem.shmem"},
    {"Slab", "mem.slab"},
    {"SReclaimable", "mem.slab_reclaimable"},
    {"Dirty", "mem.dirty"},
    {"Writeback", "mem.writeback"},
    {"SwapTotal", "mem.swap_total"},
    {"SwapFree", "mem.swap_free"},
    {"Committed_AS", "mem.committed"},
};

struct Field {
  const char* metric;
  const char* unit;
};
// Order matters: Collect appends in this order.
constexpr Field kLoadFields[] = {{"load.1m", "1"},
                                 {"load.5m", "1"},
                                 {"load.15m", "1"},
                                 {"tasks.running", "1"},
                                 {"tasks.total", "1"}};
constexpr Field kDiskFields[] = {{"disk.reads", "1"},           {"disk.read_bytes", "bytes"},
                                 {"disk.read_time", "s"},       {"disk.writes", "1"},
                                 {"disk.write_bytes", "bytes"}, {"disk.write_time", "s"},
                                 {"disk.in_flight", "1"},       {"disk.io_time", "s"}};
constexpr Field kNetFields[] = {
    {"net.rx_bytes", "bytes"}, {"net.rx_packets", "1"}, {"net.rx_errs", "1"}, {"net.rx_drop", "1"},
    {"net.tx_bytes", "bytes"}, {"net.tx_packets", "1"}, {"net.tx_errs", "1"}, {"net.tx_drop", "1"}};

// Disks that only mirror memory or files: their I/O is counted elsewhere.
bool IsVirtualDisk(std::string_view name) {
  return name.starts_with("loop") || name.starts_with("ram") || name.starts_with("zram");
}

std::uint32_t DeclareSeries(SampleBatch& batch, const Field* fields, std::size_t count,
                            const char* label, std::string_view label_value) {
  const auto first = static_cast<std::uint32_t>(batch.series.size());
  for (std::size_t i = 0; i < count; ++i) {
    Series s{fields[i].metric, fields[i].unit, {}};
    if (label != nullptr) s.labels.emplace(label, std::string(label_value));
    batch.AddSeries(std::move(s));
  }
  return first;
}

Result<ProcFile> OpenOptional(const std::string& root, const char* name, ProcFile::Shape shape) {
  auto file = ProcFile::Open(root + "/" + name, shape);
  if (!file) {
    LogAt(LogLevel::kWarning, "host metrics: ", file.error().message(), "; ", name,
          " will not be sampled");
  }
  return file;
}

}  // namespace

Result<HostSourceOptions> HostSourceOptions::FromUri(const Uri& uri) {
  BITFUSION_RETURN_IF_ERROR(uri.CheckQueryKeys({"proc_root"}));
  if (!uri.host.empty() || !uri.path.empty()) {
    return InvalidArgumentError("metric source " + uri.ToString() +
                                " takes no path; write \"host\" (or \"host:?proc_root=DIR\")");
  }
  HostSourceOptions options;
  if (auto root = uri.Query("proc_root")) {
    if (root->empty()) {
      return InvalidArgumentError("option proc_root in " + uri.ToString() +
                                  " is empty; give the directory procfs is mounted on");
    }
    options.proc_root = *root;
  }
  return options;
}

Result<std::shared_ptr<HostSource>> HostSource::Make(const HostSourceOptions& options) {
  std::shared_ptr<HostSource> source(new HostSource());
  const std::string& root = options.proc_root;
  source->uri_ = root == "/proc" ? "host" : "host:?proc_root=" + root;
  const long hz = ::sysconf(_SC_CLK_TCK);
  source->seconds_per_tick_ = 1.0 / static_cast<double>(hz > 0 ? hz : 100);

  auto stat = ProcFile::Open(root + "/stat", ProcFile::Shape::kSingleRecord);
  if (!stat) {
    return stat.error().WithContext("host metrics need procfs; is proc_root \"" + root +
                                    "\" where it is mounted?");
  }
  source->files_[kStat] = std::move(*stat);
  auto meminfo = ProcFile::Open(root + "/meminfo", ProcFile::Shape::kSingleRecord);
  if (!meminfo) {
    return meminfo.error().WithContext("host metrics need procfs; is proc_root \"" + root +
                                       "\" where it is mounted?");
  }
  source->files_[kMeminfo] = std::move(*meminfo);
  if (auto f = OpenOptional(root, "loadavg", ProcFile::Shape::kSingleRecord)) {
    source->files_[kLoadavg] = std::move(*f);
  }
  if (auto f = OpenOptional(root, "diskstats", ProcFile::Shape::kRecords)) {
    source->files_[kDiskstats] = std::move(*f);
  }
  if (auto f = OpenOptional(root, "net/dev", ProcFile::Shape::kRecords)) {
    source->files_[kNetDev] = std::move(*f);
  }
  // /proc/stat grows with CPUs and interrupts; the rest are small. Buffers grow when needed.
  source->buffers_[kStat].resize(64 * 1024);
  for (int part = kMeminfo; part < kParts; ++part) source->buffers_[part].resize(16 * 1024);
  return source;
}

HostSource::~HostSource() = default;

void HostSource::Reset(SampleBatch& batch) {
  cpu_rows_.Clear();
  mem_rows_.Clear();
  disk_rows_.Clear();
  net_rows_.Clear();
  load_first_series_ = DeclareSeries(batch, kLoadFields, std::size(kLoadFields), nullptr, {});
  declared_ = true;
}

Status HostSource::Collect(Timestamp now, SampleBatch& batch) {
  if (!declared_ || batch.series.size() != series_end_) Reset(batch);
  Status first;
  // Every file is read before any is parsed: the values of one sample are read closer together
  // in time, and the kernel's read paths run back to back.
  std::string_view text[kParts];
  bool have[kParts] = {};
  for (int part = 0; part < kParts; ++part) {
    if (!files_[part].is_open()) continue;
    auto read = files_[part].Read(buffers_[part]);
    if (read) {
      text[part] = *read;
      have[part] = true;
    } else if (first.ok()) {
      first = read.error();
    }
  }
  const std::size_t before = batch.size();
  {
    BatchWriter out(batch, now, last_samples_);
    if (have[kStat]) ParseCpu(text[kStat], batch, out);
    if (have[kMeminfo]) ParseMemory(text[kMeminfo], batch, out);
    if (have[kLoadavg]) {
      Status load = ParseLoad(text[kLoadavg], out);
      if (first.ok()) first = std::move(load);
    }
    if (have[kDiskstats]) ParseDisks(text[kDiskstats], batch, out);
    if (have[kNetDev]) ParseNet(text[kNetDev], batch, out);
    last_samples_ = out.size() - before;
  }
  series_end_ = batch.series.size();
  return first;
}

void HostSource::ParseCpu(std::string_view text, SampleBatch& batch, BatchWriter& out) {
  const char* p = text.data();
  const char* const end = p + text.size();
  // The cpu lines come first; everything after them (intr, ctxt, ...) is not ours.
  for (std::size_t position = 0; end - p > 3 && std::memcmp(p, "cpu", 3) == 0; ++position) {
    const char* key_end = p + 3;
    while (key_end < end && *key_end != ' ' && *key_end != '\n') ++key_end;
    const std::string_view key = Token(p, key_end);
    const RowTable::Row* row = cpu_rows_.Find(position, key);
    if (row == nullptr) {
      const std::string_view cpu = key.size() == 3 ? std::string_view("all") : key.substr(3);
      Field fields[kCpuFieldCount];
      for (std::uint32_t i = 0; i < kCpuFieldCount; ++i) fields[i] = {kCpuFields[i], "s"};
      row = cpu_rows_.Add(position, key, DeclareSeries(batch, fields, kCpuFieldCount, "cpu", cpu),
                          true);
    }
    const char* q = key_end;
    std::uint64_t ticks = 0;
    for (std::uint32_t i = 0; i < kCpuFieldCount && ParseU64(q, end, ticks); ++i) {
      out.Append(row->first_series + i, static_cast<double>(ticks) * seconds_per_tick_);
    }
    p = NextLine(q, end);
  }
}

void HostSource::ParseMemory(std::string_view text, SampleBatch& batch, BatchWriter& out) {
  const char* p = text.data();
  const char* const end = p + text.size();
  for (std::size_t position = 0; p < end; ++position) {
    const char* line = p;
    p = NextLine(p, end);
    const RowTable::Row* row = mem_rows_.Expected(position, line, p, ':');
    if (row == nullptr) {
      const void* colon = std::memchr(line, ':', static_cast<std::size_t>(p - line));
      if (colon == nullptr) continue;
      const std::string_view key = Token(line, static_cast<const char*>(colon));
      row = mem_rows_.Find(position, key);
      if (row == nullptr) {
        const char* metric = nullptr;
        for (const MemField& f : kMemFields) {
          if (f.key == key) metric = f.metric;
        }
        const Field field{metric, "bytes"};
        row = metric == nullptr ? mem_rows_.Add(position, key, 0, false)
                                : mem_rows_.Add(position, key,
                                                DeclareSeries(batch, &field, 1, nullptr, {}), true);
      }
    }
    if (!row->exported) continue;
    const char* q = line + row->key.size() + 1;
    std::uint64_t v = 0;
    if (ParseU64(q, p, v)) {
      q = SkipBlanks(q, p);
      const std::uint64_t scale = (q < p && *q == 'k') ? 1024 : 1;
      out.Append(row->first_series, static_cast<double>(v * scale));
    }
  }
}

Status HostSource::ParseLoad(std::string_view text, BatchWriter& out) {
  const char* p = text.data();
  const char* const end = p + text.size();
  const auto malformed = [&] {
    return IOError("cannot parse " + files_[kLoadavg].path() + ": \"" + std::string(text) +
                   "\"; expected \"L1 L5 L15 RUNNING/TOTAL LASTPID\"");
  };
  double load[3];
  for (double& v : load) {
    p = SkipBlanks(p, end);
    const auto [next, ec] = std::from_chars(p, end, v);
    if (ec != std::errc()) return malformed();
    p = next;
  }
  std::uint64_t running = 0, total = 0;
  if (!ParseU64(p, end, running) || p >= end || *p != '/') return malformed();
  ++p;
  if (!ParseU64(p, end, total)) return malformed();
  const std::uint32_t s = load_first_series_;
  out.Append(s + 0, load[0]);
  out.Append(s + 1, load[1]);
  out.Append(s + 2, load[2]);
  out.Append(s + 3, static_cast<double>(running));
  out.Append(s + 4, static_cast<double>(total));
  return Status::OK();
}

void HostSource::ParseDisks(std::string_view text, SampleBatch& batch, BatchWriter& out) {
  const char* p = text.data();
  const char* const end = p + text.size();
  for (std::size_t position = 0; p < end; ++position) {
    const char* q = p;
    std::uint64_t major = 0, minor = 0;
    if (!ParseU64(q, end, major) || !ParseU64(q, end, minor)) {
      p = NextLine(q, end);
      continue;
    }
    q = SkipBlanks(q, end);
    const char* name_end = q;
    while (name_end < end && *name_end != ' ' && *name_end != '\n') ++name_end;
    const std::string_view name = Token(q, name_end);
    if (name.empty()) {
      p = NextLine(q, end);
      continue;
    }
    const RowTable::Row* row = disk_rows_.Find(position, name);
    if (row == nullptr) {
      bool exported = !IsVirtualDisk(name);
      for (const RowTable::Row& r : disk_rows_.rows()) {
        if (internal::IsPartitionOf(name, r.key)) exported = false;
      }
      const std::uint32_t first =
          exported ? DeclareSeries(batch, kDiskFields, std::size(kDiskFields), "device", name) : 0;
      row = disk_rows_.Add(position, name, first, exported);
    }
    q = name_end;
    // Fields after the name: reads, reads merged, sectors read, ms reading, writes, writes
    // merged, sectors written, ms writing, in flight, ms doing I/O (Documentation/admin-guide/
    // iostats.rst). Sectors are 512 bytes whatever the device's own sector size.
    std::uint64_t f[10];
    std::size_t n = 0;
    if (row->exported) {
      while (n < 10 && ParseU64(q, end, f[n])) ++n;
    }
    p = NextLine(q, end);
    if (n < 10) continue;
    const std::uint32_t s = row->first_series;
    out.Append(s + 0, static_cast<double>(f[0]));
    out.Append(s + 1, static_cast<double>(f[2] * 512));
    out.Append(s + 2, static_cast<double>(f[3]) / 1000.0);
    out.Append(s + 3, static_cast<double>(f[4]));
    out.Append(s + 4, static_cast<double>(f[6] * 512));
    out.Append(s + 5, static_cast<double>(f[7]) / 1000.0);
    out.Append(s + 6, static_cast<double>(f[8]));
    out.Append(s + 7, static_cast<double>(f[9]) / 1000.0);
  }
}

void HostSource::ParseNet(std::string_view text, SampleBatch& batch, BatchWriter& out) {
  const char* p = text.data();
  const char* const end = p + text.size();
  for (std::size_t position = 0; p < end; ++position) {
    const char* name_begin = SkipBlanks(p, end);
    p = NextLine(p, end);
    const RowTable::Row* row = net_rows_.Expected(position, name_begin, p, ':');
    if (row == nullptr) {
      // The two header lines have no colon; interface names cannot contain one.
      const void* colon = std::memchr(name_begin, ':', static_cast<std::size_t>(p - name_begin));
      if (colon == nullptr) continue;
      const std::string_view name = Token(name_begin, static_cast<const char*>(colon));
      row = net_rows_.Find(position, name);
      if (row == nullptr) {
        row = net_rows_.Add(position, name,
                            DeclareSeries(batch, kNetFields, std::size(kNetFields), "iface", name),
                            true);
      }
    }
    // rx: bytes packets errs drop fifo frame compressed multicast, then tx: bytes packets errs
    // drop fifo colls carrier compressed.
    std::uint64_t f[12];
    const char* q = name_begin + row->key.size() + 1;
    std::size_t n = 0;
    while (n < 12 && ParseU64(q, p, f[n])) ++n;
    if (n < 12) continue;
    const std::uint32_t s = row->first_series;
    out.Append(s + 0, static_cast<double>(f[0]));
    out.Append(s + 1, static_cast<double>(f[1]));
    out.Append(s + 2, static_cast<double>(f[2]));
    out.Append(s + 3, static_cast<double>(f[3]));
    out.Append(s + 4, static_cast<double>(f[8]));
    out.Append(s + 5, static_cast<double>(f[9]));
    out.Append(s + 6, static_cast<double>(f[10]));
    out.Append(s + 7, static_cast<double>(f[11]));
  }
}

BITFUSION_REGISTER(MetricSource, "host", HostSourceOptions, HostSource);

}  // namespace bitfusion
