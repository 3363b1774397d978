// `bitfusion import gbench FILE.json --sink URI`: stores results that a program measured on its
// own -- today Google Benchmark's JSON -- as samples and a run record in any sink.
#include <fstream>
#include <iostream>
#include <sstream>

#include "bitfusion/gbench_import.h"
#include "bitfusion/result_sink.h"
#include "cli/commands.h"

namespace bitfusion::cli {

namespace po = boost::program_options;

int ImportCommand(const std::vector<std::string>& args) {
  po::options_description options("options");
  options.add_options()("format", po::value<std::string>(),
                        "what the file is: gbench (Google Benchmark's --benchmark_format=json)")(
      "file", po::value<std::string>(), "the file to import")(
      "sink", po::value<std::vector<std::string>>()->composing(),
      "where the samples and the run record go (repeatable), e.g. sqlite://results.db, "
      "es://HOST:9200/bench")("run-id", po::value<std::string>(),
                              "the run's id (default: derived from the file, so importing it "
                              "again names the same run)")(
      "label", po::value<std::vector<std::string>>()->composing(),
      "KEY=VALUE added to every sample and the run (repeatable)");
  po::positional_options_description pos;
  pos.add("format", 1).add("file", 1);
  po::variables_map vm;
  constexpr const char* kSynopsis =
      "gbench FILE.json --sink URI [--sink URI]... [--run-id ID] [--label KEY=VALUE]...";
  if (auto exit = ParseOptions("import", kSynopsis, options, pos, args, vm)) return *exit;
  auto usage = [&](const std::string& why) {
    std::cerr << "bitfusion import: " << why << "\n\nusage: bitfusion import " << kSynopsis << "\n";
    return kExitUsage;
  };
  if (!vm.count("format") || vm["format"].as<std::string>() != "gbench") {
    return usage("name the format: gbench (the only one so far)");
  }
  if (!vm.count("file")) return usage("name the file to import");
  if (!vm.count("sink")) return usage("name at least one --sink");
  const std::string path = vm["file"].as<std::string>();
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::cerr << "bitfusion import: cannot read " << path << "\n";
    return kExitUsage;
  }
  std::stringstream text;
  text << in.rdbuf();

  GbenchImportOptions import_options;
  if (vm.count("run-id")) import_options.run_id = vm["run-id"].as<std::string>();
  if (vm.count("label")) {
    for (const std::string& label : vm["label"].as<std::vector<std::string>>()) {
      const auto eq = label.find('=');
      if (eq == std::string::npos || eq == 0) {
        return usage("--label " + label + " is not KEY=VALUE");
      }
      import_options.labels[label.substr(0, eq)] = label.substr(eq + 1);
    }
  }
  auto imported = ImportGoogleBenchmarkJson(text.str(), import_options);
  if (!imported) {
    std::cerr << "bitfusion import: " << path << ": " << imported.error().message() << "\n";
    return kExitUsage;
  }
  std::vector<std::shared_ptr<ResultSink>> sinks;
  for (const std::string& uri : vm["sink"].as<std::vector<std::string>>()) {
    auto sink = ResultSinkFromUri(uri);
    if (!sink) {
      std::cerr << "bitfusion import: " << sink.error().message() << "\n";
      return kExitUsage;
    }
    sinks.push_back(*sink);
  }
  int exit = kExitOk;
  for (const auto& sink : sinks) {
    Status status = sink->Write(imported->samples);
    if (status.ok()) status = sink->Write(imported->run);
    const Status closed = sink->Close();
    if (status.ok()) status = closed;
    if (!status.ok()) {
      std::cerr << "bitfusion import: " << status.message() << "\n";
      exit = kExitFailed;
    }
  }
  std::cout << "imported " << imported->samples.size() << " samples of " << imported->run.benchmark
            << " as run " << imported->run.run_id << " into " << sinks.size()
            << (sinks.size() == 1 ? " sink" : " sinks") << "\n";
  return exit;
}

}  // namespace bitfusion::cli
