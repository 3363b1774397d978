// EventBus: one delivery thread per bus and a bounded queue, so an engine's event reader only
// ever appends (and never waits on a subscriber's callback).
#include <algorithm>
#include <condition_variable>
#include <deque>
#include <thread>

#include "bitfusion/events.h"
#include "bitfusion/log.h"

namespace bitfusion {

namespace {

struct Subscriber {
  std::vector<EventType> types;
  EventFilter filter;
  EventCallback callback;
  // Held while the callback runs, so Cancel() returns only once it is not running. Recursive:
  // a callback may end its own subscription.
  std::recursive_mutex mu;
  bool active = true;

  bool Wants(const Event& e) const {
    if (!types.empty() && std::find(types.begin(), types.end(), e.type) == types.end()) {
      return false;
    }
    return !filter || filter(e);
  }
};

}  // namespace

class EventBus::Impl : public std::enable_shared_from_this<Impl> {
 public:
  explicit Impl(const EventBusOptions& options) : options_(options) {}

  // The thread holds its own reference, so state outlives the bus when the bus is destroyed
  // from inside a callback.
  void Start() {
    thread_ = std::thread([self = shared_from_this()] { self->Run(); });
  }

  void Stop() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    // The last reference can drop inside a callback (one that publishes through Publisher()
    // while the bus is being destroyed); the thread cannot join itself then.
    if (std::this_thread::get_id() == thread_.get_id()) {
      thread_.detach();
    } else {
      thread_.join();
    }
  }

  void Publish(Event event) {
    {
      std::lock_guard lock(mu_);
      ++counters_.published;
      ++published_seq_;
      if (queue_.size() >= std::max<std::size_t>(options_.queue_capacity, 1)) {
        queue_.pop_front();
        ++counters_.dropped;
        ++delivered_seq_;  // the dropped one will never be delivered; Flush must not wait on it
      }
      queue_.push_back(std::move(event));
    }
    cv_.notify_all();
  }

  std::shared_ptr<Subscriber> Add(std::vector<EventType> types, EventFilter filter,
                                  EventCallback callback) {
    auto s = std::make_shared<Subscriber>();
    s->types = std::move(types);
    s->filter = std::move(filter);
    s->callback = std::move(callback);
    std::lock_guard lock(mu_);
    subscribers_.push_back(s);
    return s;
  }

  void Remove(const std::shared_ptr<Subscriber>& s) {
    {
      std::lock_guard inner(s->mu);
      s->active = false;
    }
    std::lock_guard lock(mu_);
    subscribers_.erase(std::remove(subscribers_.begin(), subscribers_.end(), s),
                       subscribers_.end());
  }

  Status Flush(Deadline deadline) {
    if (std::this_thread::get_id() == thread_.get_id()) {
      return FailedPreconditionError("EventBus::Flush called from an event callback");
    }
    std::unique_lock lock(mu_);
    const std::uint64_t target = published_seq_;
    if (!cv_.wait_until(lock, deadline, [&] { return delivered_seq_ >= target; })) {
      return DeadlineExceededError("event bus still has " +
                                   std::to_string(target - delivered_seq_) +
                                   " undelivered events at the flush deadline");
    }
    return Status::OK();
  }

  EventBusCounters counters() const {
    std::lock_guard lock(mu_);
    return counters_;
  }

 private:
  void Run() {
    std::unique_lock lock(mu_);
    while (true) {
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and everything was delivered
      Event event = std::move(queue_.front());
      queue_.pop_front();
      std::vector<std::shared_ptr<Subscriber>> subscribers = subscribers_;
      lock.unlock();
      std::uint64_t delivered = 0;
      for (const auto& s : subscribers) {
        std::lock_guard sub_lock(s->mu);
        if (!s->active || !s->Wants(event)) continue;
        s->callback(event);
        ++delivered;
      }
      lock.lock();
      counters_.delivered += delivered;
      ++delivered_seq_;
      cv_.notify_all();
    }
  }

  const EventBusOptions options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Event> queue_;
  std::vector<std::shared_ptr<Subscriber>> subscribers_;
  EventBusCounters counters_;
  std::uint64_t published_seq_ = 0;
  std::uint64_t delivered_seq_ = 0;
  bool stopping_ = false;
  std::thread thread_;
};

EventBus::EventBus(const EventBusOptions& options) : impl_(std::make_shared<Impl>(options)) {
  impl_->Start();
}
EventBus::~EventBus() { impl_->Stop(); }

void EventBus::Publish(Event event) { impl_->Publish(std::move(event)); }

Subscription EventBus::Subscribe(std::vector<EventType> types, EventFilter filter,
                                 EventCallback callback) {
  auto s = impl_->Add(std::move(types), std::move(filter), std::move(callback));
  std::weak_ptr<Impl> weak = impl_;
  return Subscription([weak, s] {
    if (auto impl = weak.lock()) {
      impl->Remove(s);
    } else {
      std::lock_guard lock(s->mu);
      s->active = false;
    }
  });
}

Status EventBus::Flush(Deadline deadline) { return impl_->Flush(deadline); }

EventBusCounters EventBus::counters() const { return impl_->counters(); }

EventCallback EventBus::Publisher() {
  std::weak_ptr<Impl> weak = impl_;
  return [weak](const Event& event) {
    if (auto impl = weak.lock()) impl->Publish(event);
  };
}

}  // namespace bitfusion
