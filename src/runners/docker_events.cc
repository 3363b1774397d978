#include "runners/docker_events.h"

#include <cstdint>
#include <cstdio>
#include <mutex>
#include <optional>
#include <set>

#include "bitfusion/log.h"
#include "core/event_loop.h"
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

// One /events subscription: the stream, read on the HTTP client's stream pump (no thread of
// its own), and after it drops a reconnect with `since` on an event-loop timer.
class EventPump : public std::enable_shared_from_this<EventPump> {
 public:
  EventPump(std::shared_ptr<DockerApi> api, std::string source, EventCallback callback)
      : api_(std::move(api)), source_(std::move(source)), callback_(std::move(callback)) {
    since_ns_ = WallNowNs();
  }

  void Start() { Connect(); }

  void Stop() {
    std::shared_ptr<net::AsyncStream> stream;
    std::shared_ptr<internal::LoopTimer> timer;
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
      stream = std::move(stream_);
      timer = std::move(timer_);
    }
    if (stream) stream->Cancel();
    if (timer) timer->Cancel();
  }

 private:
  // On the pump thread.
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

  // On the caller's thread first, then on the event loop (Reconnect's timer). Only one stream
  // is open at a time, so what the pump's callbacks keep needs no lock.
  void Connect() {
    const std::int64_t since = last_ns_ > 0 ? last_ns_ : since_ns_;
    char since_text[64];
    std::snprintf(since_text, sizeof since_text, "%lld.%09lld",
                  static_cast<long long>(since / 1'000'000'000),
                  static_cast<long long>(since % 1'000'000'000));
    DockerApi::Call c;
    c.path = "/events?since=" + std::string(since_text) +
             "&filters=" + internal::PercentEncode(R"({"type":["container"]})");
    lines_ = JsonLines();
    connected_ = false;
    auto self = shared_from_this();
    auto stream = api_->StartStream(
        c,
        [self](std::string_view chunk) {
          self->connected_ = true;
          self->lines_.Feed(chunk, [&](const json::value& v) { self->OnValue(v); });
          return true;
        },
        [self, path = c.path](Result<net::HttpResponse> r) { self->Ended(r, path); });
    if (!stream) return Ended(stream.error(), c.path);
    std::lock_guard lock(mu_);
    if (stopping_) {
      (*stream)->Cancel();
    } else {
      stream_ = std::move(*stream);
    }
  }

  void Ended(const Result<net::HttpResponse>& r, const std::string& path) {
    if (r && r->status == 200) connected_ = true;
    if (r && r->status != 200) {
      LogAt(LogLevel::kWarning, "events: ", api_->ApiError(*r, "GET", path).ToString());
    } else if (!r && r.error().code() != StatusCode::kCancelled) {
      LogAt(LogLevel::kDebug, "events stream from ", source_, " dropped (", r.error().message(),
            "); reconnecting");
    }
    // Reconnects back off from 50 ms to 2 s, jittered, and start over once a stream connects.
    net::RetryPolicy reconnect;
    reconnect.initial_backoff = 50ms;
    reconnect.max_backoff = 2s;
    failures_ = connected_ ? 1 : failures_ + 1;
    const auto wait = net::JitteredBackoff(reconnect, failures_);
    std::lock_guard lock(mu_);
    if (stopping_) return;
    std::weak_ptr<EventPump> weak = shared_from_this();
    timer_ = internal::LoopTimer::Start(wait, [weak] {
      if (auto self = weak.lock()) self->Connect();
      return std::optional<std::chrono::nanoseconds>();
    });
  }

  const std::shared_ptr<DockerApi> api_;
  const std::string source_;
  const EventCallback callback_;
  std::int64_t since_ns_ = 0;
  std::int64_t last_ns_ = 0;
  std::set<std::string> seen_at_last_;
  JsonLines lines_;
  bool connected_ = false;
  int failures_ = 0;
  std::mutex mu_;
  bool stopping_ = false;
  std::shared_ptr<net::AsyncStream> stream_;
  std::shared_ptr<internal::LoopTimer> timer_;
};

}  // namespace

Subscription FollowDockerEvents(std::shared_ptr<DockerApi> api, std::string source,
                                EventCallback callback) {
  auto pump = std::make_shared<EventPump>(std::move(api), std::move(source), std::move(callback));
  pump->Start();
  return Subscription([pump] { pump->Stop(); });
}

}  // namespace bitfusion
