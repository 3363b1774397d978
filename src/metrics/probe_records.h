// The host side of the probe's wire format (src/probe/probe_wire.h), shared by the sources that
// read a bitfusion-probe: "probe:NAME" (a container's probe, over a unix socket) and
// "host+ssh://" (a remote host's probe, over an SSH channel). It checks and decodes the records
// as they arrive, keeps the declared series and the samples until Collect moves them into a
// batch, and says when and why the stream ended.
//
// Not thread-safe: the owner holds its lock around Handle, Collect and the setters. The counters
// (ticks, probe CPU, drops) are atomics, read from any thread.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "bitfusion/metric_stream.h"
#include "probe/probe_wire.h"

namespace bitfusion::internal {

class ProbeRecords {
 public:
  struct Options {
    std::string name;  ///< names the probe in messages: "probe NAME ended: …"
    /// Added to every series at Collect (over the probe's own cpu, pid, comm).
    std::map<std::string, std::string> labels;
    std::size_t max_pending_samples = 1 << 20;  ///< kept while nobody collects; more dropped
    std::size_t max_label_bytes = 4 << 20;      ///< names, units and labels of all series
    bool accept_pongs = false;                  ///< PONG records are kept (TakePongs)
  };

  /// How the probe's stamps map onto this host's clocks: added to each at Collect. Zero for a
  /// probe on this host (a container shares its clocks).
  struct TimeShift {
    std::int64_t wall_ns = 0;
    std::int64_t mono_ns = 0;
  };

  explicit ProbeRecords(Options options) : options_(std::move(options)) {}

  /// Decodes every whole record at the start of [data, data + size) and sets `used` to the
  /// bytes taken. False after a corrupt record: the error is kept for Collect and the stream has
  /// ended.
  bool Handle(const unsigned char* data, std::size_t size, std::size_t& used);

  /// Moves the series declared and the samples received since the last call into `batch`, with
  /// the time shift applied. OK with samples; then, once, IOError for a corrupt stream; then
  /// NotFound with the end's reason once the stream has ended and nothing is left.
  Status Collect(SampleBatch& batch);

  /// Ends the stream for a reason found outside the records (the connection closed); the END
  /// record's reason, when one came, is kept.
  void End(const std::string& reason);
  bool ended() const { return ended_; }
  /// Whether the END record arrived.
  bool ended_cleanly() const { return clean_end_; }
  bool hello() const { return hello_; }

  void set_time_shift(TimeShift shift) { shift_ = shift; }
  void set_label(const std::string& key, const std::string& value) { options_.labels[key] = value; }
  /// The PONGs received since the last call (accept_pongs), each with this host's wall clock
  /// when the read that brought it returned (t4).
  std::vector<std::pair<probe_wire::Pong, std::int64_t>> TakePongs();
  /// Sets the receive stamp for the PONGs of the next Handle.
  void set_receive_wall_ns(std::int64_t ns) { receive_wall_ns_ = ns; }
  /// Wall minus monotonic on the probe's host, from its first TICK; 0 before one arrived.
  bool have_tick() const { return have_tick_; }
  std::int64_t probe_wall_minus_mono_ns() const { return probe_wall_minus_mono_ns_; }

  std::int64_t probe_cpu_ns() const { return probe_cpu_ns_.load(std::memory_order_relaxed); }
  std::int64_t ticks() const { return ticks_.load(std::memory_order_relaxed); }
  std::int64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }

 private:
  Options options_;
  TimeShift shift_;
  bool hello_ = false;
  std::uint32_t declared_ = 0;
  std::size_t declared_bytes_ = 0;
  std::vector<Series> new_series_;            // declared by the probe, not yet in a batch
  std::vector<std::uint32_t> pending_index_;  // probe series index
  std::vector<std::int64_t> pending_wall_, pending_mono_;
  std::vector<double> pending_value_;
  std::vector<std::pair<probe_wire::Pong, std::int64_t>> pongs_;
  std::int64_t receive_wall_ns_ = 0;
  bool have_tick_ = false;
  std::int64_t probe_wall_minus_mono_ns_ = 0;
  bool ended_ = false, clean_end_ = false;
  std::string end_reason_;
  std::string error_;  // a corrupt stream, reported once
  bool error_reported_ = false;
  bool drop_warned_ = false;
  std::vector<std::uint32_t> to_batch_;  // probe series index -> batch series index
  std::atomic<std::int64_t> probe_cpu_ns_{0}, ticks_{0}, dropped_{0};
};

}  // namespace bitfusion::internal
