// The remote side of process+ssh:// and what travels on its channels: the POSIX sh scripts run
// on the remote host, how a command is written to the wrapper's stdin, the records the wrapper
// sends back among the command's output, and the Stats readings. The channel
// (ssh_process_channel.h) follows a command on the event loop; the runner
// (ssh_process_runner.cc) owns the handles and the lifecycle.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "bitfusion/container.h"
#include "bitfusion/status.h"
#include "net/ssh_session.h"

namespace bitfusion::internal::sshwire {

/// The wrapper, `sh -c WRAPPER LEADER NONCE DIR CPUSET`; see the definition.
extern const char* const kWrapper;
/// The command's leader, handed to the wrapper as its $0.
extern const char* const kLeader;
/// Create's remote check, `sh -c CHECK bf-check DIR PATH CMD CPUSET DEVICE...`; exit 0 fine,
/// 2 no directory, 3 not executable, 4 not found in PATH, 5 no device (named on stdout),
/// 6 no taskset.
extern const char* const kCheck;
/// Stats readings, `sh -c STATS bf-stats PID INTERVAL_SECONDS`.
extern const char* const kStats;

/// 128 random bits in hex behind "bfx": marks the wrapper's records in a command's stdout.
std::string Nonce();

/// One item of the command for the wrapper's stdin: its kind ('=' a variable NAME=VALUE, ':' an
/// argument) and its bytes, unprintable ones and '\\' as the octal escapes printf %b reads.
std::string OperandLine(char kind, std::string_view value);

// Splits the runner's records ("NONCE KIND VALUE\n", anywhere in the stream: the command may
// have left a line unfinished) out of the command's stdout. Bytes that may be the start of a
// record are held back until the next read says; nothing else is delayed.
class RecordFilter {
 public:
  explicit RecordFilter(std::string nonce) : nonce_(std::move(nonce)) {}

  template <class Out, class Rec>
  void Feed(std::string_view data, Out&& out, Rec&& record) {
    held_.append(data);
    std::string_view rest(held_);
    std::size_t consumed = 0;
    for (;;) {
      const auto at = rest.find(nonce_);
      if (at == std::string_view::npos) break;
      const auto eol = rest.find('\n', at);
      if (eol == std::string_view::npos) {
        out(rest.substr(0, at));
        consumed += at;
        rest.remove_prefix(at);
        held_.erase(0, consumed);
        return;
      }
      out(rest.substr(0, at));
      record(rest.substr(at + nonce_.size(), eol - at - nonce_.size()));
      consumed += eol + 1;
      rest.remove_prefix(eol + 1);
    }
    // Hold back the longest tail that is a proper prefix of the nonce.
    std::size_t keep = std::min(rest.size(), nonce_.size() - 1);
    while (keep > 0 && rest.substr(rest.size() - keep) != nonce_.substr(0, keep)) --keep;
    out(rest.substr(0, rest.size() - keep));
    consumed += rest.size() - keep;
    held_.erase(0, consumed);
  }

  template <class Out>
  void Finish(Out&& out) {
    out(std::string_view(held_));
    held_.clear();
  }

 private:
  const std::string nonce_;
  std::string held_;
};

/// Parses kStats's output line by line.
class StatsParser {
 public:
  /// A reading, or nullopt for the header, a zombie or a line it cannot read.
  std::optional<ContainerStats> Line(const std::string& line);

 private:
  double tick_ns_ = 1e7;
  std::int64_t page_ = 4096;
  std::int64_t mem_total_ = 0;
};

void CloseFd(int& fd);

/// Reaps the local ssh client `pid`, killing it once `patience` has passed, without waiting
/// for it: a timer on the event loop reaps it (internal::ReapWithin is the waiting form).
void ReapClientLater(int pid, std::chrono::milliseconds patience);

/// How a command run by RunRemote ended.
struct RemoteEnd {
  int exit_status = -1;  ///< 255: ssh itself failed
  std::string err;       ///< its stderr (the first 4 KiB)
};

/// Runs `script` over `session` to its end, fed `input`, its stdout handed to `on_out` (the
/// copies). An error from on_out ends the reading and is returned.
Result<RemoteEnd> RunRemote(SshSession& session, const std::string& script, std::string_view input,
                            const std::function<Status(std::string_view)>& on_out);

/// The last line of `text` (ssh's complaint comes last), shortened for a message.
std::string LastLine(std::string text);

}  // namespace bitfusion::internal::sshwire
