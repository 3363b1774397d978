#include "core/json_writer.h"

#include <boost/json.hpp>

#include <array>
#include <charconv>
#include <cmath>

#include "core/utf8.h"

namespace bitfusion::internal {
namespace {

// Bytes a JSON string can carry as they are: printable ASCII other than '"' and '\'.
constexpr std::array<bool, 256> kJsonPlain = [] {
  std::array<bool, 256> plain{};
  for (int c = 0x20; c < 0x80; ++c) plain[c] = c != '"' && c != '\\';
  return plain;
}();

void AppendUint(std::string& out, std::uint64_t value) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), value);
  out.append(buf, end);
}

// A finite double as rapidjson (and so cereal, which wrote ToJson before) spells it: the
// shortest digits, in fixed notation with at least one fractional digit ("3.0", "0.001") while
// the decimal point is within 21 digits, else "1.5e300", "1e-7".
void AppendDoubleWithPoint(std::string& out, double value) {
  if (value == 0) {
    out += std::signbit(value) ? "-0.0" : "0.0";
    return;
  }
  char buf[40];
  const auto [end, ec] =
      std::to_chars(buf, buf + sizeof(buf), value, std::chars_format::scientific);
  std::string_view text(buf, static_cast<std::size_t>(end - buf));  // [-]d[.ddd]e(+|-)dd
  if (text.front() == '-') {
    out.push_back('-');
    text.remove_prefix(1);
  }
  const std::size_t e = text.find('e');
  std::string digits(1, text.front());
  if (e > 1) digits.append(text.substr(2, e - 2));
  int exponent = 0;  // value = d.ddd x 10^exponent
  std::string_view exp_text = text.substr(e + 1);
  if (exp_text.front() == '+') exp_text.remove_prefix(1);
  std::from_chars(exp_text.data(), exp_text.data() + exp_text.size(), exponent);
  const int length = static_cast<int>(digits.size());
  const int point = exponent + 1;  // digits before the decimal point
  if (point >= length && point <= 21) {
    out += digits;
    out.append(static_cast<std::size_t>(point - length), '0');
    out += ".0";
  } else if (point > 0 && point <= 21) {
    out.append(digits, 0, static_cast<std::size_t>(point));
    out.push_back('.');
    out.append(digits, static_cast<std::size_t>(point));
  } else if (point > -6 && point <= 0) {
    out += "0.";
    out.append(static_cast<std::size_t>(-point), '0');
    out += digits;
  } else {
    out.push_back(digits.front());
    if (length > 1) {
      out.push_back('.');
      out.append(digits, 1);
    }
    out.push_back('e');
    AppendInt(out, exponent);
  }
}

void AppendIndent(std::string& out, int indent, int level) {
  out.push_back('\n');
  out.append(static_cast<std::size_t>(indent) * static_cast<std::size_t>(level), ' ');
}

void AppendIndented(std::string& out, const boost::json::value& v, int indent, int level) {
  switch (v.kind()) {
    case boost::json::kind::double_: {
      const double d = v.get_double();
      if (std::isfinite(d)) {
        AppendDoubleWithPoint(out, d);
      } else {
        out += "null";
      }
      break;
    }
    case boost::json::kind::array: {
      const auto& array = v.get_array();
      out.push_back('[');
      bool first = true;
      for (const auto& e : array) {
        if (!first) out.push_back(',');
        first = false;
        AppendIndent(out, indent, level + 1);
        AppendIndented(out, e, indent, level + 1);
      }
      if (!array.empty()) AppendIndent(out, indent, level);
      out.push_back(']');
      break;
    }
    case boost::json::kind::object: {
      const auto& object = v.get_object();
      out.push_back('{');
      bool first = true;
      for (const auto& member : object) {
        if (!first) out.push_back(',');
        first = false;
        AppendIndent(out, indent, level + 1);
        AppendJsonString(out, std::string_view(member.key().data(), member.key().size()));
        out += ": ";
        AppendIndented(out, member.value(), indent, level + 1);
      }
      if (!object.empty()) AppendIndent(out, indent, level);
      out.push_back('}');
      break;
    }
    default: AppendJsonValue(out, v);
  }
}

}  // namespace

void AppendJsonString(std::string& out, std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  std::size_t run = 0;
  std::size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (kJsonPlain[c]) {
      ++i;
      continue;
    }
    if (c >= 0x80) {
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
      continue;
    }
    out.append(text.data() + run, i - run);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default: {
        const char escape[] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xF]};
        out.append(escape, sizeof(escape));
      }
    }
    ++i;
    run = i;
  }
  out.append(text.data() + run, text.size() - run);
  out.push_back('"');
}

void AppendJsonLabels(std::string& out, const Labels& labels) {
  out.push_back('{');
  bool first = true;
  for (const auto& [key, value] : labels) {
    if (!first) out.push_back(',');
    first = false;
    AppendJsonString(out, key);
    out.push_back(':');
    AppendJsonString(out, value);
  }
  out.push_back('}');
}

void AppendDouble(std::string& out, double value) {
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), value);
  out.append(buf, end);
}

void AppendInt(std::string& out, std::int64_t value) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), value);
  out.append(buf, end);
}

std::string_view NonFiniteText(double value) {
  if (std::isnan(value)) return "NaN";
  return value > 0 ? "Infinity" : "-Infinity";
}

void AppendJsonValue(std::string& out, const boost::json::value& v) {
  switch (v.kind()) {
    case boost::json::kind::null: out += "null"; break;
    case boost::json::kind::bool_: out += v.get_bool() ? "true" : "false"; break;
    case boost::json::kind::int64: AppendInt(out, v.get_int64()); break;
    case boost::json::kind::uint64: AppendUint(out, v.get_uint64()); break;
    case boost::json::kind::double_: {
      const double d = v.get_double();
      if (std::isfinite(d)) {
        AppendDouble(out, d);
      } else {
        out += "null";
      }
      break;
    }
    case boost::json::kind::string:
      AppendJsonString(out, std::string_view(v.get_string().data(), v.get_string().size()));
      break;
    case boost::json::kind::array: {
      out.push_back('[');
      bool first = true;
      for (const auto& e : v.get_array()) {
        if (!first) out.push_back(',');
        first = false;
        AppendJsonValue(out, e);
      }
      out.push_back(']');
      break;
    }
    case boost::json::kind::object: {
      out.push_back('{');
      bool first = true;
      for (const auto& member : v.get_object()) {
        if (!first) out.push_back(',');
        first = false;
        AppendJsonString(out, std::string_view(member.key().data(), member.key().size()));
        out.push_back(':');
        AppendJsonValue(out, member.value());
      }
      out.push_back('}');
      break;
    }
  }
}

std::string IndentedJson(const boost::json::value& v, int indent) {
  std::string out;
  AppendIndented(out, v, indent, 0);
  return out;
}

}  // namespace bitfusion::internal
