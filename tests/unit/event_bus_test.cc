// EventBus delivery (types, filters, order, cancel, flush, a full queue) and Reactor rules,
// with events published by hand.
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <thread>
#include <vector>

#include "bitfusion/events.h"

namespace bitfusion {
namespace {

using namespace std::chrono_literals;

Event Died(const std::string& id, const std::string& code) {
  Event e;
  e.type = EventType::kContainerDied;
  e.subject = id;
  e.action = "die";
  e.attributes["exitCode"] = code;
  e.time_ns = WallNowNs();
  return e;
}

TEST(EventBusTest, DeliversByTypeAndFilterInOrder) {
  EventBus bus;
  std::mutex mu;
  std::vector<std::string> died, all;
  auto a = bus.Subscribe(
      {EventType::kContainerDied},
      [](const Event& e) { return EventAttribute(e, "exitCode") != "0"; },
      [&](const Event& e) {
        std::lock_guard lock(mu);
        died.push_back(e.subject);
      });
  auto b = bus.Subscribe({}, nullptr, [&](const Event& e) {
    std::lock_guard lock(mu);
    all.push_back(e.subject);
  });
  Event started;
  started.type = EventType::kContainerStarted;
  started.subject = "s";
  bus.Publish(started);
  bus.Publish(Died("ok", "0"));
  for (int i = 0; i < 100; ++i) bus.Publish(Died("c" + std::to_string(i), "1"));
  ASSERT_TRUE(bus.Flush(DeadlineAfter(10s)).ok());
  std::lock_guard lock(mu);
  ASSERT_EQ(died.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(died[i], "c" + std::to_string(i));
  EXPECT_EQ(all.size(), 102u);
  EXPECT_EQ(all.front(), "s");
  EXPECT_EQ(bus.counters().published, 102u);
  EXPECT_EQ(bus.counters().delivered, 202u);
}

TEST(EventBusTest, CancelWaitsForARunningCallbackAndStopsDelivery) {
  EventBus bus;
  std::atomic<int> calls{0};
  std::atomic<bool> inside{false};
  auto sub = bus.Subscribe({}, nullptr, [&](const Event&) {
    inside = true;
    std::this_thread::sleep_for(100ms);
    ++calls;
    inside = false;
  });
  bus.Publish(Died("x", "1"));
  while (!inside) std::this_thread::yield();
  sub.Cancel();
  EXPECT_FALSE(inside) << "Cancel returned while the callback still ran";
  EXPECT_EQ(calls, 1);
  bus.Publish(Died("y", "1"));
  ASSERT_TRUE(bus.Flush(DeadlineAfter(10s)).ok());
  EXPECT_EQ(calls, 1);
}

TEST(EventBusTest, ACallbackMayEndItsOwnSubscription) {
  EventBus bus;
  std::atomic<int> calls{0};
  Subscription sub;
  sub = bus.Subscribe({}, nullptr, [&](const Event&) {
    ++calls;
    sub.Cancel();
  });
  bus.Publish(Died("a", "1"));
  bus.Publish(Died("b", "1"));
  ASSERT_TRUE(bus.Flush(DeadlineAfter(10s)).ok());
  EXPECT_EQ(calls, 1);
}

TEST(EventBusTest, AFullQueueDropsTheOldestAndCountsThem) {
  EventBusOptions options;
  options.queue_capacity = 4;
  EventBus bus(options);
  std::mutex gate;
  std::unique_lock hold(gate);
  std::vector<std::string> seen;
  std::atomic<bool> entered{false};
  auto sub = bus.Subscribe({}, nullptr, [&](const Event& e) {
    entered = true;
    std::lock_guard wait(gate);  // the first delivery blocks until the queue has overflowed
    seen.push_back(e.subject);
  });
  bus.Publish(Died("first", "1"));
  while (!entered) std::this_thread::yield();  // "first" is out of the queue, being delivered
  for (int i = 0; i < 10; ++i) bus.Publish(Died(std::to_string(i), "1"));
  hold.unlock();
  ASSERT_TRUE(bus.Flush(DeadlineAfter(10s)).ok());
  EXPECT_EQ(bus.counters().dropped, 6u);
  EXPECT_EQ(seen, (std::vector<std::string>{"first", "6", "7", "8", "9"}));
}

TEST(EventBusTest, FlushFromACallbackIsRefused) {
  EventBus bus;
  Status inner;
  auto sub =
      bus.Subscribe({}, nullptr, [&](const Event&) { inner = bus.Flush(DeadlineAfter(1s)); });
  bus.Publish(Died("a", "1"));
  ASSERT_TRUE(bus.Flush(DeadlineAfter(10s)).ok());
  EXPECT_EQ(inner.code(), StatusCode::kFailedPrecondition);
}

class CountedLease final : public DeviceLease {
 public:
  explicit CountedLease(std::atomic<int>& released) : released_(released) {}
  ~CountedLease() override { ++released_; }
  const std::vector<Device>& devices() const override { return devices_; }

 private:
  std::atomic<int>& released_;
  std::vector<Device> devices_;
};

TEST(ReactorTest, RulesActOnTheirEventsAndCount) {
  EventBus bus;
  Reactor reactor(bus);
  auto leases = std::make_shared<LeaseTable>();
  std::atomic<int> released{0};
  leases->Hold("c1", std::make_unique<CountedLease>(released));
  leases->Hold("c1", std::make_unique<CountedLease>(released));
  leases->Hold("c2", std::make_unique<CountedLease>(released));
  reactor.Add(ReleaseLeasesOnExit(leases));
  std::vector<std::string> oom;
  reactor.Add(MarkFailedOnOom([&](const Event& e) { oom.push_back(e.subject); }));

  bus.Publish(Died("c1", "137"));
  Event o;
  o.type = EventType::kContainerOom;
  o.subject = "c3";
  bus.Publish(o);
  ASSERT_TRUE(bus.Flush(DeadlineAfter(10s)).ok());
  EXPECT_EQ(released, 2);
  EXPECT_EQ(leases->held(), 1u);
  EXPECT_EQ(oom, std::vector<std::string>{"c3"});
  EXPECT_EQ(reactor.fired("release-leases-on-exit"), 1u);
  EXPECT_EQ(reactor.fired("mark-failed-on-oom"), 1u);
  EXPECT_EQ(reactor.fired("no-such-rule"), 0u);

  Event destroyed;
  destroyed.type = EventType::kContainerDestroyed;
  destroyed.subject = "c2";
  bus.Publish(destroyed);
  ASSERT_TRUE(bus.Flush(DeadlineAfter(10s)).ok());
  EXPECT_EQ(released, 3);
  EXPECT_EQ(leases->held(), 0u);
}

TEST(WaitStrategyTest, DescribesWhatItWaitsFor) {
  const auto s =
      WaitStrategy::AllOf(
          {WaitStrategy::LogMatches("ready", 2), WaitStrategy::PortListening(8080),
           WaitStrategy::AnyOf({WaitStrategy::FilePresent("/tmp/ok"), WaitStrategy::Healthy()})})
          .WithTimeout(30s);
  EXPECT_EQ(s.Describe(),
            "all of (log line matching /ready/ 2 times, TCP port 8080 listening, any of (file "
            "/tmp/ok present, healthy health check)) within 30s");
  EXPECT_EQ(s.children().size(), 3u);
  EXPECT_EQ(s.timeout(), 30s);
}

}  // namespace
}  // namespace bitfusion
