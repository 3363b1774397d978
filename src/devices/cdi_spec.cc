#include "devices/cdi_spec.h"

#include <boost/json.hpp>

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>

#include "bitfusion/log.h"

namespace bitfusion {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

// Block-style YAML into the JSON value model, enough for CDI specs as generators write them.
class BlockYaml {
 public:
  explicit BlockYaml(const std::string& text) {
    std::istringstream in(text);
    int number = 0;
    for (std::string raw; std::getline(in, raw);) {
      ++number;
      if (!raw.empty() && raw.back() == '\r') raw.pop_back();
      const std::string text_part = StripComment(raw);
      const auto first = text_part.find_first_not_of(' ');
      if (first == std::string::npos) continue;
      if (text_part[first] == '\t') Fail(number, "tabs cannot indent YAML");
      std::string content = text_part.substr(first);
      while (!content.empty() && (content.back() == ' ' || content.back() == '\t')) {
        content.pop_back();
      }
      if (first == 0 && (content == "---" || content == "...")) continue;
      if (content[0] == '&' || content[0] == '*' || content.rfind("!!", 0) == 0) {
        Fail(number, "anchors, aliases and tags are not supported");
      }
      lines_.push_back({static_cast<int>(first), content, number});
    }
  }

  json::value Parse() {
    if (lines_.empty()) return json::object();
    json::value v = Block(lines_[0].indent);
    if (i_ < lines_.size()) Fail(lines_[i_].number, "unexpected indentation");
    return v;
  }

 private:
  struct Line {
    int indent;
    std::string text;
    int number;
  };

  [[noreturn]] static void Fail(int line, const std::string& what) {
    throw std::runtime_error("line " + std::to_string(line) + ": " + what);
  }

  static std::string StripComment(const std::string& line) {
    char quote = 0;
    for (std::size_t k = 0; k < line.size(); ++k) {
      const char c = line[k];
      if (quote) {
        if (c == quote) quote = 0;
      } else if (c == '"' || c == '\'') {
        quote = c;
      } else if (c == '#' && (k == 0 || line[k - 1] == ' ' || line[k - 1] == '\t')) {
        return line.substr(0, k);
      }
    }
    return line;
  }

  static bool IsDash(const std::string& t) { return t == "-" || t.rfind("- ", 0) == 0; }

  // Position of the ':' that ends a mapping key, or npos.
  static std::size_t KeyColon(const std::string& t) {
    std::size_t k = 0;
    if (!t.empty() && (t[0] == '"' || t[0] == '\'')) {
      k = t.find(t[0], 1);
      if (k == std::string::npos) return std::string::npos;
      ++k;
    }
    for (; k < t.size(); ++k) {
      if (t[k] == ':' && (k + 1 == t.size() || t[k + 1] == ' ')) return k;
    }
    return std::string::npos;
  }

  static json::value Scalar(std::string s) {
    if (s.size() >= 2 && s.front() == '"' && s.back() == '"') {
      std::string out;
      for (std::size_t k = 1; k + 1 < s.size(); ++k) {
        if (s[k] == '\\' && k + 2 < s.size()) ++k;
        out += s[k];
      }
      return json::string(out);
    }
    if (s.size() >= 2 && s.front() == '\'' && s.back() == '\'') {
      std::string out;
      for (std::size_t k = 1; k + 1 < s.size(); ++k) {
        out += s[k];
        if (s[k] == '\'' && s[k + 1] == '\'') ++k;
      }
      return json::string(out);
    }
    return json::string(s);
  }

  json::value Block(int indent) {
    // Each level is a stack frame, and one line of "- - - ..." can open thousands; CDI specs
    // nest about six deep.
    if (++depth_ > kMaxDepth) {
      Fail(lines_[i_].number, "nested deeper than " + std::to_string(kMaxDepth) + " levels");
    }
    json::value v = IsDash(lines_[i_].text) ? Sequence(indent) : Mapping(indent);
    --depth_;
    return v;
  }

  json::value Sequence(int indent) {
    json::array out;
    while (i_ < lines_.size() && lines_[i_].indent == indent && IsDash(lines_[i_].text)) {
      Line& line = lines_[i_];
      const auto rest_at = line.text.find_first_not_of(' ', 1);
      if (rest_at == std::string::npos) {
        ++i_;
        if (i_ < lines_.size() && lines_[i_].indent > indent) {
          out.push_back(Block(lines_[i_].indent));
        } else {
          out.push_back(nullptr);
        }
        continue;
      }
      // "- key: value" opens a mapping whose keys line up with "key".
      const std::string rest = line.text.substr(rest_at);
      line.indent = indent + static_cast<int>(rest_at);
      line.text = rest;
      if (IsDash(rest) || KeyColon(rest) != std::string::npos) {
        out.push_back(Block(line.indent));
      } else {
        out.push_back(Scalar(rest));
        ++i_;
      }
    }
    return out;
  }

  json::value Mapping(int indent) {
    json::object out;
    while (i_ < lines_.size() && lines_[i_].indent == indent && !IsDash(lines_[i_].text)) {
      const Line line = lines_[i_];
      const auto colon = KeyColon(line.text);
      if (colon == std::string::npos) Fail(line.number, "expected \"key: value\"");
      std::string key = line.text.substr(0, colon);
      if (key.size() >= 2 && (key.front() == '"' || key.front() == '\'')) {
        key = key.substr(1, key.size() - 2);
      }
      const auto value_at = line.text.find_first_not_of(' ', colon + 1);
      const std::string value =
          value_at == std::string::npos ? std::string() : line.text.substr(value_at);
      ++i_;
      if (value.empty()) {
        if (i_ < lines_.size() && lines_[i_].indent > indent) {
          out[key] = Block(lines_[i_].indent);
        } else if (i_ < lines_.size() && lines_[i_].indent == indent && IsDash(lines_[i_].text)) {
          out[key] = Sequence(indent);  // "key:\n- item" at the key's own indentation
        } else {
          out[key] = nullptr;
        }
      } else if (value[0] == '|' || value[0] == '>') {
        std::string text;
        while (i_ < lines_.size() && lines_[i_].indent > indent) {
          text += lines_[i_++].text + (value[0] == '|' ? "\n" : " ");
        }
        out[key] = json::string(text);
      } else {
        if (value[0] == '&' || value[0] == '*') {
          Fail(line.number, "anchors and aliases are not supported");
        }
        out[key] = Scalar(value);
        if (i_ < lines_.size() && lines_[i_].indent > indent) {
          Fail(lines_[i_].number, "unexpected indentation");
        }
      }
    }
    return out;
  }

  static constexpr int kMaxDepth = 64;
  std::vector<Line> lines_;
  std::size_t i_ = 0;
  int depth_ = 0;
};

const json::value* Member(const json::value& v, const char* key) {
  if (!v.is_object()) return nullptr;
  return v.get_object().if_contains(key);
}

std::string StringMember(const json::value& v, const char* key) {
  const json::value* m = Member(v, key);
  return m != nullptr && m->is_string() ? std::string(m->get_string()) : std::string();
}

}  // namespace

Result<std::vector<CdiDevice>> ParseCdiSpec(const std::string& text, bool yaml,
                                            const std::string& file_name) {
  json::value root;
  if (yaml) {
    try {
      root = BlockYaml(text).Parse();
    } catch (const std::exception& e) {
      return InvalidArgumentError(file_name + ": " + e.what());
    }
  } else {
    boost::system::error_code ec;
    root = json::parse(text, ec);
    if (ec) return InvalidArgumentError(file_name + ": not valid JSON: " + ec.message());
  }
  const std::string kind = StringMember(root, "kind");
  const auto slash = kind.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == kind.size()) {
    return InvalidArgumentError(file_name + ": \"kind\" must be \"vendor.com/class\", got \"" +
                                kind + "\"");
  }
  const json::value* devices = Member(root, "devices");
  if (devices == nullptr || !devices->is_array()) {
    return InvalidArgumentError(file_name + ": \"devices\" must be a list");
  }
  std::vector<CdiDevice> out;
  for (const auto& entry : devices->get_array()) {
    CdiDevice d;
    d.kind = kind;
    d.name = StringMember(entry, "name");
    d.spec_file = file_name;
    if (d.name.empty()) return InvalidArgumentError(file_name + ": a device has no \"name\"");
    const json::value* edits = Member(entry, "containerEdits");
    const json::value* nodes = edits ? Member(*edits, "deviceNodes") : nullptr;
    if (nodes != nullptr && nodes->is_array()) {
      for (const auto& node : nodes->get_array()) {
        std::string path = StringMember(node, "hostPath");
        if (path.empty()) path = StringMember(node, "path");
        if (!path.empty()) d.device_nodes.push_back(path);
      }
    }
    out.push_back(std::move(d));
  }
  return out;
}

std::vector<CdiDevice> ReadCdiSpecs(const std::vector<fs::path>& dirs) {
  std::map<std::string, CdiDevice> by_name;
  for (const auto& dir : dirs) {
    std::vector<fs::path> files;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      const std::string ext = entry.path().extension().string();
      if (ext == ".json" || ext == ".yaml" || ext == ".yml") files.push_back(entry.path());
    }
    std::sort(files.begin(), files.end());
    for (const auto& file : files) {
      std::ifstream in(file);
      std::stringstream text;
      text << in.rdbuf();
      if (!in) {
        LogAt(LogLevel::kWarning, "skipping CDI spec ", file.string(), ": cannot read it");
        continue;
      }
      auto devices = ParseCdiSpec(text.str(), file.extension() != ".json", file.string());
      if (!devices) {
        LogAt(LogLevel::kWarning, "skipping CDI spec: ", devices.error().message());
        continue;
      }
      for (auto& d : *devices) by_name[d.QualifiedName()] = std::move(d);
    }
  }
  std::vector<CdiDevice> out;
  for (auto& [name, d] : by_name) out.push_back(std::move(d));
  return out;
}

}  // namespace bitfusion
