// Reactor rules and the ready-made ones the experiment layer uses.
#include "bitfusion/events.h"
#include "bitfusion/log.h"

namespace bitfusion {

Reactor::Reactor(EventBus& bus) : bus_(bus) {}

Reactor::~Reactor() {
  // Cancel before the counters go: a running action may still be counting.
  std::vector<Subscription> subscriptions;
  {
    std::lock_guard lock(mu_);
    subscriptions.swap(subscriptions_);
  }
  subscriptions.clear();
}

void Reactor::Add(ReactorRule rule) {
  auto name = rule.name;
  auto action = std::move(rule.action);
  Subscription s = bus_.Subscribe(std::move(rule.types), std::move(rule.filter),
                                  [this, name, action](const Event& e) {
                                    if (action) action(e);
                                    std::lock_guard lock(mu_);
                                    ++fired_[name];
                                  });
  std::lock_guard lock(mu_);
  fired_.try_emplace(name, 0);
  subscriptions_.push_back(std::move(s));
}

std::uint64_t Reactor::fired(std::string_view name) const {
  std::lock_guard lock(mu_);
  auto it = fired_.find(name);
  return it == fired_.end() ? 0 : it->second;
}

void LeaseTable::Hold(const std::string& container_id, std::unique_ptr<DeviceLease> lease) {
  std::lock_guard lock(mu_);
  leases_.emplace(container_id, std::move(lease));
}

std::size_t LeaseTable::Release(const std::string& container_id) {
  std::vector<std::unique_ptr<DeviceLease>> released;
  {
    std::lock_guard lock(mu_);
    auto [begin, end] = leases_.equal_range(container_id);
    for (auto it = begin; it != end; ++it) released.push_back(std::move(it->second));
    leases_.erase(begin, end);
  }
  // Destroyed outside the lock: releasing may take a while (lock files, vendor calls).
  return released.size();
}

std::size_t LeaseTable::held() const {
  std::lock_guard lock(mu_);
  return leases_.size();
}

std::string EventAttribute(const Event& event, std::string_view key) {
  auto it = event.attributes.find(std::string(key));
  return it == event.attributes.end() ? std::string() : it->second;
}

ReactorRule AttachLogTailOnFailure(
    std::shared_ptr<ContainerRunner> runner, std::size_t lines,
    std::function<void(const Event& event, std::vector<LogLine> tail)> attach) {
  ReactorRule rule;
  rule.name = "attach-log-tail-on-failure";
  rule.types = {EventType::kContainerDied};
  rule.filter = [](const Event& e) {
    const std::string code = EventAttribute(e, "exitCode");
    return !code.empty() && code != "0";
  };
  rule.action = [runner, lines, attach](const Event& e) {
    auto tail = runner->TailLogs(e.subject, lines);
    if (!tail) {
      LogAt(LogLevel::kWarning, "could not fetch the last log lines of container ", e.subject, ": ",
            tail.error().ToString());
      attach(e, {});
      return;
    }
    attach(e, std::move(*tail));
  };
  return rule;
}

ReactorRule ReleaseLeasesOnExit(std::shared_ptr<LeaseTable> table) {
  ReactorRule rule;
  rule.name = "release-leases-on-exit";
  rule.types = {EventType::kContainerDied, EventType::kContainerDestroyed};
  rule.action = [table](const Event& e) {
    const std::size_t n = table->Release(e.subject);
    if (n > 0) LogAt(LogLevel::kDebug, "released ", n, " device lease(s) of ", e.subject);
  };
  return rule;
}

ReactorRule MarkFailedOnOom(std::function<void(const Event& event)> mark) {
  ReactorRule rule;
  rule.name = "mark-failed-on-oom";
  rule.types = {EventType::kContainerOom};
  rule.action = std::move(mark);
  return rule;
}

}  // namespace bitfusion
