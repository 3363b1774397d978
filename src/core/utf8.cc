#include "core/utf8.h"

namespace bitfusion::internal {

std::size_t Utf8Sequence(std::string_view text, std::size_t i, bool& valid) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t n = text.size();
  const unsigned char c = p[i];
  valid = false;
  std::size_t len = 0;
  unsigned char lo = 0x80;
  unsigned char hi = 0xBF;
  if (c < 0x80) {
    valid = true;
    return 1;
  } else if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
  } else if (c == 0xE0) {
    len = 3;
    lo = 0xA0;  // no overlong forms
  } else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) {
    len = 3;
  } else if (c == 0xED) {
    len = 3;
    hi = 0x9F;  // no UTF-16 surrogates
  } else if (c == 0xF0) {
    len = 4;
    lo = 0x90;
  } else if (c >= 0xF1 && c <= 0xF3) {
    len = 4;
  } else if (c == 0xF4) {
    len = 4;
    hi = 0x8F;  // nothing above U+10FFFF
  } else {
    return 1;
  }
  if (i + 1 >= n || p[i + 1] < lo || p[i + 1] > hi) return 1;
  for (std::size_t k = 2; k < len; ++k) {
    if (i + k >= n || (p[i + k] & 0xC0) != 0x80) return k;
  }
  valid = true;
  return len;
}

void AppendValidUtf8(std::string& out, std::string_view text) {
  std::size_t run = 0;
  std::size_t i = 0;
  while (i < text.size()) {
    if (static_cast<unsigned char>(text[i]) < 0x80) {
      ++i;
      continue;
    }
    bool valid = false;
    const std::size_t len = Utf8Sequence(text, i, valid);
    if (valid) {
      i += len;
      continue;
    }
    out.append(text.data() + run, i - run);
    out += kReplacementChar;
    i += len;
    run = i;
  }
  out.append(text.data() + run, text.size() - run);
}

std::string ValidUtf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  AppendValidUtf8(out, text);
  return out;
}

}  // namespace bitfusion::internal
