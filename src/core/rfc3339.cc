#include "core/rfc3339.h"

#include <charconv>
#include <chrono>
#include <limits>

namespace bitfusion::internal {

namespace {

// Reads exactly `digits` decimal digits at text[at].
bool Field(std::string_view text, std::size_t at, std::size_t digits, int& out) {
  if (at + digits > text.size()) return false;
  const char* begin = text.data() + at;
  const auto [end, ec] = std::from_chars(begin, begin + digits, out);
  return ec == std::errc() && end == begin + digits;
}

struct Parsed {
  std::int64_t seconds = 0;
  std::int64_t fraction_ns = 0;
};

std::optional<Parsed> Parse(std::string_view text) {
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  if (!Field(text, 0, 4, year) || text.size() < 19 || text[4] != '-' || !Field(text, 5, 2, month) ||
      text[7] != '-' || !Field(text, 8, 2, day) || (text[10] != 'T' && text[10] != 't') ||
      !Field(text, 11, 2, hour) || text[13] != ':' || !Field(text, 14, 2, minute) ||
      text[16] != ':' || !Field(text, 17, 2, second)) {
    return std::nullopt;
  }
  const std::chrono::year_month_day date{std::chrono::year(year),
                                         std::chrono::month(static_cast<unsigned>(month)),
                                         std::chrono::day(static_cast<unsigned>(day))};
  if (!date.ok() || hour > 23 || minute > 59 || second > 60) return std::nullopt;

  std::size_t i = 19;
  std::int64_t fraction = 0;
  int digits = 0;
  if (i < text.size() && text[i] == '.') {
    const std::size_t start = ++i;
    for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i) {
      if (digits < 9) {
        fraction = fraction * 10 + (text[i] - '0');
        ++digits;
      }
    }
    if (i == start) return std::nullopt;
  }
  for (; digits < 9; ++digits) fraction *= 10;

  std::int64_t offset_s = 0;
  const std::string_view zone = text.substr(i);
  if (!zone.empty() && zone != "Z" && zone != "z") {
    int hh = 0, mm = 0;
    const bool colon = zone.size() == 6 && zone[3] == ':';
    if ((zone[0] != '+' && zone[0] != '-') || (zone.size() != 5 && !colon) ||
        !Field(zone, 1, 2, hh) || !Field(zone, colon ? 4 : 3, 2, mm) || hh > 23 || mm > 59) {
      return std::nullopt;
    }
    offset_s = (zone[0] == '-' ? -1 : 1) * (hh * 3600 + mm * 60);
  }
  const std::int64_t days = std::chrono::sys_days(date).time_since_epoch().count();
  return Parsed{days * 86400 + hour * 3600 + minute * 60 + second - offset_s, fraction};
}

}  // namespace

std::optional<std::int64_t> ParseRfc3339(std::string_view text) {
  const auto parsed = Parse(text);
  constexpr std::int64_t kLimit = std::numeric_limits<std::int64_t>::max() / 1'000'000'000 - 1;
  if (!parsed || parsed->seconds > kLimit || parsed->seconds < -kLimit) return std::nullopt;
  return parsed->seconds * 1'000'000'000 + parsed->fraction_ns;
}

std::optional<std::int64_t> ParseRfc3339Seconds(std::string_view text) {
  const auto parsed = Parse(text);
  if (!parsed) return std::nullopt;
  return parsed->seconds;
}

}  // namespace bitfusion::internal
