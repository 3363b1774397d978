// Output lines of one container (or process), kept up to a byte budget and handed to every
// Logs() subscriber; late subscribers get what was kept first. Shared by the runners: held by
// shared_ptr, so a subscription that outlives its container ends quietly.
#pragma once

#include <cstddef>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "bitfusion/container_runner.h"
#include "bitfusion/subscription.h"

namespace bitfusion::internal {

class LogFanout : public std::enable_shared_from_this<LogFanout> {
 public:
  explicit LogFanout(std::size_t keep_bytes) : keep_bytes_(keep_bytes) {}

  void Deliver(LogStream stream, std::string_view line) {
    std::lock_guard lock(mu_);
    kept_.push_back(LogLine{stream, std::string(line)});
    kept_bytes_ += line.size();
    while (kept_bytes_ > keep_bytes_ && !kept_.empty()) {
      kept_bytes_ -= kept_.front().text.size();
      kept_.pop_front();
    }
    for (auto& [key, callback] : subscribers_) callback(stream, line);
  }

  /// The lock is held while callbacks run, so once Cancel() returns none is running.
  Subscription Subscribe(LogCallback callback) {
    std::lock_guard lock(mu_);
    for (const auto& l : kept_) callback(l.stream, l.text);
    const int key = next_++;
    subscribers_.emplace(key, std::move(callback));
    std::weak_ptr<LogFanout> weak = shared_from_this();
    return Subscription([weak, key] {
      if (auto self = weak.lock()) {
        std::lock_guard inner(self->mu_);
        self->subscribers_.erase(key);
      }
    });
  }

  std::vector<LogLine> Tail(std::size_t lines) {
    std::lock_guard lock(mu_);
    const std::size_t n = std::min(lines, kept_.size());
    return std::vector<LogLine>(kept_.end() - static_cast<std::ptrdiff_t>(n), kept_.end());
  }

 private:
  const std::size_t keep_bytes_;
  std::mutex mu_;
  std::deque<LogLine> kept_;
  std::size_t kept_bytes_ = 0;
  int next_ = 0;
  std::map<int, LogCallback> subscribers_;
};

}  // namespace bitfusion::internal
