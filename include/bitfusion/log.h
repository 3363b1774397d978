// Library logging. Every message passes through Redact() before it reaches any handler, so
// passwords, tokens and keys never land in logs.
#pragma once

#include <cstdint>
#include <functional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "bitfusion/export.h"

namespace bitfusion {

enum class LogLevel : int { kTrace = 0, kDebug, kInfo, kWarning, kError, kOff };

/// Receives already-redacted messages. May be called from any bitfusion thread, concurrently.
using LogHandler = std::function<void(LogLevel level, std::string_view message)>;

/// Replaces the handler (default: one line per message on stderr). nullptr restores the default.
BITFUSION_EXPORT void SetLogHandler(LogHandler handler);
/// Messages below `level` are dropped. Default: kWarning, or BITFUSION_LOG_LEVEL
/// (trace|debug|info|warning|error|off) from the environment.
BITFUSION_EXPORT void SetLogLevel(LogLevel level);
BITFUSION_EXPORT LogLevel GetLogLevel();
BITFUSION_EXPORT void Log(LogLevel level, std::string_view message);

/// Logs `message` the first time `cause` is logged in this process; later messages with the same
/// cause are only counted (RepeatedLogs), so one cause — a VM without cpufreq, a store that is
/// down — makes one line however many runs meet it. `cause` is a stable key, not the text: the
/// text may carry figures that change from one occurrence to the next.
BITFUSION_EXPORT void LogOnce(LogLevel level, std::string_view cause, std::string_view message);

/// A cause that LogOnce met more than once: its first message (redacted) and how many later
/// messages were not printed.
struct RepeatedLog {
  std::string cause;
  std::string first_message;
  std::int64_t repeats = 0;
};
/// Causes with repeats, in the order they were first logged.
BITFUSION_EXPORT std::vector<RepeatedLog> RepeatedLogs();

/// Masks secrets: URI passwords ("user:***@"), "password=", "secret=", "token=", "api_key=",
/// "Authorization: ..." values, AWS secret keys and session tokens.
BITFUSION_EXPORT std::string Redact(std::string_view text);

/// LogAt(LogLevel::kWarning, "sink ", uri, " is slow: ", ms, " ms") — formats only when enabled.
template <class... Args>
void LogAt(LogLevel level, const Args&... args) {
  if (level < GetLogLevel()) return;
  std::ostringstream out;
  (out << ... << args);
  Log(level, out.str());
}

/// LogOnce with LogAt's formatting.
template <class... Args>
void LogOnceAt(LogLevel level, std::string_view cause, const Args&... args) {
  if (level < GetLogLevel()) return;
  std::ostringstream out;
  (out << ... << args);
  LogOnce(level, cause, out.str());
}

}  // namespace bitfusion
