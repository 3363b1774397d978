// Text encoding shared by the sinks (JSONL, CSV, SQLite, Elasticsearch, InfluxDB, PostgreSQL):
// one definition of what happens to odd strings and non-finite numbers, so every store tells
// the same story.
#pragma once

#include <boost/json/fwd.hpp>

#include <cstdint>
#include <string>
#include <string_view>

#include "bitfusion/export.h"
#include "bitfusion/machine.h"
#include "bitfusion/run_record.h"
#include "bitfusion/sample.h"
#include "bitfusion/status.h"
#include "core/json_numbers.h"
#include "core/sha256.h"

// Exported (BITFUSION_EXPORT) for the component libraries (libbitfusion_postgres), which are
// built apart from the core library; not a public API.
namespace bitfusion::internal {

/// Appends `text`, with every invalid UTF-8 sequence replaced by U+FFFD (one per maximal
/// invalid subsequence, as Unicode recommends).
BITFUSION_EXPORT void AppendValidUtf8(std::string& out, std::string_view text);
BITFUSION_EXPORT std::string ValidUtf8(std::string_view text);
/// Appends `text` as a JSON string literal, quotes included, valid UTF-8 guaranteed.
BITFUSION_EXPORT void AppendJsonString(std::string& out, std::string_view text);
/// Appends labels as a compact JSON object in key order: the canonical form of a label set.
BITFUSION_EXPORT void AppendJsonLabels(std::string& out, const Labels& labels);
/// Appends the shortest decimal that reads back as `value`; `value` must be finite.
BITFUSION_EXPORT void AppendDouble(std::string& out, double value);
BITFUSION_EXPORT void AppendInt(std::string& out, std::int64_t value);
/// "NaN", "Infinity" or "-Infinity" for a non-finite value.
BITFUSION_EXPORT std::string_view NonFiniteText(double value);
/// Appends the JSON for a sample's value after `"value":`: the number, or for NaN and
/// ±infinity (not JSON numbers) `null,"value_text":"NaN"` -- the shape every JSON sink writes.
BITFUSION_EXPORT void AppendJsonSampleValue(std::string& out, double value);
/// Appends a Boost.JSON tree as compact JSON, numbers and strings formatted as above (a
/// non-finite double becomes null).
BITFUSION_EXPORT void AppendJsonValue(std::string& out, const boost::json::value& v);

/// How the stores that keep a table of machines name one: its fingerprint is the MachineInfo as
/// JSON without the fields that change while the hardware does not (address, state, labels,
/// ssh, the lifecycle timestamps), and its id "<id or hostname>-<16 hex of SHA-256(fingerprint)>".
struct BITFUSION_EXPORT MachineIdentity {
  std::string machine_id;  ///< empty when the record names no machine
  std::string fingerprint_json;
};
BITFUSION_EXPORT Result<MachineIdentity> IdentifyMachine(const MachineInfo& machine);

/// The RunRecord as one line of compact JSON (no newline), with `{"type":"run",` in front when
/// `with_type` is set. Non-finite result values become null plus "value_text".
BITFUSION_EXPORT Result<std::string> RunRecordJson(const RunRecord& record, bool with_type);
/// The MachineInfo as compact JSON; a non-finite cpu.max_mhz becomes null.
BITFUSION_EXPORT Result<std::string> MachineInfoJson(const MachineInfo& machine);

}  // namespace bitfusion::internal
