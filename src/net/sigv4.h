// AWS Signature Version 4 on OpenSSL: the canonical request, the string to sign, the derived
// key and the Authorization header, as AWS specifies them
// (https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html) and checked
// against AWS's published SigV4 test suite (tests/unit/sigv4_test.cc).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "net/http_client.h"

namespace bitfusion::net {

/// An access key. The secret and the session token never appear in messages or logs.
struct AwsCredentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;        ///< temporary credentials only
  std::int64_t expires_unix_s = 0;  ///< temporary credentials only; 0 = does not expire
  std::string source;               ///< where they came from, for messages: "environment", ...
};

/// A request as SigV4 sees it.
struct SigV4Request {
  std::string method = "POST";
  std::string path = "/";  ///< not yet URI-encoded
  std::string query;       ///< raw query string without '?': "b=2&a=1"
  /// Every header here is signed (so leave out what a proxy may change); must include Host.
  Headers headers;
  std::string body;
};

/// The intermediate steps, for tests and for explaining a rejected signature.
struct SigV4Signature {
  std::string amz_date;  ///< "20150830T123600Z"
  std::string canonical_request;
  std::string string_to_sign;
  std::string authorization;  ///< the Authorization header's value
};

/// Signs `request` for `region` and `service` at `unix_s`. X-Amz-Date (and, with a session
/// token, X-Amz-Security-Token) must be among request.headers already when `add_headers` is
/// false; with true they are added to request.headers, and so is Authorization.
SigV4Signature SignV4(SigV4Request& request, const AwsCredentials& credentials,
                      std::string_view region, std::string_view service, std::int64_t unix_s,
                      bool add_headers = true);

/// "20150830T123600Z" for `unix_s`.
std::string AmzDate(std::int64_t unix_s);

}  // namespace bitfusion::net
