// "host+ssh://USER@HOST[:PORT]" metric source: the `host` source of a remote machine, sampled on
// that machine by a bitfusion-probe started over SSH and streamed back over the same connection,
// with its stamps moved onto this host's clocks.
//
//   host+ssh://USER@HOST[:PORT]?identity=KEY&ssh_config=FILE&ssh_option=K=V&connect_timeout=10
//     &interval=10ms&processes=false&cgroup=false&machine=NAME&probe=PATH&start_timeout=60s
//     &clock_exchanges=8
//
// The login keys are process+ssh://'s (net/ssh_uri.h). One channel over the session's master
// carries everything: a POSIX sh script makes a private directory (`mktemp -d`, 0700), reads
// exactly the probe's bytes from the channel into it (`head -c`), and runs it as
// `bitfusion-probe --stdout --control-stdin [--no-processes] [--no-cgroup]`, removing the directory
// when the probe exits (an EXIT trap). Nothing else is written on the remote host and nothing
// outlives the connection: the probe stops at the end of its stdin, which is what the remote host
// sees when this source stops, when bitfusion or its ssh client dies, or when the connection drops.
//
// Metrics: the probe's host view (src/probe/probe_sampler.h): cpu.* (label cpu="all"),
// cpu.context_switches, tasks.running, mem.* (the `host` source's names); with cgroup=true the
// root cgroup's cgroup.*, with processes=true every process's proc.*. Every series carries
// machine=NAME (default USER@HOST:PORT), view="host", and the clock estimate: clock_offset_ns (the
// remote clock minus this host's) and clock_uncertainty_ns (its error bound), both in nanoseconds.
//
// Clocks: before the source is handed out, `clock_exchanges` PING/PONG exchanges (probe_wire.h)
// estimate the remote CLOCK_REALTIME's offset from this host's as NTP does (clock_offset.h); the
// minimum-delay exchange is kept. Every sample's wall stamp is the remote stamp minus the offset.
// Its monotonic stamp is the remote CLOCK_MONOTONIC stamp shifted by one constant, chosen so that
// it lands on this host's CLOCK_MONOTONIC at the corrected wall time of the first tick: intervals
// between samples are the remote monotonic clock's (no step when the remote wall clock is
// adjusted), and the position on the timeline is the offset estimate's. The offset is measured
// once, at the start: drift between the clocks over a run (typically < 50 ppm with NTP, 3 ms
// over a minute without) is not followed.
//
// Reading: Make reads the probe's first records itself (the clock exchanges); from then on
// handlers on the library's event loop (core/event_loop.h), on a strand of the source's own and
// with no thread of its own, read the ssh client's stdout and stderr as they become readable,
// never blocking.
//
// Ending: when the probe stops on its own or the connection drops, Collect delivers what is left
// and then answers NotFound (kMetricSourceEnded) with the reason.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "bitfusion/metric_stream.h"
#include "bitfusion/uri.h"
#include "metrics/clock_offset.h"
#include "metrics/probe_records.h"
#include "net/ssh_session.h"

namespace bitfusion {

struct SshProbeSourceOptions {
  SshTarget target;           ///< USER@HOST[:PORT] and `identity`
  SshSessionOptions session;  ///< `ssh_config`, `ssh_option`, `connect_timeout`, `runtime_dir`
  std::string machine;        ///< `machine`: the label machine=; empty = target.ToString()
  std::chrono::nanoseconds interval = std::chrono::milliseconds(10);  ///< `interval`, 1ms..1h
  bool processes = false;  ///< `processes`: also every process of the remote host (proc.*)
  /// `cgroup`: also the remote root cgroup's cgroup.* (costs ~0.1 ms a tick on cgroup v1)
  bool cgroup = false;
  std::string probe_path;  ///< `probe`: the bitfusion-probe to copy; empty = FindProbe()
  /// `start_timeout`: login, copy, start and clock exchanges must be done within this long
  std::chrono::nanoseconds start_timeout = std::chrono::seconds(60);
  int clock_exchanges = 8;  ///< `clock_exchanges`: PING/PONG exchanges at the start, 1..64

  static Result<SshProbeSourceOptions> FromUri(const Uri& uri);
};

/// Concurrency: Collect from one sampling thread (MetricSource); the loop's handlers and Collect
/// share the decoded records under a mutex. Stop (and so the destructor) stops the handlers:
/// once it returns, none of this source's runs or will run.
class SshProbeSource final : public MetricSource {
 public:
  /// Logs in, starts the probe on the remote host and estimates its clock's offset; returns
  /// once both are done. Unavailable when the host cannot be reached or the probe does not
  /// start (with the remote shell's message), DeadlineExceeded past start_timeout.
  static Result<std::shared_ptr<SshProbeSource>> Make(const SshProbeSourceOptions& options);
  ~SshProbeSource() override;  ///< Stop()

  const std::string& uri() const override { return uri_; }
  Status Collect(Timestamp now, SampleBatch& batch) override;
  /// The CPU time its handlers on the loop took (each one's thread CPU time, measured around
  /// it) and the CPU the remote probe reports for itself.
  std::int64_t BackgroundCpuNs() const override;
  std::int64_t SamplesDropped() const override;
  bool BuffersBetweenTicks() const override { return true; }

  /// Ends the remote probe (end of its stdin), waits up to `timeout` for it to exit and its
  /// directory to be removed (the remote shell's EXIT trap), then closes the connection; the
  /// samples it sent last stay for Collect. Idempotent. Unavailable when the remote side did not
  /// finish in time (its ssh client is then killed, which ends it too).
  Status Stop(std::chrono::nanoseconds timeout = std::chrono::seconds(10));

  /// The estimate applied to every sample.
  const internal::ClockOffset& clock_offset() const { return offset_; }
  /// How the remote host's stamps map onto this host's clocks (the offset and the first tick's
  /// wall - monotonic): a probe in a container there, which shares the host's clocks, is moved
  /// onto this host's timeline by the same shift.
  internal::ProbeRecords::TimeShift time_shift() const { return shift_; }
  /// The private directory on the remote host (removed when the probe exits).
  const std::string& remote_dir() const;
  /// The local ssh client carrying the probe's channel (tests kill it).
  int client_pid() const { return child_.pid; }
  std::int64_t ticks_received() const;

 private:
  // The ssh client's stdout and stderr and the decoded records, shared by the loop's handlers
  // (which hold it, so that one still queued when this source goes finds it alive) and this
  // source's methods (ssh_probe_source.cc).
  class Reader;

  SshProbeSource() = default;
  Status Start(const SshProbeSourceOptions& options, const std::string& probe_bytes);

  std::string uri_;
  std::shared_ptr<SshSession> session_;
  SshChild child_;  // its stdout_fd and stderr_fd are the reader's
  internal::ClockOffset offset_;
  internal::ProbeRecords::TimeShift shift_;
  std::shared_ptr<Reader> reader_;
  std::atomic<bool> stopped_{false};
};

}  // namespace bitfusion
