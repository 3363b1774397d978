#include "net/http_client.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <vector>

#include "fakes/http_test_server.h"

namespace bitfusion::net {
namespace {

using bitfusion::testing::HttpTestServer;
using bitfusion::testing::TestRequest;
using bitfusion::testing::TestResponse;
using namespace std::chrono_literals;

std::unique_ptr<HttpClient> Client(HttpClientOptions options) {
  auto client = HttpClient::Make(options);
  EXPECT_TRUE(client.ok()) << client.error().ToString();
  return std::move(*client);
}

// A server that answers every request with `chunks`, each after `pause`, and then ends the
// stream or, with `hold_open`, keeps it open until the server stops; and a client of it.
struct ChunkServer {
  explicit ChunkServer(std::vector<std::string> chunks, std::chrono::milliseconds pause = 0ms,
                       bool hold_open = false)
      : server([chunks = std::move(chunks), pause, hold_open](const TestRequest&) {
          TestResponse out;
          out.chunks = chunks;
          out.chunk_pause = pause;
          out.hold_open = hold_open;
          return out;
        }),
        client(ClientOf(server)) {}

  static std::unique_ptr<HttpClient> ClientOf(const HttpTestServer& server) {
    HttpClientOptions options;
    options.base_url = server.url();
    return Client(options);
  }

  HttpTestServer server;
  std::unique_ptr<HttpClient> client;  // after server, so it is destroyed first
};

TEST(HttpClientTest, SendsMethodHeadersBodyAndReadsTheAnswer) {
  TestRequest seen;
  HttpTestServer server([&](const TestRequest& r) {
    seen = r;
    TestResponse out;
    out.status = 201;
    out.headers = {{"X-Thing", "yes"}, {"Content-Type", "application/json"}};
    out.body = "{\"ok\":true}";
    return out;
  });
  HttpClientOptions options;
  options.base_url = server.url();
  options.user = "elastic";
  options.password = "s3cret";
  auto client = Client(options);
  HttpRequest request;
  request.method = "POST";
  request.target = "/index/_bulk?refresh=true";
  request.headers = {{"Content-Type", "application/x-ndjson"}};
  request.body = "{\"index\":{}}\n{\"a\":1}\n";
  auto response = client->Send(request);
  ASSERT_TRUE(response.ok()) << response.error().ToString();
  EXPECT_EQ(response->status, 201);
  EXPECT_EQ(response->body, "{\"ok\":true}");
  EXPECT_EQ(response->Header("x-thing"), "yes");
  EXPECT_EQ(response->Header("X-THING"), "yes");
  EXPECT_EQ(seen.method, "POST");
  EXPECT_EQ(seen.target, "/index/_bulk?refresh=true");
  EXPECT_EQ(seen.body, request.body);
  EXPECT_EQ(seen.headers["content-type"], "application/x-ndjson");
  EXPECT_EQ(seen.headers["authorization"], "Basic ZWxhc3RpYzpzM2NyZXQ=");
  EXPECT_EQ(seen.headers.count("expect"), 0u);
}

TEST(HttpClientTest, AnAnswerLargerThanTheLimitIsAClearErrorNotAnAllocation) {
  HttpTestServer server([](const TestRequest&) {
    TestResponse out;
    out.body = std::string(100'000, 'x');
    return out;
  });
  HttpClientOptions options;
  options.base_url = server.url();
  options.peer_name = "test server";
  options.max_body_bytes = 64 * 1024;
  auto client = Client(options);
  HttpRequest request;
  request.target = "/big";
  auto response = client->Send(request);
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.error().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(response.error().message().find("GET /big to test server is larger than 65536 bytes"),
            std::string::npos)
      << response.error().message();
  options.max_body_bytes = 100'000;  // exactly the size: fine
  response = Client(options)->Send(request);
  ASSERT_TRUE(response.ok()) << response.error().ToString();
  EXPECT_EQ(response->body.size(), 100'000u);
}

TEST(HttpClientTest, UnixSocketAndConnectionReuse) {
  const std::string path =
      ::testing::TempDir() + "/bf-http-" + std::to_string(::getpid()) + ".sock";
  HttpTestServer server([](const TestRequest& r) { return TestResponse{200, {}, r.target}; }, path);
  HttpClientOptions options;
  options.base_url = "http://localhost";
  options.unix_socket = path;
  auto client = Client(options);
  for (int i = 0; i < 5; ++i) {
    auto response = client->Send({"GET", "/_ping"});
    ASSERT_TRUE(response.ok()) << response.error().ToString();
    EXPECT_EQ(response->body, "/_ping");
  }
  EXPECT_EQ(server.requests(), 5);
}

TEST(HttpClientTest, ConnectionRefusedNamesThePeerWithAHint) {
  HttpClientOptions options;
  options.base_url = "http://localhost";
  options.unix_socket = "/nonexistent/docker.sock";
  options.peer_name = "Docker engine at unix:///nonexistent/docker.sock";
  auto response = Client(options)->Send({"GET", "/_ping"});
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.error().code(), StatusCode::kUnavailable);
  EXPECT_NE(response.error().message().find("Docker engine at unix:///nonexistent/docker.sock"),
            std::string::npos);
  EXPECT_NE(response.error().message().find("is it running"), std::string::npos);
}

TEST(HttpClientTest, RetriesRetryableStatusesWithBackoff) {
  std::atomic<int> calls{0};
  HttpTestServer server([&](const TestRequest&) {
    return ++calls < 3 ? TestResponse{503, {}, "busy"} : TestResponse{200, {}, "fine"};
  });
  HttpClientOptions options;
  options.base_url = server.url();
  options.retry.max_attempts = 5;
  options.retry.initial_backoff = 1ms;
  auto response = Client(options)->Send({"GET", "/"});
  ASSERT_TRUE(response.ok());
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(calls.load(), 3);
}

TEST(HttpClientTest, RetryAfterIsObeyedOnlyUpToTheCapAndTheDeadline) {
  std::atomic<int> calls{0};
  HttpTestServer server([&](const TestRequest&) {
    // An hour: a broken or hostile server must not park the caller that long.
    return ++calls < 2 ? TestResponse{503, {{"Retry-After", "3600"}}, "busy"}
                       : TestResponse{200, {}, "fine"};
  });
  HttpClientOptions options;
  options.base_url = server.url();
  options.retry.max_attempts = 3;
  options.retry.initial_backoff = 1ms;
  options.retry.max_backoff = 10ms;
  options.retry.max_retry_after = 200ms;
  auto client = Client(options);
  auto started = std::chrono::steady_clock::now();
  auto response = client->Send({"GET", "/"});
  auto took = std::chrono::steady_clock::now() - started;
  ASSERT_TRUE(response.ok()) << response.error().ToString();
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->attempts, 2);
  EXPECT_GE(took, 190ms) << "a Retry-After is still obeyed up to the cap";
  EXPECT_LT(took, 5s);

  // Where the wait would pass the request's deadline, the answer comes back at once.
  calls = 0;
  options.retry.max_retry_after = 60s;
  client = Client(options);
  HttpRequest request{"GET", "/"};
  request.deadline = DeadlineAfter(10s);
  started = std::chrono::steady_clock::now();
  response = client->Send(request);
  took = std::chrono::steady_clock::now() - started;
  ASSERT_TRUE(response.ok()) << response.error().ToString();
  EXPECT_EQ(response->status, 503);
  EXPECT_EQ(calls.load(), 1);
  EXPECT_LT(took, 5s);
}

TEST(HttpClientTest, NonIdempotentRequestsAreNotRetried) {
  std::atomic<int> calls{0};
  HttpTestServer server([&](const TestRequest&) {
    ++calls;
    return TestResponse{503, {}, "busy"};
  });
  HttpClientOptions options;
  options.base_url = server.url();
  options.retry.max_attempts = 5;
  options.retry.initial_backoff = 1ms;
  auto client = Client(options);
  HttpRequest post{"POST", "/x"};
  auto response = client->Send(post);
  ASSERT_TRUE(response.ok());
  EXPECT_EQ(response->status, 503);
  EXPECT_EQ(calls.load(), 1);
  post.idempotent = true;  // e.g. a bulk request with deterministic document ids
  (void)client->Send(post);
  EXPECT_EQ(calls.load(), 6);
}

TEST(HttpClientTest, DeadlineIsEnforced) {
  ChunkServer slow({"a"}, 0ms, /*hold_open=*/true);
  HttpRequest request{"GET", "/slow"};
  request.deadline = DeadlineAfter(200ms);
  auto response = slow.client->Send(request);
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.error().code(), StatusCode::kDeadlineExceeded);
}

TEST(HttpClientTest, StreamDeliversChunksAndStopsWhenAsked) {
  ChunkServer events({"one\n", "two\n", "three\n", "four\n"}, 5ms);
  std::string got;
  auto response = events.client->Stream({"GET", "/events"}, [&](std::string_view chunk) {
    got += chunk;
    return got.find("three") == std::string::npos;
  });
  ASSERT_TRUE(response.ok()) << response.error().ToString();
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(got, "one\ntwo\nthree\n");
}

TEST(HttpClientTest, StreamCancelIsPrompt) {
  ChunkServer events({"{}\n"}, 0ms, /*hold_open=*/true);
  StreamCanceller canceller;
  std::atomic<int> chunks{0};
  std::thread stopper([&] {
    while (chunks.load() == 0) std::this_thread::sleep_for(1ms);
    canceller.Cancel();
  });
  const auto start = std::chrono::steady_clock::now();
  auto response = events.client->Stream(
      {"GET", "/events"},
      [&](std::string_view) {
        ++chunks;
        return true;
      },
      &canceller);
  stopper.join();
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.error().code(), StatusCode::kCancelled);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 900ms)
      << "cancel wakes the transfer; it does not wait for curl's 1 s poll";
}

TEST(HttpClientTest, StreamErrorStatusReturnsTheErrorBody) {
  HttpTestServer server([](const TestRequest&) {
    return TestResponse{404, {}, "{\"message\":\"No such container: x\"}"};
  });
  HttpClientOptions options;
  options.base_url = server.url();
  bool called = false;
  auto response = Client(options)->Stream({"GET", "/containers/x/logs"}, [&](std::string_view) {
    called = true;
    return true;
  });
  ASSERT_TRUE(response.ok());
  EXPECT_EQ(response->status, 404);
  EXPECT_NE(response->body.find("No such container"), std::string::npos);
  EXPECT_FALSE(called);
}

TEST(HttpClientTest, StartStreamDeliversChunksThenTheEnd) {
  ChunkServer events({"one\n", "two\n", "three\n"}, 5ms);
  std::mutex mu;
  std::condition_variable cv;
  std::string got;
  std::optional<Result<HttpResponse>> end;
  auto stream = events.client->StartStream(
      {"GET", "/events"},
      [&](std::string_view chunk) {
        std::lock_guard lock(mu);
        got += chunk;
        return true;
      },
      [&](Result<HttpResponse> r) {
        std::lock_guard lock(mu);
        end = std::move(r);
        cv.notify_all();
      });
  ASSERT_TRUE(stream.ok()) << stream.error().ToString();
  std::unique_lock lock(mu);
  ASSERT_TRUE(cv.wait_for(lock, 10s, [&] { return end.has_value(); }));
  ASSERT_TRUE(end->ok()) << end->error().ToString();
  EXPECT_EQ((*end)->status, 200);
  EXPECT_EQ(got, "one\ntwo\nthree\n");
}

TEST(HttpClientTest, StartStreamFailureToConnectReachesTheEndCallback) {
  HttpClientOptions options;
  options.base_url = "http://127.0.0.1:1";
  auto client = Client(options);
  std::promise<Status> ended;
  auto stream = client->StartStream(
      {"GET", "/events"}, [](std::string_view) { return true; },
      [&](Result<HttpResponse> r) { ended.set_value(r.status()); });
  ASSERT_TRUE(stream.ok());
  auto future = ended.get_future();
  ASSERT_EQ(future.wait_for(10s), std::future_status::ready);
  const Status s = future.get();
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
  EXPECT_NE(s.message().find("cannot connect to"), std::string::npos) << s.ToString();
}

// Many open streams share one thread, and Cancel waits for a callback in progress: once it
// returns, nothing of the stream runs again.
TEST(HttpClientTest, StartStreamsShareOneThreadAndCancelWaitsForTheCallback) {
  ChunkServer events({"{}\n"}, 0ms, /*hold_open=*/true);
  constexpr int kStreams = 20;
  std::atomic<int> first_chunks{0};
  std::atomic<int> ends{0};
  std::set<std::thread::id> threads;
  std::mutex mu;
  std::vector<std::shared_ptr<AsyncStream>> streams;
  for (int i = 0; i < kStreams; ++i) {
    auto seen = std::make_shared<bool>(false);
    auto stream = events.client->StartStream(
        {"GET", "/events"},
        [&, seen](std::string_view) {
          {
            std::lock_guard lock(mu);
            threads.insert(std::this_thread::get_id());
          }
          if (!std::exchange(*seen, true)) ++first_chunks;
          return true;
        },
        [&](Result<HttpResponse>) { ++ends; });
    ASSERT_TRUE(stream.ok()) << stream.error().ToString();
    streams.push_back(std::move(*stream));
  }
  const auto until = std::chrono::steady_clock::now() + 10s;
  while (first_chunks.load() < kStreams && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(5ms);
  }
  ASSERT_EQ(first_chunks.load(), kStreams);
  {
    std::lock_guard lock(mu);
    EXPECT_EQ(threads.size(), 1u) << "every stream's callbacks run on the one pump thread";
  }
  const auto start = std::chrono::steady_clock::now();
  for (auto& s : streams) s->Cancel();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 900ms) << "cancelling is prompt";
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(ends.load(), 0) << "a cancelled stream's end callback is not called";

  // A callback in progress: Cancel from another thread returns only once it has returned.
  std::atomic<bool> in_callback{false}, release{false}, returned{false};
  auto slow = events.client->StartStream(
      {"GET", "/events"},
      [&](std::string_view) {
        in_callback = true;
        while (!release.load()) std::this_thread::sleep_for(1ms);
        returned = true;
        return true;
      },
      [](Result<HttpResponse>) {});
  ASSERT_TRUE(slow.ok());
  while (!in_callback.load()) std::this_thread::sleep_for(1ms);
  std::thread releaser([&] {
    std::this_thread::sleep_for(100ms);
    release = true;
  });
  (*slow)->Cancel();
  EXPECT_TRUE(returned.load());
  releaser.join();
}

}  // namespace
}  // namespace bitfusion::net
