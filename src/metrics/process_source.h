// "process:PID" metric source: CPU time, faults, threads, memory, context switches and I/O of one
// process, and with "?children=true" of each of its descendants too, read from /proc/PID.
//
// Metrics (label pid="N"; counters, marked *, are reported as read unless rates are asked for):
//   proc.cpu.{user,system}*                     s
//   proc.cpu.children_{user,system}*            s      CPU of children it has waited for
//   proc.minflt*, proc.majflt*, proc.threads    1
//   proc.rss, proc.vsize                        bytes
//   proc.ctxt.{voluntary,nonvoluntary}*         1
//   proc.io.{rchar,wchar,read_bytes,write_bytes}*  bytes  (only when /proc/PID/io is readable)
//
// The files are opened once. An open /proc/PID file stays bound to that process, so a PID reused
// after exit is never sampled by mistake: reads then fail with ESRCH and Collect says NotFound.
//
// Descendants ("?children=true") are found through /proc/PID/task/PID/children, read every tick
// for every process followed; for a process with more than one thread, every thread's children
// file is also read once a second, since a child belongs to the thread that forked it. A
// descendant is followed from the tick after it appears until it exits (silently: only the
// process named in the URI ending ends the source), up to kMaxProcesses processes.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "bitfusion/metric_stream.h"
#include "bitfusion/uri.h"
#include "metrics/batch_writer.h"
#include "metrics/proc_file.h"

namespace bitfusion {

struct ProcessSourceOptions {
  pid_t pid = 0;                    ///< the process to sample; "process:PID"
  std::string proc_root = "/proc";  ///< query key `proc_root`; a recorded tree in tests
  bool children = false;            ///< also sample its descendants; query key `children`

  /// "process:1234", "process:1234?proc_root=DIR&children=true". A PID that is not a positive
  /// number is InvalidArgument naming the URI; unknown query keys too.
  static Result<ProcessSourceOptions> FromUri(const Uri& uri);
};

/// Concurrency: one sampling thread at a time (see MetricSource).
///
/// /proc/PID/stat and /proc/PID/status are required; /proc/PID/io needs ptrace-level access to
/// the process (same user, or CAP_SYS_PTRACE): when it is refused, the proc.io series are not
/// sampled and one warning says why.
class ProcessSource final : public MetricSource {
 public:
  /// Processes followed at most (the named one and its descendants); more descendants than that
  /// are not sampled, with one warning.
  static constexpr std::size_t kMaxProcesses = 256;

  /// NotFound when the process does not exist.
  static Result<std::shared_ptr<ProcessSource>> Make(const ProcessSourceOptions& options);
  ~ProcessSource() override;

  const std::string& uri() const override { return uri_; }
  /// NotFound once the named process has exited (a zombie counts as exited).
  Status Collect(Timestamp now, SampleBatch& batch) override;

 private:
  // One process followed, with its files kept open.
  struct Tracked {
    pid_t pid = 0;
    internal::ProcFile stat, status, io, children;
    std::size_t ctxt_hint = 0;  // where to start looking for the context switches in status
    std::uint32_t first_series = 0;
    std::uint32_t io_first_series = 0;
    bool declared = false;  // its series are in the current table
    int threads = 1;        // from the last stat
    bool seen = false;      // scratch for a children scan
  };

  ProcessSource() = default;
  Status Gone(pid_t pid, const char* why) const;
  Status ReadFailed(pid_t pid, const Status& error) const;
  static Result<std::unique_ptr<Tracked>> Open(const std::string& proc_root, pid_t pid,
                                               bool need_io, std::vector<char>& buffer);
  void Declare(Tracked& t, SampleBatch& batch);
  Status CollectOne(Tracked& t, internal::BatchWriter& out);
  void FindChildren(Timestamp now);
  void AddChildren(std::string_view list, std::vector<pid_t>& found) const;
  Status ParseStat(Tracked& t, std::string_view text, internal::BatchWriter& out);
  void ParseStatus(Tracked& t, std::string_view text, internal::BatchWriter& out);
  void ParseIo(Tracked& t, std::string_view text, internal::BatchWriter& out);

  std::string uri_;
  std::string proc_root_;
  bool children_ = false;
  double seconds_per_tick_ = 0.01;  // 1 / USER_HZ
  double page_bytes_ = 4096;
  std::vector<std::unique_ptr<Tracked>> tracked_;  // [0] is the process named in the URI
  std::vector<char> buffers_[4];                   // stat, status, io, children
  std::vector<pid_t> found_;                       // scratch for children scans
  std::int64_t last_thread_scan_ns_ = 0;
  bool limit_logged_ = false;

  std::size_t series_end_ = 0;  // batch.series.size() after this source's declarations
  bool declared_ = false;
  std::size_t last_samples_ = 0;  // samples appended by the previous call: room to make
};

}  // namespace bitfusion
