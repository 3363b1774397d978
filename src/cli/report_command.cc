// `bitfusion report RESULTS [--baseline RESULTS] -o report.html`: one self-contained HTML page.
#include <fstream>
#include <iostream>

#include "bitfusion/results.h"
#include "cli/commands.h"

namespace bitfusion::cli {

namespace po = boost::program_options;

int ReportCommand(const std::vector<std::string>& args) {
  po::options_description options("options");
  options.add_options()("results", po::value<std::string>(),
                        "the results: PATH, sqlite://PATH or jsonl://PATH, optionally "
                        "@PLAN_RUN_ID (default: its latest plan run)")(
      "baseline", po::value<std::string>(), "results to show deltas against, in the same form")(
      "output,o", po::value<std::string>(), "the HTML file to write")(
      "title", po::value<std::string>(), "the page's title (default: the plan's name)")(
      "width", po::value<int>()->default_value(960), "plot width in CSS pixels");
  AddCompareOptions(options);
  po::positional_options_description pos;
  pos.add("results", 1);
  po::variables_map vm;
  constexpr const char* kSynopsis =
      "RESULTS [--baseline RESULTS] -o report.html [--title T] [--width 960]";
  if (auto exit = ParseOptions("report", kSynopsis, options, pos, args, vm)) return *exit;
  auto usage = [&](const std::string& why) {
    std::cerr << "bitfusion report: " << why << "\n\nusage: bitfusion report " << kSynopsis << "\n";
    return kExitUsage;
  };
  if (!vm.count("results")) return usage("name the results store to report on");
  if (!vm.count("output")) return usage("name the HTML file to write with -o");
  ReportOptions report;
  if (vm.count("baseline")) report.baseline = vm["baseline"].as<std::string>();
  if (vm.count("title")) report.title = vm["title"].as<std::string>();
  report.plot_width = vm["width"].as<int>();
  if (auto error = ReadCompareOptions(vm, report.compare)) return usage(*error);
  auto html = RenderReport(vm["results"].as<std::string>(), report);
  if (!html) {
    std::cerr << "bitfusion report: " << html.error().message() << "\n";
    return kExitUsage;
  }
  const std::string path = vm["output"].as<std::string>();
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << *html;
  out.close();
  if (!out) {
    std::cerr << "bitfusion report: cannot write " << path << "\n";
    return kExitFailed;
  }
  std::cout << "report written to " << path << " (" << (html->size() + 1023) / 1024 << " KiB)\n";
  return kExitOk;
}

}  // namespace bitfusion::cli
