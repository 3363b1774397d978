// Shared by the fake vendor libraries (fake_nvml, fake_rocm_smi, fake_xrt): each reads what
// it reports from a JSON file named by an environment variable, so one test binary can give
// each test its own devices.
#pragma once

#include <boost/json/value.hpp>

#include <optional>

#define BITFUSION_FAKE_API extern "C" __attribute__((visibility("default")))

namespace bitfusion::fakes {

/// The parsed file named by `env_var`; nullopt when the variable is unset or the file is
/// missing or malformed (the fakes then fail their init call as the real library does without
/// a driver).
std::optional<boost::json::value> LoadFakeConfig(const char* env_var);

}  // namespace bitfusion::fakes
