#include "runners/docker_events.h"

#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <set>
#include <thread>

#include "bitfusion/log.h"
#include "core/percent_encode.h"
#include "net/http_client.h"

namespace bitfusion {

namespace json = boost::json;
using namespace std::chrono_literals;

using internal::JsonAt;
using internal::JsonInt;
using internal::JsonLabels;
using internal::JsonLines;
using internal::JsonString;

namespace internal {

namespace {

EventType TypeOf(std::string_view action) {
  if (action == "create") return EventType::kContainerCreated;
  if (action == "start") return EventType::kContainerStarted;
  if (action == "die") return EventType::kContainerDied;
  // Podman says "remove" where Docker says "destroy".
  if (action == "destroy" || action == "remove") return EventType::kContainerDestroyed;
  if (action == "oom") return EventType::kContainerOom;
  return EventType::kOther;
}

}  // namespace

Event DockerEventFromJson(const json::value& v, const std::string& source) {
  Event e;
  e.action = JsonString(JsonAt(v, {"Action"}));
  if (e.action.empty()) e.action = JsonString(JsonAt(v, {"status"}));
  e.subject = JsonString(JsonAt(v, {"Actor", "ID"}));
  if (e.subject.empty()) e.subject = JsonString(JsonAt(v, {"id"}));
  e.attributes = JsonLabels(JsonAt(v, {"Actor", "Attributes"}));
  e.time_ns = JsonInt(JsonAt(v, {"timeNano"}));
  if (e.time_ns == 0) {
    // Seconds past 2262 do not fit in nanoseconds: such a time reads as unknown (0).
    e.time_ns = internal::EngineSecondsToNs(JsonInt(JsonAt(v, {"time"})));
  }
  e.type = JsonString(JsonAt(v, {"Type"})) == "container" ? TypeOf(e.action) : EventType::kOther;
  e.source = source;
  return e;
}

}  // namespace internal

namespace {

// One /events subscription: a thread that reads the stream and reconnects with `since`.
class EventPump {
 public:
  EventPump(std::shared_ptr<DockerApi> api, std::string source, EventCallback callback)
      : api_(std::move(api)), source_(std::move(source)), callback_(std::move(callback)) {
    since_ns_ = WallNowNs();
  }

  void Start() {
    thread_ = std::thread([this] { Run(); });
  }

  void Stop() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    canceller_.Cancel();
    if (thread_.joinable()) thread_.join();
  }

 private:
  void OnValue(const json::value& v) {
    Event e = internal::DockerEventFromJson(v, source_);
    // A reconnect asks again from the last event's time: skip what was already delivered.
    const std::string key = e.action + "/" + e.subject;
    if (e.time_ns < last_ns_) return;
    if (e.time_ns == last_ns_) {
      if (!seen_at_last_.insert(key).second) return;
    } else {
      last_ns_ = e.time_ns;
      seen_at_last_ = {key};
    }
    callback_(e);
  }

  void Run() {
    // Reconnects back off from 50 ms to 2 s, jittered, and start over once a stream connects.
    net::RetryPolicy reconnect;
    reconnect.initial_backoff = 50ms;
    reconnect.max_backoff = 2s;
    int failures = 0;
    while (true) {
      {
        std::lock_guard lock(mu_);
        if (stopping_) return;
      }
      const std::int64_t since = last_ns_ > 0 ? last_ns_ : since_ns_;
      char since_text[64];
      std::snprintf(since_text, sizeof since_text, "%lld.%09lld",
                    static_cast<long long>(since / 1'000'000'000),
                    static_cast<long long>(since % 1'000'000'000));
      DockerApi::Call c;
      c.path = "/events?since=" + std::string(since_text) +
               "&filters=" + internal::PercentEncode(R"({"type":["container"]})");
      JsonLines lines;
      bool connected = false;
      auto r = api_->Stream(
          c,
          [&](std::string_view chunk) {
            connected = true;
            lines.Feed(chunk, [&](const json::value& v) { OnValue(v); });
            return true;
          },
          &canceller_);
      if (r && r->status == 200) connected = true;
      if (r && r->status != 200) {
        LogAt(LogLevel::kWarning, "events: ", api_->ApiError(*r, "GET", c.path).ToString());
      } else if (!r && r.error().code() != StatusCode::kCancelled) {
        LogAt(LogLevel::kDebug, "events stream from ", source_, " dropped (", r.error().message(),
              "); reconnecting");
      }
      failures = connected ? 1 : failures + 1;
      std::unique_lock lock(mu_);
      const auto wait = net::JitteredBackoff(reconnect, failures);
      if (cv_.wait_for(lock, wait, [&] { return stopping_; })) return;
    }
  }

  const std::shared_ptr<DockerApi> api_;
  const std::string source_;
  const EventCallback callback_;
  std::int64_t since_ns_ = 0;
  std::int64_t last_ns_ = 0;
  std::set<std::string> seen_at_last_;
  net::StreamCanceller canceller_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace

Subscription FollowDockerEvents(std::shared_ptr<DockerApi> api, std::string source,
                                EventCallback callback) {
  auto pump = std::make_shared<EventPump>(std::move(api), std::move(source), std::move(callback));
  pump->Start();
  return Subscription([pump] { pump->Stop(); });
}

}  // namespace bitfusion
