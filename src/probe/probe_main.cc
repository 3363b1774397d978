// bitfusion-probe: samples a container from inside and streams the samples to the host (see
// probe_wire.h for the format, probe_sampler.h for what is sampled).
//
//   bitfusion-probe --socket PATH [--interval 10ms] [options] -- CMD ARGS...
//       wraps a command: connects, takes a first sample, runs CMD, samples until it exits,
//       forwards SIGTERM/SIGINT/SIGHUP/SIGQUIT/SIGUSR1/SIGUSR2 to it, reaps orphans (it may be
//       the container's PID 1), sends END with CMD's exit status and exits with it
//       (128+N when CMD was killed by signal N).
//   bitfusion-probe --socket PATH [--count N]
//       samples only (started with `docker exec`), until SIGTERM/SIGINT, N ticks, or the host
//       closes the socket.
//   bitfusion-probe --stdout --control-stdin [--no-processes] [--no-cgroup]
//       the host agent of host+ssh:// (src/metrics/ssh_probe_source.h): records on stdout, and
//       stdin carries the host's PING records (each answered with a PONG, for the clock offset);
//       end of stdin (the host stopped, or its SSH channel went away) is a SIGTERM, so the probe
//       never outlives the connection that started it.
//
// Plain C++ and libc, linked -static, so it runs in any image (busybox, scratch, distroless).
// Exit codes of its own: 125 bad usage or the probe could not start, 126 CMD could not be
// executed, 127 CMD was not found.
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "probe/probe_sampler.h"
#include "probe/probe_wire.h"

namespace {

using bitfusion::probe::Sampler;
using bitfusion::probe::SamplerOptions;
namespace wire = bitfusion::probe_wire;

constexpr int kExitUsage = 125;
constexpr int kForwarded[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};

const char kUsage[] =
    "usage: bitfusion-probe (--socket PATH | --stdout) [--interval DURATION] [--count N]\n"
    "                       [--connect-timeout DURATION] [--proc-root DIR] [--cgroup-root DIR]\n"
    "                       [--no-processes] [--no-cgroup] [--stats] [--control-stdin]\n"
    "                       [-- COMMAND ARGS...]\n"
    "Samples this container's cgroup, /proc/stat, /proc/meminfo and processes every interval\n"
    "(default 10ms) and streams them to the bitfusion host over a unix socket (or stdout).\n"
    "With a COMMAND, runs it, samples until it exits and exits with its status.\n"
    "--control-stdin answers PING records read on stdin; end of stdin is a SIGTERM.\n";

struct Args {
  std::string socket_path;
  bool to_stdout = false;
  std::int64_t interval_ns = 10'000'000;
  std::int64_t count = 0;  // 0 = no limit
  std::int64_t connect_timeout_ns = 10'000'000'000;
  bool stats = false;          // print the probe's own cost on stderr at exit
  bool control_stdin = false;  // PINGs arrive on stdin; its end stops the probe
  SamplerOptions sampler;
  char** command = nullptr;  // argv from after "--"
};

std::int64_t NowNs(clockid_t clock) {
  timespec ts;
  ::clock_gettime(clock, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

std::int64_t OwnCpuNs() {
  rusage ru;
  ::getrusage(RUSAGE_SELF, &ru);
  return (std::int64_t{ru.ru_utime.tv_sec} + ru.ru_stime.tv_sec) * 1'000'000'000 +
         (std::int64_t{ru.ru_utime.tv_usec} + ru.ru_stime.tv_usec) * 1000;
}

// "10ms", "250us", "1.5s", "2m", a bare number is seconds; -1 when malformed.
std::int64_t ParseDuration(const char* text) {
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(text, &end);
  if (end == text || errno != 0 || v < 0) return -1;
  const std::string unit(end);
  double scale = 0;
  if (unit.empty() || unit == "s") scale = 1e9;
  if (unit == "ns") scale = 1;
  if (unit == "us") scale = 1e3;
  if (unit == "ms") scale = 1e6;
  if (unit == "m") scale = 60e9;
  if (scale == 0) return -1;
  return static_cast<std::int64_t>(v * scale);
}

[[noreturn]] void Usage(const std::string& why) {
  std::fprintf(stderr, "bitfusion-probe: %s\n\n%s", why.c_str(), kUsage);
  std::exit(kExitUsage);
}

Args ParseArgs(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) Usage(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--") {
      if (i + 1 < argc) a.command = argv + i + 1;
      break;
    } else if (arg == "--socket") {
      a.socket_path = value();
    } else if (arg == "--stdout") {
      a.to_stdout = true;
    } else if (arg == "--interval") {
      const char* v = value();
      a.interval_ns = ParseDuration(v);
      if (a.interval_ns < 1'000'000 || a.interval_ns > 3'600'000'000'000) {
        Usage(std::string("--interval ") + v + " is not a duration from 1ms to 1h (e.g. 10ms)");
      }
    } else if (arg == "--count") {
      const char* v = value();
      char* end = nullptr;
      a.count = std::strtoll(v, &end, 10);
      if (*end != '\0' || a.count <= 0) Usage(std::string("--count ") + v + " is not positive");
    } else if (arg == "--connect-timeout") {
      const char* v = value();
      a.connect_timeout_ns = ParseDuration(v);
      if (a.connect_timeout_ns < 0) Usage(std::string("--connect-timeout ") + v + " is malformed");
    } else if (arg == "--proc-root") {
      a.sampler.proc_root = value();
    } else if (arg == "--cgroup-root") {
      a.sampler.cgroup_root = value();
    } else if (arg == "--stats") {
      a.stats = true;
    } else if (arg == "--control-stdin") {
      a.control_stdin = true;
    } else if (arg == "--no-cgroup") {
      a.sampler.cgroup_root.clear();
    } else if (arg == "--no-processes") {
      a.sampler.processes = false;
    } else if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    } else {
      Usage("unknown option " + arg);
    }
  }
  if (a.socket_path.empty() == !a.to_stdout) Usage("give exactly one of --socket PATH, --stdout");
  if (a.socket_path.size() >= sizeof(sockaddr_un::sun_path)) {
    Usage("--socket " + a.socket_path + " is longer than a unix socket path may be");
  }
  return a;
}

// Connects to the host's socket, retrying while it is not there yet; -1 with a message.
int Connect(const Args& a, std::string& error) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, a.socket_path.data(), a.socket_path.size());
  const std::int64_t give_up = NowNs(CLOCK_MONOTONIC) + a.connect_timeout_ns;
  for (;;) {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      error = std::string("socket: ") + std::strerror(errno);
      return -1;
    }
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) return fd;
    const int e = errno;
    ::close(fd);
    if ((e != ENOENT && e != ECONNREFUSED) || NowNs(CLOCK_MONOTONIC) >= give_up) {
      error = "cannot connect to " + a.socket_path + ": " + std::strerror(e) +
              " (is the host's probe source listening, and the directory mounted?)";
      return -1;
    }
    ::usleep(20'000);
  }
}

class Output {
 public:
  explicit Output(int fd) : fd_(fd) {}
  bool open() const { return fd_ >= 0; }
  // Writes both buffers whole; on failure (the host went away) the output is closed.
  bool Send(wire::Writer& a, wire::Writer& b) {
    if (fd_ < 0) return false;
    iovec iov[2] = {{a.data(), a.size()}, {b.data(), b.size()}};
    int n = 2;
    iovec* v = iov;
    while (n > 0) {
      const ssize_t w = ::writev(fd_, v, n);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) {
        Close();
        return false;
      }
      std::size_t left = static_cast<std::size_t>(w);
      while (n > 0 && left >= v->iov_len) {
        left -= v->iov_len;
        ++v;
        --n;
      }
      if (n > 0) {
        v->iov_base = static_cast<char*>(v->iov_base) + left;
        v->iov_len -= left;
      }
    }
    return true;
  }
  void Close() {
    if (fd_ > 1) ::close(fd_);
    fd_ = -1;
  }
  int fd() const { return fd_; }

 private:
  int fd_;
};

// The host's control input (--control-stdin): PING records, each answered at once with a PONG
// stamped on this host's CLOCK_REALTIME when the PING was read (t2) and when the PONG is
// written (t3).
class Control {
 public:
  // Reads what is there and answers every whole PING; false at end of input or on a record
  // that is not a PING (the host is gone or is not a bitfusion host: stop either way).
  bool Read(Output& out) {
    const ssize_t n = ::read(0, buffer_ + have_, sizeof buffer_ - have_);
    const std::int64_t t2 = NowNs(CLOCK_REALTIME);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return true;
    if (n <= 0) return false;
    have_ += static_cast<std::size_t>(n);
    std::size_t used = 0;
    std::string error;
    for (;;) {
      wire::Record record;
      std::size_t consumed = 0;
      const wire::Next next =
          wire::NextRecord(buffer_ + used, have_ - used, record, consumed, error);
      if (next == wire::Next::kNeedMore) break;
      wire::Ping ping;
      if (next == wire::Next::kError || record.type != wire::RecordType::kPing ||
          !wire::ParsePing(record, ping, error)) {
        std::fprintf(stderr, "bitfusion-probe: stdin carries no PING records: %s\n",
                     error.empty() ? "another record type" : error.c_str());
        return false;
      }
      used += consumed;
      unsigned char pong_bytes[64];
      wire::Writer pong(pong_bytes, sizeof pong_bytes);
      wire::Writer none(nullptr, 0);
      wire::EncodePong(pong, wire::Pong{ping.t1, t2, NowNs(CLOCK_REALTIME)});
      out.Send(pong, none);
    }
    std::memmove(buffer_, buffer_ + used, have_ - used);
    have_ -= used;
    return true;
  }

 private:
  unsigned char buffer_[4096];
  std::size_t have_ = 0;
};

// Buffers of static storage: the steady state writes into these and nothing else.
unsigned char g_declares[1 << 18];
unsigned char g_tick[1 << 17];

}  // namespace

int main(int argc, char** argv) {
  Args args = ParseArgs(argc, argv);
  ::signal(SIGPIPE, SIG_IGN);

  sigset_t handled, original;
  sigemptyset(&handled);
  sigaddset(&handled, SIGCHLD);
  for (int s : kForwarded) sigaddset(&handled, s);
  ::sigprocmask(SIG_BLOCK, &handled, &original);
  const int sigfd = ::signalfd(-1, &handled, SFD_CLOEXEC | SFD_NONBLOCK);

  args.sampler.self = ::getpid();
  Sampler sampler;
  std::string warnings, error;
  if (!sampler.Open(args.sampler, warnings, error)) {
    std::fprintf(stderr, "bitfusion-probe: %s\n", error.c_str());
    return kExitUsage;
  }
  if (!warnings.empty()) std::fprintf(stderr, "bitfusion-probe: %s", warnings.c_str());

  int out_fd = 1;
  if (!args.to_stdout) {
    out_fd = Connect(args, error);
    if (out_fd < 0) {
      std::fprintf(stderr, "bitfusion-probe: %s%s\n", error.c_str(),
                   args.command != nullptr ? "; running the command without sampling" : "");
      if (args.command == nullptr) return kExitUsage;
    }
  }
  Output out(out_fd);

  wire::Writer declares(g_declares, sizeof g_declares);
  wire::Writer tick(g_tick, sizeof g_tick);
  {
    utsname u{};
    ::uname(&u);
    wire::Hello hello;
    hello.interval_ns = args.interval_ns;
    hello.probe_pid = ::getpid();
    hello.cgroup = sampler.cgroup_layout();
    hello.hostname = u.nodename;
    wire::EncodeHello(declares, hello);
  }

  std::int64_t ticks = 0;
  bool sampling = true;  // false once --count ticks were taken
  auto sample = [&] {
    if (!out.open() || !sampling) return;
    wire::Tick header;
    header.wall_ns = NowNs(CLOCK_REALTIME);
    header.mono_ns = NowNs(CLOCK_MONOTONIC);
    header.probe_cpu_ns = OwnCpuNs();
    if (!sampler.Sample(declares, tick, header)) {
      std::fprintf(stderr, "bitfusion-probe: a sample did not fit its buffer; it is dropped\n");
    } else {
      out.Send(declares, tick);
    }
    declares.Clear();
    tick.Clear();
    ++ticks;
    if (args.count > 0 && ticks >= args.count) sampling = false;
  };
  sample();  // the first sample precedes the command

  pid_t child = -1;
  if (args.command != nullptr) {
    int report[2];  // exec failure -> errno, through a close-on-exec pipe
    if (::pipe2(report, O_CLOEXEC) != 0) return kExitUsage;
    child = ::fork();
    if (child == 0) {
      ::sigprocmask(SIG_SETMASK, &original, nullptr);
      ::signal(SIGPIPE, SIG_DFL);
      if (args.to_stdout) ::dup2(2, 1);  // stdout carries the records
      ::execvp(args.command[0], args.command);
      const int e = errno;
      (void)!::write(report[1], &e, sizeof e);
      ::_exit(127);
    }
    ::close(report[1]);
    int e = 0;
    if (child < 0 || ::read(report[0], &e, sizeof e) == static_cast<ssize_t>(sizeof e)) {
      if (child < 0) e = errno;
      std::fprintf(stderr, "bitfusion-probe: cannot run %s: %s\n", args.command[0],
                   std::strerror(e));
      if (child > 0) ::waitpid(child, nullptr, 0);
      wire::End end;
      end.has_exit = true;
      end.exit_code = e == ENOENT ? 127 : 126;
      end.probe_cpu_ns = OwnCpuNs();
      wire::EncodeEnd(declares, end);
      out.Send(declares, tick);
      return end.exit_code;
    }
    ::close(report[0]);
  }

  // Ticks on absolute monotonic deadlines: a timerfd armed once, so there is no drift; a tick
  // that overran shows as several expirations and the missed ones are skipped.
  const int timer = ::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
  {
    itimerspec spec{};
    const std::int64_t first = NowNs(CLOCK_MONOTONIC) + args.interval_ns;
    spec.it_value = {static_cast<time_t>(first / 1'000'000'000), first % 1'000'000'000};
    spec.it_interval = {static_cast<time_t>(args.interval_ns / 1'000'000'000),
                        args.interval_ns % 1'000'000'000};
    ::timerfd_settime(timer, TFD_TIMER_ABSTIME, &spec, nullptr);
  }

  bool child_done = false;
  int exit_code = 0, exit_signal = 0;
  bool stop = false;
  Control control;
  bool control_open = args.control_stdin;
  while (!stop && (sampling || child > 0)) {
    pollfd fds[4] = {{timer, POLLIN, 0},
                     {sigfd, POLLIN, 0},
                     {out.fd(), POLLIN, 0},
                     {control_open ? 0 : -1, POLLIN, 0}};
    if (!out.open() || args.to_stdout) fds[2].fd = -1;  // poll skips negative descriptors
    if (::poll(fds, 4, -1) < 0 && errno != EINTR) break;
    if (fds[3].revents & (POLLIN | POLLHUP | POLLERR)) {
      if (!control.Read(out)) {
        control_open = false;
        if (child > 0) {
          ::kill(child, SIGTERM);
        } else {
          stop = true;
        }
      }
    }
    if (fds[1].revents & POLLIN) {
      signalfd_siginfo si;
      while (::read(sigfd, &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
        const int sig = static_cast<int>(si.ssi_signo);
        if (sig == SIGCHLD) {
          // Reap everything: when it is PID 1 the probe inherits the container's orphans.
          int status = 0;
          pid_t pid;
          while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
            if (pid != child) continue;
            child_done = true;
            exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
            exit_signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
          }
          if (child_done) stop = true;
        } else if (child > 0) {
          ::kill(child, sig);
        } else {
          stop = true;
        }
      }
    }
    if (fds[2].fd >= 0 && (fds[2].revents & (POLLIN | POLLHUP | POLLERR))) {
      // The host sends nothing: readable means it closed its end.
      out.Close();
      if (child <= 0) stop = true;
    }
    if (fds[0].revents & POLLIN) {
      std::uint64_t expirations = 0;
      (void)!::read(timer, &expirations, sizeof expirations);
      if (!stop) sample();
      if (!out.open() && child <= 0) stop = true;  // the host went away: nobody to sample for
    }
  }
  if (child_done) sample();  // the last sample, after the command

  wire::End end;
  end.has_exit = child_done;
  end.exit_code = exit_code;
  end.signal = exit_signal;
  end.probe_cpu_ns = OwnCpuNs();
  if (out.open()) {
    declares.Clear();
    tick.Clear();
    wire::EncodeEnd(declares, end);
    out.Send(declares, tick);
  }
  if (args.stats) {
    rusage ru;
    ::getrusage(RUSAGE_SELF, &ru);
    std::fprintf(stderr,
                 "bitfusion-probe: %lld ticks, %d processes, CPU %.3f ms in all, %.2f us per tick, "
                 "max RSS %ld KiB\n",
                 static_cast<long long>(ticks), sampler.processes(), end.probe_cpu_ns / 1e6,
                 ticks > 0 ? end.probe_cpu_ns / 1e3 / static_cast<double>(ticks) : 0.0,
                 ru.ru_maxrss);
  }
  if (!child_done) return 0;
  return exit_signal != 0 ? 128 + exit_signal : exit_code;
}
