// Handle returned by every streaming call (logs, events, metric batches): the stream stops
// delivering when the handle is destroyed or Cancel() is called.
#pragma once

#include <functional>
#include <utility>

#include "bitfusion/export.h"

namespace bitfusion {

class BITFUSION_EXPORT Subscription {
 public:
  Subscription() = default;
  explicit Subscription(std::function<void()> cancel) : cancel_(std::move(cancel)) {}
  Subscription(Subscription&& other) noexcept : cancel_(std::exchange(other.cancel_, {})) {}
  Subscription& operator=(Subscription&& other) noexcept {
    if (this != &other) {
      Cancel();
      cancel_ = std::exchange(other.cancel_, {});
    }
    return *this;
  }
  Subscription(const Subscription&) = delete;
  Subscription& operator=(const Subscription&) = delete;
  ~Subscription() { Cancel(); }

  /// Stops delivery; when it returns, the callback is not running and will not run again.
  void Cancel() {
    if (cancel_) std::exchange(cancel_, {})();
  }
  bool active() const { return static_cast<bool>(cancel_); }

 private:
  std::function<void()> cancel_;
};

}  // namespace bitfusion
