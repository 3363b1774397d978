#include "metrics/process_source.h"

#include <string.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <filesystem>
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
  bool counter = false;
};
// Order matters: Collect appends in this order.
constexpr Field kStatFields[] = {{"proc.cpu.user", "s", true},
                                 {"proc.cpu.system", "s", true},
                                 {"proc.cpu.children_user", "s", true},
                                 {"proc.cpu.children_system", "s", true},
                                 {"proc.minflt", "1", true},
                                 {"proc.majflt", "1", true},
                                 {"proc.threads", "1"},
                                 {"proc.rss", "bytes"},
                                 {"proc.vsize", "bytes"}};
constexpr Field kStatusFields[] = {{"proc.ctxt.voluntary", "1", true},
                                   {"proc.ctxt.nonvoluntary", "1", true}};
constexpr std::string_view kIoKeys[] = {"rchar", "wchar", "read_bytes", "write_bytes"};
constexpr Field kIoFields[] = {{"proc.io.rchar", "bytes"},
                               {"proc.io.wchar", "bytes"},
                               {"proc.io.read_bytes", "bytes"},
                               {"proc.io.write_bytes", "bytes"}};
constexpr std::size_t kStatSeries = std::size(kStatFields);
constexpr std::size_t kStatusSeries = std::size(kStatusFields);

// /proc/PID/stat fields, numbered as in proc(5).
constexpr int kMinflt = 10, kMajflt = 12, kUtime = 14, kStime = 15, kCutime = 16, kCstime = 17,
              kNumThreads = 20, kVsize = 23, kRss = 24;

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
  BITFUSION_RETURN_IF_ERROR(uri.CheckQueryKeys({"proc_root", "children"}));
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
  BITFUSION_ASSIGN_OR_RETURN(options.children, uri.QueryBool("children", false));
  return options;
}

Result<std::unique_ptr<ProcessSource::Tracked>> ProcessSource::Open(const std::string& proc_root,
                                                                    pid_t pid, bool need_io,
                                                                    std::vector<char>& buffer) {
  auto t = std::make_unique<Tracked>();
  t->pid = pid;
  const std::string p = std::to_string(pid);
  const std::string dir = proc_root + "/" + p + "/";
  auto stat = ProcFile::Open(dir + "stat", ProcFile::Shape::kSingleRecord);
  if (!stat) {
    if (stat.error().code() == StatusCode::kNotFound) {
      return NotFoundError("no process " + p + " to sample (" + stat.error().message() +
                           "); check the PID and that it is still running");
    }
    return stat.error().WithContext("sampling process " + p);
  }
  t->stat = std::move(*stat);
  auto status = ProcFile::Open(dir + "status", ProcFile::Shape::kSingleRecord);
  if (!status) return status.error().WithContext("sampling process " + p);
  t->status = std::move(*status);

  // I/O accounting is checked when read, not when opened: try it once now so a refusal is
  // reported at setup instead of on the first tick.
  auto io = ProcFile::Open(dir + "io", ProcFile::Shape::kSingleRecord);
  Status io_status = io.status();
  if (io) {
    io_status = io->Read(buffer).status();
    if (io_status.code() == StatusCode::kNotFound && ::access(dir.c_str(), F_OK) != 0) {
      return NotFoundError("process " + p + " exited while being set up for sampling");
    }
  }
  if (io_status.ok()) {
    t->io = std::move(*io);
  } else if (need_io) {
    const char* hint = io_status.code() == StatusCode::kNotFound
                           ? "a kernel without task I/O accounting?"
                           : "reading it needs the same user or CAP_SYS_PTRACE";
    LogAt(LogLevel::kWarning, "process ", p, ": ", io_status.message(), " (", hint,
          "); proc.io metrics will not be sampled");
  }
  return t;
}

Result<std::shared_ptr<ProcessSource>> ProcessSource::Make(const ProcessSourceOptions& options) {
  if (options.pid <= 0) {
    return InvalidArgumentError("process source needs a positive PID, not " +
                                std::to_string(options.pid));
  }
  std::shared_ptr<ProcessSource> source(new ProcessSource());
  const std::string pid = std::to_string(options.pid);
  source->uri_ = "process:" + pid;
  std::string query;
  if (options.proc_root != "/proc") query += "&proc_root=" + options.proc_root;
  if (options.children) query += "&children=true";
  if (!query.empty()) {
    // Not "?" + query.substr(1): GCC 12 at -O3 reports a bogus -Wrestrict overlap for a
    // one-character literal plus a temporary string (GCC bug 105329).
    source->uri_ += '?';
    source->uri_.append(query, 1);
  }
  source->proc_root_ = options.proc_root;
  source->children_ = options.children;
  const long hz = ::sysconf(_SC_CLK_TCK);
  source->seconds_per_tick_ = 1.0 / static_cast<double>(hz > 0 ? hz : 100);
  const long page = ::sysconf(_SC_PAGESIZE);
  source->page_bytes_ = static_cast<double>(page > 0 ? page : 4096);
  for (auto& buffer : source->buffers_) buffer.resize(4096);

  BITFUSION_ASSIGN_OR_RETURN(
      auto root, Open(options.proc_root, options.pid, /*need_io=*/true, source->buffers_[2]));
  if (options.children) {
    const std::string file = options.proc_root + "/" + pid + "/task/" + pid + "/children";
    auto children = ProcFile::Open(file, ProcFile::Shape::kSingleRecord);
    if (!children) {
      return children.error().WithContext(
          "following the children of process " + pid +
          " needs /proc/PID/task/TID/children (a kernel with CONFIG_PROC_CHILDREN)");
    }
    root->children = std::move(*children);
  }
  source->tracked_.push_back(std::move(root));
  return source;
}

ProcessSource::~ProcessSource() = default;

Status ProcessSource::Gone(pid_t pid, const char* why) const {
  return NotFoundError("process " + std::to_string(pid) + " is gone (" + why + ")");
}

void ProcessSource::Declare(Tracked& t, SampleBatch& batch) {
  t.first_series = static_cast<std::uint32_t>(batch.series.size());
  const std::string pid = std::to_string(t.pid);
  for (const Field& f : kStatFields) batch.AddSeries({f.metric, f.unit, {{"pid", pid}}, f.counter});
  for (const Field& f : kStatusFields) {
    batch.AddSeries({f.metric, f.unit, {{"pid", pid}}, f.counter});
  }
  t.io_first_series = static_cast<std::uint32_t>(batch.series.size());
  if (t.io.is_open()) {
    for (const Field& f : kIoFields) batch.AddSeries({f.metric, f.unit, {{"pid", pid}}, true});
  }
  t.declared = true;
}

Status ProcessSource::Collect(Timestamp now, SampleBatch& batch) {
  if (!declared_ || batch.series.size() != series_end_) {
    for (auto& t : tracked_) t->declared = false;
    declared_ = true;
  }
  for (auto& t : tracked_) {
    if (!t->declared) Declare(*t, batch);
  }
  series_end_ = batch.series.size();

  const std::size_t before = batch.size();
  Status result;
  {
    BatchWriter out(batch, now, last_samples_);
    result = CollectOne(*tracked_[0], out);
    if (result.ok()) {
      // Descendants that are gone are dropped without a word: processes come and go.
      for (std::size_t i = 1; i < tracked_.size(); ++i) {
        Status status = CollectOne(*tracked_[i], out);
        if (status.code() == StatusCode::kNotFound) {
          tracked_[i].reset();
        } else if (result.ok()) {
          result = status;
        }
      }
      std::erase(tracked_, nullptr);
    }
    last_samples_ = out.size() - before;
  }
  if (result.code() == StatusCode::kNotFound) return result;
  if (children_) FindChildren(now);
  return result;
}

Status ProcessSource::CollectOne(Tracked& t, BatchWriter& out) {
  // All three files are read before any is parsed, so the values are as close together in time
  // as they can be.
  auto stat = t.stat.Read(buffers_[0]);
  if (!stat) return ReadFailed(t.pid, stat.error());
  if (stat->empty()) return Gone(t.pid, "its stat file is empty");
  auto status = t.status.Read(buffers_[1]);
  if (!status) return ReadFailed(t.pid, status.error());
  if (status->empty()) return Gone(t.pid, "its status file is empty");
  std::string_view io_text;
  Status io_error;
  if (t.io.is_open()) {
    auto io = t.io.Read(buffers_[2]);
    if (io) {
      if (io->empty()) return Gone(t.pid, "its io file is empty");
      io_text = *io;
    } else if (io.error().code() == StatusCode::kPermissionDenied) {
      // Access can be lost while sampling (the process ran setuid): stop asking, once.
      LogAt(LogLevel::kWarning, "process ", t.pid, ": ", io.error().message(),
            "; proc.io metrics will no longer be sampled");
      t.io = ProcFile();
    } else if (io.error().code() == StatusCode::kNotFound) {
      return Gone(t.pid, io.error().message().c_str());
    } else {
      io_error = io.error();
    }
  }
  // A zombie or an unreadable stat file says nothing good about the other two either.
  Status parsed = ParseStat(t, *stat, out);
  if (parsed.ok()) {
    ParseStatus(t, *status, out);
    if (!io_text.empty()) ParseIo(t, io_text, out);
  }
  return parsed.ok() ? io_error : parsed;
}

Status ProcessSource::ReadFailed(pid_t pid, const Status& error) const {
  if (error.code() == StatusCode::kNotFound) return Gone(pid, error.message().c_str());
  return error;
}

// "123 456 " -> 123, 456 (unknown ones only).
void ProcessSource::AddChildren(std::string_view list, std::vector<pid_t>& found) const {
  const char* p = list.data();
  const char* const end = p + list.size();
  std::uint64_t child = 0;
  while (ParseU64(p, end, child)) {
    const auto pid = static_cast<pid_t>(child);
    if (std::find(found.begin(), found.end(), pid) == found.end()) found.push_back(pid);
  }
}

void ProcessSource::FindChildren(Timestamp now) {
  // Every thread's children file, once a second, for processes with several threads: a child
  // belongs to the thread that forked it, and only the main thread's file is read every tick.
  const bool thread_scan = now.mono_ns - last_thread_scan_ns_ >= 1'000'000'000;
  if (thread_scan) last_thread_scan_ns_ = now.mono_ns;
  found_.clear();
  for (auto& t : tracked_) {
    if (t->children.is_open()) {
      if (auto list = t->children.Read(buffers_[3])) AddChildren(*list, found_);
    }
    if (!thread_scan || t->threads <= 1) continue;
    const std::string task_dir = proc_root_ + "/" + std::to_string(t->pid) + "/task";
    std::error_code ec;
    for (const auto& task : std::filesystem::directory_iterator(task_dir, ec)) {
      auto file =
          ProcFile::Open(task.path().string() + "/children", ProcFile::Shape::kSingleRecord);
      if (!file) continue;
      if (auto list = file->Read(buffers_[3])) AddChildren(*list, found_);
    }
  }
  for (const pid_t pid : found_) {
    const bool known = std::any_of(tracked_.begin(), tracked_.end(),
                                   [pid](const auto& t) { return t->pid == pid; });
    if (known) continue;
    if (tracked_.size() >= kMaxProcesses) {
      if (!limit_logged_) {
        limit_logged_ = true;
        LogAt(LogLevel::kWarning, uri_, ": more than ", kMaxProcesses,
              " processes in the tree; further descendants are not sampled");
      }
      break;
    }
    auto child = Open(proc_root_, pid, /*need_io=*/false, buffers_[2]);
    if (!child) continue;  // gone already
    const std::string p = std::to_string(pid);
    if (auto children = ProcFile::Open(proc_root_ + "/" + p + "/task/" + p + "/children",
                                       ProcFile::Shape::kSingleRecord)) {
      (*child)->children = std::move(*children);
    }
    tracked_.push_back(std::move(*child));
  }
}

Status ProcessSource::ParseStat(Tracked& t, std::string_view text, BatchWriter& out) {
  // The command name is in parentheses and may itself hold spaces and ')': the fields start
  // after the last ')'.
  const void* paren = ::memrchr(text.data(), ')', text.size());
  if (paren == nullptr) {
    return IOError("cannot parse " + t.stat.path() + ": no \"(comm)\" field");
  }
  const char* const end = text.data() + text.size();
  const char* p = SkipBlanks(static_cast<const char*>(paren) + 1, end);
  if (p >= end) return IOError("cannot parse " + t.stat.path() + ": nothing after \"(comm)\"");
  if (*p == 'Z' || *p == 'X') return Gone(t.pid, "it has exited and is a zombie");
  ++p;
  std::int64_t f[kRss + 1] = {};
  for (int i = 4; i <= kRss; ++i) {
    if (!ParseI64(p, end, f[i])) {
      return IOError("cannot parse " + t.stat.path() + ": field " + std::to_string(i) +
                     " is missing or not a number");
    }
  }
  t.threads = static_cast<int>(f[kNumThreads]);
  const std::uint32_t s = t.first_series;
  out.Append(s + 0, static_cast<double>(f[kUtime]) * seconds_per_tick_);
  out.Append(s + 1, static_cast<double>(f[kStime]) * seconds_per_tick_);
  out.Append(s + 2, static_cast<double>(f[kCutime]) * seconds_per_tick_);
  out.Append(s + 3, static_cast<double>(f[kCstime]) * seconds_per_tick_);
  out.Append(s + 4, static_cast<double>(f[kMinflt]));
  out.Append(s + 5, static_cast<double>(f[kMajflt]));
  out.Append(s + 6, static_cast<double>(f[kNumThreads]));
  out.Append(s + 7, static_cast<double>(f[kRss]) * page_bytes_);
  out.Append(s + 8, static_cast<double>(f[kVsize]));
  return Status::OK();
}

void ProcessSource::ParseStatus(Tracked& t, std::string_view text, BatchWriter& out) {
  // The context switch lines are near the end of a long file: start looking a little before
  // where they were last time, and expect the second right after the first.
  const char* const end = text.data() + text.size();
  const char* p = FindValue(text, t.ctxt_hint, kVoluntary);
  if (p == nullptr && t.ctxt_hint > 0) p = FindValue(text, 0, kVoluntary);
  if (p == nullptr) return;
  const std::size_t offset = static_cast<std::size_t>(p - text.data()) - kVoluntary.size();
  t.ctxt_hint = offset > 64 ? offset - 64 : 0;
  std::uint64_t voluntary = 0, nonvoluntary = 0;
  if (!ParseU64(p, end, voluntary)) return;
  out.Append(t.first_series + kStatSeries, static_cast<double>(voluntary));
  const auto rest = static_cast<std::size_t>(end - p);
  if (rest >= kNonvoluntary.size() &&
      std::memcmp(p, kNonvoluntary.data(), kNonvoluntary.size()) == 0) {
    p += kNonvoluntary.size();
  } else {
    p = FindValue(text, 0, kNonvoluntary);
    if (p == nullptr) return;
  }
  if (ParseU64(p, end, nonvoluntary)) {
    out.Append(t.first_series + kStatSeries + 1, static_cast<double>(nonvoluntary));
  }
  static_assert(kStatusSeries == 2);
}

void ProcessSource::ParseIo(Tracked& t, std::string_view text, BatchWriter& out) {
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
        if (ParseU64(q, eol, v)) out.Append(t.io_first_series + i, static_cast<double>(v));
        break;
      }
    }
    p = eol == end ? end : eol + 1;
  }
}

BITFUSION_REGISTER(MetricSource, "process", ProcessSourceOptions, ProcessSource);

}  // namespace bitfusion
