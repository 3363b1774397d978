// RFC 3339 timestamps, the one parser for every API that sends them (Docker, EC2, the AWS
// credential chain, Keystone): "2026-11-25T05:44:21.607427873Z", "2026-11-25T05:44:21+02:00".
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace bitfusion::internal {

/// Nanoseconds since the epoch. Takes a fraction of any length (digits past the ninth are
/// cut), "Z" or "z", "+hh:mm" / "-hh:mm" and the "+hhmm" some APIs write, and no zone at all
/// (read as UTC). nullopt for anything else, or fields out of range.
/// nullopt too past what nanoseconds in an int64 hold (years 1678-2262).
std::optional<std::int64_t> ParseRfc3339(std::string_view text);
/// The same, as whole seconds since the epoch (the fraction dropped), for any year 0000-9999.
std::optional<std::int64_t> ParseRfc3339Seconds(std::string_view text);

}  // namespace bitfusion::internal
