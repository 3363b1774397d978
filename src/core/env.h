// Reading the process environment: one spelling of "the variable, or empty when unset".
#pragma once

#include <cstdlib>
#include <string>

namespace bitfusion::internal {

/// The environment variable `name`; "" when it is unset.
inline std::string GetEnv(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? std::string() : std::string(v);
}

}  // namespace bitfusion::internal
