// Library logging. Every message passes through Redact() before it reaches any handler, so
// passwords, tokens and keys never land in logs.
#pragma once

#include <functional>
#include <sstream>
#include <string>
#include <string_view>

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

}  // namespace bitfusion
