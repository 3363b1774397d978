// MetricStream: samples sources (host, process, cgroup, gpu, ...) on a fixed interval on its own
// thread and delivers columnar batches to subscribers and sinks from another.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "bitfusion/clock.h"
#include "bitfusion/event.h"
#include "bitfusion/export.h"
#include "bitfusion/registry.h"
#include "bitfusion/result_sink.h"
#include "bitfusion/sample.h"
#include "bitfusion/status.h"
#include "bitfusion/subscription.h"

namespace bitfusion {

/// One thing to sample. Made from a source URI: "host", "process:PID", "cgroup:PATH",
/// "container:ID", "gpu", "docker-stats:ID", "probe:ID", "null".
///
/// Concurrency: a source is used by one sampling thread only; it needs no locking.
class BITFUSION_EXPORT MetricSource {
 public:
  virtual ~MetricSource();

  /// The URI it was made from.
  virtual const std::string& uri() const = 0;

  /// Appends this tick's values to `batch`, all stamped `now`. The stream hands each source a
  /// batch holding that source's series table tick after tick (the same object, or a recycled
  /// one whose series the stream keeps identical; samples may already be there from earlier
  /// ticks of the same delivery period), so a source adds its series on the first call and
  /// reuses their indices; it only ever appends series. NotFound means the thing sampled is
  /// gone (process exited): the stream drops the source with one log line. Any other error is
  /// logged once per source, counted, and the source is asked again on the next tick (samples
  /// it appended before failing are kept).
  virtual Status Collect(Timestamp now, SampleBatch& batch) = 0;

  /// CPU time (ns) this source has used outside Collect: a thread of its own reading an engine's
  /// stream, handlers on the library's event loop reading a probe, a probe inside a container.
  /// Counted in StreamOverhead::source_cpu_ns, so the observer's cost is complete. Called from any
  /// thread; 0 (the default) for sources that do all their work in Collect, which the stream
  /// measures itself.
  virtual std::int64_t BackgroundCpuNs() const;

  /// Samples this source received but had to drop before a Collect took them (a source fed
  /// between ticks, by a thread of its own or the event loop, whose buffer is bounded). Counted in
  /// StreamOverhead::samples_dropped, so no loss is silent. Called from any thread; 0 (the default)
  /// for sources that read in Collect.
  virtual std::int64_t SamplesDropped() const;

  /// True for a source fed between ticks, by a thread of its own or the event loop (an engine's
  /// stats stream, a probe's socket): Stop collects it once more after the last tick, so what
  /// arrived since is delivered rather than left behind. False (the default) for sources that read
  /// in Collect.
  virtual bool BuffersBetweenTicks() const;

  /// Says the thing this source samples has just started (a container the source was made for
  /// before it ran): a source waiting for it looks at once instead of at its next poll. Any
  /// thread; a no-op by default.
  virtual void TargetStarted();

  /// Called once the thing sampled has ended and before the stream stops: waits up to `timeout`
  /// for what the source still has on its way (a probe's last sample after its command exited)
  /// so Stop's final collection delivers it. True when nothing is still on its way (the
  /// default).
  virtual bool Drain(std::chrono::nanoseconds timeout);

  /// Why this source samples nothing here, or "" when it samples: a "gpu" source on a host with
  /// no GPU library or driver, a gpu+ssh:// one on a machine without a GPU nvidia-smi can read.
  /// Such a source is not an error (it warned once) and its Collect appends nothing; a plan
  /// checks each source once before its runs and leaves a disabled one out of them. A source
  /// that samples nothing for a passing reason (its connection dropped) answers "": the next
  /// one made may do better.
  virtual std::string WhyDisabled() const;
};

/// "host", "process:1234", "null" -> a source. An unknown scheme lists the known ones. Every
/// source takes the query key "rate" ("host?rate=true"): its counters (Series::counter) are
/// then delivered as per-second rates (see MetricStreamOptions::rates).
BITFUSION_EXPORT Result<std::shared_ptr<MetricSource>> MetricSourceFromUri(
    std::string_view uri, const BackendContext& context = {});

class ContainerRunner;

/// The "container:ID" source for a container of a runner the caller already holds (no runner
/// URI needed): the cgroup metrics (cgroup.cpu.*, cgroup.memory.*, cgroup.io.*, cgroup.pids.*)
/// of container `container_id` (id, unique prefix or name), labelled container="SHORT_ID" and
/// container_name. The runner must be able to inspect containers (docker://, docker+tls://;
/// process:// and null:// cannot: InvalidArgument). A container created but not started yet is
/// fine: a small thread (its CPU time reported through BackgroundCpuNs) waits for it to run and
/// the source appends nothing until then. NotFound when there is no such container,
/// FailedPrecondition when it has already exited. When it exits while sampled, Collect answers
/// NotFound and the stream ends the source (kMetricSourceEnded). Keeps `runner` alive.
/// `detail_every` N > 1 reads the costly cgroup files (memory.stat, block I/O, throttling,
/// limits, pids) on every Nth sample only; CPU and memory usage are read on every one.
BITFUSION_EXPORT Result<std::shared_ptr<MetricSource>> ContainerMetricSource(
    std::shared_ptr<ContainerRunner> runner, std::string_view container_id, int detail_every = 1);

/// A container's counters as its engine's stats stream reports them (the "docker-stats:ID"
/// source: cgroup.cpu.usage, cgroup.memory.*, cgroup.io.*, cgroup.pids.current, net.*), through
/// `runner`: for an engine whose cgroups this process cannot read, such as another machine's
/// (docker+ssh://, docker+tls://). Readings come as often as the engine sends them (about once a
/// second), whatever the stream's interval. A container created but not started is fine.
/// Unimplemented for a runner without a stats stream. Keeps `runner` alive.
BITFUSION_EXPORT Result<std::shared_ptr<MetricSource>> EngineStatsMetricSource(
    std::shared_ptr<ContainerRunner> runner, std::string_view container_id);

/// Wraps `source` so that its counters come out as per-second rates: each counter sample
/// becomes (value - previous value) / (monotonic time between them) with unit "UNIT/s", and the
/// first sample of each counter (which has no previous one) and a sample after a reset (a value
/// lower than the previous one: a restarted container) are not delivered. Gauges pass through.
BITFUSION_EXPORT std::shared_ptr<MetricSource> CountersAsRates(
    std::shared_ptr<MetricSource> source);

enum class OverflowPolicy : int {
  kDropOldest = 0,  ///< the sampler never waits; dropped samples are counted
  kBlock,           ///< the sampler waits for delivery (ticks may be missed; counted)
};

struct MetricStreamOptions {
  /// Time between ticks, 1 ms .. 1 h (else Make says InvalidArgument).
  std::chrono::nanoseconds interval = std::chrono::milliseconds(10);
  /// Batches are handed to delivery after this long (or at Stop); 0 = every tick.
  std::chrono::nanoseconds delivery_interval = std::chrono::milliseconds(100);
  /// Bounded queue between sampler and delivery, in batches (one per source per hand-over);
  /// 1 .. 2^20.
  std::size_t queue_batches = 256;
  OverflowPolicy overflow = OverflowPolicy::kDropOldest;
  Labels labels;  ///< added to every batch (run, benchmark, machine ...)
  /// Deliver every source's counters as per-second rates (CountersAsRates on each source Add
  /// is given); false delivers them as read.
  bool rates = false;
  /// Receives kMetricSourceEnded when a source stops for good (e.g. EventBus::Publisher()), on
  /// the sampling thread: it must not block. Empty: only the log line says so.
  EventCallback on_event;
};

/// What the observer cost and did.
struct StreamOverhead {
  std::int64_t sampler_cpu_ns = 0;   ///< CPU time of the sampling thread
  std::int64_t delivery_cpu_ns = 0;  ///< CPU time of the delivery thread
  /// CPU time sources used outside the stream's threads (MetricSource::BackgroundCpuNs)
  std::int64_t source_cpu_ns = 0;
  std::int64_t ticks = 0;
  std::int64_t ticks_missed = 0;  ///< deadlines skipped because a tick overran
  std::int64_t samples = 0;
  /// lost to a full queue, or dropped by a source before it was collected
  /// (MetricSource::SamplesDropped)
  std::int64_t samples_dropped = 0;
  std::int64_t delivery_errors = 0;  ///< sink writes (and the final flushes) that failed
  std::int64_t source_errors = 0;    ///< Collect calls that failed other than with NotFound
  std::int64_t sources_dropped = 0;  ///< sources removed because what they sampled was gone
};

using BatchCallback = std::function<void(const SampleBatch& batch)>;

/// Two threads: a sampler that calls every source's Collect on each tick, and a delivery thread
/// that hands the batches to subscribers and sinks, so a slow sink never delays a tick. Between
/// them is a bounded queue (see OverflowPolicy); batches are recycled, so the steady state
/// allocates nothing in the stream itself.
///
/// Source errors: NotFound drops the source (one info line and a kMetricSourceEnded event to
/// options.on_event; counted in sources_dropped); any other error is logged once per source as
/// a warning, counted in source_errors, and the source is asked again every tick, because most
/// such errors (a busy file, a transient read failure) pass.
///
/// Concurrency: Add/Attach before Start; Subscribe and Overhead() any time, from any thread;
/// Start/Stop from one controlling thread, never from a callback. A stream runs once.
class BITFUSION_EXPORT MetricStream {
 public:
  /// InvalidArgument for an interval outside 1 ms .. 1 h, a negative delivery interval or a
  /// queue size out of range.
  static Result<std::unique_ptr<MetricStream>> Make(const MetricStreamOptions& options);
  /// Stops the stream if it is running.
  ~MetricStream();

  /// FailedPrecondition once started; AlreadyExists for a source added twice.
  Status Add(std::shared_ptr<MetricSource> source);
  /// Builds the source with MetricSourceFromUri ("host", "process:1234").
  Status Add(std::string_view source_uri);

  /// Callbacks run on the delivery thread, one batch per source per delivery. When the
  /// subscription is cancelled (or destroyed) the callback is not running and never runs again;
  /// a callback may cancel its own subscription.
  Subscription Subscribe(BatchCallback callback);
  /// Every batch also goes to `sink` (Write), and Stop flushes it; errors are counted in
  /// delivery_errors, logged once per sink, not fatal. FailedPrecondition once started.
  Status Attach(std::shared_ptr<ResultSink> sink);

  /// Starts sampling: the first tick is taken at once, then one every interval on absolute
  /// monotonic deadlines (no drift). FailedPrecondition without sources, or when already
  /// started.
  Status Start();
  /// Takes no more ticks, collects once more the sources that buffer between ticks
  /// (MetricSource::BuffersBetweenTicks), delivers everything sampled (waiting for queue space
  /// whatever the overflow policy), flushes attached sinks and joins both threads. Idempotent;
  /// returns within about 20 ms plus the time delivery needs, whatever the interval.
  /// FailedPrecondition when called from a callback.
  Status Stop();

  /// Live while running, final after Stop.
  StreamOverhead Overhead() const;

  MetricStream(const MetricStream&) = delete;
  MetricStream& operator=(const MetricStream&) = delete;

 private:
  class Impl;
  explicit MetricStream(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace bitfusion
