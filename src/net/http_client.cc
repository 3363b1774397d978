#include "net/http_client.h"

#include <curl/curl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <map>
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

namespace {

// Sets `easy` (freshly reset) up to send `request` with `options`, its answer going to `t`;
// returns the header list, which must outlive the transfer (as must `request`, `t`, `error`).
curl_slist* SetUp(CURL* easy, const HttpClientOptions& options, const HttpRequest& request,
                  Transfer& t, char* error, const std::string& url) {
  t.max_body = options.max_body_bytes;
  t.easy = easy;
  curl_easy_setopt(easy, CURLOPT_URL, url.c_str());
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, &OnHeader);
  curl_easy_setopt(easy, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &OnBody);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(options.connect_timeout.count()));
  if (!options.unix_socket.empty()) {
    curl_easy_setopt(easy, CURLOPT_UNIX_SOCKET_PATH, options.unix_socket.c_str());
  }
  if (!options.ca_file.empty()) curl_easy_setopt(easy, CURLOPT_CAINFO, options.ca_file.c_str());
  if (!options.cert_file.empty()) {
    curl_easy_setopt(easy, CURLOPT_SSLCERT, options.cert_file.c_str());
  }
  if (!options.key_file.empty()) curl_easy_setopt(easy, CURLOPT_SSLKEY, options.key_file.c_str());
  if (!options.verify_peer) {
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  if (!options.user.empty()) {
    curl_easy_setopt(easy, CURLOPT_USERNAME, options.user.c_str());
    curl_easy_setopt(easy, CURLOPT_PASSWORD, options.password.c_str());
  }
  t.body_source = request.body_source ? &request.body_source : nullptr;
  if (request.method == "HEAD") {
    curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
  } else if (t.body_source != nullptr) {
    // Length unknown: libcurl sends it chunked, one read at a time.
    curl_easy_setopt(easy, CURLOPT_POST, 1L);
    curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, request.method.c_str());
    curl_easy_setopt(easy, CURLOPT_READFUNCTION, &OnUpload);
    curl_easy_setopt(easy, CURLOPT_READDATA, &t);
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
  return headers;
}

// The time left before `request`'s deadline for libcurl, or DeadlineExceeded when it passed.
Result<long> TimeLeftMs(const HttpRequest& request, const HttpClientOptions& options) {
  if (request.deadline == kNoDeadline) return 0L;
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      request.deadline - std::chrono::steady_clock::now());
  if (left.count() <= 0) {
    return DeadlineExceededError("deadline passed before " + request.method + " " + request.target +
                                 " to " + options.peer_name);
  }
  return static_cast<long>(left.count());
}

// What a finished transfer amounts to: its response, or an error naming the peer, with a hint.
Result<HttpResponse> Outcome(CURLcode code, Transfer& transfer, const HttpRequest& request,
                             const HttpClientOptions& options, const char* error) {
  curl_easy_getinfo(transfer.easy, CURLINFO_RESPONSE_CODE, &transfer.response.status);
  const std::string what = request.method + " " + request.target + " to " + options.peer_name;
  if (code == CURLE_OK || (code == CURLE_WRITE_ERROR && transfer.stopped_by_callback)) {
    return std::move(transfer.response);
  }
  if (transfer.source_error) return transfer.source_error->WithContext(what);
  if (code == CURLE_ABORTED_BY_CALLBACK) return CancelledError(what + " was cancelled");
  if (code == CURLE_WRITE_ERROR && transfer.too_large) {
    return ResourceExhaustedError("the answer to " + what + " is larger than " +
                                  std::to_string(options.max_body_bytes) +
                                  " bytes, the most this client keeps in memory; is that the "
                                  "right server?");
  }
  const std::string detail = error[0] != '\0' ? error : curl_easy_strerror(code);
  switch (code) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
      return UnavailableError("cannot connect to " + options.peer_name + " (" + detail +
                              "); is it running, and is the address right?");
    case CURLE_OPERATION_TIMEDOUT:
      return DeadlineExceededError(what + " timed out (" + detail + ")");
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
      return PermissionDeniedError("TLS with " + options.peer_name + " failed (" + detail +
                                   "); check the CA bundle, client certificate and key");
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
      if (detail.find("alert") != std::string::npos || detail.find("SSL") != std::string::npos) {
        return PermissionDeniedError(
            "TLS with " + options.peer_name + " was refused (" + detail +
            "); the server did not accept this client's certificate, or none was sent");
      }
      return UnavailableError(what + " failed: " + detail);
    default: return UnavailableError(what + " failed: " + detail);
  }
}

}  // namespace

Result<HttpResponse> HttpClient::Once(const HttpRequest& request, const ChunkCallback* on_chunk,
                                      StreamCanceller* canceller) {
  auto left = TimeLeftMs(request, options_);
  if (!left) return left.error();
  auto handle = Acquire();
  CURL* easy = handle->get();
  curl_easy_reset(easy);
  Transfer transfer;
  transfer.on_chunk = on_chunk;
  char error[CURL_ERROR_SIZE] = {};
  const std::string url = options_.base_url + request.target;
  curl_slist* headers = SetUp(easy, options_, request, transfer, error, url);
  if (*left > 0) curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, *left);

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
  auto result = Outcome(code, transfer, request, options_, error);
  curl_slist_free_all(headers);
  Release(std::move(handle));
  return result;
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

// The stream pump: one thread and one multi handle that run every StartStream request of the
// process. Started on first use; stopped and joined during static destruction (streams still
// open then are abandoned, their callbacks never called); a child after fork() starts its own.
namespace {

thread_local bool on_pump_thread = false;

class StreamPump;

class PumpStream final : public AsyncStream, public std::enable_shared_from_this<PumpStream> {
 public:
  PumpStream(StreamPump* pump, const HttpClientOptions& options, const HttpRequest& request,
             ChunkCallback on_chunk, DoneCallback on_done)
      : pump_(pump),
        options_(options),
        request_(request),
        easy_(curl_easy_init()),
        url_(options.base_url + request.target),
        on_chunk_(std::move(on_chunk)),
        on_done_(std::move(on_done)) {
    gated_chunk_ = [this](std::string_view chunk) {
      if (!Enter()) return false;
      const bool more = on_chunk_(chunk);
      Leave();
      return more;
    };
    transfer_.on_chunk = &gated_chunk_;
    headers_ = SetUp(easy_, options_, request_, transfer_, error_, url_);
  }
  ~PumpStream() override {
    curl_easy_cleanup(easy_);
    curl_slist_free_all(headers_);
  }

  CURL* easy() const { return easy_; }

  void Cancel() override;

  // On the pump thread, once libcurl is done with it.
  void Done(CURLcode code) {
    auto result = Outcome(code, transfer_, request_, options_, error_);
    if (Enter()) {
      on_done_(std::move(result));
      Leave();
    }
    Release();
  }
  // On the pump thread: drops the callbacks and what they hold.
  void Release() {
    on_chunk_ = nullptr;
    on_done_ = nullptr;
  }

 private:
  bool Enter() {
    std::lock_guard lock(mu_);
    if (cancelled_) return false;
    in_callback_ = true;
    return true;
  }
  void Leave() {
    std::lock_guard lock(mu_);
    in_callback_ = false;
    cv_.notify_all();
  }

  StreamPump* const pump_;  // never freed
  const HttpClientOptions options_;
  const HttpRequest request_;
  CURL* const easy_;
  const std::string url_;
  char error_[CURL_ERROR_SIZE] = {};
  curl_slist* headers_ = nullptr;
  Transfer transfer_;
  ChunkCallback on_chunk_, gated_chunk_;
  DoneCallback on_done_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool cancelled_ = false;
  bool in_callback_ = false;
};

class StreamPump {
 public:
  StreamPump() : multi_(curl_multi_init()) {
    // The thread takes no asynchronous signals: those are the host application's to handle.
    sigset_t all, old;
    ::sigfillset(&all);
    ::pthread_sigmask(SIG_SETMASK, &all, &old);
    thread_ = std::thread([this] {
      on_pump_thread = true;
      Run();
    });
    ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  }

  // False once the pump has stopped (at exit).
  bool Add(std::shared_ptr<PumpStream> s) {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return false;
      adds_.push_back(std::move(s));
    }
    curl_multi_wakeup(multi_);
    return true;
  }

  void Remove(std::shared_ptr<PumpStream> s) {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      removes_.push_back(std::move(s));
    }
    curl_multi_wakeup(multi_);
  }

  void Stop() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    curl_multi_wakeup(multi_);
    if (thread_.get_id() == std::this_thread::get_id()) {
      thread_.detach();  // exit() called from a callback
    } else if (thread_.joinable()) {
      thread_.join();
    }
  }

 private:
  void Run() {
    std::vector<std::shared_ptr<PumpStream>> adds, removes;
    while (true) {
      {
        std::lock_guard lock(mu_);
        if (stopping_) return;
        adds.swap(adds_);
        removes.swap(removes_);
      }
      for (auto& s : adds) {
        active_.emplace(s->easy(), s);
        curl_multi_add_handle(multi_, s->easy());
      }
      for (auto& s : removes) {
        if (active_.erase(s->easy()) == 0) continue;  // it had ended
        curl_multi_remove_handle(multi_, s->easy());
        s->Release();
      }
      adds.clear();
      removes.clear();
      int running = 0;
      curl_multi_perform(multi_, &running);
      int queued = 0;
      while (CURLMsg* msg = curl_multi_info_read(multi_, &queued)) {
        if (msg->msg != CURLMSG_DONE) continue;
        CURL* easy = msg->easy_handle;
        const CURLcode code = msg->data.result;
        auto it = active_.find(easy);
        if (it == active_.end()) continue;
        auto s = std::move(it->second);
        active_.erase(it);
        curl_multi_remove_handle(multi_, easy);
        s->Done(code);
      }
      curl_multi_poll(multi_, nullptr, 0, 1000, nullptr);
    }
  }

  CURLM* const multi_;  // never freed, like the pump
  std::mutex mu_;
  bool stopping_ = false;
  std::vector<std::shared_ptr<PumpStream>> adds_, removes_;
  std::map<CURL*, std::shared_ptr<PumpStream>> active_;  // pump thread only
  std::thread thread_;
};

void PumpStream::Cancel() {
  {
    std::unique_lock lock(mu_);
    cancelled_ = true;
    if (!on_pump_thread) cv_.wait(lock, [&] { return !in_callback_; });
  }
  pump_->Remove(shared_from_this());
}

// Guards `current_pump`; held across fork() so that the child finds it unlocked.
std::mutex pump_mu;
StreamPump* current_pump = nullptr;  // never freed; replaced in a child after fork()
bool pump_atfork_registered = false;

struct PumpStopper {
  ~PumpStopper() {
    StreamPump* pump;
    {
      std::lock_guard lock(pump_mu);
      pump = current_pump;
    }
    if (pump != nullptr) pump->Stop();
  }
};

StreamPump* Pump() {
  static PumpStopper stopper;
  std::lock_guard lock(pump_mu);
  if (current_pump == nullptr) {
    if (!pump_atfork_registered) {
      ::pthread_atfork([] { pump_mu.lock(); }, [] { pump_mu.unlock(); },
                       [] {
                         // The parent's pump thread does not exist here: abandon it untouched.
                         current_pump = nullptr;
                         pump_mu.unlock();
                       });
      pump_atfork_registered = true;
    }
    current_pump = new StreamPump;
  }
  return current_pump;
}

}  // namespace

Result<std::shared_ptr<AsyncStream>> HttpClient::StartStream(const HttpRequest& request,
                                                             ChunkCallback on_chunk,
                                                             DoneCallback on_done) {
  if (request.body_source) {
    return InvalidArgumentError("a streamed request's body cannot come from a body source");
  }
  auto left = TimeLeftMs(request, options_);
  if (!left) return left.error();
  StreamPump* pump = Pump();
  auto s = std::make_shared<PumpStream>(pump, options_, request, std::move(on_chunk),
                                        std::move(on_done));
  if (*left > 0) curl_easy_setopt(s->easy(), CURLOPT_TIMEOUT_MS, *left);
  if (!pump->Add(s)) {
    return UnavailableError(request.method + " " + request.target + " to " + options_.peer_name +
                            ": the process is exiting");
  }
  return std::shared_ptr<AsyncStream>(std::move(s));
}

}  // namespace bitfusion::net
