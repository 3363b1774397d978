// "docker-stats:ID" metric source: a container's resource counters as the engine's stats stream
// (GET /containers/ID/stats?stream=1, through Container::Stats) reports them, for engines whose
// cgroups this process cannot read: a remote engine (docker+tls://, ssh-forwarded sockets), a
// rootless one, a VM-backed one. Where the cgroups are readable, container:ID is finer (any
// interval, more metrics) and far cheaper for the engine.
//
// Metrics, named as the cgroup source names the same quantities (counters marked *); every
// series carries labels container="SHORT_ID" (12 characters) and container_name="NAME":
//   cgroup.cpu.usage*        s      cpu_stats.cpu_usage.total_usage (ns)
//   cgroup.memory.usage      bytes  memory_stats.usage (page cache included, as the cgroup
//                                   source's; `docker stats` shows it less inactive_file)
//   cgroup.memory.limit      bytes  memory_stats.limit (the host's memory when unlimited)
//   cgroup.io.read_bytes*    bytes  blkio_stats.io_service_bytes_recursive, op Read, all devices
//   cgroup.io.write_bytes*   bytes  ... op Write
//   cgroup.pids.current      1      pids_stats.current
//   net.rx_bytes*            bytes  networks.*.rx_bytes, summed; label iface="all"
//   net.tx_bytes*            bytes  networks.*.tx_bytes
//
// Readings come as often as the engine sends them (Docker 20.10: about one a second), whatever
// the stream's interval. They are received on the runner's stats thread, which parses them and
// queues them; Collect only moves the readings queued since the previous tick into the batch,
// so the sampling thread never waits on the engine. That thread's CPU time (its pthread CPU
// clock, read at each reading) is reported through BackgroundCpuNs.
//
// Timestamps: each sample carries the engine's `read` time as its wall-clock time, taken to be
// on this host's clock (a remote engine's clock is assumed synchronised, e.g. by NTP). Its
// monotonic time is that wall time moved onto this host's CLOCK_MONOTONIC by the offset between
// the two clocks at the moment the reading arrived, never later than that moment (an engine
// clock ahead of ours) and never earlier than the previous reading's.
//
// End: when the container exits (or is removed) the engine sends readings without values, or
// closes the stream; the source then asks the engine once whether the container has stopped,
// and if so Collect delivers what is queued and answers NotFound, which ends the source
// (kMetricSourceEnded). A stream the engine stops feeding for 10 s ends the source the same way.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "bitfusion/container_runner.h"
#include "bitfusion/metric_stream.h"
#include "bitfusion/subscription.h"
#include "bitfusion/uri.h"

namespace bitfusion {

struct DockerStatsSourceOptions {
  std::string id;  ///< container id, unique id prefix or name: "docker-stats:ID"
  /// The engine, as a ContainerRunner URI (percent-encoded in the query when it has a query of
  /// its own). Query key `runner`; default "docker://", i.e. DOCKER_HOST when set, else the
  /// engine's default socket /var/run/docker.sock — as for container:ID.
  std::string runner = "docker://";

  /// "docker-stats:ID", "docker-stats:ID?runner=docker+tls://build-host:2376". Unknown query
  /// keys and an empty ID are InvalidArgument.
  static Result<DockerStatsSourceOptions> FromUri(const Uri& uri);
};

/// Concurrency: one sampling thread at a time (see MetricSource); BackgroundCpuNs from any.
class DockerStatsSource final : public MetricSource {
 public:
  /// Makes the runner from options.runner, then as below.
  static Result<std::shared_ptr<DockerStatsSource>> Make(const DockerStatsSourceOptions& options);
  /// Opens the container (ContainerRunner::OpenContainer) and subscribes to its stats. NotFound
  /// when the engine has no such container, FailedPrecondition when it has exited, Unimplemented
  /// when the runner has no stats stream (process://, null://). A container created but not yet
  /// started is fine: readings begin when it runs.
  static Result<std::shared_ptr<DockerStatsSource>> Make(std::shared_ptr<ContainerRunner> runner,
                                                         const DockerStatsSourceOptions& options);
  /// Ends the subscription (joining the stats thread) before anything else goes.
  ~DockerStatsSource() override;

  const std::string& uri() const override { return uri_; }
  /// Appends the readings received since the previous call (none, most ticks), each stamped with
  /// its own time (see the top of this file).
  Status Collect(Timestamp now, SampleBatch& batch) override;
  std::int64_t BackgroundCpuNs() const override { return stats_cpu_ns_.load(); }
  /// The samples of readings dropped because no Collect took them (more than 4096 readings
  /// waiting: a stream that is not started, or stalled).
  std::int64_t SamplesDropped() const override { return dropped_.load(); }
  bool BuffersBetweenTicks() const override { return true; }

  DockerStatsSource(const DockerStatsSource&) = delete;
  DockerStatsSource& operator=(const DockerStatsSource&) = delete;

 private:
  struct Reading {
    ContainerStats stats;
    std::int64_t wall_ns = 0;
    std::int64_t mono_ns = 0;
  };

  DockerStatsSource() = default;
  void OnReading(const ContainerStats& stats);  // on the runner's stats thread
  void End(std::string reason);

  std::string uri_;
  std::string short_id_;
  Labels labels_;
  std::shared_ptr<ContainerRunner> runner_;
  std::unique_ptr<Container> container_;
  Subscription subscription_;  // cancelled first thing in the destructor

  // Between the stats thread and Collect.
  std::mutex mu_;
  std::vector<Reading> pending_;  // capacity kept: swapped with drained_, never shrunk
  bool ended_ = false;
  std::string end_reason_;
  std::atomic<std::int64_t> last_heard_mono_ns_{0};
  std::atomic<std::int64_t> stats_cpu_ns_{0};
  std::atomic<std::int64_t> dropped_{0};  // samples of readings dropped unread

  // Stats thread only.
  bool saw_values_ = false;
  std::int64_t last_mono_ns_ = 0;

  // Sampling thread only.
  std::vector<Reading> drained_;
  std::uint32_t first_series_ = 0;
  std::size_t series_end_ = 0;
  bool declared_ = false;
};

}  // namespace bitfusion
