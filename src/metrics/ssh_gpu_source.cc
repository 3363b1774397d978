#include "metrics/ssh_gpu_source.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <utility>

#include "bitfusion/clock.h"
#include "bitfusion/log.h"
#include "bitfusion/registry.h"
#include "core/clock.h"
#include "core/shell_quote.h"
#include "core/spawn.h"
#include "core/text_file.h"
#include "devices/nvml_api.h"
#include "metrics/remote_probe_host.h"
#include "metrics/ssh_probe_source.h"
#include "net/ssh_session.h"
#include "net/ssh_uri.h"

namespace bitfusion {
namespace {

using internal::Trim;

// "2026/12/05 11:30:00.123" read as UTC; nullopt when it is not that shape.
std::optional<std::int64_t> ParseStamp(std::string_view text) {
  const std::string s(text);
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0, used = 0;
  if (std::sscanf(s.c_str(), "%4d/%2d/%2d %2d:%2d:%2d%n", &year, &month, &day, &hour, &minute,
                  &second, &used) != 6) {
    return std::nullopt;
  }
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) {
    return std::nullopt;
  }
  std::int64_t fraction_ns = 0;
  std::size_t at = static_cast<std::size_t>(used);
  if (at < s.size()) {
    if (s[at] != '.') return std::nullopt;
    std::int64_t scale = 100'000'000;
    for (++at; at < s.size(); ++at, scale /= 10) {
      if (s[at] < '0' || s[at] > '9') return std::nullopt;
      fraction_ns += (s[at] - '0') * scale;
    }
  }
  struct tm tm {};
  tm.tm_year = year - 1900;
  tm.tm_mon = month - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  tm.tm_sec = second;
  const time_t t = ::timegm(&tm);
  return static_cast<std::int64_t>(t) * 1'000'000'000 + fraction_ns;
}

}  // namespace

namespace internal {

const char* const kNvidiaSmiQuery =
    "timestamp,index,pci.bus_id,uuid,utilization.gpu,utilization.memory,memory.used,"
    "memory.total,power.draw,temperature.gpu,clocks.gr,clocks.sm,clocks.mem";

// What each value is multiplied by to be in its metric's unit (MiB, MHz).
constexpr double kScale[kGpuMetricCount] = {1,   1,  1024.0 * 1024.0, 1024.0 * 1024.0, 1, 1, 1e6,
                                            1e6, 1e6};

std::optional<NvidiaSmiLine> ParseNvidiaSmiLine(std::string_view line) {
  std::vector<std::string> fields;
  for (std::size_t start = 0;;) {
    const std::size_t comma = line.find(',', start);
    fields.push_back(Trim(line.substr(start, comma - start)));
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  if (fields.size() != 4 + kGpuMetricCount) return std::nullopt;  // stamp, index, bus id, uuid
  NvidiaSmiLine out;
  const auto stamp = ParseStamp(fields[0]);
  if (!stamp) return std::nullopt;
  out.wall_ns = *stamp;
  if (fields[1].empty() || !std::all_of(fields[1].begin(), fields[1].end(),
                                        [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  out.index = fields[1];
  out.pci_bus_id = nvml::NormalizeBusId(fields[2].c_str());
  if (out.pci_bus_id.empty()) return std::nullopt;
  if (!fields[3].starts_with("[") && fields[3] != "N/A") out.uuid = fields[3];
  for (std::size_t k = 0; k < internal::kGpuMetricCount; ++k) {
    const std::string& v = fields[4 + k];
    // "[N/A]", "[Not Supported]", "[Unknown Error]", and older drivers' bare "N/A".
    if (v.starts_with("[") || v == "N/A") continue;
    double value = 0;
    const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), value);
    if (ec != std::errc() || end != v.data() + v.size()) return std::nullopt;
    out.values[k] = value * kScale[k];
  }
  return out;
}

}  // namespace internal

namespace {

constexpr std::size_t kMaxLineBytes = 64 * 1024;
constexpr int kPipeBytes = 1 << 20;

// Run by `sh` whatever the login shell is. nvidia-smi reads nothing; the channel's input is kept
// on fd 3 for a background `cat`, whose end (end of input: the source went, or the connection)
// ends nvidia-smi. When nvidia-smi ends on its own the shell exits with its status and the
// channel closes (the `cat` writes to neither of its outputs).
std::string RemoteScript(const SshGpuSourceOptions& o) {
  const auto ms = std::max<std::int64_t>(
      1, std::chrono::duration_cast<std::chrono::milliseconds>(o.interval).count());
  const std::string body = std::string("exec 3<&0 </dev/null\n") +
                           "TZ=UTC0 \"$0\" --query-gpu=" + internal::kNvidiaSmiQuery +
                           " --format=csv,noheader,nounits -lms " + std::to_string(ms) +
                           " 2>&1 &\n"
                           "p=$!\n"
                           "{ cat <&3 >/dev/null 2>&1; kill $p 2>/dev/null; } >/dev/null 2>&1 &\n"
                           "exec 3<&-\n"
                           "wait $p\n";
  return "exec sh -c " + ShellQuote(body) + " " + ShellQuote(o.nvidia_smi);
}

}  // namespace

Result<SshGpuSourceOptions> SshGpuSourceOptions::FromUri(const Uri& uri) {
  std::vector<std::string_view> keys = internal::kSshUriKeys;
  keys.insert(keys.end(),
              {"interval", "machine", "probe", "start_timeout", "clock_exchanges", "nvidia_smi"});
  BITFUSION_RETURN_IF_ERROR(uri.CheckQueryKeys(keys));
  SshGpuSourceOptions o;
  BITFUSION_ASSIGN_OR_RETURN(o.interval, uri.QueryDuration("interval", o.interval));
  if (o.interval < std::chrono::milliseconds(20) || o.interval > std::chrono::hours(1)) {
    return InvalidArgumentError("gpu+ssh:// option interval " + FormatDuration(o.interval) +
                                " is outside 20ms .. 1h (nvidia-smi's loop on the machine)");
  }
  o.nvidia_smi = uri.Query("nvidia_smi").value_or(o.nvidia_smi);
  if (o.nvidia_smi.empty() ||
      o.nvidia_smi.find_first_of(std::string("\n\0", 2)) != std::string::npos) {
    return InvalidArgumentError(
        "gpu+ssh:// option nvidia_smi must name the nvidia-smi to run on the machine (a path or a "
        "name on its PATH)");
  }
  // The login, checked as host+ssh:// checks it: the clock probe is one.
  Uri login = uri;
  login.scheme = "host+ssh";
  std::erase_if(login.query,
                [](const auto& kv) { return kv.first == "interval" || kv.first == "nvidia_smi"; });
  auto checked = SshProbeSourceOptions::FromUri(login);
  if (!checked) return checked.error().WithContext("gpu+ssh://");
  const SshProbeSourceOptions& probe = *checked;
  o.login = login.ToString();
  o.machine = probe.machine.empty() ? probe.target.ToString() : probe.machine;
  o.probe_path = probe.probe_path;
  o.start_timeout = probe.start_timeout;
  return o;
}

Result<std::shared_ptr<SshGpuSource>> SshGpuSource::Make(const SshGpuSourceOptions& options) {
  std::shared_ptr<SshGpuSource> s(new SshGpuSource());
  s->uri_ = "gpu+ssh://" + options.login.substr(options.login.find("://") + 3);
  s->machine_ = options.machine;
  const std::int64_t deadline = MonoNowNs() + options.start_timeout.count();
  BITFUSION_ASSIGN_OR_RETURN(s->clock_, RemoteProbeHost::Open(options.login, options.probe_path));
  s->shift_wall_ns_ = s->clock_->time_shift().wall_ns;
  s->clock_labels_ = s->clock_->labels();
  BITFUSION_ASSIGN_OR_RETURN(SshChild child, s->clock_->session()->Spawn(RemoteScript(options)));
  s->pid_ = child.pid;
  s->stdin_fd_ = child.stdin_fd;
  s->stdout_fd_ = child.stdout_fd;
  s->stderr_fd_ = child.stderr_fd;
  for (const int fd : {s->stdout_fd_, s->stderr_fd_}) {
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  }
  // Room for several seconds of lines between two ticks; where the kernel refuses (a per-user
  // pipe limit), the default 64 KiB holds about a second of eight GPUs at 100 ms.
  (void)::fcntl(s->stdout_fd_, F_SETPIPE_SZ, kPipeBytes);

  // Its first sample (a warning it prints before, an infoROM one say, does not count), or the
  // end of what it says instead when it cannot read a GPU.
  const auto has_sample = [&s] {
    std::string_view rest(s->buffer_);
    for (std::size_t eol; (eol = rest.find('\n')) != std::string_view::npos;
         rest.remove_prefix(eol + 1)) {
      if (internal::ParseNvidiaSmiLine(rest.substr(0, eol))) return true;
    }
    return false;
  };
  while (!has_sample() && s->ReadAvailable()) {
    pollfd pfd{s->stdout_fd_, POLLIN, 0};
    if (::poll(&pfd, 1, internal::PollMsUntil(deadline)) == 0) {
      return DeadlineExceededError(
          "gpu+ssh: nvidia-smi on " + s->machine_ + " gave no sample within " +
          FormatDuration(options.start_timeout) +
          (s->buffer_.empty() ? "" : " (it said \"" + Trim(s->buffer_) + "\")"));
    }
  }
  if (has_sample()) {
    s->enabled_ = true;
    return s;
  }
  std::string said = Trim(s->buffer_);
  s->End("");
  if (said.size() > 400) said = said.substr(0, 400) + "…";
  const std::string what = s->answered_ ? "machine " + s->machine_ + " has no GPU that " +
                                              options.nvidia_smi + " can read"
                                        : options.nvidia_smi + " on machine " + s->machine_ +
                                              " gave no answer before its connection ended";
  s->disabled_why_ =
      what + " (" + (said.empty() ? "it said nothing" : "\"" + said + "\"") + ", " + s->end_ + ")";
  LogOnceAt(LogLevel::kWarning, "gpu+ssh-disabled:" + s->machine_ + (s->answered_ ? "" : ":lost"),
            "gpu+ssh: ", s->disabled_why_,
            s->answered_ ? "; its GPUs are not sampled" : "; this source samples nothing");
  return s;
}

SshGpuSource::~SshGpuSource() {
  if (stdin_fd_ >= 0) ::close(stdin_fd_);  // end of input: the remote shell ends nvidia-smi
  stdin_fd_ = -1;
  if (pid_ > 0) {
    // Its channel closes once nvidia-smi has gone; then the client exits.
    const std::int64_t deadline = MonoNowNs() + 5'000'000'000;
    while (ReadAvailable()) {
      pollfd pfd{stdout_fd_, POLLIN, 0};
      if (::poll(&pfd, 1, internal::PollMsUntil(deadline)) == 0) break;
    }
    End("");
  }
  for (int* fd : {&stdout_fd_, &stderr_fd_}) {
    if (*fd >= 0) ::close(*fd);
    *fd = -1;
  }
  clock_.reset();  // ends the clock probe; its directory goes with it
}

bool SshGpuSource::ReadAvailable() {
  if (eof_ || stdout_fd_ < 0) return false;
  char chunk[16384];
  for (;;) {
    const ssize_t n = ::read(stdout_fd_, chunk, sizeof chunk);
    if (n > 0) {
      buffer_.append(chunk, static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return true;
    eof_ = true;  // end of output, or an error reading it: either way nothing more comes
    return false;
  }
}

// Reaps the ssh client (killing it if it has not gone) and records why the stream ended.
void SshGpuSource::End(const std::string& why) {
  if (pid_ <= 0) return;
  // Up to a second after the end of its output.
  const internal::Reaped r = internal::ReapWithin(pid_, std::chrono::seconds(1));
  pid_ = -1;
  std::string how = "its connection ended";
  if (r.reaped && !r.killed && WIFEXITED(r.status)) {
    const int code = WEXITSTATUS(r.status);
    answered_ = code != 255;  // 255: ssh's own failure, not nvidia-smi's answer
    how = code == 255   ? "ssh lost the connection"
          : code == 127 ? "nvidia-smi was not found there (exit status 127)"
                        : "nvidia-smi exited with status " + std::to_string(code);
  }
  char err[2048];
  const ssize_t n = stderr_fd_ >= 0 ? ::read(stderr_fd_, err, sizeof err) : -1;
  if (n > 0) how += ": " + Trim(std::string_view(err, static_cast<std::size_t>(n)));
  end_ = why.empty() ? how : why;
}

void SshGpuSource::Deliver(std::string_view line, SampleBatch& batch,
                           std::int64_t wall_minus_mono) {
  const auto parsed = internal::ParseNvidiaSmiLine(line);
  if (!parsed) {
    if (std::string text = Trim(line); !text.empty()) last_text_ = std::move(text);
    return;
  }
  auto [it, fresh] = devices_.try_emplace(parsed->uuid.empty() ? parsed->index : parsed->uuid);
  Device& d = it->second;
  if (fresh) {
    d.labels = clock_labels_;
    d.labels["gpu"] = parsed->index;
    d.labels["pci_bus_id"] = parsed->pci_bus_id;
    if (!parsed->uuid.empty()) d.labels["uuid"] = parsed->uuid;
    std::fill(std::begin(d.series), std::end(d.series), -1);
  }
  const std::int64_t wall = parsed->wall_ns + shift_wall_ns_;
  for (std::size_t k = 0; k < internal::kGpuMetricCount; ++k) {
    if (!parsed->values[k]) continue;
    if (d.series[k] < 0) {
      d.series[k] = batch.AddSeries(
          {internal::kGpuMetrics[k].name, internal::kGpuMetrics[k].unit, d.labels, false});
    }
    batch.Append(static_cast<std::uint32_t>(d.series[k]), wall, wall - wall_minus_mono,
                 *parsed->values[k]);
  }
}

Status SshGpuSource::Collect(Timestamp now, SampleBatch& batch) {
  if (!enabled_) return Status::OK();
  if (batch.series.size() != series_end_) {
    // A fresh batch: the series known so far are declared in it again.
    for (auto& [key, d] : devices_) {
      for (std::size_t k = 0; k < internal::kGpuMetricCount; ++k) {
        if (d.series[k] < 0) continue;
        d.series[k] = batch.AddSeries(
            {internal::kGpuMetrics[k].name, internal::kGpuMetrics[k].unit, d.labels, false});
      }
    }
  }
  ReadAvailable();
  const std::size_t before = batch.size();
  std::size_t start = 0;
  for (std::size_t eol; (eol = buffer_.find('\n', start)) != std::string::npos; start = eol + 1) {
    Deliver(std::string_view(buffer_).substr(start, eol - start), batch, now.wall_ns - now.mono_ns);
  }
  buffer_.erase(0, start);
  series_end_ = batch.series.size();
  if (buffer_.size() > kMaxLineBytes) {
    buffer_.clear();
    End("nvidia-smi on " + machine_ +
        " wrote a line of more than 64 KiB, which is not its query's");
    eof_ = true;
  }
  if (!eof_) return Status::OK();
  if (end_.empty()) End("");
  if (batch.size() > before) return Status::OK();  // the end is said on the next call
  return NotFoundError("gpu+ssh: nvidia-smi on " + machine_ + " stopped: " + end_ +
                       (last_text_.empty() ? "" : " (it said \"" + last_text_ + "\")"));
}

BITFUSION_REGISTER(MetricSource, "gpu+ssh", SshGpuSourceOptions, SshGpuSource);

}  // namespace bitfusion
