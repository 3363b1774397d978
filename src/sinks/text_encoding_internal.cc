#include "sinks/text_encoding_internal.h"

#include <openssl/evp.h>

#include <boost/json.hpp>

#include <array>
#include <charconv>
#include <cmath>
#include <utility>

#include "bitfusion/serialize.h"

namespace bitfusion {
namespace internal {
namespace {

constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";  // U+FFFD in UTF-8

// Bytes a JSON string can carry as they are: printable ASCII other than '"' and '\'.
constexpr std::array<bool, 256> kJsonPlain = [] {
  std::array<bool, 256> plain{};
  for (int c = 0x20; c < 0x80; ++c) plain[c] = c != '"' && c != '\\';
  return plain;
}();

// Length of the UTF-8 sequence at text[i]. `valid` says whether it is well-formed (Unicode
// Table 3-7); when it is not, the length is that of the maximal subpart to replace by one
// U+FFFD, so a truncated sequence costs one replacement and the byte after it is kept.
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

// cereal's JSON (multi-line, raw bytes in strings) as a Boost.JSON tree. Doubles in it are not
// trusted to the last bit (Boost 1.81 parses numbers fast, not exactly): callers put the exact
// values back.
Result<boost::json::value> ParseCerealJson(const std::string& cereal_json, std::string_view what) {
  boost::json::error_code ec;
  // Invalid UTF-8 can only sit inside strings (the JSON syntax is ASCII), so repairing the
  // whole text repairs exactly the strings.
  boost::json::value tree = boost::json::parse(ValidUtf8(cereal_json), ec);
  if (ec || !tree.is_object()) {
    return InternalError("encoding " + std::string(what) + " as JSON failed (" + ec.message() +
                         "); please report this as a bitfusion bug");
  }
  return tree;
}

void PatchMaxMhz(boost::json::object& machine, double max_mhz) {
  auto* cpu = machine.if_contains("cpu");
  if (cpu == nullptr || !cpu->is_object()) return;
  if (std::isfinite(max_mhz)) {
    cpu->get_object()["max_mhz"] = max_mhz;
  } else {
    cpu->get_object()["max_mhz"] = nullptr;
  }
}

}  // namespace

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

// A compact JSON writer for Boost.JSON trees that formats numbers and strings exactly as the
// sample encoder does, so every line of a file looks alike.
void AppendJsonSampleValue(std::string& out, double value) {
  if (std::isfinite(value)) {
    AppendDouble(out, value);
  } else {
    out += R"(null,"value_text":")";
    out += NonFiniteText(value);
    out.push_back('"');
  }
}

void AppendJsonValue(std::string& out, const boost::json::value& v) {
  switch (v.kind()) {
    case boost::json::kind::null: out += "null"; break;
    case boost::json::kind::bool_: out += v.get_bool() ? "true" : "false"; break;
    case boost::json::kind::int64: AppendInt(out, v.get_int64()); break;
    case boost::json::kind::uint64: {
      char buf[24];
      auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v.get_uint64());
      out.append(buf, end);
      break;
    }
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

Result<MachineIdentity> IdentifyMachine(const MachineInfo& machine) {
  MachineInfo fingerprint = machine;
  fingerprint.address.clear();
  fingerprint.state.clear();
  fingerprint.labels.clear();
  fingerprint.ssh = SshEndpoint{};
  fingerprint.created_ns = 0;
  fingerprint.running_ns = 0;
  fingerprint.ssh_ready_ns = 0;
  fingerprint.ready_ns = 0;
  MachineIdentity out;
  BITFUSION_ASSIGN_OR_RETURN(out.fingerprint_json, MachineInfoJson(fingerprint));
  BITFUSION_ASSIGN_OR_RETURN(const std::string no_machine_json, MachineInfoJson(MachineInfo{}));
  if (out.fingerprint_json != no_machine_json) {
    const std::string& name = !machine.id.empty()         ? machine.id
                              : !machine.hostname.empty() ? machine.hostname
                                                          : std::string("machine");
    out.machine_id = name + "-" + Sha256Hex(out.fingerprint_json).substr(0, 16);
  }
  return out;
}

Result<std::string> RunRecordJson(const RunRecord& record, bool with_type) {
  // cereal would write NaN/Infinity as bare words, which are not JSON: encode a copy holding
  // finite stand-ins and put the real values back into the tree.
  RunRecord finite = record;
  for (auto& result : finite.results) result.value = 0;
  finite.machine.cpu.max_mhz = 0;
  BITFUSION_ASSIGN_OR_RETURN(boost::json::value tree,
                             ParseCerealJson(ToJson(finite), "run record " + record.run_id));
  auto& parsed = tree.get_object();
  if (auto* results = parsed.if_contains("results"); results && results->is_array()) {
    auto& array = results->get_array();
    for (std::size_t i = 0; i < array.size() && i < record.results.size(); ++i) {
      if (!array[i].is_object()) continue;
      auto& result = array[i].get_object();
      const double v = record.results[i].value;
      if (std::isfinite(v)) {
        result["value"] = v;
      } else {
        result["value"] = nullptr;
        // Right after "value", where a reader looks for it.
        boost::json::object reordered;
        for (auto& member : result) {
          reordered.emplace(member.key(), std::move(member.value()));
          if (member.key() == "value") reordered.emplace("value_text", NonFiniteText(v));
        }
        result = std::move(reordered);
      }
    }
  }
  if (auto* machine = parsed.if_contains("machine"); machine && machine->is_object()) {
    PatchMaxMhz(machine->get_object(), record.machine.cpu.max_mhz);
  }
  std::string out;
  if (with_type) {
    boost::json::object typed;
    typed.reserve(parsed.size() + 1);
    typed.emplace("type", "run");
    for (auto& member : parsed) typed.emplace(member.key(), std::move(member.value()));
    AppendJsonValue(out, boost::json::value(std::move(typed)));
  } else {
    AppendJsonValue(out, tree);
  }
  return out;
}

Result<std::string> MachineInfoJson(const MachineInfo& machine) {
  MachineInfo finite = machine;
  finite.cpu.max_mhz = 0;
  BITFUSION_ASSIGN_OR_RETURN(boost::json::value tree,
                             ParseCerealJson(ToJson(finite), "machine " + machine.id));
  PatchMaxMhz(tree.get_object(), machine.cpu.max_mhz);
  std::string out;
  AppendJsonValue(out, tree);
  return out;
}

}  // namespace internal
}  // namespace bitfusion
