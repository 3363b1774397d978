// What bitfusion-probe samples inside a container: the container's own cgroup as it sees it,
// /proc/stat and /proc/meminfo as it sees them, and every process of its pid namespace. Plain
// C++ and libc (the probe is linked -static with nothing else).
//
// The cgroup, from inside:
//   v1 (Docker without a cgroup namespace): the runtime bind-mounts the container's own cgroup
//      directory of each controller at /sys/fs/cgroup/<controller> ("cpu,cpuacct" with "cpu"
//      and "cpuacct" links), so cpuacct/cpuacct.usage there is the container's.
//   v2 with a cgroup namespace (Docker's default on v2): /sys/fs/cgroup is the container's own
//      cgroup, cgroup.controllers marks it.
//   neither: no cgroup series (one warning); /proc is still sampled.
//
// Metrics (counters marked *):
//   cgroup.cpu.usage*, cgroup.cpu.user*, cgroup.cpu.system*           s
//   cgroup.cpu.periods*, cgroup.cpu.throttled_periods*                 1
//   cgroup.cpu.throttled_time*                                         s
//   cgroup.memory.usage, cgroup.memory.limit (no sample when unlimited),
//   cgroup.memory.anon, cgroup.memory.file                             bytes
//   cgroup.memory.pgfault*, cgroup.memory.pgmajfault*                  1
//   cgroup.pids.current                                                1
//   cgroup.io.read_bytes*, cgroup.io.write_bytes*    bytes, summed over devices
//   cpu.{user,nice,system,idle,iowait,irq,softirq,steal}*  label cpu="all"   s   (/proc/stat)
//   cpu.context_switches*, tasks.running                               1
//   mem.{total,free,available,buffers,cached}                          bytes (/proc/meminfo)
//   proc.cpu.user*, proc.cpu.system* (s), proc.rss (bytes), proc.threads
//        labels pid (in the container's namespace), comm                  (/proc/PID/stat)
//   procs                                                              1   processes seen
// The names are those of the host source (/proc) and the cgroup source (cgroup.*, which reads
// the same files from outside), so the same metric seen from inside and outside differs only
// in its view label.
//
// Cost: every file is opened once and re-read with pread into one fixed buffer; /proc is
// listed with getdents64 on a kept-open directory; nothing is allocated per tick once the
// processes are known.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "probe/probe_wire.h"

namespace bitfusion::probe {

struct SamplerOptions {
  std::string proc_root = "/proc";
  std::string cgroup_root = "/sys/fs/cgroup";  ///< empty = no cgroup series (--no-cgroup)
  bool processes = true;                       ///< sample every process of the pid namespace
  pid_t self = 0;                              ///< a pid not to sample (the probe itself); 0 = none
};

class Sampler {
 public:
  /// Processes followed at most; more are counted in "procs" but not sampled.
  static constexpr int kMaxProcesses = 512;
  /// Series declared at most (probe_wire::kMaxSeries): an exited process's series are not
  /// reused, so a workload that forks without end (a shell loop, make -j) would otherwise grow
  /// the series table of every batch on the host without bound. Past it, new processes are not
  /// followed (one warning); the container's cgroup and /proc totals still cover them.
  static constexpr std::uint32_t kMaxSeries = probe_wire::kMaxSeries;

  Sampler() = default;
  ~Sampler();
  Sampler(const Sampler&) = delete;
  Sampler& operator=(const Sampler&) = delete;

  /// Opens the files. False when not even /proc/stat opens (`error` says which path); missing
  /// optional files are listed in `warnings`, one line each.
  bool Open(const SamplerOptions& options, std::string& warnings, std::string& error);

  /// "v1", "v2" or "none".
  const char* cgroup_layout() const { return layout_; }

  /// Appends a DECLARE record to `declares` for each series not yet declared, then one TICK
  /// record to `tick` stamped with `header`. False when a buffer was too small.
  bool Sample(probe_wire::Writer& declares, probe_wire::Writer& tick,
              const probe_wire::Tick& header);

  int processes() const { return process_count_; }

 private:
  struct KeyField {
    const char* key;  // "user_usec", "MemTotal:"
    const char* metric;
    const char* unit;
    bool counter;
    double scale;
    std::uint32_t series = 0;
  };
  struct File;
  struct Process {
    pid_t pid = 0;
    int fd = -1;
    std::uint32_t first_series = 0;
    bool seen = false;
  };

  void AddFile(const std::string& path, int kind, KeyField* fields, int field_count, bool required,
               std::string& warnings);
  std::uint32_t NewSeries(const char* metric, const char* unit, bool counter,
                          const char* label_key = nullptr, const char* label_value = nullptr);
  bool Declare(probe_wire::Writer& out, std::uint32_t index, const char* metric, const char* unit,
               bool counter, const probe_wire::Label* labels, int label_count);
  void SampleFile(File& f, probe_wire::Writer& tick);
  void SampleProcesses(probe_wire::Writer& declares, probe_wire::Writer& tick);
  bool Track(pid_t pid, probe_wire::Writer& declares);

  SamplerOptions options_;
  const char* layout_ = "none";
  File* files_ = nullptr;
  int file_count_ = 0;
  // Static series, declared on the first Sample.
  struct Static {
    const char* metric;
    const char* unit;
    bool counter;
    const char* label_key;
    const char* label_value;
  };
  Static static_[64];
  std::uint32_t static_count_ = 0;
  std::uint32_t declared_ = 0;  // series declared so far (the next index)
  bool statics_sent_ = false;

  int proc_dir_ = -1;
  std::uint32_t procs_series_ = 0;
  Process procs_[kMaxProcesses];
  int process_count_ = 0;
  bool limit_warned_ = false;
  double seconds_per_tick_ = 0.01;
  double page_bytes_ = 4096;

  char buffer_[65536];
  char dents_[32768];
};

}  // namespace bitfusion::probe
