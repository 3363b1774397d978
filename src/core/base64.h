// Base64 (RFC 4648, with padding) on OpenSSL's encoder: HTTP basic and API-key headers, EC2 user
// data.
#pragma once

#include <string>
#include <string_view>

namespace bitfusion::internal {

std::string Base64(std::string_view data);
/// The URL-safe alphabet (RFC 4648 section 5: '-' and '_' for '+' and '/'), with padding, as
/// Docker's X-Registry-Auth header takes it (Go's base64.URLEncoding: without the padding the
/// engine drops the header's last bytes and silently goes on without credentials).
std::string Base64Url(std::string_view data);

}  // namespace bitfusion::internal
