#include "probe/probe_sampler.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace bitfusion::probe {
namespace {

using probe_wire::Label;
using probe_wire::Writer;

enum Kind { kSingle, kKeyed, kProcStat, kBlkioV1, kIoStatV2 };

const char* SkipBlanks(const char* p, const char* end) {
  while (p < end && (*p == ' ' || *p == '\t')) ++p;
  return p;
}

bool ParseU64(const char*& p, const char* end, std::uint64_t& out) {
  p = SkipBlanks(p, end);
  const char* start = p;
  std::uint64_t v = 0;
  while (p < end && static_cast<unsigned char>(*p - '0') < 10) {
    v = v * 10 + static_cast<unsigned char>(*p - '0');
    ++p;
  }
  if (p == start) return false;
  out = v;
  return true;
}

const char* NextLine(const char* p, const char* end) {
  const void* nl = std::memchr(p, '\n', static_cast<std::size_t>(end - p));
  return nl != nullptr ? static_cast<const char*>(nl) + 1 : end;
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

}  // namespace

struct Sampler::File {
  int fd = -1;
  int kind = kSingle;
  KeyField* fields = nullptr;
  int field_count = 0;
};

Sampler::~Sampler() {
  for (int i = 0; i < file_count_; ++i) {
    if (files_[i].fd >= 0) ::close(files_[i].fd);
  }
  delete[] files_;
  for (int i = 0; i < process_count_; ++i) {
    if (procs_[i].fd >= 0) ::close(procs_[i].fd);
  }
  if (proc_dir_ >= 0) ::close(proc_dir_);
}

std::uint32_t Sampler::NewSeries(const char* metric, const char* unit, bool counter,
                                 const char* label_key, const char* label_value) {
  static_[static_count_] = Static{metric, unit, counter, label_key, label_value};
  ++static_count_;
  return declared_++;
}

void Sampler::AddFile(const std::string& path, int kind, KeyField* fields, int field_count,
                      bool required, std::string& warnings) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (!required) {
      warnings += path + ": " + std::strerror(errno) + " (its series are not sampled)\n";
    }
    return;
  }
  File& f = files_[file_count_++];
  f.fd = fd;
  f.kind = kind;
  f.fields = fields;
  f.field_count = field_count;
  for (int i = 0; i < field_count; ++i) {
    const char* label_key = kind == kProcStat && i < 8 ? "cpu" : nullptr;
    fields[i].series =
        NewSeries(fields[i].metric, fields[i].unit, fields[i].counter, label_key, "all");
  }
}

bool Sampler::Open(const SamplerOptions& options, std::string& warnings, std::string& error) {
  options_ = options;
  const long hz = ::sysconf(_SC_CLK_TCK);
  seconds_per_tick_ = hz > 0 ? 1.0 / static_cast<double>(hz) : 0.01;
  const long page = ::sysconf(_SC_PAGESIZE);
  page_bytes_ = page > 0 ? static_cast<double>(page) : 4096;
  const double tick = seconds_per_tick_;

  // Function-local statics: the tables live as long as the program, series indices in them
  // are filled in by AddFile.
  static KeyField proc_stat[] = {{"user", "cpu.user", "s", true, tick},
                                 {"nice", "cpu.nice", "s", true, tick},
                                 {"system", "cpu.system", "s", true, tick},
                                 {"idle", "cpu.idle", "s", true, tick},
                                 {"iowait", "cpu.iowait", "s", true, tick},
                                 {"irq", "cpu.irq", "s", true, tick},
                                 {"softirq", "cpu.softirq", "s", true, tick},
                                 {"steal", "cpu.steal", "s", true, tick},
                                 {"ctxt", "cpu.context_switches", "1", true, 1},
                                 {"procs_running", "tasks.running", "1", false, 1}};
  static KeyField meminfo[] = {{"MemTotal:", "mem.total", "bytes", false, 1024},
                               {"MemFree:", "mem.free", "bytes", false, 1024},
                               {"MemAvailable:", "mem.available", "bytes", false, 1024},
                               {"Buffers:", "mem.buffers", "bytes", false, 1024},
                               {"Cached:", "mem.cached", "bytes", false, 1024}};
  // cgroup v1
  static KeyField v1_usage[] = {{"", "cgroup.cpu.usage", "s", true, 1e-9}};
  static KeyField v1_cpuacct_stat[] = {{"user", "cgroup.cpu.user", "s", true, tick},
                                       {"system", "cgroup.cpu.system", "s", true, tick}};
  static KeyField v1_cpu_stat[] = {
      {"nr_periods", "cgroup.cpu.periods", "1", true, 1},
      {"nr_throttled", "cgroup.cpu.throttled_periods", "1", true, 1},
      {"throttled_time", "cgroup.cpu.throttled_time", "s", true, 1e-9}};
  static KeyField v1_mem_usage[] = {{"", "cgroup.memory.usage", "bytes", false, 1}};
  static KeyField v1_mem_limit[] = {{"", "cgroup.memory.limit", "bytes", false, 1}};
  static KeyField v1_mem_stat[] = {{"total_rss", "cgroup.memory.anon", "bytes", false, 1},
                                   {"total_cache", "cgroup.memory.file", "bytes", false, 1},
                                   {"total_pgfault", "cgroup.memory.pgfault", "1", true, 1},
                                   {"total_pgmajfault", "cgroup.memory.pgmajfault", "1", true, 1}};
  static KeyField v1_pids[] = {{"", "cgroup.pids.current", "1", false, 1}};
  static KeyField v1_blkio[] = {{"Read", "cgroup.io.read_bytes", "bytes", true, 1},
                                {"Write", "cgroup.io.write_bytes", "bytes", true, 1}};
  // cgroup v2
  static KeyField v2_cpu_stat[] = {
      {"usage_usec", "cgroup.cpu.usage", "s", true, 1e-6},
      {"user_usec", "cgroup.cpu.user", "s", true, 1e-6},
      {"system_usec", "cgroup.cpu.system", "s", true, 1e-6},
      {"nr_periods", "cgroup.cpu.periods", "1", true, 1},
      {"nr_throttled", "cgroup.cpu.throttled_periods", "1", true, 1},
      {"throttled_usec", "cgroup.cpu.throttled_time", "s", true, 1e-6}};
  static KeyField v2_mem_current[] = {{"", "cgroup.memory.usage", "bytes", false, 1}};
  static KeyField v2_mem_max[] = {{"", "cgroup.memory.limit", "bytes", false, 1}};
  static KeyField v2_mem_stat[] = {{"anon", "cgroup.memory.anon", "bytes", false, 1},
                                   {"file", "cgroup.memory.file", "bytes", false, 1},
                                   {"pgfault", "cgroup.memory.pgfault", "1", true, 1},
                                   {"pgmajfault", "cgroup.memory.pgmajfault", "1", true, 1}};
  static KeyField v2_pids[] = {{"", "cgroup.pids.current", "1", false, 1}};
  static KeyField v2_io[] = {{"rbytes=", "cgroup.io.read_bytes", "bytes", true, 1},
                             {"wbytes=", "cgroup.io.write_bytes", "bytes", true, 1}};

  files_ = new File[16];
  const std::string& proc = options.proc_root;
  const std::string& cg = options.cgroup_root;

  AddFile(proc + "/stat", kProcStat, proc_stat, 10, true, warnings);
  if (file_count_ == 0) {
    error = proc + "/stat: " + std::strerror(errno) + " (is procfs mounted there?)";
    return false;
  }
  AddFile(proc + "/meminfo", kKeyed, meminfo, 5, false, warnings);

  if (cg.empty()) {
    // --no-cgroup: the host view only (host+ssh://), without the costly root group's files.
  } else if (Exists(cg + "/cgroup.controllers")) {
    layout_ = "v2";
    AddFile(cg + "/cpu.stat", kKeyed, v2_cpu_stat, 6, false, warnings);
    AddFile(cg + "/memory.current", kSingle, v2_mem_current, 1, false, warnings);
    AddFile(cg + "/memory.max", kSingle, v2_mem_max, 1, false, warnings);
    AddFile(cg + "/memory.stat", kKeyed, v2_mem_stat, 4, false, warnings);
    AddFile(cg + "/pids.current", kSingle, v2_pids, 1, false, warnings);
    AddFile(cg + "/io.stat", kIoStatV2, v2_io, 2, false, warnings);
  } else if (Exists(cg + "/cpuacct/cpuacct.usage")) {
    layout_ = "v1";
    AddFile(cg + "/cpuacct/cpuacct.usage", kSingle, v1_usage, 1, false, warnings);
    AddFile(cg + "/cpuacct/cpuacct.stat", kKeyed, v1_cpuacct_stat, 2, false, warnings);
    AddFile(cg + "/cpu/cpu.stat", kKeyed, v1_cpu_stat, 3, false, warnings);
    AddFile(cg + "/memory/memory.usage_in_bytes", kSingle, v1_mem_usage, 1, false, warnings);
    AddFile(cg + "/memory/memory.limit_in_bytes", kSingle, v1_mem_limit, 1, false, warnings);
    AddFile(cg + "/memory/memory.stat", kKeyed, v1_mem_stat, 4, false, warnings);
    AddFile(cg + "/pids/pids.current", kSingle, v1_pids, 1, false, warnings);
    AddFile(cg + "/blkio/blkio.throttle.io_service_bytes", kBlkioV1, v1_blkio, 2, false, warnings);
  } else {
    warnings += cg +
                ": neither a cgroup v2 directory (cgroup.controllers) nor cgroup v1 "
                "controllers (cpuacct/cpuacct.usage): no cgroup series\n";
  }

  if (options.processes) {
    proc_dir_ = ::open(proc.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (proc_dir_ < 0) {
      warnings += proc + ": " + std::strerror(errno) + " (processes are not sampled)\n";
    } else {
      procs_series_ = NewSeries("procs", "1", false);
    }
  }
  return true;
}

bool Sampler::Declare(Writer& out, std::uint32_t index, const char* metric, const char* unit,
                      bool counter, const Label* labels, int label_count) {
  probe_wire::Declare d;
  d.index = index;
  d.counter = counter;
  d.metric = metric;
  d.unit = unit;
  for (int i = 0; i < label_count; ++i) d.labels[i] = labels[i];
  d.label_count = static_cast<std::size_t>(label_count);
  return probe_wire::EncodeDeclare(out, d);
}

void Sampler::SampleFile(File& f, Writer& tick) {
  const ssize_t n = ::pread(f.fd, buffer_, sizeof buffer_, 0);
  if (n <= 0) return;
  const char* p = buffer_;
  const char* const end = buffer_ + n;
  KeyField* fields = f.fields;
  switch (f.kind) {
    case kSingle: {
      std::uint64_t v = 0;
      // "max" (v2) or v1's "no limit" (2^63 rounded down to a page) is no sample.
      if (ParseU64(p, end, v) && v < (std::uint64_t{1} << 62)) {
        probe_wire::TickValue(tick, fields[0].series, static_cast<double>(v) * fields[0].scale);
      }
      return;
    }
    case kProcStat:
    case kKeyed: {
      int first = 0;
      if (f.kind == kProcStat) {
        // "cpu  user nice system idle iowait irq softirq steal guest guest_nice"
        if (end - p > 4 && std::memcmp(p, "cpu ", 4) == 0) {
          p += 4;
          for (int i = 0; i < 8; ++i) {
            std::uint64_t v = 0;
            if (!ParseU64(p, end, v)) break;
            probe_wire::TickValue(tick, fields[i].series, static_cast<double>(v) * fields[i].scale);
          }
        }
        first = 8;
      }
      while (p < end) {
        const char* line_end = NextLine(p, end);
        const char* space = p;
        while (space < line_end && *space != ' ' && *space != '\t') ++space;
        const std::size_t key_len = static_cast<std::size_t>(space - p);
        for (int i = first; i < f.field_count; ++i) {
          if (std::strlen(fields[i].key) == key_len &&
              std::memcmp(fields[i].key, p, key_len) == 0) {
            const char* q = space;
            std::uint64_t v = 0;
            if (ParseU64(q, line_end, v)) {
              probe_wire::TickValue(tick, fields[i].series,
                                    static_cast<double>(v) * fields[i].scale);
            }
            break;
          }
        }
        p = line_end;
      }
      return;
    }
    case kBlkioV1: {
      // "8:0 Read 4096" per device and operation, then "Total N".
      std::uint64_t sums[2] = {0, 0};
      bool any = false;
      while (p < end) {
        const char* line_end = NextLine(p, end);
        const char* op = static_cast<const char*>(std::memchr(p, ' ', line_end - p));
        if (op != nullptr && static_cast<unsigned char>(*p - '0') < 10) {
          ++op;
          for (int i = 0; i < 2; ++i) {
            const std::size_t len = std::strlen(fields[i].key);
            if (line_end - op > static_cast<long>(len) &&
                std::memcmp(op, fields[i].key, len) == 0 && op[len] == ' ') {
              const char* q = op + len;
              std::uint64_t v = 0;
              if (ParseU64(q, line_end, v)) sums[i] += v;
            }
          }
        }
        any = true;
        p = line_end;
      }
      if (any) {
        for (int i = 0; i < 2; ++i) {
          probe_wire::TickValue(tick, fields[i].series, static_cast<double>(sums[i]));
        }
      }
      return;
    }
    case kIoStatV2: {
      // "8:0 rbytes=N wbytes=N rios=N wios=N dbytes=N dios=N" per device; empty when no I/O.
      std::uint64_t sums[2] = {0, 0};
      while (p < end) {
        const char* line_end = NextLine(p, end);
        for (int i = 0; i < 2; ++i) {
          const std::size_t len = std::strlen(fields[i].key);
          const void* hit = ::memmem(p, static_cast<std::size_t>(line_end - p), fields[i].key, len);
          if (hit == nullptr) continue;
          const char* q = static_cast<const char*>(hit) + len;
          std::uint64_t v = 0;
          if (ParseU64(q, line_end, v)) sums[i] += v;
        }
        p = line_end;
      }
      for (int i = 0; i < 2; ++i) {
        probe_wire::TickValue(tick, fields[i].series, static_cast<double>(sums[i]));
      }
      return;
    }
  }
}

// A process found in /proc for the first time: its stat file is opened and kept, and its four
// series are declared with its pid and command name.
bool Sampler::Track(pid_t pid, Writer& declares) {
  if (process_count_ >= kMaxProcesses || declared_ + 4 > kMaxSeries) {
    if (!limit_warned_) {
      std::fprintf(stderr,
                   "bitfusion-probe: more than %d processes at once or %u series in all; "
                   "further processes are not sampled one by one\n",
                   kMaxProcesses, static_cast<unsigned>(kMaxSeries));
      limit_warned_ = true;
    }
    return false;
  }
  char path[512];
  std::snprintf(path, sizeof path, "%s/%d/stat", options_.proc_root.c_str(), static_cast<int>(pid));
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;  // gone already
  const ssize_t n = ::pread(fd, buffer_, sizeof buffer_ - 1, 0);
  char comm[64] = "?";
  if (n > 0) {
    const char* open = static_cast<const char*>(std::memchr(buffer_, '(', n));
    const char* close = static_cast<const char*>(::memrchr(buffer_, ')', n));
    if (open != nullptr && close != nullptr && close > open) {
      std::size_t len = static_cast<std::size_t>(close - open - 1);
      if (len >= sizeof comm) len = sizeof comm - 1;
      std::memcpy(comm, open + 1, len);
      comm[len] = '\0';
    }
  }
  char pid_text[16];
  std::snprintf(pid_text, sizeof pid_text, "%d", static_cast<int>(pid));
  const Label labels[] = {{"pid", pid_text}, {"comm", comm}};
  Process& p = procs_[process_count_];
  p.pid = pid;
  p.fd = fd;
  p.first_series = declared_;
  p.seen = true;
  bool ok = Declare(declares, declared_, "proc.cpu.user", "s", true, labels, 2);
  ok = ok && Declare(declares, declared_ + 1, "proc.cpu.system", "s", true, labels, 2);
  ok = ok && Declare(declares, declared_ + 2, "proc.rss", "bytes", false, labels, 2);
  ok = ok && Declare(declares, declared_ + 3, "proc.threads", "1", false, labels, 2);
  if (!ok) {
    ::close(fd);
    return false;
  }
  declared_ += 4;
  ++process_count_;
  return true;
}

void Sampler::SampleProcesses(Writer& declares, Writer& tick) {
  for (int i = 0; i < process_count_; ++i) procs_[i].seen = false;
  int live = 0;
  ::lseek(proc_dir_, 0, SEEK_SET);
  for (;;) {
    const long n = ::syscall(SYS_getdents64, proc_dir_, dents_, sizeof dents_);
    if (n <= 0) break;
    for (long off = 0; off < n;) {
      const auto* d = reinterpret_cast<const struct dirent64*>(dents_ + off);
      off += d->d_reclen;
      const char* name = d->d_name;
      if (static_cast<unsigned char>(name[0] - '1') >= 9) continue;
      pid_t pid = 0;
      bool numeric = true;
      for (const char* c = name; *c != '\0'; ++c) {
        if (static_cast<unsigned char>(*c - '0') >= 10) {
          numeric = false;
          break;
        }
        pid = pid * 10 + (*c - '0');
      }
      if (!numeric || pid == options_.self) continue;
      ++live;
      bool known = false;
      for (int i = 0; i < process_count_; ++i) {
        if (procs_[i].pid == pid && procs_[i].fd >= 0) {
          procs_[i].seen = true;
          known = true;
          break;
        }
      }
      if (!known) Track(pid, declares);
    }
  }
  probe_wire::TickValue(tick, procs_series_, live);

  for (int i = 0; i < process_count_; ++i) {
    Process& p = procs_[i];
    if (p.fd < 0) continue;
    const ssize_t n = p.seen ? ::pread(p.fd, buffer_, sizeof buffer_, 0) : -1;
    if (n <= 0) {  // exited (ESRCH) or no longer listed: its series end here
      ::close(p.fd);
      p.fd = -1;
      continue;
    }
    const char* end = buffer_ + n;
    const char* q = static_cast<const char*>(::memrchr(buffer_, ')', n));
    if (q == nullptr) continue;
    ++q;
    // Fields after the command name, numbered as in proc(5): 3 state, 14 utime, 15 stime,
    // 20 num_threads, 24 rss.
    std::uint64_t utime = 0, stime = 0, threads = 0, rss = 0;
    int field = 3;
    q = SkipBlanks(q, end);
    while (q < end && *q != ' ') ++q;  // state
    for (field = 4; field <= 24 && q < end; ++field) {
      std::uint64_t v = 0;
      const char* before = q;
      if (!ParseU64(q, end, v)) {
        // Negative fields (priority, nice) or a '-': skip the word.
        q = SkipBlanks(before, end);
        while (q < end && *q != ' ') ++q;
      }
      if (field == 14) utime = v;
      if (field == 15) stime = v;
      if (field == 20) threads = v;
      if (field == 24) rss = v;
    }
    if (field <= 24) continue;
    probe_wire::TickValue(tick, p.first_series, static_cast<double>(utime) * seconds_per_tick_);
    probe_wire::TickValue(tick, p.first_series + 1, static_cast<double>(stime) * seconds_per_tick_);
    probe_wire::TickValue(tick, p.first_series + 2, static_cast<double>(rss) * page_bytes_);
    probe_wire::TickValue(tick, p.first_series + 3, static_cast<double>(threads));
  }
  // Forget exited processes so the table keeps room; their series indices stay used.
  int kept = 0;
  for (int i = 0; i < process_count_; ++i) {
    if (procs_[i].fd >= 0) procs_[kept++] = procs_[i];
  }
  process_count_ = kept;
}

bool Sampler::Sample(Writer& declares, Writer& tick, const probe_wire::Tick& header) {
  if (!statics_sent_) {
    for (std::uint32_t i = 0; i < static_count_; ++i) {
      const Static& s = static_[i];
      const Label label{s.label_key != nullptr ? s.label_key : "",
                        s.label_value != nullptr ? s.label_value : ""};
      Declare(declares, i, s.metric, s.unit, s.counter, &label, s.label_key != nullptr ? 1 : 0);
    }
    statics_sent_ = true;
  }
  const std::size_t at = probe_wire::BeginTick(tick, header);
  for (int i = 0; i < file_count_; ++i) SampleFile(files_[i], tick);
  if (proc_dir_ >= 0) SampleProcesses(declares, tick);
  return probe_wire::FinishTick(tick, at) && declares.ok();
}

}  // namespace bitfusion::probe
