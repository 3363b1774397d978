// What a fleet of containers costs this process: N containers started at once (`sleep`, a
// one-hour timeout each, so the runner's timeout machinery is in play), each with a Logs()
// subscription, then each with a Stats() subscription too. At each stage: this process's
// thread count (/proc/self/status Threads) and resident memory (VmRSS), against the same
// figures before the first container was created (the reference, measured in the same run).
// Reported per runner:
//   - BM_ProcessFleet: process:// (plain child processes).
//   - BM_DockerFleet: docker:// on a dockerd of its own (root needed), on the engine at
//     BITFUSION_DOCKER_SOCKET when set, or on --docker=docker://SOCKET; skipped (the program
//     still exits 0) when none of them answers.
// Counters: threads_idle (before), threads_running (N running, Logs each), threads_stats (and
// Stats each), threads_per_container = (threads_stats - threads_idle) / N, rss_mb at each stage.
// Target: threads_per_container ~ 0 (the library's threads do not grow with N).
//
// N is BITFUSION_FLEET_SIZE (default 200); scripts/test.sh runs it with 10 as a smoke test.
// Each benchmark runs one iteration: the figures are counts, not times.
#include <benchmark/benchmark.h>
#include <curl/curl.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "bitfusion/container_runner.h"
#include "private_dockerd.h"
#include "process_status.h"

namespace bitfusion {
namespace {

using namespace std::chrono_literals;

constexpr const char* kImage = "bfbench/busybox-sleep:1";

std::string docker_uri;  // --docker=docker://SOCKET

int FleetSize() {
  const char* n = std::getenv("BITFUSION_FLEET_SIZE");
  return n != nullptr && std::atoi(n) > 0 ? std::atoi(n) : 200;
}

// Creates and starts n containers of `spec` with `workers` threads (joined before anything is
// measured), subscribing to each one's output before its start.
Status StartFleet(ContainerRunner& runner, const ContainerSpec& spec, int n, int workers,
                  std::vector<std::unique_ptr<Container>>* fleet, std::vector<Subscription>* logs) {
  fleet->resize(n);
  logs->resize(n);
  std::mutex mu;
  Status first_error;
  std::vector<std::thread> pool;
  for (int w = 0; w < workers; ++w) {
    pool.emplace_back([&, w] {
      for (int i = w; i < n; i += workers) {
        auto c = runner.Create(spec);
        Status s = c.status();
        if (c) {
          (*logs)[i] = (*c)->Logs([](LogStream, std::string_view) {});
          s = (*c)->Start();
          (*fleet)[i] = std::move(*c);
        }
        if (!s.ok()) {
          std::lock_guard lock(mu);
          if (first_error.ok()) first_error = s;
          return;
        }
      }
    });
  }
  for (auto& t : pool) t.join();
  return first_error;
}

// Waits until every container says it runs (Inspect).
Status AllRunning(const std::vector<std::unique_ptr<Container>>& fleet) {
  const auto until = std::chrono::steady_clock::now() + 2min;
  for (const auto& c : fleet) {
    while (true) {
      auto info = c->Inspect();
      if (!info) return info.error();
      if (info->state == "running") break;
      if (std::chrono::steady_clock::now() > until) {
        return DeadlineExceededError(c->id() + " is " + info->state + ", not running");
      }
      std::this_thread::sleep_for(10ms);
    }
  }
  return Status::OK();
}

void RunFleet(benchmark::State& state, ContainerRunner& runner, const ContainerSpec& spec,
              const char* what, int workers) {
  const int n = FleetSize();
  for (auto _ : state) {
    const testing::ProcessStatus idle = testing::ReadProcessStatus();
    std::vector<std::unique_ptr<Container>> fleet;
    std::vector<Subscription> logs, stats;
    if (Status s = StartFleet(runner, spec, n, workers, &fleet, &logs); !s.ok()) {
      state.SkipWithError(("starting the fleet: " + s.ToString()).c_str());
      return;
    }
    if (Status s = AllRunning(fleet); !s.ok()) {
      state.SkipWithError(("waiting for the fleet: " + s.ToString()).c_str());
      return;
    }
    const testing::ProcessStatus running = testing::ReadProcessStatus();
    for (auto& c : fleet) {
      auto sub = c->Stats([](const ContainerStats&) {}, 1s);
      if (!sub) {
        state.SkipWithError(("Stats: " + sub.error().ToString()).c_str());
        return;
      }
      stats.push_back(std::move(*sub));
    }
    const testing::ProcessStatus with_stats = testing::ReadProcessStatus();
    stats.clear();
    logs.clear();
    fleet.clear();  // each handle ends (process://) or removes (docker://) its container
    const testing::ProcessStatus after = testing::ReadProcessStatus();

    state.counters["containers"] = n;
    state.counters["threads_idle"] = static_cast<double>(idle.threads);
    state.counters["threads_running"] = static_cast<double>(running.threads);
    state.counters["threads_stats"] = static_cast<double>(with_stats.threads);
    state.counters["threads_per_container"] =
        static_cast<double>(with_stats.threads - idle.threads) / n;
    state.counters["rss_mb_idle"] = idle.rss_kib / 1024.0;
    state.counters["rss_mb_running"] = running.rss_kib / 1024.0;
    state.counters["rss_mb_stats"] = with_stats.rss_kib / 1024.0;
    std::printf(
        "\n%s, %d containers (Logs each, then Stats each):\n"
        "                      threads   RSS MiB\n"
        "  before (reference)  %7ld  %8.1f\n"
        "  all running         %7ld  %8.1f\n"
        "  + Stats each        %7ld  %8.1f\n"
        "  all stopped         %7ld  %8.1f\n"
        "  threads per container: %.2f\n\n",
        what, n, idle.threads, idle.rss_kib / 1024.0, running.threads, running.rss_kib / 1024.0,
        with_stats.threads, with_stats.rss_kib / 1024.0, after.threads, after.rss_kib / 1024.0,
        static_cast<double>(with_stats.threads - idle.threads) / n);
  }
}

ContainerSpec SleepSpec() {
  ContainerSpec spec;
  spec.command = {"sleep", "3600"};
  spec.timeout_ns = std::chrono::nanoseconds(1h).count();
  return spec;
}

void BM_ProcessFleet(benchmark::State& state) {
  auto runner = ContainerRunnerFromUri("process://");
  if (!runner) {
    state.SkipWithError(runner.error().ToString().c_str());
    return;
  }
  RunFleet(state, **runner, SleepSpec(), "process://", 1);
}
BENCHMARK(BM_ProcessFleet)->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);

// The engine: --docker=URI, else BITFUSION_DOCKER_SOCKET or a dockerd of the benchmark's own.
struct DockerFixture {
  bench::PrivateDockerd engine{"bff"};
  std::string unavailable;
  std::shared_ptr<ContainerRunner> runner;

  DockerFixture() {
    std::string uri = docker_uri;
    if (uri.empty()) {
      unavailable = engine.Start();
      if (!unavailable.empty()) return;
      uri = "docker://" + engine.socket();
    }
    auto r = ContainerRunnerFromUri(uri);
    if (!r) {
      unavailable = r.error().ToString();
      return;
    }
    runner = *r;
    if (Status s = bench::ImportBusybox(*runner, kImage, {"sleep"}); !s.ok()) {
      unavailable = "importing the busybox image: " + s.ToString();
    }
  }
};

void BM_DockerFleet(benchmark::State& state) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  DockerFixture docker;
  if (!docker.unavailable.empty()) {
    state.SkipWithError(("no engine: " + docker.unavailable).c_str());
    return;
  }
  ContainerSpec spec = SleepSpec();
  spec.image = kImage;
  spec.network_mode = "none";
  // The engine starts one container in ~300 ms here: a few at a time keep the setup short.
  RunFleet(state, *docker.runner, spec, "docker://", 8);
}
BENCHMARK(BM_DockerFleet)->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace bitfusion

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--docker=", 0) == 0) {
      bitfusion::docker_uri = arg.substr(9);
      continue;
    }
    std::fprintf(stderr, "fleet_benchmark: unknown argument %s\n", argv[i]);
    return 1;
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
