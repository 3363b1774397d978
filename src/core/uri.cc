#include "bitfusion/uri.h"

#include <boost/url/parse.hpp>
#include <boost/url/parse_query.hpp>
#include <boost/url/url_view.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>

#include "bitfusion/clock.h"
#include "core/ascii.h"

namespace bitfusion {
namespace {

bool IsSchemeWord(std::string_view text) {
  if (text.empty() || !std::isalpha(static_cast<unsigned char>(text.front()))) return false;
  return std::all_of(text.begin(), text.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '-' || c == '.';
  });
}

// What the user typed, with any "user:password@" password masked; for error messages about
// URIs that could not be parsed (so Uri::ToString is not available).
std::string MaskedText(std::string_view text) {
  std::string out(text);
  const auto scheme_end = out.find("://");
  if (scheme_end == std::string::npos) return out;
  const auto authority = scheme_end + 3;
  // The userinfo ends at the last '@' before the query: a password that was not
  // percent-encoded may hold '/' or '@' itself (that is why the text did not parse). A path with
  // an '@' is masked too: better too much than a password shown.
  const auto query = out.find_first_of("?#", authority);
  const auto at = out.rfind('@', query == std::string::npos ? std::string::npos : query - 1);
  if (at == std::string::npos || at < authority) return out;
  const auto colon = out.find(':', authority);
  if (colon == std::string::npos || colon > at) return out;
  return out.replace(colon + 1, at - colon - 1, "***");
}

}  // namespace

Result<Uri> Uri::Parse(std::string_view text) {
  Uri uri;
  // "host", "null", "host?proc_root=/x": a bare scheme word, with options perhaps.
  if (text.find(':') == std::string_view::npos) {
    const auto question = text.find('?');
    const std::string_view word = text.substr(0, question);
    if (IsSchemeWord(word)) {
      uri.scheme = internal::AsciiLower(word);
      if (question != std::string_view::npos) {
        // A NUL-terminated copy: Boost 1.81's parse_query measures what it returns with
        // strlen(data()), so a view into a longer buffer would take in what follows it. (The
        // query grammar refuses NUL, so strlen and size agree on whatever parses.)
        const std::string options(text.substr(question + 1));
        auto params = boost::urls::parse_query(options);
        if (!params) {
          return InvalidArgumentError("cannot parse the options of \"" + MaskedText(text) + "\" (" +
                                      params.error().message() + ")");
        }
        for (auto param : *params) {
          uri.query.emplace_back(param.key, param.has_value ? param.value : std::string());
        }
      }
      return uri;
    }
  }
  // A user or password with '@' or '/' that was not percent-encoded is split in the wrong place
  // by any parser, and the part it takes for the host or path would show up in messages.
  if (const auto slashes = text.find("://"); slashes != std::string_view::npos) {
    const auto rest = text.substr(slashes + 3, text.find_first_of("?#") - slashes - 3);
    const auto at = rest.find('@');
    const auto slash = rest.find('/');
    const bool two_ats = at != std::string_view::npos && rest.find('@', at + 1) != rest.npos;
    const bool slash_first = at != std::string_view::npos && slash < at &&
                             rest.substr(0, slash).find(':') != std::string_view::npos;
    if (two_ats || slash_first) {
      return InvalidArgumentError(
          "cannot parse URI \"" + MaskedText(text) + "\": its user or " +
          "password holds '@' or '/'; percent-encode them (%40, %2F), or " +
          "give the password another way (a password file or an environment variable, as "
          "docs/sinks.md says for each store)");
    }
  }
  auto parsed = boost::urls::parse_uri(text);
  if (!parsed) {
    return InvalidArgumentError("cannot parse URI \"" + MaskedText(text) + "\" (" +
                                parsed.error().message() +
                                "); expected SCHEME://[USER[:PASSWORD]@]HOST[:PORT][/PATH][?K=V] "
                                "or SCHEME:VALUE");
  }
  const boost::urls::url_view& u = *parsed;
  uri.scheme = internal::AsciiLower(u.scheme());
  if (u.has_userinfo()) {
    uri.user = u.user();
    uri.password = u.password();
  }
  uri.host = u.host();
  if (u.has_port()) {
    const auto port = u.port();
    unsigned value = 0;
    auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc() || p != port.data() + port.size() || value == 0 || value > 65535) {
      return InvalidArgumentError("URI \"" + MaskedText(text) + "\" has invalid port \"" +
                                  std::string(port) + "\"; use 1-65535");
    }
    uri.port = static_cast<std::uint16_t>(value);
  }
  uri.path = u.path();
  // Boost 1.81's params iterator reads past the end of an empty query followed by a fragment
  // ("x:y?#z", found by fuzz/uri_fuzzer.cc); an empty query holds no option anyway.
  if (!u.encoded_query().empty()) {
    for (auto param : u.params()) {
      uri.query.emplace_back(param.key, param.has_value ? param.value : std::string());
    }
  }
  return uri;
}

std::string Uri::ToString() const {
  std::string out = scheme;
  const bool has_authority = !host.empty() || !user.empty() || port.has_value();
  const bool bare = !has_authority && path.empty() && query.empty();
  if (bare) return out;
  out += ":";
  // Opaque forms ("process:1234") stay opaque; hierarchical ones keep their "//".
  if (has_authority || path.empty() || path.front() == '/') out += "//";
  if (!user.empty()) {
    out += user;
    if (!password.empty()) out += ":***";
    out += "@";
  }
  out += host;
  if (port) {
    // Not ":" + std::to_string(...): GCC 12 at -O3 reports a bogus -Wrestrict overlap for a
    // one-character literal plus a temporary string (GCC bug 105329).
    out += ':';
    out += std::to_string(*port);
  }
  out += path;
  for (std::size_t i = 0; i < query.size(); ++i) {
    out += (i == 0 ? "?" : "&");
    out += query[i].first;
    if (!query[i].second.empty()) out += "=" + query[i].second;
  }
  return out;
}

std::string Uri::FilePath() const { return host + path; }

std::optional<std::string> Uri::Query(std::string_view key) const {
  for (auto it = query.rbegin(); it != query.rend(); ++it) {
    if (it->first == key) return it->second;
  }
  return std::nullopt;
}

Result<std::int64_t> Uri::QueryInt(std::string_view key, std::int64_t fallback) const {
  const auto text = Query(key);
  if (!text) return fallback;
  std::int64_t value = 0;
  auto [p, ec] = std::from_chars(text->data(), text->data() + text->size(), value);
  if (ec != std::errc() || p != text->data() + text->size()) {
    return InvalidArgumentError("option " + std::string(key) + "=\"" + *text + "\" in " +
                                ToString() + " is not an integer");
  }
  return value;
}

Result<bool> Uri::QueryBool(std::string_view key, bool fallback) const {
  const auto text = Query(key);
  if (!text) return fallback;
  const std::string v = internal::AsciiLower(*text);
  if (v == "1" || v == "true" || v == "yes" || v == "on" || v.empty()) return true;
  if (v == "0" || v == "false" || v == "no" || v == "off") return false;
  return InvalidArgumentError("option " + std::string(key) + "=\"" + *text + "\" in " + ToString() +
                              " is not a boolean; use true or false");
}

Result<std::chrono::nanoseconds> Uri::QueryDuration(std::string_view key,
                                                    std::chrono::nanoseconds fallback) const {
  const auto text = Query(key);
  if (!text) return fallback;
  auto d = ParseDuration(*text);
  if (!d) return d.error().WithContext("option " + std::string(key) + " in " + ToString());
  return *d;
}

Status Uri::CheckQueryKeys(const std::vector<std::string_view>& allowed) const {
  for (const auto& [key, value] : query) {
    if (std::find(allowed.begin(), allowed.end(), key) != allowed.end()) continue;
    std::string known;
    for (auto a : allowed) known += (known.empty() ? "" : ", ") + std::string(a);
    return InvalidArgumentError(
        "unknown option \"" + key + "\" in " + ToString() +
        (known.empty() ? "; this scheme takes no options" : "; known options: " + known));
  }
  return Status::OK();
}

}  // namespace bitfusion
