// Reading the small text files of /proc and /sys (and recorded copies of them): a whole file,
// trimmed values, numbers that must be numbers, and "key: value" lines. One copy for device
// discovery and the host fingerprint, which had drifted apart.
#pragma once

#include <charconv>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

namespace bitfusion::internal {

/// The whole file; nullopt when it cannot be opened or read.
std::optional<std::string> ReadTextFile(const std::filesystem::path& path);

/// `s` without leading and trailing blanks (space, tab, CR, LF).
std::string Trim(std::string_view s);

/// The file's content, trimmed (sysfs values end in a newline).
std::optional<std::string> ReadTrimmed(const std::filesystem::path& path);

/// `text` as a number when all of it is one (base 16 takes an optional "0x"); else nullopt.
template <class T>
std::optional<T> ParseNumber(std::string_view text, int base = 10) {
  if (base == 16 && (text.substr(0, 2) == "0x" || text.substr(0, 2) == "0X")) text.remove_prefix(2);
  if (text.empty()) return std::nullopt;
  T value{};
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), value, base);
  if (ec != std::errc() || p != text.data() + text.size()) return std::nullopt;
  return value;
}

/// A file holding one decimal integer.
std::optional<int> ReadInt(const std::filesystem::path& path);

/// "Key:   value" lines (/proc/driver/nvidia/gpus/*/information, one /proc/cpuinfo block),
/// trimmed; lines without a colon are skipped, a repeated key keeps its last value.
std::map<std::string, std::string> ParseColonLines(std::string_view text);

}  // namespace bitfusion::internal
