#include "metrics/process_source.h"

#include <string.h>
#include <unistd.h>

#include <charconv>
#include <cstring>
#include <string_view>
#include <utility>

#include "bitfusion/log.h"
#include "bitfusion/registry.h"

namespace bitfusion {
namespace {

using internal::BatchWriter;
using internal::ParseI64;
using internal::ParseU64;
using internal::ProcFile;
using internal::SkipBlanks;

struct Field {
  const char* metric;
  const char* unit;
};
// Order matters: Collect appends in this order.
constexpr Field kStatFields[] = {
    {"proc.cpu.user", "s"}, {"proc.cpu.system", "s"}, {"proc.minflt", "1"},   {"proc.majflt", "1"},
    {"proc.threads", "1"},  {"proc.rss", "bytes"},    {"proc.vsize", "bytes"}};
constexpr Field kStatusFields[] = {{"proc.ctxt.voluntary", "1"}, {"proc.ctxt.nonvoluntary", "1"}};
constexpr std::string_view kIoKeys[] = {"rchar", "wchar", "read_bytes", "write_bytes"};
constexpr Field kIoFields[] = {{"proc.io.rchar", "bytes"},
                               {"proc.io.wchar", "bytes"},
                               {"proc.io.read_bytes", "bytes"},
                               {"proc.io.write_bytes", "bytes"}};
constexpr std::size_t kStatSeries = std::size(kStatFields);
constexpr std::size_t kStatusSeries = std::size(kStatusFields);

// /proc/PID/stat fields, numbered as in proc(5).
constexpr int kMinflt = 10, kMajflt = 12, kUtime = 14, kStime = 15, kNumThreads = 20, kVsize = 23,
              kRss = 24;

constexpr std::string_view kVoluntary = "\nvoluntary_ctxt_switches:";
constexpr std::string_view kNonvoluntary = "\nnonvoluntary_ctxt_switches:";

// The number after the first `needle` at or after `from` in `text`, if there is one.
const char* FindValue(std::string_view text, std::size_t from, std::string_view needle) {
  if (from > text.size()) return nullptr;
  const void* hit = ::memmem(text.data() + from, text.size() - from, needle.data(), needle.size());
  return hit == nullptr ? nullptr : static_cast<const char*>(hit) + needle.size();
}

}  // namespace

Result<ProcessSourceOptions> ProcessSourceOptions::FromUri(const Uri& uri) {
  BITFUSION_RETURN_IF_ERROR(uri.CheckQueryKeys({"proc_root"}));
  ProcessSourceOptions options;
  const std::string& text = uri.path;
  long long pid = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), pid);
  if (!uri.host.empty() || text.empty() || ec != std::errc() || end != text.data() + text.size() ||
      pid <= 0 || pid > 0x7fffffff) {
    return InvalidArgumentError("metric source " + uri.ToString() +
                                " does not name a process; write process:PID with PID a "
                                "positive number, e.g. process:1234");
  }
  options.pid = static_cast<pid_t>(pid);
  if (auto root = uri.Query("proc_root")) {
    if (root->empty()) {
      return InvalidArgumentError("option proc_root in " + uri.ToString() +
                                  " is empty; give the directory procfs is mounted on");
    }
    options.proc_root = *root;
  }
  return options;
}

Result<std::shared_ptr<ProcessSource>> ProcessSource::Make(const ProcessSourceOptions& options) {
  if (options.pid <= 0) {
    return InvalidArgumentError("process source needs a positive PID, not " +
                                std::to_string(options.pid));
  }
  std::shared_ptr<ProcessSource> source(new ProcessSource());
  source->pid_ = options.pid;
  const std::string pid = std::to_string(options.pid);
  source->uri_ = "process:" + pid;
  if (options.proc_root != "/proc") source->uri_ += "?proc_root=" + options.proc_root;
  const long hz = ::sysconf(_SC_CLK_TCK);
  source->seconds_per_tick_ = 1.0 / static_cast<double>(hz > 0 ? hz : 100);
  const long page = ::sysconf(_SC_PAGESIZE);
  source->page_bytes_ = static_cast<double>(page > 0 ? page : 4096);
  for (auto& buffer : source->buffers_) buffer.resize(4096);

  const std::string dir = options.proc_root + "/" + pid + "/";
  auto stat = ProcFile::Open(dir + "stat", ProcFile::Shape::kSingleRecord);
  if (!stat) {
    if (stat.error().code() == StatusCode::kNotFound) {
      return NotFoundError("no process " + pid + " to sample (" + stat.error().message() +
                           "); check the PID and that it is still running");
    }
    return stat.error().WithContext("sampling process " + pid);
  }
  source->stat_ = std::move(*stat);
  auto status = ProcFile::Open(dir + "status", ProcFile::Shape::kSingleRecord);
  if (!status) return status.error().WithContext("sampling process " + pid);
  source->status_ = std::move(*status);

  // I/O accounting is checked when read, not when opened: try it once now so a refusal is
  // reported at setup instead of on the first tick.
  auto io = ProcFile::Open(dir + "io", ProcFile::Shape::kSingleRecord);
  Status io_status = io.status();
  if (io) {
    io_status = io->Read(source->buffers_[2]).status();
    if (io_status.code() == StatusCode::kNotFound) {
      return NotFoundError("process " + pid + " exited while being set up for sampling");
    }
  }
  if (io_status.ok()) {
    source->io_ = std::move(*io);
  } else {
    const char* hint = io_status.code() == StatusCode::kNotFound
                           ? "a kernel without task I/O accounting?"
                           : "reading it needs the same user or CAP_SYS_PTRACE";
    LogAt(LogLevel::kWarning, "process ", pid, ": ", io_status.message(), " (", hint,
          "); proc.io metrics will not be sampled");
  }
  return source;
}

ProcessSource::~ProcessSource() = default;

Status ProcessSource::Gone(const char* why) const {
  return NotFoundError("process " + std::to_string(pid_) + " is gone (" + why + ")");
}

Status ProcessSource::Collect(Timestamp now, SampleBatch& batch) {
  if (!declared_ || batch.series.size() != series_end_) {
    first_series_ = static_cast<std::uint32_t>(batch.series.size());
    const std::string pid = std::to_string(pid_);
    for (const Field& f : kStatFields) batch.AddSeries({f.metric, f.unit, {{"pid", pid}}});
    for (const Field& f : kStatusFields) batch.AddSeries({f.metric, f.unit, {{"pid", pid}}});
    io_first_series_ = static_cast<std::uint32_t>(batch.series.size());
    if (io_.is_open()) {
      for (const Field& f : kIoFields) batch.AddSeries({f.metric, f.unit, {{"pid", pid}}});
    }
    series_end_ = batch.series.size();
    declared_ = true;
  }

  // All three files are read before any is parsed, so the values are as close together in time
  // as they can be.
  auto stat = stat_.Read(buffers_[0]);
  if (!stat) return ReadFailed(stat.error());
  if (stat->empty()) return Gone("its stat file is empty");
  auto status = status_.Read(buffers_[1]);
  if (!status) return ReadFailed(status.error());
  if (status->empty()) return Gone("its status file is empty");
  std::string_view io_text;
  Status io_error;
  if (io_.is_open()) {
    auto io = io_.Read(buffers_[2]);
    if (io) {
      if (io->empty()) return Gone("its io file is empty");
      io_text = *io;
    } else if (io.error().code() == StatusCode::kPermissionDenied) {
      // Access can be lost while sampling (the process ran setuid): stop asking, once.
      LogAt(LogLevel::kWarning, "process ", pid_, ": ", io.error().message(),
            "; proc.io metrics will no longer be sampled");
      io_ = ProcFile();
    } else if (io.error().code() == StatusCode::kNotFound) {
      return Gone(io.error().message().c_str());
    } else {
      io_error = io.error();
    }
  }

  const std::size_t before = batch.size();
  BatchWriter out(batch, now, last_samples_);
  // A zombie or an unreadable stat file says nothing good about the other two either.
  Status parsed = ParseStat(*stat, out);
  if (parsed.ok()) {
    ParseStatus(*status, out);
    if (!io_text.empty()) ParseIo(io_text, out);
  }
  last_samples_ = out.size() - before;
  return parsed.ok() ? io_error : parsed;
}

Status ProcessSource::ReadFailed(const Status& error) const {
  if (error.code() == StatusCode::kNotFound) return Gone(error.message().c_str());
  return error;
}

Status ProcessSource::ParseStat(std::string_view text, BatchWriter& out) {
  // The command name is in parentheses and may itself hold spaces and ')': the fields start
  // after the last ')'.
  const void* paren = ::memrchr(text.data(), ')', text.size());
  if (paren == nullptr) return IOError("cannot parse " + stat_.path() + ": no \"(comm)\" field");
  const char* const end = text.data() + text.size();
  const char* p = SkipBlanks(static_cast<const char*>(paren) + 1, end);
  if (p >= end) return IOError("cannot parse " + stat_.path() + ": nothing after \"(comm)\"");
  if (*p == 'Z' || *p == 'X') return Gone("it has exited and is a zombie");
  ++p;
  std::int64_t f[kRss + 1] = {};
  for (int i = 4; i <= kRss; ++i) {
    if (!ParseI64(p, end, f[i])) {
      return IOError("cannot parse " + stat_.path() + ": field " + std::to_string(i) +
                     " is missing or not a number");
    }
  }
  const std::uint32_t s = first_series_;
  out.Append(s + 0, static_cast<double>(f[kUtime]) * seconds_per_tick_);
  out.Append(s + 1, static_cast<double>(f[kStime]) * seconds_per_tick_);
  out.Append(s + 2, static_cast<double>(f[kMinflt]));
  out.Append(s + 3, static_cast<double>(f[kMajflt]));
  out.Append(s + 4, static_cast<double>(f[kNumThreads]));
  out.Append(s + 5, static_cast<double>(f[kRss]) * page_bytes_);
  out.Append(s + 6, static_cast<double>(f[kVsize]));
  return Status::OK();
}

void ProcessSource::ParseStatus(std::string_view text, BatchWriter& out) {
  // The context switch lines are near the end of a long file: start looking a little before
  // where they were last time, and expect the second right after the first.
  const char* const end = text.data() + text.size();
  const char* p = FindValue(text, ctxt_hint_, kVoluntary);
  if (p == nullptr && ctxt_hint_ > 0) p = FindValue(text, 0, kVoluntary);
  if (p == nullptr) return;
  const std::size_t offset = static_cast<std::size_t>(p - text.data()) - kVoluntary.size();
  ctxt_hint_ = offset > 64 ? offset - 64 : 0;
  std::uint64_t voluntary = 0, nonvoluntary = 0;
  if (!ParseU64(p, end, voluntary)) return;
  out.Append(first_series_ + kStatSeries, static_cast<double>(voluntary));
  const auto rest = static_cast<std::size_t>(end - p);
  if (rest >= kNonvoluntary.size() &&
      std::memcmp(p, kNonvoluntary.data(), kNonvoluntary.size()) == 0) {
    p += kNonvoluntary.size();
  } else {
    p = FindValue(text, 0, kNonvoluntary);
    if (p == nullptr) return;
  }
  if (ParseU64(p, end, nonvoluntary)) {
    out.Append(first_series_ + kStatSeries + 1, static_cast<double>(nonvoluntary));
  }
  static_assert(kStatusSeries == 2);
}

void ProcessSource::ParseIo(std::string_view text, BatchWriter& out) {
  const char* p = text.data();
  const char* const end = p + text.size();
  while (p < end) {
    const void* nl = std::memchr(p, '\n', static_cast<std::size_t>(end - p));
    const char* eol = nl != nullptr ? static_cast<const char*>(nl) : end;
    const void* colon = std::memchr(p, ':', static_cast<std::size_t>(eol - p));
    if (colon != nullptr) {
      const std::string_view key(p, static_cast<std::size_t>(static_cast<const char*>(colon) - p));
      for (std::uint32_t i = 0; i < std::size(kIoKeys); ++i) {
        if (key != kIoKeys[i]) continue;
        const char* q = static_cast<const char*>(colon) + 1;
        std::uint64_t v = 0;
        if (ParseU64(q, eol, v)) out.Append(io_first_series_ + i, static_cast<double>(v));
        break;
      }
    }
    p = eol == end ? end : eol + 1;
  }
}

BITFUSION_REGISTER(MetricSource, "process", ProcessSourceOptions, ProcessSource);

}  // namespace bitfusion
