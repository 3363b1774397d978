// What the HTTP sinks (es://, influx://) share: reading host, port, credentials and TLS options
// from the URI, and sending a body (gzip'd on request) with a deadline.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "bitfusion/status.h"
#include "bitfusion/uri.h"
#include "net/http_client.h"

namespace bitfusion::internal {

/// Where an HTTP sink sends, and how.
struct HttpSinkTarget {
  /// base_url ("http://HOST:PORT" or "https://..."), CA bundle, basic-auth user and password.
  net::HttpClientOptions client;
  /// Deadline for each request (query key `timeout`, default 30s).
  std::chrono::nanoseconds timeout = std::chrono::seconds(30);
  /// Compress request bodies with gzip (query key `gzip`, default false).
  bool gzip = false;
};

/// Every query key an HTTP sink takes: `backend_keys`, the keys ReadHttpSinkUri reads and the
/// spool and batching keys, for the backend's Uri::CheckQueryKeys.
std::vector<std::string_view> HttpSinkQueryKeys(
    std::initializer_list<std::string_view> backend_keys);

/// "SCHEME://[USER[:PASSWORD]@]HOST[:PORT]/..." and "SCHEME+https://...": TCP to HOST:PORT
/// (`default_port` when none is given), TLS for the +https form verified against the system
/// store or the bundle in `ca=FILE`, HTTP basic auth from the userinfo. `peer` names the store in
/// messages ("Elasticsearch").
Result<HttpSinkTarget> ReadHttpSinkUri(const Uri& uri, std::string_view scheme,
                                       std::uint16_t default_port, std::string_view peer);

/// The basic-auth password: the URI's, or the first line of the file in `password_file=`, or
/// for a URI with a user and no password the environment's BITFUSION_<SCHEME>_PASSWORD
/// (BITFUSION_ES_PASSWORD, BITFUSION_INFLUX_PASSWORD), so that it need not sit in the URI, where
/// process lists show it.
Result<std::string> HttpSinkPassword(const Uri& uri, std::string_view scheme);

/// The first line of `path`, trimmed: a secret named by option `option` of `uri` (password_file,
/// api_key_file). Warns when other users may read the file.
Result<std::string> ReadSecretFile(const std::string& path, std::string_view option,
                                   const Uri& uri);

/// The scheme-independent part of `uri` for messages: "SCHEME://USER:***@HOST:PORT/PATH?..."
/// with secrets in options masked too.
std::string RedactedUri(const Uri& uri);

/// Sends `body` (borrowed for the request, and given back unchanged: bulk bodies are large,
/// copying them would cost more than encoding them) to `target` with `method`, gzip'd when
/// `http.gzip` says so, with the request deadline of `http.timeout`. A connection failure, timeout,
/// 5xx or 429 is Unavailable, with the store's own words, so the sink retries; other statuses are
/// returned as responses.
Result<net::HttpResponse> SendBody(net::HttpClient& client, const HttpSinkTarget& http,
                                   std::string method, std::string target,
                                   std::string_view content_type, std::string& body,
                                   net::Headers extra_headers = {});

}  // namespace bitfusion::internal
