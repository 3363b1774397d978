// `bitfusion compare BASELINE CANDIDATE`: did anything get faster or slower, and can we believe
// it? Exit status 1 when a metric got significantly worse, so CI can gate on it.
#include <cstdlib>
#include <iostream>

#include "bitfusion/results.h"
#include "cli/commands.h"

namespace bitfusion::cli {

namespace po = boost::program_options;

namespace {

/// "1%" or "0.01" as a fraction in [0, 1); nullopt when malformed.
std::optional<double> ParseFractionArg(const std::string& text) {
  if (text.empty()) return std::nullopt;
  char* end = nullptr;
  double v = std::strtod(text.c_str(), &end);
  if (end == text.c_str()) return std::nullopt;
  if (*end == '%' && end[1] == '\0') {
    v /= 100;
  } else if (*end != '\0') {
    return std::nullopt;
  }
  if (!(v >= 0 && v < 1)) return std::nullopt;
  return v;
}

/// --better METRIC=lower|higher (repeatable) into CompareOptions::better; an error message
/// when malformed.
std::optional<std::string> ParseBetterArgs(const po::variables_map& vm, CompareOptions& options) {
  if (!vm.count("better")) return std::nullopt;
  for (const auto& item : vm["better"].as<std::vector<std::string>>()) {
    const auto eq = item.rfind('=');
    const std::string way = eq == std::string::npos ? "" : item.substr(eq + 1);
    if (eq == std::string::npos || eq == 0 || (way != "lower" && way != "higher")) {
      return "--better " + item + ": expected METRIC=lower or METRIC=higher";
    }
    options.better[item.substr(0, eq)] = way == "lower" ? Better::kLower : Better::kHigher;
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::string> ReadCompareOptions(const po::variables_map& vm,
                                              CompareOptions& options) {
  if (vm.count("threshold")) {
    auto t = ParseFractionArg(vm["threshold"].as<std::string>());
    if (!t)
      return "--threshold " + vm["threshold"].as<std::string>() + ": expected e.g. 1% or 0.01";
    options.threshold = *t;
  }
  if (vm.count("alpha")) {
    auto a = ParseFractionArg(vm["alpha"].as<std::string>());
    if (!a || *a <= 0) return "--alpha " + vm["alpha"].as<std::string>() + ": expected e.g. 0.05";
    options.alpha = *a;
  }
  return ParseBetterArgs(vm, options);
}

void AddCompareOptions(po::options_description& options) {
  options.add_options()("threshold", po::value<std::string>(),
                        "changes of the median below this are noise (default 1%)")(
      "alpha", po::value<std::string>(), "significance level of the Mann-Whitney U test (0.05)")(
      "better", po::value<std::vector<std::string>>()->composing(),
      "METRIC=lower|higher: which way METRIC improves, when its unit does not say (repeatable)");
}

int CompareCommand(const std::vector<std::string>& args) {
  po::options_description options("options");
  options.add_options()("baseline", po::value<std::string>(),
                        "results to compare against: PATH, sqlite://PATH or jsonl://PATH, "
                        "optionally @PLAN_RUN_ID (default: its latest plan run)")(
      "candidate", po::value<std::string>(), "results to judge, in the same form")(
      "json", "print the comparison as JSON");
  AddCompareOptions(options);
  po::positional_options_description pos;
  pos.add("baseline", 1).add("candidate", 1);
  po::variables_map vm;
  constexpr const char* kSynopsis =
      "BASELINE CANDIDATE [--threshold 1%] [--alpha 0.05] [--better METRIC=lower|higher]... "
      "[--json]";
  if (auto exit = ParseOptions("compare", kSynopsis, options, pos, args, vm)) return *exit;
  auto usage = [&](const std::string& why) {
    std::cerr << "bitfusion compare: " << why << "\n\nusage: bitfusion compare " << kSynopsis
              << "\n";
    return kExitUsage;
  };
  if (!vm.count("baseline") || !vm.count("candidate")) {
    return usage("name two results stores: the baseline and the candidate");
  }
  CompareOptions compare;
  if (auto error = ReadCompareOptions(vm, compare)) return usage(*error);
  auto result =
      CompareResults(vm["baseline"].as<std::string>(), vm["candidate"].as<std::string>(), compare);
  if (!result) {
    std::cerr << "bitfusion compare: " << result.error().message() << "\n";
    return kExitUsage;
  }
  if (vm.count("json")) {
    std::cout << FormatComparisonJson(*result) << "\n";
  } else {
    std::cout << FormatComparisonTable(*result);
    if (result->regression) std::cout << "\nsignificantly worse: at least one metric is slower\n";
  }
  return result->regression ? kExitFailed : kExitOk;
}

}  // namespace bitfusion::cli
