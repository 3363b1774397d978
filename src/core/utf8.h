// Repairing text that should be UTF-8 but may not be: every store (and every JSON text the
// library writes) replaces what is not valid UTF-8 the same way, so they all tell one story.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "bitfusion/export.h"

// Exported (BITFUSION_EXPORT) for the component libraries (libbitfusion_postgres), which are
// built apart from the core library; not a public API.
namespace bitfusion::internal {

/// Length of the UTF-8 sequence at text[i]. `valid` says whether it is well-formed (Unicode
/// Table 3-7); when it is not, the length is that of the maximal subpart to replace by one
/// U+FFFD, so a truncated sequence costs one replacement and the byte after it is kept.
std::size_t Utf8Sequence(std::string_view text, std::size_t i, bool& valid);

/// U+FFFD in UTF-8.
inline constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";

/// Appends `text`, with every invalid UTF-8 sequence replaced by U+FFFD (one per maximal
/// invalid subsequence, as Unicode recommends).
BITFUSION_EXPORT void AppendValidUtf8(std::string& out, std::string_view text);
BITFUSION_EXPORT std::string ValidUtf8(std::string_view text);

}  // namespace bitfusion::internal
