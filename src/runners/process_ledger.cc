#include "runners/process_ledger.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <cerrno>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>

#include "bitfusion/clock.h"
#include "bitfusion/log.h"
#include "core/state_dir.h"

namespace bitfusion::internal {
namespace {

namespace json = boost::json;
namespace fs = std::filesystem;

constexpr const char* kRemedy = "set XDG_STATE_HOME or HOME to a directory of your own";

// Fields 5 (process group) and 22 (start time in ticks) of /proc/PID/stat.
bool ReadStat(const fs::path& stat, long& pgrp, std::uint64_t& start) {
  std::ifstream in(stat);
  std::string text((std::istreambuf_iterator<char>(in)), {});
  const auto paren = text.rfind(')');
  if (paren == std::string::npos) return false;
  std::istringstream fields(text.substr(paren + 1));
  std::string f;
  for (int field = 3; fields >> f; ++field) {
    if (field == 5) pgrp = std::strtol(f.c_str(), nullptr, 10);
    if (field == 22) {
      start = std::strtoull(f.c_str(), nullptr, 10);
      return true;
    }
  }
  return false;
}

// The members of group `pgid` that started no earlier than its leader did: what that group
// still holds. Empty when the id now names another group: its leader (pid == pgid) runs with
// another start time. (While a group has members its id is not given to a new process, so a
// group without its leader is still the one recorded.)
std::vector<pid_t> Members(pid_t pgid, std::uint64_t leader_start) {
  std::vector<pid_t> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    long pgrp = 0;
    std::uint64_t start = 0;
    if (!ReadStat(entry.path() / "stat", pgrp, start) || pgrp != pgid) continue;
    const auto pid = static_cast<pid_t>(std::stol(name));
    if (pid == pgid && start != leader_start) return {};  // reused
    if (start >= leader_start) out.push_back(pid);
  }
  return out;
}

void Write(const fs::path& path, const json::object& entry) {
  // Written whole to a temporary name and renamed, so a reader never sees half an entry.
  const fs::path tmp = path.string() + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return;
  const std::string text = json::serialize(entry);
  const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::close(fd);
  std::error_code ec;
  if (ok) {
    fs::rename(tmp, path, ec);
  } else {
    fs::remove(tmp, ec);
  }
}

}  // namespace

Result<fs::path> ProcessLedger::Dir() {
  BITFUSION_ASSIGN_OR_RETURN(const fs::path state, StateDir(kRemedy));
  const fs::path dir = state / "processes";
  BITFUSION_RETURN_IF_ERROR(EnsurePrivateDir(dir, kRemedy));
  return dir;
}

fs::path ProcessLedger::Record(pid_t pgid, const Labels& labels, const std::string& what) {
  const Result<fs::path> dir = Dir();
  if (!dir) {
    static std::once_flag once;
    std::call_once(once, [&] {
      LogAt(LogLevel::kWarning, "process:// groups are not recorded for the reaper (",
            dir.error().message(), "); a bitfusion killed with SIGKILL would leave them running");
    });
    return {};
  }
  const std::uint64_t start = ProcessStartTicks(pgid);
  json::object entry{{"pgid", pgid}, {"start_ticks", start}, {"what", what}};
  json::object l;
  for (const auto& [k, v] : labels) l[k] = v;
  const std::string run_id = labels.count(kLabelRunId) ? labels.at(kLabelRunId) : "";
  for (const auto& [k, v] : OwnerLabels(run_id, 0)) l[k] = v;
  entry["labels"] = std::move(l);
  const fs::path path = *dir / (std::to_string(pgid) + "-" + std::to_string(start) + ".json");
  Write(path, entry);
  return path;
}

void ProcessLedger::Keep(const fs::path& entry) {
  if (entry.empty()) return;
  std::ifstream in(entry);
  std::string text((std::istreambuf_iterator<char>(in)), {});
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) return;
  if (json::value* l = v.as_object().if_contains("labels"); l != nullptr && l->is_object()) {
    for (const char* key : kCreatorProcessLabels) l->as_object().erase(key);
  }
  Write(entry, v.as_object());
}

void ProcessLedger::Remove(const fs::path& entry) {
  if (entry.empty()) return;
  std::error_code ec;
  fs::remove(entry, ec);
}

Result<ReapReport> ProcessLedger::Reap(const ReapPolicy& policy) {
  BITFUSION_ASSIGN_OR_RETURN(const fs::path dir, Dir());
  ReapReport report;
  const std::int64_t now_s = WallNowNs() / 1'000'000'000;
  std::error_code ec;
  for (const auto& file : fs::directory_iterator(dir, ec)) {
    if (file.path().extension() != ".json") continue;
    std::ifstream in(file.path());
    std::string text((std::istreambuf_iterator<char>(in)), {});
    boost::system::error_code parse_ec;
    const json::value v = json::parse(text, parse_ec);
    const json::object* o = parse_ec ? nullptr : v.if_object();
    const json::value* pgid_v = o != nullptr ? o->if_contains("pgid") : nullptr;
    const json::value* start_v = o != nullptr ? o->if_contains("start_ticks") : nullptr;
    if (pgid_v == nullptr || start_v == nullptr || !pgid_v->is_number() || !start_v->is_number()) {
      report.errors.push_back(file.path().string() + ": not a ledger entry; left alone");
      continue;
    }
    const auto pgid = static_cast<pid_t>(pgid_v->to_number<std::int64_t>());
    const auto start = start_v->to_number<std::uint64_t>();
    Labels labels;
    if (const json::value* l = o->if_contains("labels"); l != nullptr && l->is_object()) {
      for (const auto& [k, val] : l->as_object()) {
        if (val.is_string()) labels[std::string(k)] = std::string(val.as_string());
      }
    }
    const std::vector<pid_t> members = Members(pgid, start);
    if (members.empty()) {
      if (!policy.dry_run) fs::remove(file.path(), ec);  // ended (its creator was killed)
      continue;
    }
    const std::string why = ReapReason(labels, policy, now_s);
    if (why.empty()) continue;
    const json::value* what = o->if_contains("what");
    const std::string line =
        "process group " + std::to_string(pgid) + " " +
        (what != nullptr && what->is_string() ? std::string(what->as_string()) : std::string()) +
        " (" + why + ")";
    if (!policy.dry_run) {
      for (const pid_t pid : members) ::kill(pid, SIGKILL);
      fs::remove(file.path(), ec);
    }
    report.containers.push_back(line);
  }
  return report;
}

}  // namespace bitfusion::internal
