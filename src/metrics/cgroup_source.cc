#include "metrics/cgroup_source.h"

#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
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

constexpr std::uint32_t kNoSeries = UINT32_MAX;
// Scale for v1's cpuacct.stat, which counts USER_HZ ticks.
constexpr double kTicks = -1;

struct Metric {
  const char* name;
  const char* unit;
  bool counter;
  CgroupSource::Part v2_part;
  const char* v2_key;  // nullptr for a file holding one number
  double v2_scale;
  CgroupSource::Part v1_part;
  const char* v1_key;
  double v1_scale;
};

using P = CgroupSource::Part;
// Order matters only for the order series are declared in.
constexpr Metric kMetrics[] = {
    {"cgroup.cpu.usage", "s", true, P::kCpuStat, "usage_usec", 1e-6, P::kCpuUsage, nullptr, 1e-9},
    {"cgroup.cpu.user", "s", true, P::kCpuStat, "user_usec", 1e-6, P::kCpuacctStat, "user", kTicks},
    {"cgroup.cpu.system", "s", true, P::kCpuStat, "system_usec", 1e-6, P::kCpuacctStat, "system",
     kTicks},
    {"cgroup.cpu.periods", "1", true, P::kCpuStat, "nr_periods", 1, P::kCpuStat, "nr_periods", 1},
    {"cgroup.cpu.throttled_periods", "1", true, P::kCpuStat, "nr_throttled", 1, P::kCpuStat,
     "nr_throttled", 1},
    {"cgroup.cpu.throttled_time", "s", true, P::kCpuStat, "throttled_usec", 1e-6, P::kCpuStat,
     "throttled_time", 1e-9},
    {"cgroup.memory.usage", "bytes", false, P::kMemCurrent, nullptr, 1, P::kMemCurrent, nullptr, 1},
    {"cgroup.memory.limit", "bytes", false, P::kMemMax, nullptr, 1, P::kMemMax, nullptr, 1},
    {"cgroup.memory.anon", "bytes", false, P::kMemStat, "anon", 1, P::kMemStat, "total_rss", 1},
    {"cgroup.memory.file", "bytes", false, P::kMemStat, "file", 1, P::kMemStat, "total_cache", 1},
    {"cgroup.memory.shmem", "bytes", false, P::kMemStat, "shmem", 1, P::kMemStat, "total_shmem", 1},
    {"cgroup.memory.file_mapped", "bytes", false, P::kMemStat, "file_mapped", 1, P::kMemStat,
     "total_mapped_file", 1},
    {"cgroup.memory.file_dirty", "bytes", false, P::kMemStat, "file_dirty", 1, P::kMemStat,
     "total_dirty", 1},
    {"cgroup.memory.file_writeback", "bytes", false, P::kMemStat, "file_writeback", 1, P::kMemStat,
     "total_writeback", 1},
    {"cgroup.memory.anon_thp", "bytes", false, P::kMemStat, "anon_thp", 1, P::kMemStat,
     "total_rss_huge", 1},
    {"cgroup.memory.active_anon", "bytes", false, P::kMemStat, "active_anon", 1, P::kMemStat,
     "total_active_anon", 1},
    {"cgroup.memory.inactive_anon", "bytes", false, P::kMemStat, "inactive_anon", 1, P::kMemStat,
     "total_inactive_anon", 1},
    {"cgroup.memory.active_file", "bytes", false, P::kMemStat, "active_file", 1, P::kMemStat,
     "total_active_file", 1},
    {"cgroup.memory.inactive_file", "bytes", false, P::kMemStat, "inactive_file", 1, P::kMemStat,
     "total_inactive_file", 1},
    {"cgroup.memory.unevictable", "bytes", false, P::kMemStat, "unevictable", 1, P::kMemStat,
     "total_unevictable", 1},
    {"cgroup.memory.pgfault", "1", true, P::kMemStat, "pgfault", 1, P::kMemStat, "total_pgfault",
     1},
    {"cgroup.memory.pgmajfault", "1", true, P::kMemStat, "pgmajfault", 1, P::kMemStat,
     "total_pgmajfault", 1},
    {"cgroup.pids.current", "1", false, P::kPidsCurrent, nullptr, 1, P::kPidsCurrent, nullptr, 1},
    {"cgroup.pids.max", "1", false, P::kPidsMax, nullptr, 1, P::kPidsMax, nullptr, 1},
};
constexpr std::size_t kMetricCount = std::size(kMetrics);

struct IoField {
  const char* metric;
  const char* unit;
};
constexpr IoField kIoFields[] = {{"cgroup.io.read_bytes", "bytes"},
                                 {"cgroup.io.write_bytes", "bytes"},
                                 {"cgroup.io.reads", "1"},
                                 {"cgroup.io.writes", "1"}};

// v1 reports "no limit" as PAGE_COUNTER_MAX pages: 2^63 - 1 rounded down to a page.
constexpr std::uint64_t kV1Unlimited = std::uint64_t{1} << 62;

// The file of `part` in `dirs`, relative name included; empty when that version has none.
std::string FileOf(const CgroupDirs& dirs, CgroupSource::Part part) {
  auto in = [](const std::string& dir, const char* name) {
    return dir.empty() ? std::string() : dir + "/" + name;
  };
  if (dirs.v2) {
    switch (part) {
      case P::kCpuStat: return in(dirs.unified, "cpu.stat");
      case P::kMemCurrent: return in(dirs.unified, "memory.current");
      case P::kMemMax: return in(dirs.unified, "memory.max");
      case P::kMemStat: return in(dirs.unified, "memory.stat");
      case P::kIo: return in(dirs.unified, "io.stat");
      case P::kPidsCurrent: return in(dirs.unified, "pids.current");
      case P::kPidsMax: return in(dirs.unified, "pids.max");
      default: return {};
    }
  }
  switch (part) {
    case P::kCpuStat: return in(dirs.cpu, "cpu.stat");
    case P::kCpuUsage: return in(dirs.cpuacct, "cpuacct.usage");
    case P::kCpuacctStat: return in(dirs.cpuacct, "cpuacct.stat");
    case P::kMemCurrent: return in(dirs.memory, "memory.usage_in_bytes");
    case P::kMemMax: return in(dirs.memory, "memory.limit_in_bytes");
    case P::kMemStat: return in(dirs.memory, "memory.stat");
    case P::kIo: return in(dirs.blkio, "blkio.throttle.io_service_bytes");
    case P::kIoServiced: return in(dirs.blkio, "blkio.throttle.io_serviced");
    case P::kPidsCurrent: return in(dirs.pids, "pids.current");
    case P::kPidsMax: return in(dirs.pids, "pids.max");
    default: return {};
  }
}

bool IsDir(const std::string& path) {
  std::error_code ec;
  return !path.empty() && std::filesystem::is_directory(path, ec);
}

std::string Join(const std::string& root, std::string_view path) {
  std::string out = root;
  while (!out.empty() && out.back() == '/') out.pop_back();
  if (path.empty() || path == "/") return out;
  if (path.front() != '/') out += '/';
  out += path;
  while (out.size() > 1 && out.back() == '/') out.pop_back();
  return out;
}

bool IsCgroupFs(const std::string& dir) {
  struct statfs fs {};
  if (::statfs(dir.c_str(), &fs) != 0) return false;
  constexpr long kCgroupMagic = 0x27e0eb, kCgroup2Magic = 0x63677270;
  return static_cast<long>(fs.f_type) == kCgroupMagic ||
         static_cast<long>(fs.f_type) == kCgroup2Magic;
}

}  // namespace

Result<CgroupSourceOptions> CgroupSourceOptions::FromUri(const Uri& uri) {
  BITFUSION_RETURN_IF_ERROR(uri.CheckQueryKeys({"root", "detail_every"}));
  CgroupSourceOptions options;
  options.path = uri.host.empty() ? uri.path : "/" + uri.host + uri.path;
  if (options.path.empty()) {
    return InvalidArgumentError("metric source " + uri.ToString() +
                                " names no group; write cgroup:PATH with PATH relative to the "
                                "hierarchy root, e.g. cgroup:/docker/ID or "
                                "cgroup:/system.slice/docker-ID.scope");
  }
  if (auto root = uri.Query("root")) {
    if (root->empty()) {
      return InvalidArgumentError("option root in " + uri.ToString() +
                                  " is empty; give the directory the cgroup filesystems are "
                                  "mounted on (default /sys/fs/cgroup)");
    }
    options.root = *root;
  }
  BITFUSION_ASSIGN_OR_RETURN(options.detail_every, DetailEveryFromUri(uri));
  return options;
}

Result<int> DetailEveryFromUri(const Uri& uri) {
  BITFUSION_ASSIGN_OR_RETURN(const std::int64_t every, uri.QueryInt("detail_every", 1));
  if (every < 1 || every > 1'000'000) {
    return InvalidArgumentError("option detail_every in " + uri.ToString() +
                                " must be a whole number of samples from 1 (every sample) up");
  }
  return static_cast<int>(every);
}

Result<CgroupDirs> CgroupDirs::ForPath(const std::string& root, const std::string& path) {
  CgroupDirs dirs;
  dirs.path = path.empty() ? "/" : path;
  std::error_code ec;
  if (std::filesystem::exists(Join(root, "cgroup.controllers"), ec)) {
    dirs.v2 = true;
    dirs.unified = Join(root, path);
    if (!IsDir(dirs.unified)) {
      return NotFoundError("no cgroup " + dirs.unified +
                           " (cgroup v2); check the path (relative to the hierarchy root, e.g. "
                           "/system.slice/docker-ID.scope) and that the group still exists");
    }
    return dirs;
  }
  std::string looked;
  bool any = false;
  for (auto [member, controller] :
       {std::pair{&CgroupDirs::cpu, "cpu"}, std::pair{&CgroupDirs::cpuacct, "cpuacct"},
        std::pair{&CgroupDirs::memory, "memory"}, std::pair{&CgroupDirs::blkio, "blkio"},
        std::pair{&CgroupDirs::pids, "pids"}}) {
    std::string dir = Join(Join(root, controller), path);
    if (IsDir(dir)) {
      dirs.*member = std::move(dir);
      any = true;
    } else {
      looked += (looked.empty() ? "" : ", ") + dir;
    }
  }
  if (!any) {
    return NotFoundError("no cgroup \"" + dirs.path + "\" under " + root +
                         " (cgroup v1: looked for " + looked +
                         "); check the path (relative to the hierarchy root, e.g. /docker/ID), "
                         "the option root, and that the group still exists");
  }
  return dirs;
}

Result<CgroupDirs> CgroupDirs::FromProcCgroup(const std::string& root, std::string_view text) {
  std::error_code ec;
  const bool v2 = std::filesystem::exists(Join(root, "cgroup.controllers"), ec);
  CgroupDirs dirs;
  dirs.v2 = v2;
  // Lines are "ID:CONTROLLERS:PATH"; v2's is "0::PATH".
  const char* p = text.data();
  const char* const end = p + text.size();
  while (p < end) {
    const char* line_end = NextLine(p, end);
    std::string_view line(p, static_cast<std::size_t>(line_end - p));
    p = line_end;
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
    const auto c1 = line.find(':');
    if (c1 == std::string_view::npos) continue;
    const auto c2 = line.find(':', c1 + 1);
    if (c2 == std::string_view::npos) continue;
    const std::string_view controllers = line.substr(c1 + 1, c2 - c1 - 1);
    const std::string_view path = line.substr(c2 + 1);
    if (v2) {
      if (line.substr(0, c1) == "0" && controllers.empty()) {
        dirs.unified = Join(root, path);
        dirs.path = std::string(path);
      }
      continue;
    }
    // "cpu,cpuacct" is one hierarchy mounted with both; ROOT/cpu and ROOT/cpuacct are links to it
    // on the usual layouts, so each controller is looked up under its own name.
    std::size_t start = 0;
    while (start <= controllers.size()) {
      std::size_t comma = controllers.find(',', start);
      if (comma == std::string_view::npos) comma = controllers.size();
      const std::string_view c = controllers.substr(start, comma - start);
      std::string* member = c == "cpu"       ? &dirs.cpu
                            : c == "cpuacct" ? &dirs.cpuacct
                            : c == "memory"  ? &dirs.memory
                            : c == "blkio"   ? &dirs.blkio
                            : c == "pids"    ? &dirs.pids
                                             : nullptr;
      if (member != nullptr) {
        std::string dir = Join(Join(root, std::string(c)), path);
        if (IsDir(dir)) *member = std::move(dir);
        if (dirs.path.empty() || c == "memory") dirs.path = std::string(path);
      }
      start = comma + 1;
    }
  }
  if (v2 ? !IsDir(dirs.unified)
         : dirs.cpu.empty() && dirs.cpuacct.empty() && dirs.memory.empty() && dirs.blkio.empty() &&
               dirs.pids.empty()) {
    return NotFoundError(
        std::string("the process's cgroup (") + (v2 ? "v2" : "v1") + ", \"" +
        std::string(text.substr(0, 200)) + "\") has no directory under " + root +
        "; has it exited, or is the cgroup filesystem mounted elsewhere (option root)?");
  }
  return dirs;
}

Result<std::shared_ptr<CgroupSource>> CgroupSource::Make(const CgroupSourceOptions& options) {
  if (options.path.empty()) {
    return InvalidArgumentError("cgroup source needs a group path, e.g. /docker/ID");
  }
  BITFUSION_ASSIGN_OR_RETURN(CgroupDirs dirs, CgroupDirs::ForPath(options.root, options.path));
  std::string uri = "cgroup:" + options.path;
  std::string query;
  if (options.root != "/sys/fs/cgroup") query += "&root=" + options.root;
  if (options.detail_every != 1) query += "&detail_every=" + std::to_string(options.detail_every);
  if (!query.empty()) {
    // Not "?" + query.substr(1): GCC 12 at -O3 reports a bogus -Wrestrict overlap for a
    // one-character literal plus a temporary string (GCC bug 105329).
    uri += '?';
    uri.append(query, 1);
  }
  return Make(dirs, std::move(uri), {}, options.detail_every);
}

Result<std::shared_ptr<CgroupSource>> CgroupSource::Make(const CgroupDirs& dirs, std::string uri,
                                                         Labels labels, int detail_every) {
  std::shared_ptr<CgroupSource> source(new CgroupSource());
  source->detail_every_ = std::max(1, detail_every);
  source->uri_ = std::move(uri);
  source->v2_ = dirs.v2;
  source->labels_ = std::move(labels);
  source->labels_.emplace("cgroup", dirs.path);
  const long hz = ::sysconf(_SC_CLK_TCK);
  source->seconds_per_tick_ = 1.0 / static_cast<double>(hz > 0 ? hz : 100);

  std::string missing;
  Status why;
  int opened = 0;
  if (!dirs.v2) {
    for (auto [dir, name] : {std::pair{&dirs.cpu, "cpu"}, std::pair{&dirs.cpuacct, "cpuacct"},
                             std::pair{&dirs.memory, "memory"}, std::pair{&dirs.blkio, "blkio"},
                             std::pair{&dirs.pids, "pids"}}) {
      if (dir->empty()) missing += std::string(missing.empty() ? "" : ", ") + name + " controller";
    }
  }
  for (int part = 0; part < kParts; ++part) {
    // Empty: not a file of this version, or its v1 controller is absent (listed above).
    const std::string file = FileOf(dirs, static_cast<Part>(part));
    if (file.empty()) continue;
    const bool records = part == kIo || part == kIoServiced || part == kMemStat;
    auto opened_file =
        ProcFile::Open(file, records ? ProcFile::Shape::kRecords : ProcFile::Shape::kSingleRecord);
    Status status = opened_file.status();
    source->buffers_[part].resize(part == kMemStat || part == kIo ? 8192 : 4096);
    if (opened_file) status = opened_file->Read(source->buffers_[part]).status();
    if (!status.ok()) {
      missing += std::string(missing.empty() ? "" : ", ") + file;
      if (why.ok()) why = status;
      continue;
    }
    source->files_[part] = std::move(*opened_file);
    if (source->main_dir_.empty()) {
      source->main_dir_ = std::filesystem::path(file).parent_path().string();
    }
    ++opened;
  }
  if (opened == 0) {
    return NotFoundError("cgroup " + dirs.path + ": none of its statistics files could be read (" +
                         (why.ok() ? std::string("no controller directory") : why.message()) +
                         "); check the path and that the group still exists");
  }
  if (!missing.empty()) {
    LogAt(LogLevel::kWarning, "cgroup metrics of ", dirs.path, ": no ", missing,
          why.ok() ? std::string() : " (" + why.message() + ")",
          "; their metrics will not be sampled");
  }
  source->check_exists_ = !IsCgroupFs(source->main_dir_);
  return source;
}

CgroupSource::~CgroupSource() = default;

void CgroupSource::Declare(SampleBatch& batch) {
  series_.assign(kMetricCount, kNoSeries);
  io_rows_.Clear();
  for (std::size_t i = 0; i < kMetricCount; ++i) {
    const Metric& m = kMetrics[i];
    const Part part = v2_ ? m.v2_part : m.v1_part;
    if (!files_[part].is_open()) continue;
    series_[i] = static_cast<std::uint32_t>(batch.series.size());
    batch.AddSeries(Series{m.name, m.unit, labels_, m.counter});
  }
  declared_ = true;
}

Status CgroupSource::Gone(const Status& why) const {
  return NotFoundError("cgroup " + labels_.at("cgroup") + " is gone (" + why.message() + ")");
}

Status CgroupSource::Collect(Timestamp now, SampleBatch& batch) {
  if (!declared_ || batch.series.size() != series_end_) Declare(batch);
  if (check_exists_ && ::access(main_dir_.c_str(), F_OK) != 0) {
    return Gone(ErrnoError(errno, main_dir_));
  }
  std::string_view text[kParts];
  Status first;
  const bool detail = calls_++ % detail_every_ == 0;
  for (int part = 0; part < kParts; ++part) {
    if (!files_[part].is_open()) continue;
    // The cheap, fast-moving ones every time; the rest on detail ticks.
    const bool every_time = part == kCpuUsage || part == kMemCurrent || (v2_ && part == kCpuStat);
    if (!detail && !every_time) continue;
    auto read = files_[part].Read(buffers_[part]);
    if (read) {
      text[part] = *read;
      continue;
    }
    // A removed group's files answer ENODEV; the directory is then gone too.
    if (::access(main_dir_.c_str(), F_OK) != 0) return Gone(read.error());
    if (first.ok()) first = read.error();
  }
  const std::size_t before = batch.size();
  {
    BatchWriter out(batch, now, last_samples_);
    for (int part = 0; part < kParts; ++part) {
      if (text[part].empty()) continue;
      switch (static_cast<Part>(part)) {
        case kCpuStat:
        case kCpuacctStat:
        case kMemStat: ParseKeyed(static_cast<Part>(part), text[part], out); break;
        case kIo:
          if (v2_) {
            ParseIoV2(text[part], batch, out);
          } else {
            ParseIoV1(0, text[part], batch, out);
          }
          break;
        case kIoServiced: ParseIoV1(1, text[part], batch, out); break;
        default: ParseSingle(static_cast<Part>(part), text[part], out); break;
      }
    }
    last_samples_ = out.size() - before;
  }
  series_end_ = batch.series.size();
  return first;
}

// "key value" lines; a key is looked up in the metric table the first time it is seen at its
// line position (keyed_rows_), then only checked.
void CgroupSource::ParseKeyed(Part part, std::string_view text, BatchWriter& out) {
  RowTable& rows = keyed_rows_[part];
  const char* p = text.data();
  const char* const end = p + text.size();
  for (std::size_t line = 0; p < end; ++line) {
    const char* const line_end = NextLine(p, end);
    const RowTable::Row* row = rows.Expected(line, p, line_end, ' ');
    if (row == nullptr) {
      const void* space = std::memchr(p, ' ', static_cast<std::size_t>(line_end - p));
      if (space == nullptr) {
        p = line_end;
        continue;
      }
      const std::string_view key(p, static_cast<std::size_t>(static_cast<const char*>(space) - p));
      row = rows.Find(line, key);
      if (row == nullptr) {
        std::uint32_t metric = 0;
        bool reported = false;
        for (std::size_t i = 0; i < kMetricCount && !reported; ++i) {
          const Metric& m = kMetrics[i];
          const char* mk = v2_ ? m.v2_key : m.v1_key;
          if ((v2_ ? m.v2_part : m.v1_part) != part || mk == nullptr || series_[i] == kNoSeries ||
              key != mk) {
            continue;
          }
          metric = static_cast<std::uint32_t>(i);
          reported = true;
        }
        row = rows.Add(line, key, metric, reported);
      }
    }
    if (row->exported) {
      const Metric& m = kMetrics[row->first_series];
      const char* q = p + row->key.size();
      std::uint64_t v = 0;
      if (ParseU64(q, line_end, v)) {
        double scale = v2_ ? m.v2_scale : m.v1_scale;
        if (scale == kTicks) scale = seconds_per_tick_;
        out.Append(series_[row->first_series], static_cast<double>(v) * scale);
      }
    }
    p = line_end;
  }
}

// One number ("max" for no limit).
void CgroupSource::ParseSingle(Part part, std::string_view text, BatchWriter& out) {
  for (std::size_t i = 0; i < kMetricCount; ++i) {
    const Metric& m = kMetrics[i];
    if ((v2_ ? m.v2_part : m.v1_part) != part || series_[i] == kNoSeries) continue;
    const char* p = text.data();
    std::uint64_t v = 0;
    if (!ParseU64(p, p + text.size(), v)) return;  // "max": no limit
    if (part == kMemMax && !v2_ && v >= kV1Unlimited) return;
    out.Append(series_[i], static_cast<double>(v) * (v2_ ? m.v2_scale : m.v1_scale));
    return;
  }
}

std::uint32_t CgroupSource::IoRow(std::size_t position, std::string_view device,
                                  SampleBatch& batch) {
  const RowTable::Row* row = io_rows_.Find(position, device);
  if (row == nullptr) {
    const auto first = static_cast<std::uint32_t>(batch.series.size());
    for (const IoField& f : kIoFields) {
      Series s{f.metric, f.unit, labels_, true};
      s.labels.emplace("device", std::string(device));
      batch.AddSeries(std::move(s));
    }
    row = io_rows_.Add(position, device, first, true);
  }
  return row->first_series;
}

// "8:16 rbytes=1459200 wbytes=314773504 rios=192 wios=353 dbytes=0 dios=0"
void CgroupSource::ParseIoV2(std::string_view text, SampleBatch& batch, BatchWriter& out) {
  const char* p = text.data();
  const char* const end = p + text.size();
  for (std::size_t position = 0; p < end; ++position) {
    const char* const line_end = NextLine(p, end);
    const void* space = std::memchr(p, ' ', static_cast<std::size_t>(line_end - p));
    if (space == nullptr) {
      p = line_end;
      continue;
    }
    const char* q = static_cast<const char*>(space);
    const std::uint32_t first =
        IoRow(position, std::string_view(p, static_cast<std::size_t>(q - p)), batch);
    while (q < line_end) {
      q = SkipBlanks(q, line_end);
      const char* key = q;
      while (q < line_end && *q != '=' && *q != ' ' && *q != '\n') ++q;
      if (q >= line_end || *q != '=') break;
      const std::string_view k(key, static_cast<std::size_t>(q - key));
      ++q;
      std::uint64_t v = 0;
      if (!ParseU64(q, line_end, v)) break;
      int field = -1;
      if (k == "rbytes") {
        field = 0;
      } else if (k == "wbytes") {
        field = 1;
      } else if (k == "rios") {
        field = 2;
      } else if (k == "wios") {
        field = 3;
      }
      if (field >= 0) out.Append(first + static_cast<std::uint32_t>(field), static_cast<double>(v));
    }
    p = line_end;
  }
}

// "254:0 Read 8388608" lines, then "254:0 Write ...", Sync, Async, Discard, Total per device, and
// a last "Total N" line. `file` 0: bytes (io_service_bytes), 1: operations (io_serviced).
void CgroupSource::ParseIoV1(int file, std::string_view text, SampleBatch& batch,
                             BatchWriter& out) {
  const char* p = text.data();
  const char* const end = p + text.size();
  for (std::size_t line = 0; p < end; ++line) {
    const char* const line_end = NextLine(p, end);
    const void* space = std::memchr(p, ' ', static_cast<std::size_t>(line_end - p));
    if (space == nullptr) {
      p = line_end;
      continue;
    }
    const char* q = static_cast<const char*>(space);
    const std::string_view device(p, static_cast<std::size_t>(q - p));
    q = SkipBlanks(q, line_end);
    int op = -1;
    if (line_end - q > 5 && std::memcmp(q, "Read ", 5) == 0) {
      op = 0;
      q += 5;
    } else if (line_end - q > 6 && std::memcmp(q, "Write ", 6) == 0) {
      op = 1;
      q += 6;
    }
    p = line_end;
    if (op < 0 || device.find(':') == std::string_view::npos) continue;
    std::uint64_t v = 0;
    if (!ParseU64(q, line_end, v)) continue;
    // Lines of the two files interleave in the position table.
    const std::uint32_t first = IoRow(line * 2 + static_cast<std::size_t>(file), device, batch);
    out.Append(first + static_cast<std::uint32_t>(file * 2 + op), static_cast<double>(v));
  }
}

BITFUSION_REGISTER(MetricSource, "cgroup", CgroupSourceOptions, CgroupSource);

}  // namespace bitfusion
