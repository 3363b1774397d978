#include "experiment/machine_preflight.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <deque>
#include <mutex>
#include <sstream>

#include "bitfusion/log.h"
#include "core/ascii.h"
#include "experiment/number_format.h"

namespace bitfusion::internal {
namespace {

using namespace std::chrono_literals;

constexpr std::size_t kOutputTail = 20;  // lines of a failed step's output kept for its error
constexpr auto kPoll = 200ms;            // how often a running step looks at `cancel`

// Accelerator drivers the preflight looks for (kernel module names, as /sys/module has them).
struct DriverKind {
  const char* module;
  const char* kind;    // what MachineRequirements::accelerator_kind calls it
  const char* vendor;  // as in AcceleratorInfo::vendor
};
constexpr DriverKind kDrivers[] = {
    {"nvidia", "gpu", "NVIDIA"},  {"amdgpu", "gpu", "AMD"},
    {"i915", "gpu", "Intel"},     {"xe", "gpu", "Intel"},
    {"xocl", "fpga", "Xilinx"},   {"xclmgmt", "fpga", "Xilinx"},
    {"dfl_fme", "fpga", "Intel"}, {"habanalabs", "accelerator", "Habana"},
};

// The preflight, as POSIX sh (GNU or busybox stat): $1 is the engine's data root, or empty for
// the login directory.
std::string PreflightScript() {
  std::string modules;
  for (const auto& d : kDrivers) modules += std::string(modules.empty() ? "" : " ") + d.module;
  return "root=${1:-$(pwd)}\n"
         "printf 'kernel %s\\n' \"$(uname -r)\"\n"
         "printf 'root %s\\n' \"$root\"\n"
         "stat -f -c 'fs %d %a %S' \"$root\" || exit 3\n"
         "for m in " +
         modules +
         "; do\n"
         "  if [ -r /sys/module/$m/version ]; then\n"
         "    printf 'driver %s %s\\n' \"$m\" \"$(cat /sys/module/$m/version)\"\n"
         "  elif [ -d /sys/module/$m ]; then printf 'driver %s\\n' \"$m\"; fi\n"
         "done\n";
}

// A command run to its end on the machine: exit status and the last lines it printed.
struct ShellOutcome {
  Result<ExitStatus> exit = InternalError("not run");
  std::deque<std::string> lines;  // the last of stdout and stderr, interleaved as they came
  std::string out;                // all of stdout, when asked for
  bool cancelled = false;
};

ShellOutcome RunShell(ContainerRunner& shell, const std::vector<std::string>& argv,
                      std::chrono::seconds timeout, std::size_t keep, bool keep_stdout,
                      const std::atomic<bool>* cancel) {
  ShellOutcome out;
  ContainerSpec spec;
  spec.command = argv;
  spec.timeout_ns = std::chrono::nanoseconds(timeout).count();
  auto container = shell.Create(spec);
  if (!container) {
    out.exit = container.error();
    return out;
  }
  std::mutex mu;
  Subscription logs = (*container)->Logs([&](LogStream stream, std::string_view line) {
    std::lock_guard lock(mu);
    if (keep_stdout && stream == LogStream::kStdout) out.out.append(line).push_back('\n');
    out.lines.emplace_back(line);
    if (out.lines.size() > keep) out.lines.pop_front();
  });
  if (Status s = (*container)->Start(); !s.ok()) {
    out.exit = s;
    return out;
  }
  while (true) {
    out.exit = (*container)->Wait(DeadlineAfter(kPoll));
    if (out.exit.ok() || out.exit.error().code() != StatusCode::kDeadlineExceeded) break;
    if (!out.cancelled && cancel != nullptr && cancel->load()) {
      out.cancelled = true;
      (void)(*container)->Stop(2s);
    }
  }
  logs.Cancel();
  return out;
}

std::string Tail(const std::deque<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += "\n  | " + l;
  return out;
}

// What went wrong with a step that did not exit 0, for its error message.
std::string HowItEnded(const ShellOutcome& o) {
  if (!o.exit.ok()) return o.exit.error().message();
  if (o.cancelled) return "was interrupted";
  if (o.exit->timed_out) return "timed out";
  if (o.exit->signal != 0) return "was killed by signal " + std::to_string(o.exit->signal);
  return "exited with status " + std::to_string(o.exit->exit_code);
}

bool ParseUnsigned(std::string_view text, std::uint64_t& out) {
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size() && !text.empty();
}

std::vector<std::string_view> Words(std::string_view line) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && line[i] == ' ') ++i;
    const std::size_t start = i;
    while (i < line.size() && line[i] != ' ') ++i;
    if (i > start) out.push_back(line.substr(start, i - start));
  }
  return out;
}

}  // namespace

int CompareVersions(std::string_view a, std::string_view b) {
  // Numbers until the first character that is neither a digit nor a dot ("+dfsg1", "-ce").
  auto numbers = [](std::string_view v) {
    std::vector<std::uint64_t> out;
    std::uint64_t n = 0;
    bool any = false;
    for (const char c : v) {
      if (c >= '0' && c <= '9') {
        n = std::min<std::uint64_t>(n * 10 + static_cast<std::uint64_t>(c - '0'), 1u << 30);
        any = true;
      } else if (c == '.') {
        out.push_back(n);
        n = 0;
        any = false;
      } else {
        break;
      }
    }
    if (any) out.push_back(n);
    return out;
  };
  const auto x = numbers(a);
  const auto y = numbers(b);
  for (std::size_t i = 0; i < std::max(x.size(), y.size()); ++i) {
    const std::uint64_t p = i < x.size() ? x[i] : 0;
    const std::uint64_t q = i < y.size() ? y[i] : 0;
    if (p != q) return p < q ? -1 : 1;
  }
  return 0;
}

Status ParsePreflightOutput(std::string_view text, MachinePreflight& out) {
  bool kernel = false;
  bool fs = false;
  std::istringstream in{std::string(text)};
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const auto w = Words(line);
    const std::string_view key = w.empty() ? std::string_view() : w[0];
    if (key == "kernel" && w.size() == 2) {
      out.kernel = std::string(w[1]);
      kernel = true;
    } else if (key == "root" && line.size() > 5) {
      out.data_root = line.substr(5);
    } else if (key == "fs" && w.size() == 4) {
      std::uint64_t inodes = 0, blocks = 0, block_size = 0;
      if (!ParseUnsigned(w[1], inodes) || !ParseUnsigned(w[2], blocks) ||
          !ParseUnsigned(w[3], block_size) || block_size == 0 || blocks > UINT64_MAX / block_size) {
        return InvalidArgumentError("preflight: cannot read free inodes and space from \"" + line +
                                    "\"");
      }
      out.free_inodes = inodes;
      out.free_bytes = blocks * block_size;
      fs = true;
    } else if (key == "driver" && (w.size() == 2 || w.size() == 3)) {
      out.accelerator_drivers.push_back(std::string(w[1]) +
                                        (w.size() == 3 ? " " + std::string(w[2]) : ""));
    } else {
      return InvalidArgumentError("preflight: unexpected line \"" + line + "\"");
    }
  }
  if (!kernel) return InvalidArgumentError("preflight: the kernel release is missing");
  if (!fs) return InvalidArgumentError("preflight: free inodes and space are missing");
  return Status::OK();
}

std::string JudgePreflight(const MachineGroupSpec& group, const MachinePreflight& found) {
  const PreflightLimits& limits = group.preflight;
  const std::string where = " on " + found.data_root;
  if (found.free_inodes < limits.min_free_inodes) {
    return std::to_string(found.free_inodes) + " free inodes" + where + ", below the " +
           std::to_string(limits.min_free_inodes) +
           " this group needs (\"preflight\": {\"min_free_inodes\"}); remove unused images and "
           "containers there (docker system prune) or lower the limit";
  }
  if (found.free_bytes < limits.min_free_bytes) {
    return FormatBytes(found.free_bytes) + " free" + where + ", below the " +
           FormatBytes(limits.min_free_bytes) +
           " this group needs (\"preflight\": {\"min_free_space\"}); free space there or lower "
           "the limit";
  }
  if (!limits.min_engine_version.empty() &&
      CompareVersions(found.engine_version, limits.min_engine_version) < 0) {
    return found.engine + " " + found.engine_version + " is older than the " +
           limits.min_engine_version +
           " this group needs (\"preflight\": {\"min_engine_version\"}); upgrade the engine there";
  }
  const MachineRequirements& r = group.requirements;
  if (!r.accelerator_kind.empty()) {
    const std::string kind = internal::AsciiLower(r.accelerator_kind);
    const std::string vendor = internal::AsciiLower(r.accelerator_vendor);
    std::string wanted;
    for (const auto& d : kDrivers) {
      if (kind != "accelerator" && kind != d.kind) continue;
      if (!vendor.empty() && internal::AsciiLower(d.vendor) != vendor) continue;
      wanted += std::string(wanted.empty() ? "" : ", ") + d.module;
      for (const auto& loaded : found.accelerator_drivers) {
        if (loaded == d.module || loaded.rfind(std::string(d.module) + " ", 0) == 0) return "";
      }
    }
    return "the group asks for " + r.accelerator_kind +
           " but no driver for one is loaded (none of " + wanted +
           " in /sys/module); install and load the driver there";
  }
  return "";
}

MachinePreflight SetUpMachine(const MachineGroupSpec& group, const std::string& machine,
                              ContainerRunner& shell, const std::atomic<bool>* cancel) {
  MachinePreflight out;
  out.machine = machine;
  const auto started = std::chrono::steady_clock::now();
  for (std::size_t i = 0; i < group.setup.size(); ++i) {
    const std::string& step = group.setup[i];
    LogAt(LogLevel::kInfo, machine, ": setup step ", i + 1, " of ", group.setup.size());
    const ShellOutcome o =
        RunShell(shell, {"sh", "-c", step}, group.setup_timeout, kOutputTail, false, cancel);
    out.setup_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    if (o.exit.ok() && !o.cancelled && o.exit->exit_code == 0) {
      ++out.setup_steps;
      continue;
    }
    out.error = "setup step " + std::to_string(i + 1) + " (" + step + ") " + HowItEnded(o) +
                Tail(o.lines) +
                "\nFix the step in the group's \"setup\" (or the machine) and run again";
    return out;
  }
  return out;
}

void CheckMachine(const MachineGroupSpec& group, ContainerRunner& shell,
                  const RunnerCapabilities& engine, const std::atomic<bool>* cancel,
                  MachinePreflight& out) {
  out.engine = engine.engine;
  out.engine_version = engine.version;
  out.storage_driver = engine.storage_driver;
  if (cancel != nullptr && cancel->load()) {
    out.error = "interrupted before its preflight";
    return;
  }
  const ShellOutcome o =
      RunShell(shell, {"sh", "-c", PreflightScript(), "bitfusion-preflight", engine.data_root},
               std::chrono::seconds(60), kOutputTail, true, cancel);
  if (!o.exit.ok() || o.exit->exit_code != 0) {
    out.error = "its preflight " + HowItEnded(o) + Tail(o.lines);
    return;
  }
  // Only stdout: a login shell on the machine may print to stderr (its rc files' noise).
  if (Status s = ParsePreflightOutput(o.out, out); !s.ok()) {
    out.error = s.message();
    return;
  }
  if (std::string why = JudgePreflight(group, out); !why.empty()) out.error = "preflight: " + why;
}

}  // namespace bitfusion::internal
