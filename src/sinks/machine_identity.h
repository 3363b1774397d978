// How the stores that keep a table of machines (SQLite, PostgreSQL) name one, so that the same
// hardware is one row however often it is seen.
#pragma once

#include <string>

#include "bitfusion/export.h"
#include "bitfusion/machine.h"

// Exported (BITFUSION_EXPORT) for the component libraries (libbitfusion_postgres), which are
// built apart from the core library; not a public API.
namespace bitfusion::internal {

/// A machine's fingerprint is the MachineInfo as JSON without the fields that change while the
/// hardware does not (address, state, labels, ssh, the lifecycle timestamps), and its id
/// "<id or hostname>-<16 hex of SHA-256(fingerprint)>".
struct BITFUSION_EXPORT MachineIdentity {
  std::string machine_id;  ///< empty when the record names no machine
  std::string fingerprint_json;
};
BITFUSION_EXPORT MachineIdentity IdentifyMachine(const MachineInfo& machine);

}  // namespace bitfusion::internal
