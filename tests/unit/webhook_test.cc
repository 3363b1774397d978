// Webhook: chosen events POSTed as JSON to a test HTTP server, retries, and a webhook that never
// answers holding up neither the bus nor its own end.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <mutex>
#include <string>
#include <vector>

#include "bitfusion/events.h"
#include "bitfusion/experiment.h"
#include "bitfusion/log.h"
#include "fakes/http_test_server.h"

namespace bitfusion {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;
using testing::HttpTestServer;
using testing::TestRequest;
using testing::TestResponse;

Event Died(const std::string& id, const std::string& code) {
  Event e;
  e.type = EventType::kContainerDied;
  e.source = "docker:///run/docker.sock";
  e.subject = id;
  e.action = "die";
  e.attributes = {{"exitCode", code}};
  e.time_ns = 1'700'000'000'000'000'000;
  return e;
}

TEST(WebhookTest, ChosenEventsArePostedAsJsonInOrder) {
  std::mutex mu;
  std::vector<TestRequest> seen;
  HttpTestServer server([&](const TestRequest& r) {
    std::lock_guard lock(mu);
    seen.push_back(r);
    return TestResponse{};
  });
  WebhookOptions options;
  options.url = server.url() + "/hooks/bf?token=a%2Fb";
  options.types = {EventType::kContainerDied, EventType::kMachineDown};
  auto hook = Webhook::Make(options);
  ASSERT_TRUE(hook.ok()) << hook.error().ToString();
  EventBus bus;
  {
    Reactor reactor(bus);
    reactor.Add((*hook)->Rule());
    bus.Publish(Died("c1", "3"));
    Event leased;
    leased.type = EventType::kDeviceLeased;  // not chosen
    bus.Publish(leased);
    Event lost;
    lost.type = EventType::kMachineDown;
    lost.subject = "office-2";
    lost.attributes = {{"reason", "unreachable"}};
    bus.Publish(lost);
    ASSERT_TRUE(bus.Flush(DeadlineAfter(10s)).ok());
    ASSERT_TRUE((*hook)->Flush(DeadlineAfter(30s)).ok());
    EXPECT_EQ(reactor.fired("webhook"), 2u);
  }
  const WebhookCounters counters = (*hook)->counters();
  EXPECT_EQ(counters.sent, 2u);
  EXPECT_EQ(counters.failed, 0u);
  EXPECT_EQ(counters.dropped, 0u);
  std::lock_guard lock(mu);
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].method, "POST");
  EXPECT_EQ(seen[0].target, "/hooks/bf?token=a%2Fb") << "the query reaches the receiver as given";
  EXPECT_EQ(seen[0].headers.at("content-type"), "application/json");
  const json::value first = json::parse(seen[0].body);
  EXPECT_EQ(first.at("type").as_string(), "container.died");
  EXPECT_EQ(first.at("subject").as_string(), "c1");
  EXPECT_EQ(first.at("action").as_string(), "die");
  EXPECT_EQ(first.at("attributes").at("exitCode").as_string(), "3");
  EXPECT_EQ(first.at("time_ns").as_int64(), 1'700'000'000'000'000'000);
  const json::value second = json::parse(seen[1].body);
  EXPECT_EQ(second.at("type").as_string(), "machine.down");
  EXPECT_EQ(second.at("attributes").at("reason").as_string(), "unreachable");
}

TEST(WebhookTest, AnOverloadedReceiverIsRetriedWithBackoff) {
  std::mutex mu;
  int calls = 0;
  HttpTestServer server([&](const TestRequest&) {
    std::lock_guard lock(mu);
    TestResponse r;
    r.status = ++calls < 3 ? 503 : 204;
    return r;
  });
  WebhookOptions options;
  options.url = server.url() + "/h";
  auto hook = Webhook::Make(options);
  ASSERT_TRUE(hook.ok());
  EventBus bus;
  Reactor reactor(bus);
  reactor.Add((*hook)->Rule());
  bus.Publish(Died("c1", "1"));
  ASSERT_TRUE(bus.Flush(DeadlineAfter(10s)).ok());
  ASSERT_TRUE((*hook)->Flush(DeadlineAfter(30s)).ok());
  EXPECT_EQ((*hook)->counters().sent, 1u);
  std::lock_guard lock(mu);
  EXPECT_EQ(calls, 3);
}

TEST(WebhookTest, AReceiverThatNeverAnswersHoldsUpNeitherTheBusNorTheEnd) {
  // A socket that listens and never accepts: connections complete, requests go out, and no
  // answer ever comes back.
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ASSERT_EQ(::listen(fd, 16), 0);

  std::vector<std::string> warnings;
  std::mutex mu;
  SetLogHandler([&](LogLevel level, std::string_view message) {
    std::lock_guard lock(mu);
    if (level >= LogLevel::kWarning) warnings.emplace_back(message);
  });
  WebhookOptions options;
  options.url = "http://hook:s3cret-pass@127.0.0.1:" + std::to_string(ntohs(addr.sin_port)) +
                "/h?token=s3cret-token";
  options.timeout = 600s;  // far longer than the test may take
  options.queue_capacity = 2;
  options.drain = 200ms;
  auto hook = Webhook::Make(options);
  ASSERT_TRUE(hook.ok()) << hook.error().ToString();
  EventBus bus;
  {
    Reactor reactor(bus);
    reactor.Add((*hook)->Rule());
    for (int i = 0; i < 6; ++i) bus.Publish(Died("c" + std::to_string(i), "1"));
    EXPECT_TRUE(bus.Flush(DeadlineAfter(60s)).ok()) << "the bus waited for the webhook";
    EXPECT_EQ(reactor.fired("webhook"), 6u);
    EXPECT_FALSE((*hook)->Flush(DeadlineAfter(100ms)).ok());
    const WebhookCounters c = (*hook)->counters();
    EXPECT_EQ(c.sent, 0u);
    // One in flight, two queued: the oldest others were pushed out.
    EXPECT_GE(c.dropped, 3u);
  }
  hook->reset();  // the end: 200 ms of drain, then the POST in flight is cut short
  SetLogHandler(nullptr);
  ::close(fd);
  std::lock_guard lock(mu);
  for (const auto& w : warnings) {
    EXPECT_EQ(w.find("s3cret"), std::string::npos) << w;
  }
}

TEST(WebhookTest, BadUrlsAreRefusedWithoutShowingTheirSecrets) {
  WebhookOptions options;
  options.url = "ftp://u:s3cret@example.com/x";
  auto hook = Webhook::Make(options);
  ASSERT_FALSE(hook.ok());
  EXPECT_EQ(hook.error().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(hook.error().message().find("s3cret"), std::string::npos) << hook.error().message();
  EXPECT_NE(hook.error().message().find("expected http://"), std::string::npos);
  options.url = "not a url";
  EXPECT_FALSE(Webhook::Make(options).ok());
}

TEST(WebhookTest, APlanForwardsTheEventsItsWebhooksChose) {
  std::mutex mu;
  std::vector<std::string> bodies;
  HttpTestServer server([&](const TestRequest& r) {
    std::lock_guard lock(mu);
    bodies.push_back(r.body);
    return TestResponse{};
  });
  auto plan = ParsePlan(R"({"name": "hooked",
      "webhooks": [{"url": ")" +
                            server.url() + R"(/died", "events": ["container.died"]}],
      "benchmarks": [{"name": "fails", "command": ["sh", "-c", "exit 3"],
                      "repetitions": 1, "warmup": 0}]})",
                        "hooked.json");
  ASSERT_TRUE(plan.ok()) << plan.error().ToString();
  ASSERT_EQ(plan->webhooks.size(), 1u);
  auto result = RunPlan(*plan, {});
  ASSERT_TRUE(result.ok()) << result.error().ToString();
  EXPECT_EQ(result->failed_runs, 1);
  std::lock_guard lock(mu);
  ASSERT_EQ(bodies.size(), 1u) << "RunPlan returns once its webhooks were sent what they chose";
  const json::value died = json::parse(bodies[0]);
  EXPECT_EQ(died.at("type").as_string(), "container.died");
  EXPECT_EQ(died.at("attributes").at("exitCode").as_string(), "3");

  auto bad = ParsePlan(R"({"webhooks": [{"url": "http://x/", "events": ["container.dead"]}],
                           "benchmarks": [{"command": ["true"]}]})",
                       "p.json");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("webhooks[0].events[0]: unknown event \"container.dead\""),
            std::string::npos)
      << bad.error().message();
  bad = ParsePlan(R"({"webhooks": [{"url": "ftp://x/"}], "benchmarks": [{"command": ["true"]}]})",
                  "p.json");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("webhooks[0].url: expected an http"), std::string::npos);
}

}  // namespace
}  // namespace bitfusion
