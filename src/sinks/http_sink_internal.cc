#include "sinks/http_sink_internal.h"

#include <cctype>
#include <cstdlib>
#include <fstream>
#include <utility>

#include "bitfusion/log.h"
#include "bitfusion/result_sink.h"
#include "core/ascii.h"
#include "net/gzip.h"

namespace bitfusion::internal {

std::vector<std::string_view> HttpSinkQueryKeys(
    std::initializer_list<std::string_view> backend_keys) {
  std::vector<std::string_view> keys = ResultSinkOptions::DurableQueryKeysWith(backend_keys);
  keys.insert(keys.end(), {"ca", "gzip", "timeout", "password_file"});
  return keys;
}

Result<std::string> ReadSecretFile(const std::string& path, std::string_view option,
                                   const Uri& uri) {
  std::ifstream in(path);
  if (!in) {
    return NotFoundError("cannot read " + std::string(option) + " " + path + " named in " +
                         RedactedUri(uri) + "; it must hold the secret on its first line");
  }
  std::string line;
  std::getline(in, line);
  net::WarnIfReadableByOthers(path, std::string(option));
  const auto first = line.find_first_not_of(" \t\r");
  const auto last = line.find_last_not_of(" \t\r");
  return first == std::string::npos ? std::string() : line.substr(first, last - first + 1);
}

Result<std::string> HttpSinkPassword(const Uri& uri, std::string_view scheme) {
  std::string variable = "BITFUSION_";
  variable += internal::AsciiUpper(scheme);
  variable += "_PASSWORD";
  const auto file = uri.Query("password_file");
  if (file && !uri.password.empty()) {
    return InvalidArgumentError("sink URI " + RedactedUri(uri) +
                                " has a password and password_file=; give one of them (the file "
                                "keeps the password out of process lists)");
  }
  if (file) {
    if (uri.user.empty()) {
      return InvalidArgumentError("option password_file= in " + RedactedUri(uri) +
                                  " needs a user: write " + std::string(scheme) +
                                  "://USER@HOST:PORT/...?password_file=PATH");
    }
    return ReadSecretFile(*file, "password_file", uri);
  }
  if (!uri.password.empty() || uri.user.empty()) return uri.password;
  // A user without a password: the environment may hold it, out of the URI and of `ps`.
  if (const char* env = std::getenv(variable.c_str()); env != nullptr) return std::string(env);
  return std::string();
}

Result<HttpSinkTarget> ReadHttpSinkUri(const Uri& uri, std::string_view scheme,
                                       std::uint16_t default_port, std::string_view peer) {
  HttpSinkTarget out;
  const bool https = uri.scheme == std::string(scheme) + "+https";
  if (uri.host.empty()) {
    return InvalidArgumentError("sink URI " + RedactedUri(uri) + " names no host; write " +
                                std::string(scheme) + "://HOST:PORT/... (or " +
                                std::string(scheme) + "+https://...)");
  }
  const std::uint16_t port = uri.port.value_or(default_port);
  // IPv6 literals need their brackets back in a URL.
  const std::string host =
      uri.host.find(':') != std::string::npos ? "[" + uri.host + "]" : uri.host;
  out.client.base_url =
      std::string(https ? "https://" : "http://") + host + ":" + std::to_string(port);
  out.client.peer_name = std::string(peer) + " at " + out.client.base_url;
  out.client.user = uri.user;
  BITFUSION_ASSIGN_OR_RETURN(out.client.password, HttpSinkPassword(uri, scheme));
  if (auto ca = uri.Query("ca")) {
    if (!https) {
      return InvalidArgumentError("option ca= in " + RedactedUri(uri) + " needs TLS; write " +
                                  std::string(scheme) + "+https://");
    }
    out.client.ca_file = *ca;
  }
  BITFUSION_ASSIGN_OR_RETURN(out.gzip, uri.QueryBool("gzip", out.gzip));
  BITFUSION_ASSIGN_OR_RETURN(out.timeout, uri.QueryDuration("timeout", out.timeout));
  out.client.connect_timeout = std::chrono::milliseconds(5000);
  // One quick retry for a kept-alive connection the server closed meanwhile; real outages are
  // the sink's to ride out, with its spool and backoff.
  out.client.retry.max_attempts = 2;
  out.client.retry.initial_backoff = std::chrono::milliseconds(20);
  out.client.retry.retry_statuses = {};
  return out;
}

std::string RedactedUri(const Uri& uri) { return Redact(uri.ToString()); }

Result<net::HttpResponse> SendBody(net::HttpClient& client, const HttpSinkTarget& http,
                                   std::string method, std::string target,
                                   std::string_view content_type, std::string& body,
                                   net::Headers extra_headers) {
  net::HttpRequest request;
  request.method = std::move(method);
  request.target = std::move(target);
  request.headers = std::move(extra_headers);
  request.headers.emplace_back("Content-Type", std::string(content_type));
  if (http.gzip && !body.empty()) {
    BITFUSION_ASSIGN_OR_RETURN(request.body, net::Gzip(body));
    request.headers.emplace_back("Content-Encoding", "gzip");
  } else {
    request.body.swap(body);
  }
  request.deadline = DeadlineAfter(http.timeout);
  // Every sink request is safe to repeat: documents and points carry their own identity.
  request.idempotent = true;
  auto sent = client.Send(request);
  if (!(http.gzip && !body.empty())) body.swap(request.body);
  BITFUSION_ASSIGN_OR_RETURN(net::HttpResponse response, std::move(sent));
  if (response.status == 429 || response.status >= 500) {
    std::string detail = response.body.substr(0, 300);
    return UnavailableError(client.options().peer_name + " answered HTTP " +
                            std::to_string(response.status) + " to " + request.method + " " +
                            request.target.substr(0, request.target.find('?')) +
                            (detail.empty() ? "" : ": " + detail));
  }
  return response;
}

}  // namespace bitfusion::internal
