// The one HTTP client every backend uses (Docker Engine, Elasticsearch, InfluxDB, clouds), on
// libcurl: TCP or a unix socket, TLS with a CA bundle and client certificates (mutual TLS),
// whole or streamed bodies, retries with exponential backoff and jitter. libcurl stays inside
// src/net; nothing here leaks into the public headers.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "bitfusion/clock.h"
#include "bitfusion/status.h"

namespace bitfusion::net {

using Headers = std::vector<std::pair<std::string, std::string>>;

/// Produces a request body piece by piece, for uploads too large to hold (an image archive):
/// fills up to `max` bytes of `buffer` and returns how many, 0 at the end of the body. An error
/// aborts the request and is what the call returns. May block until it has bytes.
using BodySource = std::function<Result<std::size_t>(char* buffer, std::size_t max)>;

struct HttpRequest {
  std::string method = "GET";
  /// Path and query appended to the client's base URL: "/v1.41/containers/json?all=1".
  std::string target;
  Headers headers;
  std::string body;
  /// Whole-request deadline; kNoDeadline for streams that end when the caller says so.
  Deadline deadline = kNoDeadline;
  /// Safe to send again after a failure (GET, HEAD, PUT and DELETE are by default).
  std::optional<bool> idempotent;
  /// When set, the body is read from here as it is sent (chunked, length unknown) instead of
  /// `body`; such a request is never retried, since what was read cannot be read again.
  BodySource body_source;
};

struct HttpResponse {
  long status = 0;
  Headers headers;  ///< names lower-cased
  std::string body;
  /// How many times Send sent the request to get this answer (1 = no retry).
  int attempts = 1;

  /// The last value of header `name` (case-insensitive).
  std::optional<std::string> Header(std::string_view name) const;
};

struct RetryPolicy {
  int max_attempts = 1;  ///< 1 = no retries
  std::chrono::milliseconds initial_backoff{100};
  std::chrono::milliseconds max_backoff{10'000};
  /// The longest a server's Retry-After is obeyed: a longer one is cut to max(this,
  /// max_backoff), so that a broken or hostile server cannot park a caller for hours. A retry
  /// that would start after the request's deadline is not made.
  std::chrono::milliseconds max_retry_after{60'000};
  /// Statuses that are retried (besides connection failures), e.g. 429, 502, 503, 504.
  std::vector<long> retry_statuses = {429, 502, 503, 504};
  /// Also retries a response this returns true for, whatever its status (e.g. an API's
  /// throttling code in the body); empty = by status only.
  std::function<bool(const HttpResponse&)> retry_response;
};

/// The wait before the retry that follows failed attempt `attempt` (1 = the first): the
/// library's one backoff formula (core/backoff.h) with this policy's bounds, a random duration
/// up to min(max_backoff, initial_backoff * 2^(attempt-1)) ("full jitter"), so that clients do
/// not retry in step. For callers that run their own retry loop.
std::chrono::milliseconds JitteredBackoff(const RetryPolicy& policy, int attempt);

struct HttpClientOptions {
  /// "http://127.0.0.1:2375", "https://es.example:9200"; for unix sockets "http://localhost".
  std::string base_url;
  /// Path of a unix socket to connect through (Docker's /var/run/docker.sock); empty = TCP.
  std::string unix_socket;
  /// TLS: CA bundle to verify the server with (empty = system store), and a client certificate
  /// and key for mutual TLS (PEM files).
  std::string ca_file, cert_file, key_file;
  bool verify_peer = true;
  /// HTTP basic auth; never appears in errors or logs.
  std::string user, password;
  std::chrono::milliseconds connect_timeout{10'000};
  RetryPolicy retry;
  /// What the client talks to, for messages: "Docker engine at unix:///var/run/docker.sock".
  std::string peer_name;
  /// The most bytes of one answer's body Send() keeps in memory (a streamed body's chunks go
  /// to the callback and do not count); a larger answer fails with ResourceExhausted naming
  /// the request, so a broken or hostile server cannot exhaust memory.
  std::size_t max_body_bytes = std::size_t{256} << 20;
};

/// Logs a warning when the secret in `path` (a key, a token; `what` says which) can be read by
/// users other than its owner.
void WarnIfReadableByOthers(const std::string& path, std::string_view what);

/// Called with each piece of a streamed body as it arrives; return false to stop the stream.
using ChunkCallback = std::function<bool(std::string_view chunk)>;

/// Lets another thread end a running Stream() promptly (no polling interval).
class StreamCanceller {
 public:
  StreamCanceller();
  ~StreamCanceller();
  StreamCanceller(const StreamCanceller&) = delete;
  StreamCanceller& operator=(const StreamCanceller&) = delete;
  void Cancel();
  bool cancelled() const { return cancelled_.load(); }

 private:
  friend class HttpClient;
  std::atomic<bool> cancelled_{false};
  void* multi_ = nullptr;  // CURLM*, owned; Cancel wakes it
};

/// Called once when a request started with StartStream ends: its response (status and headers;
/// the body only when the status is not 2xx, as for Stream), or why it failed.
using DoneCallback = std::function<void(Result<HttpResponse>)>;

/// A request started with HttpClient::StartStream, in flight on the process's stream pump.
class AsyncStream {
 public:
  virtual ~AsyncStream() = default;
  /// Ends the request, if it has not ended. When this returns, neither of its callbacks is
  /// running (unless Cancel was called from a callback: they all run on the pump's one thread)
  /// and neither will be called again; a cancelled request's on_done is not called.
  virtual void Cancel() = 0;
};

/// Concurrency: Send and Stream may be called from several threads at once; connections are
/// pooled and reused across calls.
class HttpClient {
 public:
  static Result<std::unique_ptr<HttpClient>> Make(const HttpClientOptions& options);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  /// Sends the request and reads the whole answer. Any HTTP status is a response; failures to
  /// connect, TLS errors and timeouts are errors naming the peer, with a hint.
  Result<HttpResponse> Send(const HttpRequest& request);

  /// Sends the request and hands the body to `on_chunk` as it arrives, until the server ends
  /// it, on_chunk returns false, or `canceller` is cancelled (then Cancelled). The returned
  /// response has status and headers; its body is empty unless the status is not 2xx (then it
  /// holds the error body and on_chunk is not called).
  Result<HttpResponse> Stream(const HttpRequest& request, const ChunkCallback& on_chunk,
                              StreamCanceller* canceller = nullptr);

  /// Like Stream, without a thread of its own: the request runs on the stream pump, one thread
  /// and one libcurl multi handle that serve every such request of the process, so the
  /// process's thread count does not grow with the number of open streams. `on_chunk` and then
  /// `on_done` are called on the pump's thread: each must return quickly (anything slow holds
  /// up every other stream of the process) and must not wait for another stream's callback.
  /// Errors here (a deadline already passed, a body_source, the pump shut down at exit) are
  /// returned at once and no callback is called.
  Result<std::shared_ptr<AsyncStream>> StartStream(const HttpRequest& request,
                                                   ChunkCallback on_chunk, DoneCallback on_done);

  const HttpClientOptions& options() const { return options_; }

 private:
  explicit HttpClient(const HttpClientOptions& options);
  class Handle;
  std::unique_ptr<Handle> Acquire();
  void Release(std::unique_ptr<Handle> handle);
  Result<HttpResponse> Once(const HttpRequest& request, const ChunkCallback* on_chunk,
                            StreamCanceller* canceller);

  HttpClientOptions options_;
  std::mutex mu_;
  std::vector<std::unique_ptr<Handle>> idle_;
};

}  // namespace bitfusion::net
