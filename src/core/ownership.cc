#include "bitfusion/ownership.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <mutex>
#include <sstream>

#include "bitfusion/clock.h"
#include "core/proc_pid_stat.h"

namespace bitfusion {
namespace {

std::string ReadHostName() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0) return "unknown";
  return name;
}

std::string ReadBootId() {
  std::ifstream in("/proc/sys/kernel/random/boot_id");
  std::string id;
  std::getline(in, id);
  return id;
}

std::string ReadPidNamespace() {
  // "pid:[4026531836]" -> "4026531836".
  char link[64] = {};
  const ssize_t n = ::readlink("/proc/self/ns/pid", link, sizeof link - 1);
  if (n <= 0) return "";
  const std::string text(link, static_cast<std::size_t>(n));
  const auto open = text.find('[');
  const auto close = text.find(']');
  if (open == std::string::npos || close == std::string::npos || close <= open + 1) return "";
  return text.substr(open + 1, close - open - 1);
}

}  // namespace

const OwnerIdentity& OwnerIdentity::Self() {
  // Read again in a forked child: it is another process, and resources it makes are its own.
  static std::mutex mu;
  static OwnerIdentity self;
  std::lock_guard lock(mu);
  if (self.pid != static_cast<int>(::getpid())) {
    OwnerIdentity o;
    o.host = ReadHostName();
    o.pid = static_cast<int>(::getpid());
    o.pid_start = ProcessStartTicks(o.pid);
    o.boot_id = ReadBootId();
    o.pid_ns = ReadPidNamespace();
    self = std::move(o);
  }
  return self;
}

Labels OwnerLabels(const std::string& run_id, std::int64_t ttl_s) {
  const OwnerIdentity& self = OwnerIdentity::Self();
  Labels labels;
  labels[kLabelCreator] = "bitfusion";
  if (!run_id.empty()) labels[kLabelRunId] = run_id;
  labels[kLabelHost] = self.host;
  labels[kLabelPid] = std::to_string(self.pid);
  labels[kLabelPidStart] = std::to_string(self.pid_start);
  if (!self.boot_id.empty()) labels[kLabelBootId] = self.boot_id;
  if (!self.pid_ns.empty()) labels[kLabelPidNs] = self.pid_ns;
  if (ttl_s > 0) labels[kLabelExpires] = std::to_string(WallNowNs() / 1'000'000'000 + ttl_s);
  return labels;
}

std::string ReapReason(const Labels& labels, const ReapPolicy& policy, std::int64_t now_s) {
  auto get = [&](const char* key) {
    auto it = labels.find(key);
    return it == labels.end() ? std::string() : it->second;
  };
  if (get(kLabelCreator) != "bitfusion") return "";
  if (!policy.run_id.empty()) {
    return get(kLabelRunId) == policy.run_id ? "of run " + policy.run_id : "";
  }
  const OwnerIdentity& self = OwnerIdentity::Self();
  // An object whose creating host is unknown (a cloud machine whose creator died before it
  // could tag it, shown with only the creator and expiry labels) is every host's to reap.
  const bool here = get(kLabelHost).empty() || get(kLabelHost) == self.host;
  if (policy.dead_creators && here && !get(kLabelPid).empty()) {
    const std::string boot = get(kLabelBootId);
    if (!boot.empty() && !self.boot_id.empty() && boot != self.boot_id) {
      return "its creator, process " + get(kLabelPid) + ", ran before this host rebooted";
    }
  }
  // A PID means something only in the namespace it was taken in: a creator in another
  // container with the same host name is judged by expiry alone.
  const std::string ns = get(kLabelPidNs);
  const bool same_pid_ns = ns.empty() || (!self.pid_ns.empty() && ns == self.pid_ns);
  if (policy.dead_creators && here && same_pid_ns && !get(kLabelPid).empty()) {
    const int pid = static_cast<int>(std::strtol(get(kLabelPid).c_str(), nullptr, 10));
    const std::uint64_t start = std::strtoull(get(kLabelPidStart).c_str(), nullptr, 10);
    // A label without a start time cannot tell a reused PID apart; a recorded 0 means the
    // creator could not read its own, so only the PID is checked then too.
    if (!ProcessAlive(pid, get(kLabelPidStart).empty() ? 0 : start)) {
      return "its creator, process " + get(kLabelPid) + ", is gone";
    }
  }
  const std::string expires = get(kLabelExpires);
  if (!expires.empty() && ((policy.expired && here) || policy.expired_any_host)) {
    const std::int64_t at = std::strtoll(expires.c_str(), nullptr, 10);
    if (at > 0 && at < now_s) return "expired " + std::to_string(now_s - at) + " s ago";
  }
  return "";
}

std::uint64_t ProcessStartTicks(int pid) {
  const auto st = internal::ParseProcPidStat(internal::ReadProcPidStat(pid));
  return st ? st->start_ticks : 0;
}

bool ProcessAlive(int pid, std::uint64_t start_ticks) {
  if (pid <= 0) return false;
  if (::kill(pid, 0) != 0 && errno != EPERM) return false;
  // The PID exists. Its /proc entry tells a zombie and a reused PID apart; with hidepid (or
  // another user's process) there is none to read, and nothing then proves the creator gone.
  const auto st = internal::ParseProcPidStat(internal::ReadProcPidStat(pid));
  if (!st) return true;
  // A zombie (killed, not yet reaped by whoever adopted it) has ended: what it made is left.
  if (st->state == 'Z' || st->state == 'X') return false;
  return start_ticks == 0 || st->start_ticks == start_ticks;
}

}  // namespace bitfusion
