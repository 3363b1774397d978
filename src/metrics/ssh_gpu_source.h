// "gpu+ssh://USER@HOST[:PORT]" metric source: the "gpu" source of another machine's NVIDIA GPUs,
// read on that machine by nvidia-smi, started over the machine's SSH master and streamed back over
// the same connection, with its stamps moved onto this host's clocks.
//
//   gpu+ssh://USER@HOST[:PORT]?identity=KEY&ssh_config=FILE&ssh_option=K=V&connect_timeout=10
//     &interval=100ms&machine=NAME&probe=PATH&nvidia_smi=nvidia-smi&start_timeout=60s
//     &clock_exchanges=8
//
// Why nvidia-smi: the remote side must be something already there (nothing is installed on a
// machine), and the static bitfusion-probe cannot load NVML (a static binary cannot dlopen the
// driver's libnvidia-ml.so.1). nvidia-smi comes with every NVIDIA driver and reads NVML itself:
//
//   TZ=UTC0 nvidia-smi --query-gpu=timestamp,index,pci.bus_id,uuid,utilization.gpu,
//     utilization.memory,memory.used,memory.total,power.draw,temperature.gpu,clocks.gr,clocks.sm,
//     clocks.mem --format=csv,noheader,nounits -lms INTERVAL
//
// one line per GPU per loop (reference: nvidia-smi(1), "--query-gpu", and `nvidia-smi
// --help-query-gpu`). Its own timestamp ("2026/12/05 11:30:00.123", the machine's local time,
// hence TZ=UTC0) is when it queried, so a sample's stamp does not depend on when the line
// arrived: it is that stamp moved by the machine's clock offset, measured as host+ssh:// does
// (NTP-style exchanges with a bitfusion-probe copied there for the source's life, which ticks
// once an hour and does nothing else; metrics/remote_probe_host.h). NVIDIA says nvidia-smi's
// output may change between releases; the query fields used here have been in it since 2013.
//
// Metrics: the "gpu" source's NVML names and units (gpu_source.h): gpu.utilization.gpu,
// gpu.utilization.memory (%), gpu.memory.used, gpu.memory.total (bytes, from MiB),
// gpu.power (W), gpu.temperature (Cel), gpu.clock.graphics, gpu.clock.sm, gpu.clock.memory
// (Hz, from MHz). Labels: gpu (nvidia-smi's index), pci_bus_id ("0000:07:00.0"), uuid, and
// machine, clock_offset_ns, clock_uncertainty_ns as host+ssh:// gives them. A value nvidia-smi
// gives as "[N/A]" or "[Not Supported]" is left out (that sample only). Every GPU of the machine
// is sampled (the local source's `devices` is not offered: nvidia-smi's -i takes other ids).
//
// interval: nvidia-smi's loop (-lms), 20ms..1h, default 100ms. NVML's utilisation figures are
// themselves averages over 1/6 s to 1 s, and each loop costs nvidia-smi a few milliseconds of CPU
// on the machine, so a plan asks for its own interval but not under 100ms.
//
// Reading: Collect reads what has arrived (non-blocking; the pipe is enlarged to 1 MiB so that
// a slow tick holds several seconds of lines) and delivers each complete line; nothing runs
// between ticks.
//
// A machine without nvidia-smi, or whose nvidia-smi cannot talk to a driver (no GPU, driver not
// loaded), gives a source that is disabled with one warning quoting nvidia-smi and appends
// nothing, as the local "gpu" source does on a host without NVML. Whatever ends it later (the
// connection drops, nvidia-smi exits) ends the source: Collect delivers what is left, then
// answers NotFound with the reason.
//
// Nothing outlives the source on the machine: the remote shell ends nvidia-smi when the channel's
// input ends (when the source goes, or bitfusion or its ssh client dies, or the connection
// drops), and the probe's directory is removed when its own channel ends.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "bitfusion/metric_stream.h"
#include "bitfusion/uri.h"
#include "metrics/gpu_source.h"

namespace bitfusion {

class RemoteProbeHost;

struct SshGpuSourceOptions {
  /// How to log in and what to call the machine: the same URI as host+ssh:// (login keys,
  /// machine, probe, start_timeout, clock_exchanges), for the clock probe.
  std::string login;
  std::string machine;                    ///< label machine=: `machine`, or USER@HOST:PORT
  std::string probe_path;                 ///< `probe`; empty = FindProbe()
  std::string nvidia_smi = "nvidia-smi";  ///< `nvidia_smi`: path or name on the machine
  std::chrono::nanoseconds interval = std::chrono::milliseconds(100);  ///< `interval`
  std::chrono::nanoseconds start_timeout = std::chrono::seconds(60);   ///< `start_timeout`

  static Result<SshGpuSourceOptions> FromUri(const Uri& uri);
};

namespace internal {

/// One line of the query above, parsed. Values nvidia-smi could not give are nullopt.
struct NvidiaSmiLine {
  std::int64_t wall_ns = 0;  ///< the timestamp, read as UTC
  std::string index;
  std::string pci_bus_id;  ///< "0000:07:00.0"
  std::string uuid;
  /// In the order of internal::kGpuMetrics (gpu_source.h), in their units.
  std::optional<double> values[internal::kGpuMetricCount];
};

/// The query's field list (one copy: the command and the parser agree on it).
extern const char* const kNvidiaSmiQuery;
/// nullopt for a line that is not one of the query's (an error nvidia-smi printed instead).
std::optional<NvidiaSmiLine> ParseNvidiaSmiLine(std::string_view line);

}  // namespace internal

/// Concurrency: Collect from one sampling thread (MetricSource); the destructor from any.
class SshGpuSource final : public MetricSource {
 public:
  /// Logs in, copies the clock probe and measures the offset, starts nvidia-smi and waits for its
  /// first line (or its end: a disabled source). Unavailable when the machine cannot be reached
  /// or the probe does not start, DeadlineExceeded when nvidia-smi says nothing within
  /// start_timeout.
  static Result<std::shared_ptr<SshGpuSource>> Make(const SshGpuSourceOptions& options);
  ~SshGpuSource() override;  ///< ends nvidia-smi (end of its input) and the clock probe

  const std::string& uri() const override { return uri_; }
  Status Collect(Timestamp now, SampleBatch& batch) override;
  bool BuffersBetweenTicks() const override { return true; }

  /// False when the machine has no working nvidia-smi (the one warning said why).
  bool enabled() const { return enabled_; }
  /// Why it is disabled (what nvidia-smi said and how it ended); empty when enabled, and when the
  /// connection dropped before nvidia-smi answered (a later source may do better).
  std::string WhyDisabled() const override { return answered_ ? disabled_why_ : ""; }
  /// The local ssh client carrying nvidia-smi's channel (tests kill it); -1 once it has ended.
  int client_pid() const { return pid_; }

 private:
  struct Device {
    std::map<std::string, std::string> labels;
    std::int64_t
        series[internal::kGpuMetricCount];  // index in the current batch; -1 = not declared yet
  };

  SshGpuSource() = default;
  // Reads what is there; false at the end of the output (end_ set).
  bool ReadAvailable();
  void Deliver(std::string_view line, SampleBatch& batch, std::int64_t wall_minus_mono);
  void End(const std::string& why);

  std::string uri_;
  std::string machine_;
  std::shared_ptr<RemoteProbeHost> clock_;
  std::int64_t shift_wall_ns_ = 0;
  std::map<std::string, std::string> clock_labels_;
  int pid_ = -1;
  int stdin_fd_ = -1, stdout_fd_ = -1, stderr_fd_ = -1;
  bool enabled_ = false;
  bool eof_ = false;
  std::string end_;  // why it ended; empty while it runs
  bool end_said_ = false;
  std::string buffer_;
  std::string disabled_why_;
  bool answered_ = false;  // nvidia-smi itself ended (not ssh, not a kill)
  std::string last_text_;  // the last line that was not a sample (nvidia-smi's words)
  std::map<std::string, Device> devices_;  // by uuid, else index
  std::size_t series_end_ = 0;
};

}  // namespace bitfusion
