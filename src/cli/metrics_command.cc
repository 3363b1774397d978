#include <chrono>
#include <cstdio>
#include <iostream>
#include <thread>

#include "bitfusion/clock.h"
#include "bitfusion/metric_stream.h"
#include "bitfusion/result_sink.h"
#include "cli/commands.h"

namespace bitfusion::cli {
namespace {
namespace po = boost::program_options;
}  // namespace

int MetricsCommand(const std::vector<std::string>& args) {
  po::options_description options("options");
  options.add_options()("source", po::value<std::vector<std::string>>()->composing(),
                        "what to sample (repeatable): host, process:PID (default: host)")(
      "interval", po::value<std::string>()->default_value("10ms"), "time between samples")(
      "duration", po::value<std::string>()->default_value("5s"), "how long to sample")(
      "sink", po::value<std::vector<std::string>>()->composing(),
      "where samples go (repeatable; default: JSON lines on stdout)");
  po::variables_map vm;
  if (auto exit = ParseOptions(
          "metrics", "[--source URI]... [--interval 10ms] [--duration 5s] [--sink URI]...", options,
          {}, args, vm)) {
    return *exit;
  }
  auto fail = [](const Status& s, int code) {
    std::cerr << "bitfusion metrics: " << s.message() << "\n";
    return code;
  };
  auto interval = ParseDuration(vm["interval"].as<std::string>());
  if (!interval) return fail(interval.error().WithContext("--interval"), kExitUsage);
  auto duration = ParseDuration(vm["duration"].as<std::string>());
  if (!duration) return fail(duration.error().WithContext("--duration"), kExitUsage);

  MetricStreamOptions stream_options;
  stream_options.interval = *interval;
  auto stream = MetricStream::Make(stream_options);
  if (!stream) return fail(stream.error(), kExitUsage);
  const auto sources = vm.count("source") ? vm["source"].as<std::vector<std::string>>()
                                          : std::vector<std::string>{"host"};
  for (const auto& source : sources) {
    if (Status s = (*stream)->Add(source); !s.ok()) return fail(s, kExitUsage);
  }
  const auto sink_uris = vm.count("sink") ? vm["sink"].as<std::vector<std::string>>()
                                          : std::vector<std::string>{"jsonl:///dev/stdout"};
  std::vector<std::shared_ptr<ResultSink>> sinks;
  for (const auto& uri : sink_uris) {
    auto sink = ResultSinkFromUri(uri);
    if (!sink) return fail(sink.error(), kExitUsage);
    if (Status s = (*stream)->Attach(*sink); !s.ok()) return fail(s, kExitUsage);
    sinks.push_back(*sink);
  }

  InstallInterruptHandler();
  if (Status s = (*stream)->Start(); !s.ok()) return fail(s, kExitFailed);
  const auto until = std::chrono::steady_clock::now() + *duration;
  while (std::chrono::steady_clock::now() < until && !InterruptFlag().load()) {
    std::this_thread::sleep_for(std::min<std::chrono::nanoseconds>(
        std::chrono::milliseconds(50), until - std::chrono::steady_clock::now()));
  }
  int exit = kExitOk;
  if (Status s = (*stream)->Stop(); !s.ok()) exit = fail(s, kExitFailed);
  for (const auto& sink : sinks) {
    if (Status s = sink->Close(); !s.ok()) exit = fail(s, kExitFailed);
  }
  const StreamOverhead o = (*stream)->Overhead();
  std::fprintf(stderr,
               "bitfusion metrics: %lld ticks (%lld missed), %lld samples, %lld dropped; "
               "observer CPU %.2f ms sampling + %.2f ms delivery\n",
               static_cast<long long>(o.ticks), static_cast<long long>(o.ticks_missed),
               static_cast<long long>(o.samples), static_cast<long long>(o.samples_dropped),
               static_cast<double>(o.sampler_cpu_ns) / 1e6,
               static_cast<double>(o.delivery_cpu_ns) / 1e6);
  if (InterruptFlag().load()) return kExitInterrupted;
  return exit;
}

}  // namespace bitfusion::cli
