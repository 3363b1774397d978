#include "core/text_file.h"

#include <fstream>
#include <sstream>

namespace bitfusion::internal {

std::optional<std::string> ReadTextFile(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::stringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) return std::nullopt;
  return buffer.str();
}

std::string Trim(std::string_view s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return {};
  const auto e = s.find_last_not_of(" \t\r\n");
  return std::string(s.substr(b, e - b + 1));
}

std::optional<std::string> ReadTrimmed(const std::filesystem::path& path) {
  auto text = ReadTextFile(path);
  if (!text) return std::nullopt;
  return Trim(*text);
}

std::optional<int> ReadInt(const std::filesystem::path& path) {
  auto text = ReadTrimmed(path);
  if (!text) return std::nullopt;
  return ParseNumber<int>(*text);
}

std::map<std::string, std::string> ParseColonLines(std::string_view text) {
  std::map<std::string, std::string> out;
  while (!text.empty()) {
    const auto nl = text.find('\n');
    const std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    const auto colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    out[Trim(line.substr(0, colon))] = Trim(line.substr(colon + 1));
  }
  return out;
}

}  // namespace bitfusion::internal
