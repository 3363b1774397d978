// RFC 3986 percent-encoding on Boost.URL, for query strings and paths we build by hand (the
// Docker engine API, SigV4's canonical requests, InfluxDB's write parameters).
#pragma once

#include <string>
#include <string_view>

namespace bitfusion::internal {

/// Every byte but the unreserved ones (A-Z a-z 0-9 - . _ ~), and '/' when `keep_slash`, as %XX
/// with upper-case hex, as SigV4 requires.
std::string PercentEncode(std::string_view text, bool keep_slash = false);

}  // namespace bitfusion::internal
