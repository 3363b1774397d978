// "cgroup:PATH" metric source: CPU, throttling, memory, block I/O and task counts of one control
// group, from cgroup v1 (one hierarchy per controller) or cgroup v2 (the unified hierarchy),
// under the same metric names on both.
//
// Metrics (counters, marked *, are reported as read unless rates are asked for:
// "cgroup:/docker/ID?rate=true"); every series carries label cgroup="PATH" (and, for a
// container source, container="SHORT_ID" and container_name="NAME"):
//
//   metric                         unit   v2 file: key              v1 file: key
//   cgroup.cpu.usage*              s      cpu.stat: usage_usec      cpuacct.usage (ns)
//   cgroup.cpu.user*               s      cpu.stat: user_usec       cpuacct.stat: user (USER_HZ)
//   cgroup.cpu.system*             s      cpu.stat: system_usec     cpuacct.stat: system
//   cgroup.cpu.periods*            1      cpu.stat: nr_periods      cpu.stat: nr_periods
//   cgroup.cpu.throttled_periods*  1      cpu.stat: nr_throttled    cpu.stat: nr_throttled
//   cgroup.cpu.throttled_time*     s      cpu.stat: throttled_usec  cpu.stat: throttled_time (ns)
//   cgroup.memory.usage            bytes  memory.current            memory.usage_in_bytes
//   cgroup.memory.limit            bytes  memory.max                memory.limit_in_bytes
//   cgroup.memory.anon             bytes  memory.stat: anon         memory.stat: total_rss
//   cgroup.memory.file             bytes  file                      total_cache
//   cgroup.memory.shmem            bytes  shmem                     total_shmem
//   cgroup.memory.file_mapped      bytes  file_mapped               total_mapped_file
//   cgroup.memory.file_dirty       bytes  file_dirty                total_dirty
//   cgroup.memory.file_writeback   bytes  file_writeback            total_writeback
//   cgroup.memory.anon_thp         bytes  anon_thp                  total_rss_huge
//   cgroup.memory.{active,inactive}_{anon,file}, cgroup.memory.unevictable
//                                  bytes  same names                total_ + same names
//   cgroup.memory.pgfault*         1      pgfault                   total_pgfault
//   cgroup.memory.pgmajfault*      1      pgmajfault                total_pgmajfault
//   cgroup.io.read_bytes*          bytes  io.stat: rbytes           io_service_bytes: Read
//   cgroup.io.write_bytes*         bytes  io.stat: wbytes           io_service_bytes: Write
//   cgroup.io.reads*               1      io.stat: rios             io_serviced: Read
//   cgroup.io.writes*              1      io.stat: wios             io_serviced: Write
//                                         (v1 files: blkio.throttle.io_service_bytes and
//                                         blkio.throttle.io_serviced)
//                                         (cgroup.io.* carry label device="MAJ:MIN")
//   cgroup.pids.current            1      pids.current              pids.current
//   cgroup.pids.max                1      pids.max                  pids.max
//
// v1's memory.stat keys are taken from the total_* (hierarchical) lines, because v2's are
// hierarchical too. v1's blkio.throttle counters are this cgroup's own I/O (not its children's)
// and count only I/O that passed the throttling layer: on kernels that skip it for a cgroup
// without a throttling rule they stay 0. Memory usage is the kernel's (page cache included);
// `docker stats` subtracts inactive_file, this source does not.
//
// No limit (memory.max or pids.max "max", or v1's memory.limit_in_bytes at its 2^63 - page
// ceiling) is no sample for cgroup.memory.limit / cgroup.pids.max that tick: a limit set later
// (docker update) shows up from then on.
//
// Files: each is opened once and re-read with pread into a buffer of its own; Collect makes no
// allocation in the steady state. A file that is missing when the source is made (a controller
// not mounted or not enabled for the group: no pids or io controller, a v2 cpu.stat without the
// cpu controller has no throttling keys) disables its metrics with one warning. When the
// directory goes away (the container was removed, the group rmdir'ed) reads fail with ENODEV
// and Collect answers NotFound, which ends the source (kMetricSourceEnded). A recorded tree (not
// a cgroup filesystem) cannot fail that way, so there the source checks once per Collect that
// the directory still exists.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "bitfusion/metric_stream.h"
#include "bitfusion/uri.h"
#include "metrics/batch_writer.h"
#include "metrics/proc_file.h"
#include "metrics/row_table.h"

namespace bitfusion {

/// The query key `detail_every` (default 1) of the cgroup and container sources: read the costly
/// files on every Nth sample only. InvalidArgument outside 1 .. 1,000,000.
Result<int> DetailEveryFromUri(const Uri& uri);

struct CgroupSourceOptions {
  /// The group, relative to the hierarchy root: "/docker/ID" (v1: the same path under every
  /// controller's hierarchy), "/system.slice/docker-ID.scope" (v2). "cgroup:PATH".
  std::string path;
  /// Where the cgroup filesystems are mounted; a recorded tree in tests. Query key `root`;
  /// default "/sys/fs/cgroup". v2 when ROOT/cgroup.controllers exists, else v1 with one
  /// directory per controller (ROOT/cpu, ROOT/cpuacct, ROOT/memory, ROOT/blkio, ROOT/pids).
  std::string root = "/sys/fs/cgroup";
  /// Read the costly files (memory.stat, the block I/O files, cpu throttling and the v1
  /// user/system split, limits, pids) on every Nth Collect only; the CPU usage and memory usage
  /// (v2: all of cpu.stat) are read on every one. Query key `detail_every`; 1 (the default)
  /// reads everything every time. On cgroup v1 memory.stat alone costs ~13 us a read (the
  /// kernel sums the hierarchy), against ~0.8 us for cpuacct.usage: at 100 Hz with many
  /// containers, detail_every=10 cuts the source's cost about 6x.
  int detail_every = 1;

  /// "cgroup:/docker/ID", "cgroup:/docker/ID?root=DIR&detail_every=10". Unknown query keys are
  /// InvalidArgument.
  static Result<CgroupSourceOptions> FromUri(const Uri& uri);
};

/// Where one group's files are.
struct CgroupDirs {
  bool v2 = false;
  std::string unified;  ///< v2: the group's directory
  /// v1: the group's directory in each controller's hierarchy; empty when that controller is
  /// not mounted or the group is not in it.
  std::string cpu, cpuacct, memory, blkio, pids;
  std::string path;  ///< the group's path, for the `cgroup` label and messages

  /// The directories of group `path` under `root` (v1 or v2 as the root says). NotFound, naming
  /// the directories looked for, when none exists.
  static Result<CgroupDirs> ForPath(const std::string& root, const std::string& path);
  /// The directories of the groups a process is in, from the text of its /proc/PID/cgroup
  /// ("4:memory:/docker/ID", "0::/system.slice/docker-ID.scope").
  static Result<CgroupDirs> FromProcCgroup(const std::string& root, std::string_view text);
};

/// Concurrency: one sampling thread at a time (see MetricSource).
class CgroupSource final : public MetricSource {
 public:
  /// NotFound naming the directories when the group does not exist; InvalidArgument for an
  /// empty path.
  static Result<std::shared_ptr<CgroupSource>> Make(const CgroupSourceOptions& options);
  /// A source on `dirs`, named `uri`, with `labels` on every series (the container source).
  static Result<std::shared_ptr<CgroupSource>> Make(const CgroupDirs& dirs, std::string uri,
                                                    Labels labels, int detail_every = 1);
  ~CgroupSource() override;

  const std::string& uri() const override { return uri_; }
  /// NotFound once the group's directory is gone.
  Status Collect(Timestamp now, SampleBatch& batch) override;

  enum Part {
    kCpuStat,      // v2 cpu.stat; v1 cpu/cpu.stat
    kCpuUsage,     // v1 cpuacct.usage
    kCpuacctStat,  // v1 cpuacct.stat
    kMemCurrent,   // v2 memory.current; v1 memory.usage_in_bytes
    kMemMax,       // v2 memory.max; v1 memory.limit_in_bytes
    kMemStat,      // memory.stat
    kIo,           // v2 io.stat; v1 blkio.throttle.io_service_bytes
    kIoServiced,   // v1 blkio.throttle.io_serviced
    kPidsCurrent,
    kPidsMax,
    kParts
  };

 private:
  CgroupSource() = default;
  void Declare(SampleBatch& batch);
  void ParseKeyed(Part part, std::string_view text, internal::BatchWriter& out);
  void ParseSingle(Part part, std::string_view text, internal::BatchWriter& out);
  void ParseIoV2(std::string_view text, SampleBatch& batch, internal::BatchWriter& out);
  void ParseIoV1(int file, std::string_view text, SampleBatch& batch, internal::BatchWriter& out);
  std::uint32_t IoRow(std::size_t position, std::string_view device, SampleBatch& batch);
  Status Gone(const Status& why) const;

  std::string uri_;
  bool v2_ = false;
  bool check_exists_ = false;  // a recorded tree: see the header comment
  int detail_every_ = 1;
  std::int64_t calls_ = 0;
  std::string main_dir_;  // checked for existence after a failed read
  Labels labels_;
  double seconds_per_tick_ = 0.01;
  internal::ProcFile files_[kParts];
  std::vector<char> buffers_[kParts];
  std::vector<std::uint32_t> series_;  // metric index -> series index, see kMetrics
  // Keyed files (cpu.stat, cpuacct.stat, memory.stat): the metric each line holds (index into
  // kMetrics in first_series; exported=false for a line not reported), found once per line
  // position, so the steady state costs one key compare per line, not a scan of the table.
  internal::RowTable keyed_rows_[kParts];
  internal::RowTable io_rows_;
  std::size_t series_end_ = 0;
  bool declared_ = false;
  std::size_t last_samples_ = 0;
};

}  // namespace bitfusion
