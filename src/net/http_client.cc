#include "net/http_client.h"

#include <curl/curl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>

#include "bitfusion/log.h"
#include "core/ascii.h"
#include "core/backoff.h"

namespace bitfusion::net {
namespace {

bool IsIdempotent(const HttpRequest& r) {
  if (r.idempotent) return *r.idempotent;
  return r.method == "GET" || r.method == "HEAD" || r.method == "PUT" || r.method == "DELETE";
}

// What a transfer collects while libcurl runs it.
struct Transfer {
  HttpResponse response;
  const ChunkCallback* on_chunk = nullptr;
  bool stopped_by_callback = false;
  std::size_t max_body = 0;
  bool too_large = false;
  CURL* easy = nullptr;
  const BodySource* body_source = nullptr;
  std::optional<Status> source_error;  // why body_source ended the upload

  bool Success() const {
    long status = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    return status >= 200 && status < 300;
  }
};

size_t OnHeader(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  std::string_view line(data, size * n);
  while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.remove_suffix(1);
  if (line.substr(0, 5) == "HTTP/") {
    t->response.headers.clear();  // a new response (after 100 Continue)
  } else if (const auto colon = line.find(':'); colon != std::string_view::npos) {
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    t->response.headers.emplace_back(internal::AsciiLower(line.substr(0, colon)),
                                     std::string(value));
  }
  return size * n;
}

size_t OnBody(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const std::string_view chunk(data, size * n);
  if (t->on_chunk != nullptr && t->Success()) {
    if (!(*t->on_chunk)(chunk)) {
      t->stopped_by_callback = true;
      return CURL_WRITEFUNC_ERROR;
    }
  } else {
    if (chunk.size() > t->max_body - t->response.body.size()) {
      t->too_large = true;
      return CURL_WRITEFUNC_ERROR;
    }
    t->response.body.append(chunk);
  }
  return size * n;
}

size_t OnUpload(char* buffer, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  auto got = (*t->body_source)(buffer, size * n);
  if (!got) {
    t->source_error = got.error();
    return CURL_READFUNC_ABORT;
  }
  return std::min(*got, size * n);
}

std::once_flag g_curl_init;

}  // namespace

std::optional<std::string> HttpResponse::Header(std::string_view name) const {
  const std::string key = internal::AsciiLower(name);
  for (auto it = headers.rbegin(); it != headers.rend(); ++it) {
    if (it->first == key) return it->second;
  }
  return std::nullopt;
}

StreamCanceller::StreamCanceller() { multi_ = curl_multi_init(); }
StreamCanceller::~StreamCanceller() { curl_multi_cleanup(static_cast<CURLM*>(multi_)); }
void StreamCanceller::Cancel() {
  cancelled_.store(true);
  curl_multi_wakeup(static_cast<CURLM*>(multi_));
}

// One easy handle; kept between calls so its connection is reused.
class HttpClient::Handle {
 public:
  Handle() : easy_(curl_easy_init()) {}
  ~Handle() { curl_easy_cleanup(easy_); }
  CURL* get() const { return easy_; }

 private:
  CURL* easy_;
};

HttpClient::HttpClient(const HttpClientOptions& options) : options_(options) {}
HttpClient::~HttpClient() = default;

void WarnIfReadableByOthers(const std::string& path, std::string_view what) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || (st.st_mode & (S_IRGRP | S_IROTH)) == 0) return;
  char mode[8];
  std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
  LogAt(LogLevel::kWarning, what, " ", path, " can be read by other users (mode ", mode,
        "); make it private: chmod 600 ", path);
}

Result<std::unique_ptr<HttpClient>> HttpClient::Make(const HttpClientOptions& options) {
  std::call_once(g_curl_init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  if (options.base_url.empty()) return InvalidArgumentError("HTTP client needs a base URL");
  if (options.retry.max_attempts < 1) {
    return InvalidArgumentError("retry.max_attempts must be at least 1");
  }
  auto client = std::unique_ptr<HttpClient>(new HttpClient(options));
  if (client->options_.peer_name.empty()) {
    client->options_.peer_name =
        options.unix_socket.empty() ? options.base_url : "unix://" + options.unix_socket;
  }
  const bool tls = options.base_url.rfind("https://", 0) == 0;
  if (tls && !options.verify_peer) {
    LogAt(LogLevel::kWarning, "TLS with ", client->options_.peer_name,
          " does not verify the server's certificate: anyone on the path can pose as it");
  }
  if (!options.key_file.empty()) WarnIfReadableByOthers(options.key_file, "TLS client key");
  return client;
}

std::unique_ptr<HttpClient::Handle> HttpClient::Acquire() {
  {
    std::lock_guard lock(mu_);
    if (!idle_.empty()) {
      auto h = std::move(idle_.back());
      idle_.pop_back();
      return h;
    }
  }
  return std::make_unique<Handle>();
}

void HttpClient::Release(std::unique_ptr<Handle> handle) {
  std::lock_guard lock(mu_);
  if (idle_.size() < 8) idle_.push_back(std::move(handle));
}

Result<HttpResponse> HttpClient::Once(const HttpRequest& request, const ChunkCallback* on_chunk,
                                      StreamCanceller* canceller) {
  auto handle = Acquire();
  CURL* easy = handle->get();
  curl_easy_reset(easy);
  Transfer transfer;
  transfer.on_chunk = on_chunk;
  transfer.max_body = options_.max_body_bytes;
  transfer.easy = easy;
  char error[CURL_ERROR_SIZE] = {};
  const std::string url = options_.base_url + request.target;
  curl_easy_setopt(easy, CURLOPT_URL, url.c_str());
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, &OnHeader);
  curl_easy_setopt(easy, CURLOPT_HEADERDATA, &transfer);
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &OnBody);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, &transfer);
  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(options_.connect_timeout.count()));
  if (!options_.unix_socket.empty()) {
    curl_easy_setopt(easy, CURLOPT_UNIX_SOCKET_PATH, options_.unix_socket.c_str());
  }
  if (!options_.ca_file.empty()) curl_easy_setopt(easy, CURLOPT_CAINFO, options_.ca_file.c_str());
  if (!options_.cert_file.empty()) {
    curl_easy_setopt(easy, CURLOPT_SSLCERT, options_.cert_file.c_str());
  }
  if (!options_.key_file.empty()) curl_easy_setopt(easy, CURLOPT_SSLKEY, options_.key_file.c_str());
  if (!options_.verify_peer) {
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  if (!options_.user.empty()) {
    curl_easy_setopt(easy, CURLOPT_USERNAME, options_.user.c_str());
    curl_easy_setopt(easy, CURLOPT_PASSWORD, options_.password.c_str());
  }
  transfer.body_source = request.body_source ? &request.body_source : nullptr;
  if (request.method == "HEAD") {
    curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
  } else if (transfer.body_source != nullptr) {
    // Length unknown: libcurl sends it chunked, one read at a time.
    curl_easy_setopt(easy, CURLOPT_POST, 1L);
    curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, request.method.c_str());
    curl_easy_setopt(easy, CURLOPT_READFUNCTION, &OnUpload);
    curl_easy_setopt(easy, CURLOPT_READDATA, &transfer);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(-1));
  } else if (request.method != "GET" || !request.body.empty()) {
    curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, request.method.c_str());
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, request.body.data());
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE,
                     static_cast<curl_off_t>(request.body.size()));
  }
  curl_slist* headers = nullptr;
  for (const auto& [name, value] : request.headers) {
    headers = curl_slist_append(headers, (name + ": " + value).c_str());
  }
  // libcurl adds "Expect: 100-continue" to large bodies; servers answer faster without it.
  headers = curl_slist_append(headers, "Expect:");
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
  if (request.deadline != kNoDeadline) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        request.deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      curl_slist_free_all(headers);
      Release(std::move(handle));
      return DeadlineExceededError("deadline passed before " + request.method + " " +
                                   request.target + " to " + options_.peer_name);
    }
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, static_cast<long>(left.count()));
  }

  CURLcode code = CURLE_OK;
  if (canceller == nullptr) {
    code = curl_easy_perform(easy);
  } else {
    auto* multi = static_cast<CURLM*>(canceller->multi_);
    curl_multi_add_handle(multi, easy);
    int running = 1;
    while (running > 0 && !canceller->cancelled()) {
      curl_multi_perform(multi, &running);
      if (running > 0) curl_multi_poll(multi, nullptr, 0, 1000, nullptr);
    }
    int queued = 0;
    code = CURLE_OK;
    if (canceller->cancelled()) {
      code = CURLE_ABORTED_BY_CALLBACK;
    } else {
      while (CURLMsg* msg = curl_multi_info_read(multi, &queued)) {
        if (msg->msg == CURLMSG_DONE && msg->easy_handle == easy) code = msg->data.result;
      }
    }
    curl_multi_remove_handle(multi, easy);
  }
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &transfer.response.status);
  curl_slist_free_all(headers);
  Release(std::move(handle));

  const std::string what = request.method + " " + request.target + " to " + options_.peer_name;
  if (code == CURLE_OK || (code == CURLE_WRITE_ERROR && transfer.stopped_by_callback)) {
    return std::move(transfer.response);
  }
  if (transfer.source_error) return transfer.source_error->WithContext(what);
  if (code == CURLE_ABORTED_BY_CALLBACK) return CancelledError(what + " was cancelled");
  if (code == CURLE_WRITE_ERROR && transfer.too_large) {
    return ResourceExhaustedError("the answer to " + what + " is larger than " +
                                  std::to_string(options_.max_body_bytes) +
                                  " bytes, the most this client keeps in memory; is that the "
                                  "right server?");
  }
  const std::string detail = error[0] != '\0' ? error : curl_easy_strerror(code);
  switch (code) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
      return UnavailableError("cannot connect to " + options_.peer_name + " (" + detail +
                              "); is it running, and is the address right?");
    case CURLE_OPERATION_TIMEDOUT:
      return DeadlineExceededError(what + " timed out (" + detail + ")");
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
      return PermissionDeniedError("TLS with " + options_.peer_name + " failed (" + detail +
                                   "); check the CA bundle, client certificate and key");
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
      if (detail.find("alert") != std::string::npos || detail.find("SSL") != std::string::npos) {
        return PermissionDeniedError(
            "TLS with " + options_.peer_name + " was refused (" + detail +
            "); the server did not accept this client's certificate, or none was sent");
      }
      return UnavailableError(what + " failed: " + detail);
    default: return UnavailableError(what + " failed: " + detail);
  }
}

std::chrono::milliseconds JitteredBackoff(const RetryPolicy& policy, int attempt) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
      internal::JitteredBackoff(policy.initial_backoff, policy.max_backoff, attempt));
}

Result<HttpResponse> HttpClient::Send(const HttpRequest& request) {
  const RetryPolicy& policy = options_.retry;
  const bool may_retry = IsIdempotent(request) && !request.body_source;
  for (int attempt = 1;; ++attempt) {
    auto result = Once(request, nullptr, nullptr);
    if (result) result->attempts = attempt;
    const bool last = attempt >= policy.max_attempts || !may_retry;
    bool retry = false;
    std::chrono::milliseconds wait{0};
    if (!result) {
      retry = result.error().code() == StatusCode::kUnavailable;
    } else if (std::find(policy.retry_statuses.begin(), policy.retry_statuses.end(),
                         result->status) != policy.retry_statuses.end() ||
               (policy.retry_response && policy.retry_response(*result))) {
      retry = true;
      if (auto after = result->Header("retry-after")) {
        // Seconds only; an HTTP date reads as 0 and leaves the wait to the backoff.
        const long long seconds = std::max(0LL, std::atoll(after->c_str()));
        const auto most = std::max(policy.max_retry_after, policy.max_backoff);
        wait = seconds > most.count() / 1000 ? most : std::chrono::milliseconds(seconds * 1000);
      }
    }
    if (!retry || last) return result;
    wait = std::max(wait, JitteredBackoff(policy, attempt));
    if (request.deadline != kNoDeadline &&
        std::chrono::steady_clock::now() + wait >= request.deadline) {
      return result;
    }
    LogAt(LogLevel::kDebug, request.method, " ", request.target, " to ", options_.peer_name,
          ": attempt ", attempt, " failed (",
          result ? "HTTP " + std::to_string(result->status) : result.error().message(),
          "); retrying in ", wait.count(), " ms");
    std::this_thread::sleep_for(wait);
  }
}

Result<HttpResponse> HttpClient::Stream(const HttpRequest& request, const ChunkCallback& on_chunk,
                                        StreamCanceller* canceller) {
  return Once(request, &on_chunk, canceller);
}

}  // namespace bitfusion::net
