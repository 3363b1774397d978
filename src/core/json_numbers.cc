#include "core/json_numbers.h"

namespace bitfusion::internal {

std::string JsonNumbersAsText(std::string_view text) {
  std::string out;
  out.reserve(text.size() + text.size() / 8);
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      out.push_back(c);
      if (c == '\\' && i + 1 < text.size()) {
        out.push_back(text[++i]);
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
      out.push_back(c);
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      std::size_t end = i;
      while (end < text.size() &&
             std::string_view("+-.eE0123456789").find(text[end]) != std::string_view::npos) {
        ++end;
      }
      out += "\"#";
      out.append(text.substr(i, end - i));
      out.push_back('"');
      i = end - 1;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

}  // namespace bitfusion::internal
