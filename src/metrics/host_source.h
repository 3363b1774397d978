// "host" metric source: CPU times and frequencies, memory, load, pressure stalls, block devices
// and network interfaces of the whole machine, read from procfs and sysfs.
//
// Metrics (counters, marked *, are reported as read unless rates are asked for: "host?rate=true"):
//   cpu.{user,nice,system,idle,iowait,irq,softirq,steal}* s      labels cpu="all" | cpu="N"
//   cpu.frequency                                          Hz     label cpu="N" (cpufreq's
//                                                                 scaling_cur_freq)
//   mem.{total,free,available,buffers,cached,swap_cached,active,inactive,anon,mapped,shmem,
//        slab,slab_reclaimable,dirty,writeback,swap_total,swap_free,committed}  bytes
//   load.{1m,5m,15m}                                       1
//   tasks.{running,total}                                  1
//   pressure.{some,full}.{avg10,avg60,avg300}              %      label resource=cpu|memory|io
//   pressure.{some,full}.total*                            s      (/proc/pressure, PSI)
//   disk.{reads*,writes*,in_flight}                        1      label device (whole disks)
//   disk.{read_bytes,write_bytes}*                         bytes
//   disk.{read_time,write_time,io_time}*                   s
//   net.{rx,tx}_{bytes}*                                   bytes  label iface
//   net.{rx,tx}_{packets,errs,drop}*                       1
//
// Cost: every file is opened once and re-read with pread into its own reusable buffer, all of
// them before any is parsed; numbers are parsed in place over string_views, series are looked
// up by line position with a name check, and samples are written straight into the batch's
// columns, so a Collect in the steady state makes no allocation and costs little more than the
// reads (see benchmarks/host_sample_benchmark.cc).
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

struct HostSourceOptions {
  /// Where procfs is mounted. A recorded tree (with stat, meminfo, loadavg, pressure/,
  /// diskstats, net/dev) makes the source read fixtures. Query key `proc_root`; default "/proc".
  std::string proc_root = "/proc";
  /// Where sysfs is mounted (for devices/system/cpu/cpuN/cpufreq/scaling_cur_freq). Query key
  /// `sys_root`; default "/sys".
  std::string sys_root = "/sys";

  /// "host", "host:?proc_root=/path/to/tree&sys_root=/path/to/sys". Unknown query keys are
  /// InvalidArgument.
  static Result<HostSourceOptions> FromUri(const Uri& uri);
};

/// Concurrency: one sampling thread at a time (see MetricSource).
///
/// stat and meminfo are required (Make fails without them); loadavg, pressure (a kernel without
/// PSI has no /proc/pressure), diskstats, net/dev and the CPU frequencies (a VM often has no
/// cpufreq) are optional: a missing one is logged once as a warning and that part is not
/// sampled. CPUs are those with a cpufreq directory when the source is made. A read
/// error in one part does not stop the others; Collect returns the first error after sampling
/// everything it could.
class HostSource final : public MetricSource {
 public:
  static Result<std::shared_ptr<HostSource>> Make(const HostSourceOptions& options);
  ~HostSource() override;

  const std::string& uri() const override { return uri_; }
  /// Appends one value per series, all stamped `now`. Series are declared on the first call (and
  /// again if handed a batch whose series table is not the one this source built).
  Status Collect(Timestamp now, SampleBatch& batch) override;

 private:
  HostSource() = default;

  void ParseCpu(std::string_view text, SampleBatch& batch, internal::BatchWriter& out);
  void ParseMemory(std::string_view text, SampleBatch& batch, internal::BatchWriter& out);
  Status ParseLoad(std::string_view text, internal::BatchWriter& out);
  void ParseDisks(std::string_view text, SampleBatch& batch, internal::BatchWriter& out);
  void ParseNet(std::string_view text, SampleBatch& batch, internal::BatchWriter& out);
  void ParsePressure(int part, std::string_view text, internal::BatchWriter& out);
  Status CollectFrequencies(internal::BatchWriter& out);
  void Reset(SampleBatch& batch);

  std::string uri_;
  double seconds_per_tick_ = 0.01;  // 1 / USER_HZ
  enum Part {
    kStat,
    kMeminfo,
    kLoadavg,
    kPressureCpu,
    kPressureMemory,
    kPressureIo,
    kDiskstats,
    kNetDev,
    kParts
  };
  internal::ProcFile files_[kParts];  // closed for an optional file that is missing
  std::vector<char> buffers_[kParts];
  std::uint32_t pressure_first_series_[kParts] = {};  // for the kPressure* parts

  struct Cpufreq {
    std::string cpu;
    internal::ProcFile file;
    std::uint32_t series = 0;
  };
  std::vector<Cpufreq> cpufreq_;
  std::vector<char> cpufreq_buffer_;

  std::size_t series_end_ = 0;  // batch.series.size() after this source's declarations
  bool declared_ = false;
  std::size_t last_samples_ = 0;  // samples appended by the previous call: room to make
  std::uint32_t load_first_series_ = 0;
  internal::RowTable cpu_rows_, mem_rows_, disk_rows_, net_rows_;
};

namespace internal {

/// Kernel naming rule for partitions: "sda" -> "sda1", "nvme0n1" -> "nvme0n1p1" (a "p" when the
/// disk's name ends in a digit). True when `name` is a partition of `disk`.
bool IsPartitionOf(std::string_view name, std::string_view disk);

}  // namespace internal

}  // namespace bitfusion
