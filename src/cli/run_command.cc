#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string_view>

#include "bitfusion/clock.h"
#include "bitfusion/experiment.h"
#include "bitfusion/log.h"
#include "cli/commands.h"

namespace bitfusion::cli {
namespace {

namespace po = boost::program_options;

std::string Seconds(std::int64_t ns) {
  char buf[32];
  const double s = static_cast<double>(ns) / 1e9;
  if (s < 60) {
    std::snprintf(buf, sizeof buf, "%.0f s", std::ceil(s));
  } else if (s < 3600) {
    std::snprintf(buf, sizeof buf, "%dm%02ds", static_cast<int>(s) / 60, static_cast<int>(s) % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%dh%02dm", static_cast<int>(s) / 3600,
                  static_cast<int>(s) / 60 % 60);
  }
  return buf;
}

// "run 3/5" or "run 3 (3-20, until RSD < 2.50 %)", the last value, the RSD and the ETA.
std::string Position(const RunProgress& p) {
  char buf[160];
  if (p.warmup) {
    std::snprintf(buf, sizeof buf, "warm-up %d/%d", p.run, p.warmups);
  } else if (p.target_rsd > 0) {
    std::snprintf(buf, sizeof buf, "run %d (up to %d, until RSD < %.2f %%)", p.run, p.planned,
                  p.target_rsd * 100);
  } else {
    std::snprintf(buf, sizeof buf, "run %d/%d", p.run, p.planned);
  }
  return buf;
}

std::string Figures(const RunProgress& p) {
  std::string out;
  char buf[96];
  if (std::isfinite(p.last)) {
    std::snprintf(buf, sizeof buf, " · %s %.4g", p.metric.c_str(), p.last);
    out += buf;
  }
  if (std::isfinite(p.rsd)) {
    std::snprintf(buf, sizeof buf, " · RSD %.2f %%", p.rsd * 100);
    out += buf;
  }
  if (p.eta_ns > 0) out += " · ETA " + Seconds(p.eta_ns);
  return out;
}

// One line per finished run, for logs and pipes.
void PrintRunLine(const RunProgress& p) {
  if (p.started || p.record == nullptr) return;
  const RunRecord& r = *p.record;
  char wall[32] = "-";
  if (r.exit.wall_time_ns > 0) {
    std::snprintf(wall, sizeof wall, "%.3f s", static_cast<double>(r.exit.wall_time_ns) / 1e9);
  }
  std::fprintf(stderr, "[%s %s %d] %s %s, %lld samples, observer %.1f ms CPU%s%s%s\n",
               r.benchmark.c_str(), r.warmup ? "warm-up" : "run", r.repetition + 1,
               r.status.c_str(), wall, static_cast<long long>(r.overhead.samples),
               static_cast<double>(r.overhead.cpu_ns) / 1e6, Figures(p).c_str(),
               r.error.empty() ? "" : ": ", r.error.c_str());
  if (!p.stopped.empty() && p.target_rsd > 0) {
    std::fprintf(stderr, "[%s] stopped: %s\n", r.benchmark.c_str(), p.stopped.c_str());
  }
}

// On a terminal: one status line per machine and benchmark, redrawn in place; finished
// benchmarks and failed runs leave a line behind.
void DrawLive(const RunProgress& p) {
  std::string line = "[" + std::to_string(p.benchmark_index + 1) + "/" +
                     std::to_string(p.benchmarks) + "] " + p.benchmark + " on " + p.machine + ": " +
                     Position(p) + (p.started ? " running" : "") + Figures(p);
  std::fprintf(stderr, "\r\033[K%s", line.c_str());
  if (p.record != nullptr && p.record->status != kRunOk) {
    std::fprintf(stderr, "\r\033[K[%s %s %d] %s: %s\n", p.benchmark.c_str(),
                 p.warmup ? "warm-up" : "run", p.run, p.record->status.c_str(),
                 p.record->error.c_str());
  }
  if (!p.stopped.empty()) {
    std::fprintf(stderr, "\r\033[K%s on %s: %d runs%s%s%s\n", p.benchmark.c_str(),
                 p.machine.c_str(), p.run, Figures(p).c_str(), p.target_rsd > 0 ? " · " : "",
                 p.target_rsd > 0 ? p.stopped.c_str() : "");
  }
  std::fflush(stderr);
}

// --json: the same as JSON lines on stderr (stdout keeps the summary).
void PrintJsonProgress(const RunProgress& p) {
  std::fprintf(stderr, "%s\n", FormatProgressJson(p).c_str());
}

}  // namespace

int RunCommand(const std::vector<std::string>& args) {
  po::options_description options("options");
  options.add_options()("spec", po::value<std::string>()->required(), "the plan (JSON file)")(
      "sink", po::value<std::vector<std::string>>()->composing(),
      "store results here instead of the plan's sinks (repeatable): sqlite://PATH, "
      "jsonl://PATH, csv://PATH, null://")("json", "print the summary as JSON on stdout")(
      "quiet,q",
      "no progress on stderr (by default: a live status line on a terminal, a line per run "
      "otherwise, JSON lines with --json)");
  po::positional_options_description pos;
  pos.add("spec", 1);
  po::variables_map vm;
  if (auto exit =
          ParseOptions("run", "SPEC [--sink URI]... [--json] [--quiet]", options, pos, args, vm)) {
    return *exit;
  }
  auto plan = LoadPlan(vm["spec"].as<std::string>());
  if (!plan) {
    std::cerr << "bitfusion run: " << plan.error().message() << "\n";
    return kExitUsage;
  }
  ExperimentOptions experiment;
  if (vm.count("sink")) experiment.sinks = vm["sink"].as<std::vector<std::string>>();
  experiment.program_dirs = BundledProgramDirs();
  experiment.cancel = &InterruptFlag();
  if (vm.count("quiet")) {
  } else if (vm.count("json")) {
    experiment.on_progress = PrintJsonProgress;
  } else if (::isatty(STDERR_FILENO) &&
             (std::getenv("TERM") == nullptr || std::string_view(std::getenv("TERM")) != "dumb")) {
    experiment.on_progress = DrawLive;
  } else {
    experiment.on_progress = PrintRunLine;
  }
  InstallInterruptHandler();

  auto result = RunPlan(*plan, experiment);
  if (!result) {
    std::cerr << "bitfusion run: " << result.error().message() << "\n";
    // Bad plans and inputs are usage errors; an engine that cannot be reached or refuses is a
    // failed run.
    const StatusCode code = result.error().code();
    return code == StatusCode::kInvalidArgument || code == StatusCode::kNotFound ? kExitUsage
                                                                                 : kExitFailed;
  }
  if (vm.count("json")) {
    std::cout << FormatSummaryJson(*result) << "\n";
  } else {
    std::cout << FormatSummaryTable(*result);
  }
  for (const auto& e : result->sink_errors) std::cerr << "bitfusion run: " << e << "\n";
  for (const auto& e : result->machine_errors) std::cerr << "bitfusion run: " << e << "\n";
  if (!vm.count("json")) {
    for (const auto& d : result->images) {
      if (d.method == "present") {
        std::cout << "image " << d.image << " already present on " << d.machine << "\n";
        continue;
      }
      char size[32];
      std::snprintf(size, sizeof size, "%.1f MB, %.1f s", static_cast<double>(d.bytes) / 1e6,
                    d.seconds);
      std::cout << "image " << d.image << " sent to " << d.machine << " via "
                << (d.method == "registry" ? "registry " + plan->registry
                                           : std::string("SSH stream"))
                << " (" << size << ")\n";
    }
    // Never a password (the sink's own URI is redacted), and "stored" only for what the store
    // took.
    for (const auto& sink : result->sinks) {
      const SinkCounters& c = sink.counters;
      if (sink.stored) {
        std::cout << "results stored in " << sink.uri << "\n";
      } else if (!sink.spool.empty() && (c.samples_pending > 0 || c.runs_pending > 0)) {
        std::cout << "results NOT yet stored in " << sink.uri << ": " << c.samples_pending
                  << " samples and " << c.runs_pending << " run records wait in spool "
                  << sink.spool << "; the next run with this sink sends them\n";
      } else {
        std::cout << "results NOT all stored in " << sink.uri << " (see the errors above)\n";
      }
    }
  }
  if (result->interrupted) {
    std::cerr << "bitfusion run: interrupted; what was measured is stored\n";
    return kExitInterrupted;
  }
  return result->failed_runs > 0 || !result->sink_errors.empty() || !result->machine_errors.empty()
             ? kExitFailed
             : kExitOk;
}

}  // namespace bitfusion::cli
