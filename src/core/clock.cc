#include "bitfusion/clock.h"

#include <time.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <string>

#include "core/clock.h"

namespace bitfusion {
namespace {
std::int64_t Read(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}
}  // namespace

std::int64_t WallNowNs() { return Read(CLOCK_REALTIME); }
std::int64_t MonoNowNs() { return Read(CLOCK_MONOTONIC); }
Timestamp Now() {
  Timestamp t;
  t.mono_ns = MonoNowNs();
  t.wall_ns = WallNowNs();
  return t;
}

Deadline DeadlineAfter(std::chrono::nanoseconds d) {
  const auto now = std::chrono::steady_clock::now();
  if (d >= kNoDeadline - now) return kNoDeadline;
  return now + d;
}

Result<std::chrono::nanoseconds> ParseDuration(std::string_view text) {
  // Appended, not "x" + std::string&&: GCC 12 at -O3 reports a bogus -Wrestrict overlap for a
  // one-character literal plus a temporary string (GCC bug 105329).
  std::string quoted(1, '"');
  quoted.append(text).push_back('"');
  if (text.empty()) return InvalidArgumentError("empty duration; write e.g. 10ms, 1.5s or 2m");
  double number = 0;
  const char* begin = text.data();
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(begin, end, number);
  if (ec != std::errc() || !std::isfinite(number)) {
    return InvalidArgumentError("duration " + quoted +
                                " does not start with a number; write e.g. 10ms, 1.5s or 2m");
  }
  if (number < 0) return InvalidArgumentError("duration " + quoted + " is negative");
  const std::string_view unit(ptr, static_cast<std::size_t>(end - ptr));
  double scale = 0;
  if (unit.empty() || unit == "s")
    scale = 1e9;
  else if (unit == "ns")
    scale = 1;
  else if (unit == "us" || unit == "µs")
    scale = 1e3;
  else if (unit == "ms")
    scale = 1e6;
  else if (unit == "m" || unit == "min")
    scale = 60e9;
  else if (unit == "h")
    scale = 3600e9;
  else
    return InvalidArgumentError("duration " + quoted + " has unknown unit \"" + std::string(unit) +
                                "\"; use ns, us, ms, s, m or h");
  const double ns = number * scale;
  if (ns > 9.2e18) return InvalidArgumentError("duration " + quoted + " is too long");
  return std::chrono::nanoseconds(static_cast<std::int64_t>(std::llround(ns)));
}

std::string FormatDuration(std::chrono::nanoseconds d) {
  const std::int64_t ns = d.count();
  if (ns == 0) return "0s";
  struct Unit {
    std::int64_t scale;
    const char* name;
  };
  static constexpr Unit kUnits[] = {{3600'000'000'000, "h"}, {60'000'000'000, "m"},
                                    {1'000'000'000, "s"},    {1'000'000, "ms"},
                                    {1'000, "us"},           {1, "ns"}};
  // The largest unit that keeps the number at least 1, in its shortest decimal form.
  for (const auto& u : kUnits) {
    if (std::llabs(ns) < u.scale) continue;
    if (ns % u.scale == 0) return std::to_string(ns / u.scale) + u.name;
    char buf[64];
    auto [p, ec] = std::to_chars(buf, buf + sizeof buf, static_cast<double>(ns) / u.scale);
    return std::string(buf, p) + u.name;
  }
  return std::to_string(ns) + "ns";
}

}  // namespace bitfusion

namespace bitfusion::internal {

std::int64_t ThreadCpuNs() {
  timespec ts{};
  if (::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0) return 0;
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

int PollMsUntil(std::int64_t deadline_mono_ns) {
  const std::int64_t left = deadline_mono_ns - MonoNowNs();
  return left <= 0 ? 0 : static_cast<int>(std::min<std::int64_t>(left / 1'000'000 + 1, 60'000));
}

}  // namespace bitfusion::internal
