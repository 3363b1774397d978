// The readers of SoftLayer's JSON answers, reachable without an endpoint so that they can be
// tested and fuzzed: error bodies, the flavours of SoftLayer_Virtual_Guest::
// getCreateObjectOptions, the presets of SoftLayer_Hardware::getCreateObjectOptions, and one
// guest or server of SoftLayer_Account::getVirtualGuests / getHardware. Pure functions.
#pragma once

#include <boost/json/fwd.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "bitfusion/machine.h"

namespace bitfusion::internal {

/// SoftLayer's {"error": "...", "code": "SoftLayer_Exception_..."}.
struct SoftLayerError {
  std::string code;
  std::string message;
};
/// nullopt when the body is something else (a proxy's page, nothing).
std::optional<SoftLayerError> ParseSoftLayerError(std::string_view body);

/// One entry's "flavor" of the guests' create options: vCPUs and memory from its key name
/// (FAMILY_{cores}X{ram GB}X{disk GB}: "B1_2X4X100"), its fee, GPUs from its prices. `flavor`
/// may be null.
MachineType ParseSoftLayerFlavor(const boost::json::object* flavor);
/// One entry's "preset" of the bare-metal create options: memory from its key name
/// ("S1270_8GB_2X1TBSATA_NORAID"), CPU vendor and GPUs from its description. May be null.
MachineType ParseSoftLayerPreset(const boost::json::object* preset);

/// A machine named by bitfusion that never got its tags is taken as expired this long after
/// SoftLayer made it: by then any live creator has tagged it.
inline constexpr std::int64_t kSoftLayerUntaggedGraceS = 15 * 60;

/// A virtual guest (`hardware` false) or a bare-metal server as the account's listing gives
/// it, with the public address unless `private_only` or it has none. What the provisioner adds
/// (SSH user, the times it saw, the catalogue's accelerators) is not set.
MachineInfo SoftLayerMachine(bool hardware, const boost::json::object& object, bool private_only);

}  // namespace bitfusion::internal
