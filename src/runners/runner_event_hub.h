// Lifecycle events that a runner without an engine emits itself (create, start, die, destroy),
// handed to every ContainerRunner::Events subscriber on the thread that caused them. Docker's
// shape, so that reactors read every runner alike: "die" carries "exitCode", 128+N for signal N.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "bitfusion/clock.h"
#include "bitfusion/event.h"
#include "bitfusion/subscription.h"

namespace bitfusion::internal {

class RunnerEventHub : public std::enable_shared_from_this<RunnerEventHub> {
 public:
  explicit RunnerEventHub(std::string source) : source_(std::move(source)) {}

  void Emit(EventType type, const std::string& action, const std::string& id, const Labels& labels,
            Labels extra = {}) {
    Event e;
    e.type = type;
    e.source = source_;
    e.subject = id;
    e.action = action;
    e.attributes = labels;
    e.attributes["name"] = id;
    for (auto& [k, v] : extra) e.attributes[k] = std::move(v);
    e.time_ns = WallNowNs();
    std::lock_guard lock(mu_);
    for (auto& [key, callback] : subscribers_) callback(e);
  }

  /// The lock is held while callbacks run, so once Cancel() returns none is running.
  Subscription Subscribe(EventCallback callback) {
    std::lock_guard lock(mu_);
    const int key = next_++;
    subscribers_.emplace(key, std::move(callback));
    std::weak_ptr<RunnerEventHub> weak = shared_from_this();
    return Subscription([weak, key] {
      if (auto self = weak.lock()) {
        std::lock_guard inner(self->mu_);
        self->subscribers_.erase(key);
      }
    });
  }

 private:
  const std::string source_;
  std::mutex mu_;
  int next_ = 0;
  std::map<int, EventCallback> subscribers_;
};

}  // namespace bitfusion::internal
