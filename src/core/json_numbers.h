// Reading JSON numbers exactly: Boost 1.81 parses doubles fast but not always to the nearest
// value, which matters for results people compare digit by digit.
#pragma once

#include <string>
#include <string_view>

namespace bitfusion::internal {

/// `json` with every number outside strings turned into a string holding "#" and the number's
/// own text ("#1.5e3"), for a reader that then converts it exactly (std::from_chars).
std::string JsonNumbersAsText(std::string_view json);

}  // namespace bitfusion::internal
