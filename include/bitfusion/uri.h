// Backend URIs: "sqlite://results.db", "docker:///var/run/docker.sock", "process://",
// "host", "process:1234", "es+https://user:pass@host:9200/index?gzip=true".
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "bitfusion/export.h"
#include "bitfusion/status.h"

namespace bitfusion {

struct BITFUSION_EXPORT Uri {
  std::string scheme;    ///< lower-cased; "host" for the bare word "host"
  std::string user;      ///< percent-decoded
  std::string password;  ///< percent-decoded; never printed (ToString shows "***")
  std::string host;      ///< empty when there is no authority
  std::optional<std::uint16_t> port;
  std::string path;  ///< percent-decoded; "1234" in "process:1234"
  std::vector<std::pair<std::string, std::string>> query;  ///< in order, decoded

  /// Parses RFC 3986 URIs (Boost.URL) and bare scheme words with optional options ("host",
  /// "host?proc_root=/x").
  static Result<Uri> Parse(std::string_view text);

  /// The URI again with any password replaced by "***": safe for logs and errors.
  std::string ToString() const;

  /// For file-like schemes: "sqlite://out/r.db" -> "out/r.db", "sqlite:///abs/r.db" ->
  /// "/abs/r.db", "csv:r.csv" -> "r.csv".
  std::string FilePath() const;

  /// The last value given for `key`, if any.
  std::optional<std::string> Query(std::string_view key) const;

  /// Typed query values; a present but malformed value is InvalidArgument naming key and URI.
  Result<std::int64_t> QueryInt(std::string_view key, std::int64_t fallback) const;
  Result<bool> QueryBool(std::string_view key, bool fallback) const;
  Result<std::chrono::nanoseconds> QueryDuration(std::string_view key,
                                                 std::chrono::nanoseconds fallback) const;

  /// InvalidArgument naming the first query key not in `allowed` and listing the allowed ones,
  /// so a typo in an option never passes silently.
  Status CheckQueryKeys(const std::vector<std::string_view>& allowed) const;
};

}  // namespace bitfusion
