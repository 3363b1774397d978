// One execution of one benchmark: the run record, its metric stream (with the sources that
// follow the run's own container), the container, waiting (and stopping it when cancelled),
// and classifying what happened. Everything through the interfaces.
#pragma once

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "bitfusion/container_runner.h"
#include "bitfusion/device_allocator.h"
#include "bitfusion/experiment.h"
#include "bitfusion/result_sink.h"

namespace bitfusion::internal {

/// Lines of stderr (or of the engine's log) kept for the error message of a failed run.
inline constexpr std::size_t kStderrTail = 20;

inline bool Cancelled(const ExperimentOptions& options) {
  return options.cancel != nullptr && options.cancel->load();
}

// What reactors learned about runs from the engine's events, by run id.
class RunNotes {
 public:
  void AddTail(const std::string& run_id, std::vector<LogLine> tail) {
    std::lock_guard lock(mu_);
    tails_[run_id] = std::move(tail);
    cv_.notify_all();
  }
  void MarkOom(const std::string& run_id) {
    std::lock_guard lock(mu_);
    oom_.insert(run_id);
  }
  bool Oom(const std::string& run_id) {
    std::lock_guard lock(mu_);
    return oom_.count(run_id) > 0;
  }
  // The tail for a failed run; the engine reports the death a moment after Wait() returns.
  std::optional<std::vector<LogLine>> WaitForTail(const std::string& run_id, Deadline deadline) {
    std::unique_lock lock(mu_);
    cv_.wait_until(lock, deadline, [&] { return tails_.count(run_id) > 0; });
    auto it = tails_.find(run_id);
    if (it == tails_.end()) return std::nullopt;
    return it->second;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, std::vector<LogLine>> tails_;
  std::set<std::string> oom_;
};

/// What every run of a plan shares.
struct RunContext {
  const PlanSpec& plan;
  const ExperimentOptions& options;
  ContainerRunner& runner;
  const std::vector<std::shared_ptr<ResultSink>>& sinks;
  const MachineInfo& machine;
  std::string plan_run_id;
  std::map<std::string, std::string> image_digests;
  RunNotes* notes = nullptr;  // null when the runner has no event stream
  // Image -> its ENTRYPOINT, for the "probe" source, which puts the probe in front of it.
  std::map<std::string, std::vector<std::string>> image_entrypoints;
  // The plan's metric sources this machine's runs are sampled by.
  const std::vector<std::string>& sources;
  std::string runner_uri;     // the runner as it reaches this machine (records redact it)
  std::string machine_name;   // "office-1" on machine groups; empty without
  std::string machine_group;  // "office"; empty without groups
  // A remote machine's login as a host+ssh:// URI; a "probe" source copies its probe there.
  std::string host_source_uri;
};

// The devices one benchmark holds for all its runs, and what they add to each container.
struct LeasedDevices {
  std::vector<std::unique_ptr<DeviceLease>> leases;
  std::vector<ContainerEdits> edits;  // one per request
  std::string ids;                    // comma-separated, for the runs' "devices" label
};

// Leases every device `b` asks for; the first request that cannot be met is the error. A busy
// device is waited for up to plan.device_wait, or until `cancel` is set (Cancelled).
Result<LeasedDevices> LeaseDevices(DeviceAllocator& allocator, const RunnerCapabilities& caps,
                                   const PlanSpec& plan, const BenchmarkSpec& b,
                                   const std::atomic<bool>* cancel = nullptr);

/// The plan source "container" (or "container?rate=true&detail_every=10"): each run's own
/// container, sampled through its cgroup; false for other sources ("container:ID" names a
/// container of its own). An error for bad options.
Result<bool> IsOwnContainerSource(const std::string& source);
/// The plan source "probe" (or "probe?processes=false&rate=true"): bitfusion-probe inside each
/// run's own container; "probe:NAME?socket=PATH" is an ordinary source.
Result<bool> IsOwnProbeSource(const std::string& source);

/// Runs benchmark `b` once. Never returns an error: what went wrong is in the record.
RunRecord RunOnce(const RunContext& ctx, const BenchmarkSpec& b,
                  const std::vector<std::string>& argv, const LeasedDevices& devices,
                  int repetition, bool warmup);

}  // namespace bitfusion::internal
