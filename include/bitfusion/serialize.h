// The data model to and from JSON (for people and files) and a compact binary form (for spool
// files); neither library behind them (Boost.JSON, cereal) appears in public headers.
//
// JSON: one object per record, its fields as members; labels are objects ({"cpu": "0"}).
// ToJson writes valid JSON whatever the record holds: strings as valid UTF-8 (invalid bytes
// become U+FFFD), and NaN or ±infinity, which JSON has no numbers for, as null -- a sample's
// value adding "value_text": "NaN" / "Infinity" / "-Infinity", as the JSON sinks write it.
// FromJson reads that back; a member of the wrong type or one the record does not have is
// InvalidArgument naming it ("results[0].value: expected a number (or null), got a string"), a
// missing member keeps its default.
#pragma once

#include <string>
#include <string_view>

#include "bitfusion/container.h"
#include "bitfusion/device.h"
#include "bitfusion/event.h"
#include "bitfusion/export.h"
#include "bitfusion/machine.h"
#include "bitfusion/run_record.h"
#include "bitfusion/sample.h"
#include "bitfusion/status.h"

namespace bitfusion {

#define BITFUSION_SERIALIZABLE(T)                                           \
  BITFUSION_EXPORT std::string ToJson(const T& value, bool pretty = false); \
  BITFUSION_EXPORT Status FromJson(std::string_view json, T& out);          \
  BITFUSION_EXPORT std::string ToBinary(const T& value);                    \
  BITFUSION_EXPORT Status FromBinary(std::string_view bytes, T& out);

BITFUSION_SERIALIZABLE(Sample)
BITFUSION_SERIALIZABLE(SampleBatch)
BITFUSION_SERIALIZABLE(RunRecord)
BITFUSION_SERIALIZABLE(MachineInfo)
BITFUSION_SERIALIZABLE(ContainerSpec)
BITFUSION_SERIALIZABLE(Device)
BITFUSION_SERIALIZABLE(Event)

#undef BITFUSION_SERIALIZABLE

}  // namespace bitfusion
