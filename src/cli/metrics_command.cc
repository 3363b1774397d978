#include <chrono>
#include <cstdio>
#include <iostream>
#include <optional>
#include <thread>

#include <poll.h>
#include <unistd.h>

#include "bitfusion/clock.h"
#include "bitfusion/metric_stream.h"
#include "bitfusion/result_sink.h"
#include "cli/commands.h"
#include "cli/live_view.h"

namespace bitfusion::cli {
namespace {
namespace po = boost::program_options;

// True when stdout is a pipe whose reader has gone (`bitfusion metrics | head`): the kernel
// reports POLLERR on a pipe's write end once no reader is left.
bool StdoutReaderGone() {
  pollfd p{STDOUT_FILENO, 0, 0};
  return ::poll(&p, 1, 0) == 1 && (p.revents & POLLERR) != 0;
}
}  // namespace

int MetricsCommand(const std::vector<std::string>& args) {
  po::options_description options("options");
  options.add_options()("source", po::value<std::vector<std::string>>()->composing(),
                        "what to sample (repeatable): host, process:PID, cgroup:PATH (e.g. "
                        "cgroup:/docker/ID), container:ID (a docker container by id or name; "
                        "?runner=docker:///path.sock, default $DOCKER_HOST or "
                        "/var/run/docker.sock), docker-stats:ID (the engine's stats stream, "
                        "about once a second, for engines whose cgroups are not readable; same "
                        "?runner=), gpu (NVML or ROCm SMI; ?vendor=nvml|rocm&devices=0,1) "
                        "(default: host)")(
      "interval", po::value<std::string>()->default_value("10ms"), "time between samples")(
      "duration", po::value<std::string>()->default_value("5s"), "how long to sample")(
      "sink", po::value<std::vector<std::string>>()->composing(),
      "where samples go (repeatable; default: JSON lines on stdout, or nothing when the live "
      "view is on)")("live", po::value<std::string>()->default_value("auto"),
                     "live view of the latest values, redrawn each second: auto (when stdout "
                     "is a terminal), always, never");
  po::variables_map vm;
  if (auto exit = ParseOptions(
          "metrics",
          "[--source URI]... [--interval 10ms] [--duration 5s] [--sink URI]... [--live auto]",
          options, {}, args, vm)) {
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

  const std::string live_mode = vm["live"].as<std::string>();
  if (live_mode != "auto" && live_mode != "always" && live_mode != "never") {
    return fail(
        InvalidArgumentError("--live must be auto, always or never, not \"" + live_mode + "\""),
        kExitUsage);
  }
  const bool live = live_mode == "always" || (live_mode == "auto" && isatty(STDOUT_FILENO));

  MetricStreamOptions stream_options;
  stream_options.interval = *interval;
  auto stream = MetricStream::Make(stream_options);
  if (!stream) return fail(stream.error(), kExitUsage);
  const auto sources = vm.count("source") ? vm["source"].as<std::vector<std::string>>()
                                          : std::vector<std::string>{"host"};
  for (const auto& source : sources) {
    if (Status s = (*stream)->Add(source); !s.ok()) return fail(s, kExitUsage);
  }
  std::vector<std::string> sink_uris;
  // Samples as JSON lines on stdout: sampling ends when whatever reads them stops reading.
  const bool to_stdout = !vm.count("sink") && !live;
  if (vm.count("sink")) {
    sink_uris = vm["sink"].as<std::vector<std::string>>();
  } else if (to_stdout) {
    sink_uris.push_back("jsonl:///dev/stdout");
  }
  std::optional<LiveView> view;
  Subscription view_subscription;
  if (live) {
    view.emplace(stdout);
    view_subscription = (*stream)->Subscribe([&view](const SampleBatch& b) { view->OnBatch(b); });
  }
  std::vector<std::shared_ptr<ResultSink>> sinks;
  for (const auto& uri : sink_uris) {
    auto sink = ResultSinkFromUri(uri);
    if (!sink) return fail(sink.error(), kExitUsage);
    if (Status s = (*stream)->Attach(*sink); !s.ok()) return fail(s, kExitUsage);
    sinks.push_back(*sink);
  }

  InstallInterruptHandler();
  if (Status s = (*stream)->Start(); !s.ok()) return fail(s, kExitFailed);
  const auto started = std::chrono::steady_clock::now();
  const auto until = started + *duration;
  auto elapsed_s = [&started] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  };
  auto next_frame = started + std::chrono::seconds(1);
  bool reader_gone = false;
  while (std::chrono::steady_clock::now() < until && !InterruptFlag().load() &&
         !(reader_gone = to_stdout && StdoutReaderGone())) {
    std::this_thread::sleep_for(std::min<std::chrono::nanoseconds>(
        std::chrono::milliseconds(50), until - std::chrono::steady_clock::now()));
    if (view && std::chrono::steady_clock::now() >= next_frame) {
      view->Render((*stream)->Overhead(), elapsed_s(), /*final_frame=*/false);
      next_frame += std::chrono::seconds(1);
    }
  }
  int exit = kExitOk;
  if (Status s = (*stream)->Stop(); !s.ok()) exit = fail(s, kExitFailed);
  if (view) view->Render((*stream)->Overhead(), elapsed_s(), /*final_frame=*/true);
  for (const auto& sink : sinks) {
    // With the reader gone, the samples it did not take are not an error (as for `yes | head`).
    if (Status s = sink->Close(); !s.ok() && !reader_gone) exit = fail(s, kExitFailed);
  }
  const StreamOverhead o = (*stream)->Overhead();
  std::fprintf(stderr,
               "bitfusion metrics: %lld ticks (%lld missed), %lld samples, %lld dropped; "
               "observer CPU %.2f ms sampling + %.2f ms delivery + %.2f ms in sources\n",
               static_cast<long long>(o.ticks), static_cast<long long>(o.ticks_missed),
               static_cast<long long>(o.samples), static_cast<long long>(o.samples_dropped),
               static_cast<double>(o.sampler_cpu_ns) / 1e6,
               static_cast<double>(o.delivery_cpu_ns) / 1e6,
               static_cast<double>(o.source_cpu_ns) / 1e6);
  if (InterruptFlag().load()) return kExitInterrupted;
  return exit;
}

}  // namespace bitfusion::cli
