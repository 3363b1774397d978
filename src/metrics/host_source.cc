#include "metrics/host_source.h"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <filesystem>
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
  bool counter = false;
};
// Order matters: Collect appends in this order.
constexpr Field kLoadFields[] = {{"load.1m", "1"},
                                 {"load.5m", "1"},
                                 {"load.15m", "1"},
                                 {"tasks.running", "1"},
                                 {"tasks.total", "1"}};
constexpr Field kDiskFields[] = {
    {"disk.reads", "1", true},           {"disk.read_bytes", "bytes", true},
    {"disk.read_time", "s", true},       {"disk.writes", "1", true},
    {"disk.write_bytes", "bytes", true}, {"disk.write_time", "s", true},
    {"disk.in_flight", "1", false},      {"disk.io_time", "s", true}};
constexpr Field kNetFields[] = {{"net.rx_bytes", "bytes", true}, {"net.rx_packets", "1", true},
                                {"net.rx_errs", "1", true},      {"net.rx_drop", "1", true},
                                {"net.tx_bytes", "bytes", true}, {"net.tx_packets", "1", true},
                                {"net.tx_errs", "1", true},      {"net.tx_drop", "1", true}};
// Per line of a /proc/pressure file ("some", then "full"): the three averages, then the total.
constexpr Field kPressureFields[] = {
    {"pressure.some.avg10", "%"},  {"pressure.some.avg60", "%"},
    {"pressure.some.avg300", "%"}, {"pressure.some.total", "s", true},
    {"pressure.full.avg10", "%"},  {"pressure.full.avg60", "%"},
    {"pressure.full.avg300", "%"}, {"pressure.full.total", "s", true}};
constexpr const char* kPressureResources[] = {"cpu", "memory", "io"};

// Disks that only mirror memory or files: their I/O is counted elsewhere.
bool IsVirtualDisk(std::string_view name) {
  return name.starts_with("loop") || name.starts_with("ram") || name.starts_with("zram");
}

std::uint32_t DeclareSeries(SampleBatch& batch, const Field* fields, std::size_t count,
                            const char* label, std::string_view label_value) {
  const auto first = static_cast<std::uint32_t>(batch.series.size());
  for (std::size_t i = 0; i < count; ++i) {
    Series s{fields[i].metric, fields[i].unit, {}, fields[i].counter};
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
  BITFUSION_RETURN_IF_ERROR(uri.CheckQueryKeys({"proc_root", "sys_root"}));
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
  if (auto root = uri.Query("sys_root")) {
    if (root->empty()) {
      return InvalidArgumentError("option sys_root in " + uri.ToString() +
                                  " is empty; give the directory sysfs is mounted on");
    }
    options.sys_root = *root;
  }
  return options;
}

namespace {

// Pressure files that cannot be opened or read (no PSI in the kernel, or psi=0) are left closed;
// one warning covers the three.
void OpenPressure(const std::string& root, internal::ProcFile* files, std::vector<char>* buffers) {
  std::string missing;
  Status why;
  for (int i = 0; i < 3; ++i) {
    const std::string name = std::string("pressure/") + kPressureResources[i];
    auto file = ProcFile::Open(root + "/" + name, ProcFile::Shape::kSingleRecord);
    Status status = file.status();
    if (file) status = file->Read(buffers[i]).status();
    if (status.ok()) {
      files[i] = std::move(*file);
      continue;
    }
    missing += (missing.empty() ? "" : ", ") + name;
    if (why.ok()) why = status;
  }
  if (!missing.empty()) {
    LogAt(LogLevel::kWarning, "host metrics: ", why.message(),
          " (a kernel without pressure stall information, CONFIG_PSI, or booted with psi=0?); ",
          missing, " will not be sampled");
  }
}

// The CPUs whose frequency sysfs shows, in CPU order.
std::vector<std::pair<std::string, std::string>> CpufreqFiles(const std::string& sys_root) {
  std::vector<std::pair<std::string, std::string>> found;  // cpu number, file
  std::error_code ec;
  const std::filesystem::path dir = std::filesystem::path(sys_root) / "devices/system/cpu";
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.size() < 4 || !name.starts_with("cpu") ||
        !std::all_of(name.begin() + 3, name.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      continue;
    }
    const auto file = entry.path() / "cpufreq/scaling_cur_freq";
    if (std::filesystem::exists(file, ec)) found.emplace_back(name.substr(3), file.string());
  }
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) {
    return a.first.size() != b.first.size() ? a.first.size() < b.first.size() : a.first < b.first;
  });
  return found;
}

}  // namespace

Result<std::shared_ptr<HostSource>> HostSource::Make(const HostSourceOptions& options) {
  std::shared_ptr<HostSource> source(new HostSource());
  const std::string& root = options.proc_root;
  source->uri_ = "host";
  if (root != "/proc") source->uri_ += "?proc_root=" + root;
  if (options.sys_root != "/sys") {
    source->uri_ += (root != "/proc" ? "&sys_root=" : "?sys_root=") + options.sys_root;
  }
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
  // /proc/stat grows with CPUs and interrupts; the rest are small. Buffers grow when needed.
  source->buffers_[kStat].resize(64 * 1024);
  for (int part = kMeminfo; part < kParts; ++part) source->buffers_[part].resize(16 * 1024);
  OpenPressure(root, &source->files_[kPressureCpu], &source->buffers_[kPressureCpu]);
  if (auto f = OpenOptional(root, "diskstats", ProcFile::Shape::kRecords)) {
    source->files_[kDiskstats] = std::move(*f);
  }
  if (auto f = OpenOptional(root, "net/dev", ProcFile::Shape::kRecords)) {
    source->files_[kNetDev] = std::move(*f);
  }
  for (auto& [cpu, path] : CpufreqFiles(options.sys_root)) {
    auto file = ProcFile::Open(path, ProcFile::Shape::kSingleRecord);
    if (file) source->cpufreq_.push_back(Cpufreq{cpu, std::move(*file), 0});
  }
  if (source->cpufreq_.empty()) {
    LogOnceAt(LogLevel::kWarning, "host-cpufreq " + options.sys_root,
              "host metrics: no CPU frequency under ", options.sys_root,
              "/devices/system/cpu/cpu*/cpufreq (a VM, or no cpufreq driver); cpu.frequency will "
              "not be sampled");
  }
  source->cpufreq_buffer_.resize(256);
  return source;
}

HostSource::~HostSource() = default;

void HostSource::Reset(SampleBatch& batch) {
  cpu_rows_.Clear();
  mem_rows_.Clear();
  disk_rows_.Clear();
  net_rows_.Clear();
  load_first_series_ = DeclareSeries(batch, kLoadFields, std::size(kLoadFields), nullptr, {});
  for (int part = kPressureCpu; part <= kPressureIo; ++part) {
    if (!files_[part].is_open()) continue;
    pressure_first_series_[part] =
        DeclareSeries(batch, kPressureFields, std::size(kPressureFields), "resource",
                      kPressureResources[part - kPressureCpu]);
  }
  for (Cpufreq& f : cpufreq_) {
    const Field field{"cpu.frequency", "Hz"};
    f.series = DeclareSeries(batch, &field, 1, "cpu", f.cpu);
  }
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
    for (int part = kPressureCpu; part <= kPressureIo; ++part) {
      if (have[part]) ParsePressure(part, text[part], out);
    }
    if (have[kDiskstats]) ParseDisks(text[kDiskstats], batch, out);
    if (have[kNetDev]) ParseNet(text[kNetDev], batch, out);
    Status freq = CollectFrequencies(out);
    if (first.ok()) first = std::move(freq);
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
      for (std::uint32_t i = 0; i < kCpuFieldCount; ++i) fields[i] = {kCpuFields[i], "s", true};
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

// "some avg10=1.23 avg60=0.50 avg300=0.10 total=123456\nfull avg10=..." (total in µs;
// Documentation/accounting/psi.rst). The cpu file has a "full" line from Linux 5.13 on.
void HostSource::ParsePressure(int part, std::string_view text, BatchWriter& out) {
  const char* p = text.data();
  const char* const end = p + text.size();
  while (p < end) {
    const char* const line_end = NextLine(p, end);
    std::uint32_t s = pressure_first_series_[part];
    if (line_end - p > 5 && std::memcmp(p, "full ", 5) == 0) {
      s += 4;
    } else if (line_end - p <= 5 || std::memcmp(p, "some ", 5) != 0) {
      p = line_end;
      continue;
    }
    const char* q = p + 5;
    for (int field = 0; field < 4; ++field) {
      const void* eq = std::memchr(q, '=', static_cast<std::size_t>(line_end - q));
      if (eq == nullptr) break;
      q = static_cast<const char*>(eq) + 1;
      if (field < 3) {
        double v = 0;
        const auto [next, ec] = std::from_chars(q, line_end, v);
        if (ec != std::errc()) break;
        out.Append(s + static_cast<std::uint32_t>(field), v);
        q = next;
      } else {
        std::uint64_t total_us = 0;
        if (ParseU64(q, line_end, total_us)) {
          out.Append(s + 3, static_cast<double>(total_us) / 1e6);
        }
      }
    }
    p = line_end;
  }
}

// One small file per CPU, in kHz.
Status HostSource::CollectFrequencies(BatchWriter& out) {
  Status first;
  for (const Cpufreq& f : cpufreq_) {
    auto text = f.file.Read(cpufreq_buffer_);
    if (!text) {
      if (first.ok()) first = text.error();
      continue;
    }
    const char* p = text->data();
    std::uint64_t khz = 0;
    if (ParseU64(p, p + text->size(), khz)) out.Append(f.series, static_cast<double>(khz) * 1e3);
  }
  return first;
}

namespace internal {

bool IsPartitionOf(std::string_view name, std::string_view disk) {
  if (disk.empty() || name.size() <= disk.size() || name.substr(0, disk.size()) != disk) {
    return false;
  }
  std::string_view rest = name.substr(disk.size());
  const bool disk_ends_in_digit = disk.back() >= '0' && disk.back() <= '9';
  if (disk_ends_in_digit) {
    if (rest.front() != 'p') return false;
    rest.remove_prefix(1);
  }
  if (rest.empty()) return false;
  for (char c : rest) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

}  // namespace internal

BITFUSION_REGISTER(MetricSource, "host", HostSourceOptions, HostSource);

}  // namespace bitfusion
