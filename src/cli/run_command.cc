#include <cstdio>
#include <iostream>

#include "bitfusion/clock.h"
#include "bitfusion/experiment.h"
#include "cli/commands.h"

namespace bitfusion::cli {
namespace {

namespace po = boost::program_options;

void PrintProgress(const RunRecord& r) {
  char wall[32] = "-";
  if (r.exit.wall_time_ns > 0) {
    std::snprintf(wall, sizeof wall, "%.3f s", static_cast<double>(r.exit.wall_time_ns) / 1e9);
  }
  std::fprintf(stderr, "[%s %s %d] %s %s, %lld samples, observer %.1f ms CPU%s%s\n",
               r.benchmark.c_str(), r.warmup ? "warm-up" : "run", r.repetition + 1,
               r.status.c_str(), wall, static_cast<long long>(r.overhead.samples),
               static_cast<double>(r.overhead.cpu_ns) / 1e6, r.error.empty() ? "" : ": ",
               r.error.c_str());
}

}  // namespace

int RunCommand(const std::vector<std::string>& args) {
  po::options_description options("options");
  options.add_options()("spec", po::value<std::string>()->required(), "the plan (JSON file)")(
      "sink", po::value<std::vector<std::string>>()->composing(),
      "store results here instead of the plan's sinks (repeatable): sqlite://PATH, "
      "jsonl://PATH, csv://PATH, null://")("json", "print the summary as JSON on stdout")(
      "quiet,q", "no per-run progress lines on stderr");
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
  if (!vm.count("quiet")) experiment.on_run = PrintProgress;
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
  const auto& sinks = experiment.sinks.empty() ? plan->sinks : experiment.sinks;
  if (!vm.count("json")) {
    for (const auto& s : sinks) std::cout << "results stored in " << s << "\n";
  }
  if (result->interrupted) {
    std::cerr << "bitfusion run: interrupted; what was measured is stored\n";
    return kExitInterrupted;
  }
  return result->failed_runs > 0 || !result->sink_errors.empty() ? kExitFailed : kExitOk;
}

}  // namespace bitfusion::cli
