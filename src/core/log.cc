#include "bitfusion/log.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <re2/re2.h>

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

  // A message past 2 KiB (a body or a URI echoed in an error) is cut first, at a space, so
  // that no word, and no secret in one, is shown in part; what the patterns span never crosses
  // a space except an Authorization value, which runs to the end of what is kept and is masked
  // whole.
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

  // RE2 matches in time linear in the text, without recursion. The patterns' spaces include
  // '\v', which RE2's \s leaves out.
  // The password runs to the last '@' before a space, '?' or '#': one that was not
  // percent-encoded may hold '/' or '@'.
  static const RE2 kUserInfo(R"(([A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s\v]*:)[^\s\v?#]*@)");
  static const RE2 kAuthorization(R"((?i)((?:proxy-)?authorization[\s\v]*[:=][\s\v]*)[^\r\n]*)");
  // The key must start a word or a compound name (DB_PASSWORD, --token), not a path
  // ("/etc/passwd: ..."): preceded by nothing, space, quote, brace or bracket, comma, '_', '-'
  // or a query separator.
  static const RE2 kKeyValue(
      R"((?i)((?:^|[\s\v"'{(\[,&?;_\-])(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|)"
      R"(secret[_-]?key|secret[_-]?access[_-]?key|session[_-]?token|security[_-]?token|)"
      R"(client[_-]?secret|private[_-]?key|x-amz-security-token)["']?[\s\v]*[=:][\s\v]*["']?))"
      R"([^\s\v&"',;}]+)");
  static const RE2 kScheme(R"(\b(Bearer|Basic|ApiKey)[\s\v]+[A-Za-z0-9+/=._\-]{6,})");

  // One scan for any of them first: most messages hold none, and then one pass is all it costs.
  static const RE2 kAny("(?:" + kUserInfo.pattern() + ")|(?:" + kAuthorization.pattern() +
                        ")|(?:" + kKeyValue.pattern() + ")|(?:" + kScheme.pattern() + ")");
  std::string out(text);
  if (!RE2::PartialMatch(out, kAny)) return out + cut;
  RE2::GlobalReplace(&out, kUserInfo, R"(\1***@)");
  RE2::GlobalReplace(&out, kAuthorization, R"(\1***)");
  RE2::GlobalReplace(&out, kKeyValue, R"(\1***)");
  RE2::GlobalReplace(&out, kScheme, R"(\1 ***)");
  return out + cut;
}

}  // namespace bitfusion
