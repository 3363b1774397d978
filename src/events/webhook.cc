// Webhook: events forwarded as JSON POSTs from a thread of its own, through the library's one
// HTTP client (retries with backoff on connection failures, 429 and 5xx).
#include <boost/json.hpp>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "bitfusion/events.h"
#include "bitfusion/log.h"
#include "bitfusion/uri.h"
#include "core/percent_encode.h"
#include "net/http_client.h"

namespace bitfusion {

namespace json = boost::json;

class Webhook::Impl {
 public:
  Impl(const WebhookOptions& options, std::unique_ptr<net::HttpClient> client, std::string target,
       std::string shown)
      : options_(options),
        client_(std::move(client)),
        target_(std::move(target)),
        shown_(std::move(shown)) {
    worker_ = std::thread([this] { Run(); });
  }

  ~Impl() {
    bool done = false;
    {
      std::unique_lock lock(mu_);
      closing_ = true;
      drain_until_ = std::chrono::steady_clock::now() + options_.drain;
      cv_.notify_all();
      done = cv_.wait_until(lock, drain_until_, [&] { return done_; });
      stopping_ = !done;
    }
    if (!done) canceller_.Cancel();  // a POST still in flight at the end of the drain
    cv_.notify_all();
    worker_.join();
  }

  const WebhookOptions& options() const { return options_; }

  void Push(const Event& event) {
    {
      std::lock_guard lock(mu_);
      if (closing_) return;
      if (queue_.size() >= std::max<std::size_t>(1, options_.queue_capacity)) {
        queue_.pop_front();
        ++counters_.dropped;
      }
      queue_.push_back(event);
    }
    cv_.notify_all();
  }

  Status Flush(Deadline deadline) {
    std::unique_lock lock(mu_);
    if (cv_.wait_until(lock, deadline, [&] { return queue_.empty() && !busy_; })) {
      return Status::OK();
    }
    return DeadlineExceededError("webhook " + shown_ + ": " + std::to_string(queue_.size()) +
                                 " event(s) not sent yet");
  }

  WebhookCounters counters() const {
    std::lock_guard lock(mu_);
    return counters_;
  }

 private:
  static std::string Body(const Event& e) {
    json::object attributes;
    for (const auto& [k, v] : e.attributes) attributes[k] = v;
    return json::serialize(json::object{{"type", EventTypeName(e.type)},
                                        {"source", Redact(e.source)},
                                        {"subject", e.subject},
                                        {"action", e.action},
                                        {"attributes", std::move(attributes)},
                                        {"time_ns", e.time_ns}});
  }

  // One event, with retries (backoff with jitter) on connection failures, 429 and 5xx.
  bool Send(const Event& e) {
    net::RetryPolicy backoff;
    backoff.initial_backoff = std::chrono::milliseconds(200);
    backoff.max_backoff = std::chrono::seconds(5);
    std::string why;
    for (int attempt = 1; attempt <= options_.max_attempts; ++attempt) {
      net::HttpRequest request;
      request.method = "POST";
      request.target = target_;
      request.headers = {{"Content-Type", "application/json"}};
      request.body = Body(e);
      request.deadline = DeadlineAfter(options_.timeout);
      // Streamed (the answer is not needed) so that the end of the drain can cut it short.
      auto r = client_->Stream(
          request, [](std::string_view) { return true; }, &canceller_);
      if (r.ok() && r->status >= 200 && r->status < 300) return true;
      why = r.ok() ? "HTTP " + std::to_string(r->status) : r.error().message();
      const bool again = !r.ok() || r->status == 429 || r->status >= 500;
      if (!again || attempt == options_.max_attempts) break;
      std::unique_lock lock(mu_);
      if (cv_.wait_for(lock, net::JitteredBackoff(backoff, attempt), [&] { return stopping_; })) {
        break;
      }
    }
    if (!warned_) {
      warned_ = true;
      LogAt(LogLevel::kWarning, "webhook ", shown_, ": ", why,
            "; events it does not take are given up after ", options_.max_attempts,
            " attempt(s) (said once)");
    }
    return false;
  }

  void Run() {
    std::unique_lock lock(mu_);
    while (true) {
      cv_.wait(lock, [&] { return closing_ || !queue_.empty(); });
      if (queue_.empty() || stopping_) {
        // Closing: what the drain did not send is given up.
        counters_.failed += queue_.size();
        queue_.clear();
        done_ = true;
        cv_.notify_all();
        return;
      }
      Event e = std::move(queue_.front());
      queue_.pop_front();
      busy_ = true;
      lock.unlock();
      const bool sent = Send(e);
      lock.lock();
      busy_ = false;
      ++(sent ? counters_.sent : counters_.failed);
      cv_.notify_all();
    }
  }

  const WebhookOptions options_;
  const std::unique_ptr<net::HttpClient> client_;
  const std::string target_;  // path and query: may hold a token, never shown
  const std::string shown_;   // scheme://host:port/path
  bool warned_ = false;       // only the worker thread touches it

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Event> queue_;
  bool busy_ = false;
  bool closing_ = false;   // no more events taken; the queue drains
  bool stopping_ = false;  // the drain's time is up
  bool done_ = false;      // the worker has ended
  std::chrono::steady_clock::time_point drain_until_;
  net::StreamCanceller canceller_;
  WebhookCounters counters_;
  std::thread worker_;
};

Result<std::shared_ptr<Webhook>> Webhook::Make(const WebhookOptions& options) {
  auto uri = Uri::Parse(options.url);
  if (!uri || (uri->scheme != "http" && uri->scheme != "https") || uri->host.empty()) {
    return InvalidArgumentError("webhook URL " + Redact(options.url) +
                                ": expected http://HOST[:PORT]/PATH or https://...");
  }
  if (options.max_attempts < 1 || options.timeout.count() <= 0) {
    return InvalidArgumentError("webhook " + Redact(options.url) +
                                ": max_attempts and timeout must be positive");
  }
  const std::string host =
      uri->host.find(':') != std::string::npos ? "[" + uri->host + "]" : uri->host;
  const std::string base =
      uri->scheme + "://" + host + (uri->port ? ":" + std::to_string(*uri->port) : "");
  std::string path = uri->path.empty() ? "/" : uri->path;
  if (path.front() != '/') path.insert(0, "/");
  std::string target = path;
  for (std::size_t i = 0; i < uri->query.size(); ++i) {
    target += (i == 0 ? "?" : "&") + internal::PercentEncode(uri->query[i].first) + "=" +
              internal::PercentEncode(uri->query[i].second);
  }
  net::HttpClientOptions http;
  http.base_url = base;
  http.user = uri->user;
  http.password = uri->password;
  http.peer_name = "webhook at " + base + path;
  http.connect_timeout =
      std::min<std::chrono::milliseconds>(options.timeout, std::chrono::seconds(5));
  BITFUSION_ASSIGN_OR_RETURN(auto client, net::HttpClient::Make(http));
  auto impl = std::make_shared<Impl>(options, std::move(client), target, base + path);
  return std::shared_ptr<Webhook>(new Webhook(std::move(impl)));
}

Webhook::Webhook(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

Webhook::~Webhook() = default;

ReactorRule Webhook::Rule() {
  ReactorRule rule;
  rule.name = "webhook";
  rule.types = impl_->options().types;
  rule.action = [impl = impl_](const Event& e) { impl->Push(e); };
  return rule;
}

Status Webhook::Flush(Deadline deadline) { return impl_->Flush(deadline); }

WebhookCounters Webhook::counters() const { return impl_->counters(); }

}  // namespace bitfusion
