#include "runners/ssh_process_wire.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <optional>
#include <random>

#include "bitfusion/clock.h"
#include "core/cpu_list.h"
#include "core/event_loop.h"
#include "core/proc_pid_stat.h"

namespace bitfusion::internal::sshwire {

// The remote wrapper, run as `sh -c WRAPPER bf-run NONCE DIR CPUSET`. Its stdin brings first
// the command, one line per item behind a '=' (a variable, NAME=VALUE) or a ':' (an argument),
// unprintable bytes and '\' as printf %b octal escapes, then a line "."; the wrapper hands
// those lines through a pipe to the leader, which exports the variables and execs the argv, so
// no value of the spec shows on a command line on either host. The leader starts as
// `setsid env -i LOGIN-BASICS sh -c LEADER`: a background job is no group leader, so setsid
// does not fork, and the pid it prints first ("NONCE pid N") is the new session's and group's
// id. A background reader turns the lines that follow on stdin into signals for the group; end
// of input is SIGKILL, "KEEP" leaves it running. After the leader, "NONCE exit STATUS" goes to
// stdout and the wrapper stays (output closed) while the group has members, so that end of
// input can still end them. dash's kill needs "--" before a negative pid, busybox's refuses it:
// g tries both. A signal that comes before the leader has made its group waits for it (r).
const char* const kWrapper = R"sh(n=$1 d=$2 c=$3 ok= o=
while IFS= read -r l; do
  o="$o$l
"
  if [ "$l" = . ]; then ok=1; break; fi
done
[ -n "$ok" ] || exit 125
if [ -n "$d" ]; then cd -- "$d" || exit 126; fi
set -- setsid env -i "PATH=$PATH" "HOME=$HOME" "USER=$USER" "LOGNAME=$LOGNAME" "SHELL=$SHELL" \
  sh -c "$0" "$n"
if [ -n "$c" ]; then set -- taskset -c "$c" "$@"; fi
exec 3<&0 </dev/null
printf %s "$o" | "$@" 3<&- &
p=$!
g() { kill -s "$1" -- "-$p" 2>/dev/null || kill -s "$1" "-$p" 2>/dev/null; }
r() { while kill -0 "$p" 2>/dev/null && ! g 0; do sleep 0.01 2>/dev/null || sleep 1; done; }
{
  while IFS= read -r s; do
    if [ "$s" = KEEP ]; then exit 0; fi
    r
    g "$s"
  done
  r
  g KILL
} <&3 >/dev/null 2>&1 &
w=$!
exec 3<&-
wait "$p"
s=$?
printf '%s exit %s\n' "$n" "$s"
exec >/dev/null 2>&1
while kill -0 "$w" 2>/dev/null && g 0; do sleep 1; done
kill "$w")sh";

// The leader, `sh -c LEADER NONCE` with the command on stdin (see kWrapper). dash exports the
// PWD it sets itself; unless the spec sets one, the command does not get it (as process://).
const char* const kLeader = R"sh(printf '%s pid %s\n' "$0" "$$"
w=
set --
while IFS= read -r l; do
  case $l in
    .) break ;;
    *\\*) v=$(printf '%bx' "${l#?}"); v=${v%x} ;;
    *) v=${l#?} ;;
  esac
  case $l in
    =PWD=*) w=1; export "$v" ;;
    =*) export "$v" ;;
    *) set -- "$@" "$v" ;;
  esac
done
[ -n "$w" ] || unset PWD
exec "$@" </dev/null)sh";

// What Create checks on the remote host: `sh -c CHECK bf-check DIR PATH CMD CPUSET DEVICE...`.
// One line, so that it runs on the session's command channel (no ssh client of its own).
const char* const kCheck =
    "d=$1 p=$2 c=$3 t=$4; shift 4; "
    "if [ -n \"$d\" ] && ! cd -- \"$d\" 2>/dev/null; then exit 2; fi; "
    "if [ -n \"$t\" ] && ! command -v taskset >/dev/null 2>&1; then exit 6; fi; "
    "if [ -n \"$p\" ]; then PATH=$p; export PATH; fi; "
    "case $c in */*) if [ ! -f \"$c\" ] || [ ! -x \"$c\" ]; then exit 3; fi ;; "
    "*) command -v -- \"$c\" >/dev/null 2>&1 || exit 4 ;; esac; "
    "for x in \"$@\"; do if [ ! -e \"$x\" ]; then printf '%s\\n' \"$x\"; exit 5; fi; done";

// Readings of one process for Stats: a header "H CLK_TCK PAGESIZE MEMTOTAL_KB", then every
// interval "S CPUS READ_BYTES WRITE_BYTES <the /proc/PID/stat line>", with the shell's own
// `read` (no fork but `sleep`).
const char* const kStats = R"sh(p=$1 i=$2
m=0
while read -r k v u; do if [ "$k" = MemTotal: ]; then m=$v; break; fi; done </proc/meminfo
printf 'H %s %s %s\n' "$(getconf CLK_TCK)" "$(getconf PAGESIZE)" "$m"
while [ -r "/proc/$p/stat" ]; do
  IFS= read -r s <"/proc/$p/stat" || break
  a=- r=0 w=0
  while read -r k v; do case $k in Cpus_allowed_list:) a=$v ;; esac; done <"/proc/$p/status"
  if [ -r "/proc/$p/io" ]; then
    while read -r k v; do
      case $k in read_bytes:) r=$v ;; write_bytes:) w=$v ;; esac
    done <"/proc/$p/io"
  fi
  printf 'S %s %s %s %s\n' "$a" "$r" "$w" "$s"
  sleep "$i"
done)sh";

std::string Nonce() {
  std::random_device rd;
  std::string out = "bfx";
  for (int i = 0; i < 4; ++i) {
    char buf[9];
    std::snprintf(buf, sizeof buf, "%08x", rd());
    out += buf;
  }
  return out;
}

// One item of the command for the wrapper's stdin: its kind ('=' a variable, ':' an argument)
// and its bytes, unprintable ones and '\\' as the octal escapes printf %b reads.
std::string OperandLine(char kind, std::string_view value) {
  std::string out(1, kind);
  for (const unsigned char b : value) {
    if (b >= 0x20 && b < 0x7f && b != '\\') {
      out += static_cast<char>(b);
    } else {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\0%03o", b);
      out += escaped;
    }
  }
  return out + "\n";
}

std::optional<ContainerStats> StatsParser::Line(const std::string& line) {
  if (line.starts_with("H ")) {
    long long tck = 0, pg = 0, kb = 0;
    if (std::sscanf(line.c_str(), "H %lld %lld %lld", &tck, &pg, &kb) == 3 && tck > 0) {
      tick_ns_ = 1e9 / static_cast<double>(tck);
      page_ = pg;
      mem_total_ = kb * 1024;
    }
    return std::nullopt;
  }
  char cpus[256];
  long long rd = 0, wr = 0;
  int used = 0;
  if (std::sscanf(line.c_str(), "S %255s %lld %lld %n", cpus, &rd, &wr, &used) != 3)
    return std::nullopt;
  auto stat = ParseProcPidStat(std::string_view(line).substr(used));
  if (!stat || stat->state == 'Z') return std::nullopt;
  ContainerStats st;
  st.time_ns = WallNowNs();
  st.cpu_ns = static_cast<std::int64_t>(static_cast<double>(stat->cpu_ticks) * tick_ns_);
  st.pids = stat->threads;
  st.memory_bytes = stat->rss_pages * page_;
  st.memory_limit_bytes = mem_total_;
  st.read_bytes = rd;
  st.write_bytes = wr;
  if (auto ids = CpuIds(cpus)) st.online_cpus = static_cast<int>(ids->size());
  return st;
}

void CloseFd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

void ReapClientLater(int pid, std::chrono::milliseconds patience) {
  if (pid <= 0) return;
  const auto until = std::chrono::steady_clock::now() + patience;
  LoopTimer::Start(std::chrono::nanoseconds(0),
                   [pid, until]() -> std::optional<std::chrono::nanoseconds> {
                     int status = 0;
                     if (::waitpid(pid, &status, WNOHANG) != 0) return std::nullopt;
                     if (std::chrono::steady_clock::now() < until) {
                       return std::chrono::milliseconds(5);
                     }
                     ::kill(pid, SIGKILL);
                     while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
                     }
                     return std::nullopt;
                   });
}

Result<RemoteEnd> RunRemote(SshSession& session, const std::string& script, std::string_view input,
                            const std::function<Status(std::string_view)>& on_out) {
  BITFUSION_ASSIGN_OR_RETURN(SshChild child, session.Spawn(script));
  RemoteEnd end;
  Status out_status;
  std::size_t sent = 0;
  if (input.empty()) CloseFd(child.stdin_fd);
  if (child.stdin_fd >= 0) ::fcntl(child.stdin_fd, F_SETFL, O_NONBLOCK);
  char buf[65536];
  while (child.stdout_fd >= 0 || child.stderr_fd >= 0) {
    pollfd fds[3];
    nfds_t n = 0;
    for (int fd : {child.stdout_fd, child.stderr_fd}) {
      if (fd >= 0) fds[n++] = {fd, POLLIN, 0};
    }
    if (child.stdin_fd >= 0) fds[n++] = {child.stdin_fd, POLLOUT, 0};
    if (::poll(fds, n, -1) < 0 && errno != EINTR) break;
    for (nfds_t i = 0; i < n; ++i) {
      if (fds[i].revents == 0) continue;
      if (fds[i].fd == child.stdin_fd) {
        const ssize_t w =
            ::send(child.stdin_fd, input.data() + sent, input.size() - sent, MSG_NOSIGNAL);
        if (w > 0) sent += static_cast<std::size_t>(w);
        if ((w < 0 && errno != EAGAIN && errno != EINTR) || sent == input.size()) {
          CloseFd(child.stdin_fd);
        }
        continue;
      }
      const bool is_out = fds[i].fd == child.stdout_fd;
      const ssize_t r = ::read(fds[i].fd, buf, sizeof buf);
      if (r < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (r <= 0) {
        CloseFd(is_out ? child.stdout_fd : child.stderr_fd);
        continue;
      }
      const std::string_view got(buf, static_cast<std::size_t>(r));
      if (!is_out) {
        if (end.err.size() < 4096) end.err.append(got);
      } else if (out_status.ok()) {
        out_status = on_out(got);
      }
    }
  }
  CloseFd(child.stdin_fd);
  int status = 0;
  while (::waitpid(child.pid, &status, 0) < 0 && errno == EINTR) {
  }
  end.exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : 255;
  if (!out_status.ok()) return out_status;
  return end;
}

std::string LastLine(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  const auto nl = text.rfind('\n');
  if (nl != std::string::npos) text.erase(0, nl + 1);
  if (text.size() > 300) text = "..." + text.substr(text.size() - 300);
  return text.empty() ? "ssh printed nothing" : text;
}

}  // namespace bitfusion::internal::sshwire
