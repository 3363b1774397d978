// What a runner without an engine (process://, process+ssh://) knows of the containers it made,
// so that it can answer what `docker ps` and `docker logs` ask an engine: each live handle's
// Inspect and its output, by id. The handles register themselves; the table holds no handle.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "bitfusion/container.h"
#include "bitfusion/status.h"
#include "runners/log_fanout.h"

namespace bitfusion::internal {

class HandleTable {
 public:
  /// `scheme` ("process://") names the runner in errors.
  explicit HandleTable(std::string scheme) : scheme_(std::move(scheme)) {}

  /// Lists the handle `id`: `inspect` runs under the table's lock, so Unlist waits for it.
  void Add(const std::string& id, std::weak_ptr<LogFanout> logs,
           std::function<ContainerInfo()> inspect) {
    std::lock_guard lock(mu_);
    logs_[id] = std::move(logs);
    live_[id] = std::move(inspect);
  }
  /// First thing a handle's destructor does: List no longer reaches it once this returns.
  void Unlist(const std::string& id) {
    std::lock_guard lock(mu_);
    live_.erase(id);
  }
  /// Last thing a handle's destructor does: its output can no longer be tailed.
  void Forget(const std::string& id) {
    std::lock_guard lock(mu_);
    logs_.erase(id);
  }

  /// The live handles carrying every label of `labels`.
  std::vector<ContainerInfo> List(const Labels& labels) {
    std::vector<ContainerInfo> out;
    std::lock_guard lock(mu_);
    for (const auto& [id, inspect] : live_) {
      ContainerInfo info = inspect();
      bool match = true;
      for (const auto& [k, v] : labels) {
        const auto it = info.labels.find(k);
        match = match && it != info.labels.end() && it->second == v;
      }
      if (match) out.push_back(std::move(info));
    }
    return out;
  }

  /// The last `lines` lines of `id`'s output; NotFound once its handle is gone.
  Result<std::vector<LogLine>> Tail(const std::string& id, std::size_t lines) {
    std::shared_ptr<LogFanout> logs;
    {
      std::lock_guard lock(mu_);
      const auto it = logs_.find(id);
      if (it != logs_.end()) logs = it->second.lock();
    }
    if (!logs) {
      return NotFoundError("no process " + id + " in this " + scheme_ +
                           " runner (its handle may be gone)");
    }
    return logs->Tail(lines);
  }

 private:
  const std::string scheme_;
  std::mutex mu_;
  std::map<std::string, std::weak_ptr<LogFanout>> logs_;
  std::map<std::string, std::function<ContainerInfo()>> live_;
};

}  // namespace bitfusion::internal
