// Records as the JSON sinks store them (JSONL lines, Elasticsearch documents, the record
// columns of SQLite, PostgreSQL and InfluxDB): compact, one line, shaped by core/json_codec
// (the shape ToJson writes), so every store tells the same story about odd strings and
// non-finite numbers.
#pragma once

#include <string>

#include "bitfusion/export.h"
#include "bitfusion/machine.h"
#include "bitfusion/run_record.h"
#include "core/json_codec.h"
#include "core/json_writer.h"
#include "core/utf8.h"

// Exported (BITFUSION_EXPORT) for the component libraries (libbitfusion_postgres), which are
// built apart from the core library; not a public API.
namespace bitfusion::internal {

/// Appends the JSON for a sample's value after `"value":`: the number, or for NaN and
/// ±infinity (not JSON numbers) `null,"value_text":"NaN"` -- the shape every JSON sink writes.
BITFUSION_EXPORT void AppendJsonSampleValue(std::string& out, double value);

/// The RunRecord as one line of compact JSON (no newline), with `{"type":"run",` in front when
/// `with_type` is set. Non-finite result values become null plus "value_text".
BITFUSION_EXPORT std::string RunRecordJson(const RunRecord& record, bool with_type);
/// The MachineInfo as compact JSON; a non-finite cpu.max_mhz becomes null.
BITFUSION_EXPORT std::string MachineInfoJson(const MachineInfo& machine);

}  // namespace bitfusion::internal
