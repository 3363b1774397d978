// ASCII case mapping for protocol text (header names, URI schemes, units, vendor names): one
// copy, independent of the C locale, so that "I" never lower-cases to a dotless "ı".
#pragma once

#include <string>
#include <string_view>

namespace bitfusion::internal {

inline char AsciiLower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}
inline char AsciiUpper(char c) {
  return c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c;
}

/// `s` with A-Z mapped to a-z; every other byte (UTF-8 included) unchanged.
inline std::string AsciiLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = AsciiLower(c);
  return out;
}

/// `s` with a-z mapped to A-Z; every other byte unchanged.
inline std::string AsciiUpper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = AsciiUpper(c);
  return out;
}

}  // namespace bitfusion::internal
