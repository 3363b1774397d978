// Writing JSON text: the one place that decides how the library spells strings and numbers,
// for the sinks' lines and documents and for ToJson. Strings always come out as valid UTF-8
// (invalid bytes become U+FFFD), so whatever the input, the text is valid JSON.
#pragma once

#include <boost/json/fwd.hpp>

#include <cstdint>
#include <string>
#include <string_view>

#include "bitfusion/export.h"
#include "bitfusion/sample.h"

// Exported (BITFUSION_EXPORT) for the component libraries (libbitfusion_postgres), which are
// built apart from the core library; not a public API.
namespace bitfusion::internal {

/// Appends `text` as a JSON string literal, quotes included, valid UTF-8 guaranteed.
BITFUSION_EXPORT void AppendJsonString(std::string& out, std::string_view text);
/// Appends labels as a compact JSON object in key order: the canonical form of a label set.
BITFUSION_EXPORT void AppendJsonLabels(std::string& out, const Labels& labels);
/// Appends the shortest decimal that reads back as `value`; `value` must be finite.
BITFUSION_EXPORT void AppendDouble(std::string& out, double value);
BITFUSION_EXPORT void AppendInt(std::string& out, std::int64_t value);
/// "NaN", "Infinity" or "-Infinity" for a non-finite value: the spellings the stores write
/// where JSON (or CSV, or InfluxDB) has no number for it, and that Python's float() and
/// JavaScript's Number() read back.
BITFUSION_EXPORT std::string_view NonFiniteText(double value);
/// Appends a Boost.JSON tree as compact JSON, numbers and strings formatted as above (a
/// non-finite double becomes null).
BITFUSION_EXPORT void AppendJsonValue(std::string& out, const boost::json::value& v);
/// A Boost.JSON tree as JSON text with one member or element per line, each line indented by
/// `indent` spaces per level (0: no indentation), `"key": value` -- the layout ToJson has always
/// written. Numbers with a fraction or exponent read "3.0", "1e-7" (a double stays a double);
/// a non-finite double becomes null.
BITFUSION_EXPORT std::string IndentedJson(const boost::json::value& v, int indent);

}  // namespace bitfusion::internal
