#include "bitfusion/log.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <regex>
#include <string>
#include <unordered_map>
#include <vector>

#include "bitfusion/clock.h"

namespace bitfusion {
namespace {

LogLevel LevelFromEnvironment() {
  const char* env = std::getenv("BITFUSION_LOG_LEVEL");
  if (env == nullptr) return LogLevel::kWarning;
  const std::string v(env);
  if (v == "trace") return LogLevel::kTrace;
  if (v == "debug") return LogLevel::kDebug;
  if (v == "info") return LogLevel::kInfo;
  if (v == "error") return LogLevel::kError;
  if (v == "off") return LogLevel::kOff;
  return LogLevel::kWarning;
}

std::atomic<int>& Level() {
  static std::atomic<int> level{static_cast<int>(LevelFromEnvironment())};
  return level;
}

struct HandlerSlot {
  std::mutex mu;
  LogHandler handler;
};
HandlerSlot& Slot() {
  static HandlerSlot slot;
  return slot;
}

const char* LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kTrace: return "trace";
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarning: return "warning";
    case LogLevel::kError: return "error";
    case LogLevel::kOff: return "off";
  }
  return "?";
}

void WriteToStderr(LogLevel level, std::string_view message) {
  std::string line = "bitfusion ";
  line += LevelName(level);
  line += ": ";
  line += message;
  line += '\n';
  // One write(2) per line so lines from several threads never interleave.
  [[maybe_unused]] auto n = ::write(STDERR_FILENO, line.data(), line.size());
}

}  // namespace

void SetLogHandler(LogHandler handler) {
  std::lock_guard lock(Slot().mu);
  Slot().handler = std::move(handler);
}
void SetLogLevel(LogLevel level) { Level().store(static_cast<int>(level)); }
LogLevel GetLogLevel() { return static_cast<LogLevel>(Level().load(std::memory_order_relaxed)); }

void Log(LogLevel level, std::string_view message) {
  if (level < GetLogLevel() || level == LogLevel::kOff) return;
  const std::string clean = Redact(message);
  std::lock_guard lock(Slot().mu);
  if (Slot().handler) {
    Slot().handler(level, clean);
  } else {
    WriteToStderr(level, clean);
  }
}

namespace {

struct OnceRegistry {
  std::mutex mu;
  std::unordered_map<std::string, std::size_t> index;  // cause -> position in `causes`
  std::vector<RepeatedLog> causes;
};
OnceRegistry& Once() {
  static OnceRegistry registry;
  return registry;
}
// Beyond this many causes (a cause keyed by something unbounded, by mistake) messages are
// logged as they come rather than remembered.
constexpr std::size_t kMaxOnceCauses = 4096;

}  // namespace

void LogOnce(LogLevel level, std::string_view cause, std::string_view message) {
  if (level < GetLogLevel() || level == LogLevel::kOff) return;
  {
    OnceRegistry& once = Once();
    std::lock_guard lock(once.mu);
    if (auto it = once.index.find(std::string(cause)); it != once.index.end()) {
      ++once.causes[it->second].repeats;
      return;
    }
    if (once.causes.size() < kMaxOnceCauses) {
      once.index.emplace(std::string(cause), once.causes.size());
      once.causes.push_back(RepeatedLog{std::string(cause), Redact(message), 0});
    }
  }
  Log(level, message);
}

std::vector<RepeatedLog> RepeatedLogs() {
  OnceRegistry& once = Once();
  std::lock_guard lock(once.mu);
  std::vector<RepeatedLog> out;
  for (const auto& c : once.causes) {
    if (c.repeats > 0) out.push_back(c);
  }
  return out;
}

std::string Redact(std::string_view text) {
  // Cheap exit for the common case: nothing that could introduce a secret.
  static const char* const kHints[] = {"@", "=", ":", "Bearer", "Basic", "ApiKey"};
  bool maybe = false;
  for (const char* hint : kHints) maybe = maybe || text.find(hint) != std::string_view::npos;
  if (!maybe) return std::string(text);

  // std::regex matches recursively, a stack frame or more per character a repetition takes in
  // (a message of some hundred kilobytes without a space, a URI or a body echoed in an error,
  // overflowed the stack), and searching for the patterns below takes time quadratic in a run
  // of letters (8 KiB of them took 2 s). A longer message is cut first, at a space, so that no
  // word, and no secret in one, is shown in part; what the patterns span never crosses a space
  // except an Authorization value, which runs to the end of what is kept and is masked whole.
  constexpr std::size_t kMaxRedacted = 2048;
  std::string cut;
  if (text.size() > kMaxRedacted) {
    std::size_t end = kMaxRedacted;
    while (end > 0 && std::string_view(" \t\n\r\f\v").find(text[end]) == std::string_view::npos) {
      --end;
    }
    cut = " [... " + std::to_string(text.size() - end) + " bytes not shown]";
    text = text.substr(0, end);
  }

  using std::regex;
  // The password runs to the last '@' before a space, '?' or '#': one that was not
  // percent-encoded may hold '/' or '@'.
  static const regex kUserInfo(R"(([A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s]*:)[^\s?#]*@)");
  static const regex kAuthorization(R"(((?:proxy-)?authorization\s*[:=]\s*)[^\r\n]*)",
                                    regex::icase);
  // The key must start a word or a compound name (DB_PASSWORD, --token), not a path
  // ("/etc/passwd: ..."): preceded by nothing, space, quote, brace, comma, '_', '-' or a query
  // separator.
  static const regex kKeyValue(
      R"(((?:^|[\s"'{,&?;_\-])(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|secret[_-]?key|)"
      R"(secret[_-]?access[_-]?key|session[_-]?token|security[_-]?token|client[_-]?secret|)"
      R"(private[_-]?key|x-amz-security-token)["']?\s*[=:]\s*["']?)[^\s&"',;}]+)",
      regex::icase);
  static const regex kScheme(R"(\b(Bearer|Basic|ApiKey)\s+[A-Za-z0-9+/=._\-]{6,})");

  std::string out = std::regex_replace(std::string(text), kUserInfo, "$1***@");
  out = std::regex_replace(out, kAuthorization, "$1***");
  out = std::regex_replace(out, kKeyValue, "$1***");
  out = std::regex_replace(out, kScheme, "$1 ***");
  return out + cut;
}

}  // namespace bitfusion
