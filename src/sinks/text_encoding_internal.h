// Text encoding shared by the sinks (JSONL, CSV, SQLite, Elasticsearch, InfluxDB, PostgreSQL):
// one definition of what happens to odd strings and non-finite numbers, so every store tells
// the same story.
#pragma once

#include <boost/json/fwd.hpp>

#include <cstdint>
#include <string>
#include <string_view>

#include "bitfusion/machine.h"
#include "bitfusion/run_record.h"
#include "bitfusion/sample.h"
#include "bitfusion/status.h"
#include "core/json_numbers.h"
#include "core/sha256.h"

namespace bitfusion::internal {

/// Appends `text`, with every invalid UTF-8 sequence replaced by U+FFFD (one per maximal
/// invalid subsequence, as Unicode recommends).
void AppendValidUtf8(std::string& out, std::string_view text);
std::string ValidUtf8(std::string_view text);
/// Appends `text` as a JSON string literal, quotes included, valid UTF-8 guaranteed.
void AppendJsonString(std::string& out, std::string_view text);
/// Appends labels as a compact JSON object in key order: the canonical form of a label set.
void AppendJsonLabels(std::string& out, const Labels& labels);
/// Appends the shortest decimal that reads back as `value`; `value` must be finite.
void AppendDouble(std::string& out, double value);
void AppendInt(std::string& out, std::int64_t value);
/// "NaN", "Infinity" or "-Infinity" for a non-finite value.
std::string_view NonFiniteText(double value);
/// Appends the JSON for a sample's value after `"value":`: the number, or for NaN and
/// ±infinity (not JSON numbers) `null,"value_text":"NaN"` -- the shape every JSON sink writes.
void AppendJsonSampleValue(std::string& out, double value);
/// Appends a Boost.JSON tree as compact JSON, numbers and strings formatted as above (a
/// non-finite double becomes null).
void AppendJsonValue(std::string& out, const boost::json::value& v);

/// How the stores that keep a table of machines name one: its fingerprint is the MachineInfo as
/// JSON without the fields that change while the hardware does not (address, state, labels,
/// ssh, the lifecycle timestamps), and its id "<id or hostname>-<16 hex of SHA-256(fingerprint)>".
struct MachineIdentity {
  std::string machine_id;  ///< empty when the record names no machine
  std::string fingerprint_json;
};
Result<MachineIdentity> IdentifyMachine(const MachineInfo& machine);

/// The RunRecord as one line of compact JSON (no newline), with `{"type":"run",` in front when
/// `with_type` is set. Non-finite result values become null plus "value_text".
Result<std::string> RunRecordJson(const RunRecord& record, bool with_type);
/// The MachineInfo as compact JSON; a non-finite cpu.max_mhz becomes null.
Result<std::string> MachineInfoJson(const MachineInfo& machine);

}  // namespace bitfusion::internal
