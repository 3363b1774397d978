// "probe:NAME" metric source: receives what a bitfusion-probe inside a container samples (the
// container's own view; see src/probe/probe_sampler.h for the metrics and probe_wire.h for the
// format) over a unix socket this source listens on.
//
//   probe:NAME?socket=/tmp/dir/probe.sock[&connect_timeout=30s]
//
// Handlers on the library's event loop (core/event_loop.h), on a strand of this source's own and
// with no thread of its own, accept one probe and read its records as they come, never
// blocking; Collect moves the samples received since the last call into the batch with the
// probe's own timestamps (one wall and one monotonic stamp per probe tick, on the host's clocks:
// see probe.h). Every series gets labels view="inside" and container=NAME on top of the probe's
// own (pid, comm, cpu).
//
// BackgroundCpuNs is the CPU time those handlers took (each one's thread CPU time, measured
// around it) plus the CPU time the probe reports for itself, so the stream's overhead includes
// the observer inside the container.
//
// Ending: when the probe closes the connection (its command exited, or it was stopped), Collect
// delivers what is left and then answers NotFound (the stream publishes kMetricSourceEnded). A
// corrupt stream (bad size, unknown type, wrong version, series out of range) is reported once
// as an error naming what was wrong, then the source ends the same way. No probe connecting
// within connect_timeout (0 = wait for ever) ends it too, saying so.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "bitfusion/metric_stream.h"
#include "bitfusion/uri.h"
#include "metrics/probe_records.h"

namespace bitfusion {

struct ProbeSourceOptions {
  std::string name;         ///< label container=NAME; the URI's path
  std::string socket_path;  ///< query key `socket`: where to listen (a stale socket is replaced)
  /// query key `connect_timeout`: end the source when no probe connected in this long; 0 = never
  std::chrono::nanoseconds connect_timeout{0};
  /// Remove the socket's directory (if empty) with the source; not a URI key (ProbeContainer
  /// sets it for the directories it makes).
  bool remove_dir = false;
  /// Besides root and this process's user, the one user whose connection is taken (the
  /// container's numeric user, when it runs as one); -1 = any user. Not a URI key.
  long peer_uid = -1;
  /// Added to the probe's stamps: zero for a probe on this host (a container shares its clocks);
  /// a probe on another machine's engine gets that machine's (RemoteProbeHost). Not a URI key.
  internal::ProbeRecords::TimeShift time_shift;
  /// Added to every series besides view and container (a remote probe's machine and clock
  /// estimate). Not a URI key.
  std::map<std::string, std::string> labels;
  /// Held as long as the source and let go after its handlers stopped (what a remote probe needs
  /// on its machine). Not a URI key.
  std::shared_ptr<void> keep_alive;

  /// "probe:NAME?socket=PATH&connect_timeout=DURATION". InvalidArgument for a missing name or
  /// socket, a socket path too long for a unix socket, or unknown keys.
  static Result<ProbeSourceOptions> FromUri(const Uri& uri);
};

/// Concurrency: Collect from one sampling thread (see MetricSource); the loop's handlers and
/// Collect share the pending samples under a mutex held only to copy them. The destructor stops
/// the handlers: once it returns, none of this source's runs or will run.
class ProbeSource final : public MetricSource {
 public:
  /// Samples kept while nobody collects them; more are dropped (counted, one warning).
  static constexpr std::size_t kMaxPendingSamples = 1 << 20;
  /// Bytes of metric names, units, label keys and values all declared series may take.
  static constexpr std::size_t kMaxLabelBytes = 4 << 20;

  /// Binds and listens on the socket and starts waiting for the probe on the loop. AlreadyExists
  /// when something other than a socket is at the path. The socket is mode 0777 (a probe may run as
  /// any user); who can reach it is the directory's business (ProbeContainer makes it 0700), and
  /// the reader takes only a connection whose peer (SO_PEERCRED) is root, this process's user or
  /// options.peer_uid: others are closed, counted and logged once, and it waits on.
  ///
  /// Labels the probe declares are checked: only the keys it sends (cpu, pid, comm), so a probe
  /// cannot override run labels, and at most kMaxLabelBytes of metric names, units and labels
  /// in all.
  static Result<std::shared_ptr<ProbeSource>> Make(const ProbeSourceOptions& options);
  ~ProbeSource() override;

  const std::string& uri() const override { return uri_; }
  Status Collect(Timestamp now, SampleBatch& batch) override;
  std::int64_t BackgroundCpuNs() const override;
  std::int64_t SamplesDropped() const override { return samples_dropped(); }
  bool BuffersBetweenTicks() const override { return true; }

  /// Waits up to `timeout` for the probe's connection to end (its command exited and it sent its
  /// last sample, or it went away); true when it has. For a caller that has seen the container
  /// exit and wants the probe's final sample read before stopping the stream.
  bool WaitEnded(std::chrono::nanoseconds timeout) const;
  /// Connections refused because their peer was another user.
  std::int64_t peers_refused() const;
  bool Drain(std::chrono::nanoseconds timeout) override { return WaitEnded(timeout); }

  /// Probe ticks received and samples dropped because nobody collected them.
  std::int64_t ticks_received() const;
  std::int64_t samples_dropped() const;

 private:
  // The listening socket, the probe's connection and the decoded stream, shared by the loop's
  // handlers (which hold it, so that one still queued when this source goes finds it alive)
  // and this source's methods (probe_source.cc).
  class Reader;

  ProbeSource() = default;

  ProbeSourceOptions options_;
  std::string uri_;
  bool bound_ = false;  // the socket file is ours to remove
  std::shared_ptr<Reader> reader_;
};

}  // namespace bitfusion
