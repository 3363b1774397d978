// "process:PID" metric source: CPU time, faults, threads, memory, context switches and I/O of one
// process, read from /proc/PID.
//
// Metrics (label pid="N"; counters are reported as read):
//   proc.cpu.{user,system}                      s
//   proc.minflt, proc.majflt, proc.threads      1
//   proc.rss, proc.vsize                        bytes
//   proc.ctxt.{voluntary,nonvoluntary}          1
//   proc.io.{rchar,wchar,read_bytes,write_bytes}  bytes  (only when /proc/PID/io is readable)
//
// The files are opened once. An open /proc/PID file stays bound to that process, so a PID reused
// after exit is never sampled by mistake: reads then fail with ESRCH and Collect says NotFound.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "bitfusion/metric_stream.h"
#include "bitfusion/uri.h"
#include "metrics/source_internal.h"

namespace bitfusion {

struct ProcessSourceOptions {
  pid_t pid = 0;                    ///< the process to sample; "process:PID"
  std::string proc_root = "/proc";  ///< query key `proc_root`; a recorded tree in tests

  /// "process:1234", "process:1234?proc_root=DIR". A PID that is not a positive number is
  /// InvalidArgument naming the URI; unknown query keys too.
  static Result<ProcessSourceOptions> FromUri(const Uri& uri);
};

/// Concurrency: one sampling thread at a time (see MetricSource).
///
/// /proc/PID/stat and /proc/PID/status are required; /proc/PID/io needs ptrace-level access to
/// the process (same user, or CAP_SYS_PTRACE): when it is refused, the proc.io series are not
/// sampled and one warning says why.
class ProcessSource final : public MetricSource {
 public:
  /// NotFound when the process does not exist.
  static Result<std::shared_ptr<ProcessSource>> Make(const ProcessSourceOptions& options);
  ~ProcessSource() override;

  const std::string& uri() const override { return uri_; }
  /// NotFound once the process has exited (a zombie counts as exited).
  Status Collect(Timestamp now, SampleBatch& batch) override;

 private:
  ProcessSource() = default;
  Status Gone(const char* why) const;
  Status ReadFailed(const Status& error) const;
  Status ParseStat(std::string_view text, internal::BatchWriter& out);
  void ParseStatus(std::string_view text, internal::BatchWriter& out);
  void ParseIo(std::string_view text, internal::BatchWriter& out);

  std::string uri_;
  pid_t pid_ = 0;
  double seconds_per_tick_ = 0.01;  // 1 / USER_HZ
  double page_bytes_ = 4096;
  internal::ProcFile stat_, status_, io_;
  std::vector<char> buffers_[3];  // stat, status, io
  std::size_t ctxt_hint_ = 0;     // where to start looking for the context switches in status

  std::size_t series_end_ = 0;  // batch.series.size() after this source's declarations
  bool declared_ = false;
  std::size_t last_samples_ = 0;  // samples appended by the previous call: room to make
  std::uint32_t first_series_ = 0;
  std::uint32_t io_first_series_ = 0;
};

}  // namespace bitfusion
