// gzip for HTTP bodies (Content-Encoding: gzip), on zlib.
#pragma once

#include <string>
#include <string_view>

#include "bitfusion/status.h"

namespace bitfusion::net {

/// `data` as a gzip member (RFC 1952). `level` is zlib's 1 (fast) to 9 (small).
Result<std::string> Gzip(std::string_view data, int level = 1);

/// The bytes of one or more gzip members; a damaged or truncated stream is InvalidArgument.
Result<std::string> Gunzip(std::string_view data);

}  // namespace bitfusion::net
