// Device requests read from JSON values, for the plan parser (which already holds a parsed
// Boost.JSON document) and for ParseDeviceRequests in the public API.
#pragma once

#include <boost/json/value.hpp>

#include <string>
#include <vector>

#include "bitfusion/device.h"
#include "bitfusion/export.h"

namespace bitfusion {

/// One request from an object; `path` prefixes every error ("benchmarks[0].devices[1]").
Result<DeviceRequest> ParseDeviceRequest(const boost::json::value& value, const std::string& path);

/// One object or an array of objects.
Result<std::vector<DeviceRequest>> ParseDeviceRequestList(const boost::json::value& value,
                                                          const std::string& path);

/// "40GiB", "512MB", "1.5 GiB", "81920" (bytes). KB/MB/GB/TB are powers of 1000, KiB/MiB/GiB/TiB
/// of 1024.
/// Exported for the command's --min-memory.
BITFUSION_EXPORT Result<std::uint64_t> ParseByteSize(std::string_view text);

/// Whether `device` has the kind, vendor, model and memory `request` asks for (topology and
/// availability aside).
bool DeviceMatches(const Device& device, const DeviceRequest& request);

}  // namespace bitfusion
