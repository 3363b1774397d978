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
#include "bitfusion/export.h"
#include "bitfusion/result_sink.h"
#include "bitfusion/sample.h"
#include "bitfusion/status.h"
#include "bitfusion/subscription.h"

namespace bitfusion {

/// One thing to sample. Made from a source URI: "host", "process:PID", "null".
///
/// Concurrency: a source is used by one sampling thread only; it needs no locking.
class BITFUSION_EXPORT MetricSource {
 public:
  virtual ~MetricSource();

  /// The URI it was made from.
  virtual const std::string& uri() const = 0;

  /// Appends this tick's values to `batch`, all stamped `now`. The stream hands each source the
  /// same batch object tick after tick (samples cleared, series kept), so a source adds its
  /// series on the first call and reuses their indices. NotFound means the thing sampled is
  /// gone (process exited): the stream drops the source with one log line.
  virtual Status Collect(Timestamp now, SampleBatch& batch) = 0;
};

/// "host", "process:1234", "null" -> a source. An unknown scheme lists the known ones.
BITFUSION_EXPORT Result<std::shared_ptr<MetricSource>> MetricSourceFromUri(std::string_view uri);

enum class OverflowPolicy : int {
  kDropOldest = 0,  ///< the sampler never waits; dropped samples are counted
  kBlock,           ///< the sampler waits for delivery (ticks may be missed; counted)
};

struct MetricStreamOptions {
  std::chrono::nanoseconds interval = std::chrono::milliseconds(10);  ///< 1 ms .. hours
  /// Batches are handed to delivery after this long (or at Stop); 0 = every tick.
  std::chrono::nanoseconds delivery_interval = std::chrono::milliseconds(100);
  std::size_t queue_batches = 256;  ///< bounded queue between sampler and delivery
  OverflowPolicy overflow = OverflowPolicy::kDropOldest;
  Labels labels;  ///< added to every batch (run, benchmark, machine ...)
};

/// What the observer cost and did.
struct StreamOverhead {
  std::int64_t sampler_cpu_ns = 0;   ///< CPU time of the sampling thread
  std::int64_t delivery_cpu_ns = 0;  ///< CPU time of the delivery thread
  std::int64_t ticks = 0;
  std::int64_t ticks_missed = 0;  ///< deadlines skipped because a tick overran
  std::int64_t samples = 0;
  std::int64_t samples_dropped = 0;  ///< lost to a full queue
  std::int64_t delivery_errors = 0;  ///< sink writes that failed
};

using BatchCallback = std::function<void(const SampleBatch& batch)>;

/// Concurrency: Add/Subscribe/Attach before Start; Overhead() any time, from any thread;
/// Start/Stop from one controlling thread.
class BITFUSION_EXPORT MetricStream {
 public:
  static Result<std::unique_ptr<MetricStream>> Make(const MetricStreamOptions& options);
  ~MetricStream();

  Status Add(std::shared_ptr<MetricSource> source);
  Status Add(std::string_view source_uri);

  /// Callbacks run on the delivery thread, one batch per source per delivery.
  Subscription Subscribe(BatchCallback callback);
  /// Every batch also goes to `sink` (Write); errors are counted, logged once, not fatal.
  Status Attach(std::shared_ptr<ResultSink> sink);

  /// Starts sampling: the first tick is taken at once, then one every interval on absolute
  /// monotonic deadlines (no drift).
  Status Start();
  /// Takes no more ticks, delivers everything sampled, joins both threads. Idempotent.
  Status Stop();

  StreamOverhead Overhead() const;

  MetricStream(const MetricStream&) = delete;
  MetricStream& operator=(const MetricStream&) = delete;

 private:
  class Impl;
  explicit MetricStream(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace bitfusion
