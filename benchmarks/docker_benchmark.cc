// docker:// against the engine itself, in one run with the three ways interleaved (so drift on
// a noisy machine hits them alike):
//   - a `true` container run through bitfusion: Create + Start + Wait + handle destroyed
//     (remove), against the same four raw API calls on a kept-open libcurl handle over the
//     socket, and against `docker run --rm --network none`. Targets: bitfusion <= 1.05x raw,
//     and faster than the CLI.
//   - engine event -> reactor callback latency (the engine's own event timestamp to the moment
//     a Reactor rule runs), p50 and p99, over every event those runs produce.
//
// It starts a dockerd of its own (root needed), or uses BITFUSION_DOCKER_SOCKET when set. Run
// with --benchmark_min_time=30 for steady figures; the default does one round. Without root or
// dockerd it says so and exits 0.
#include <benchmark/benchmark.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "bitfusion/container_runner.h"
#include "bitfusion/events.h"
#include "private_dockerd.h"

namespace bitfusion {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

constexpr const char* kImage = "bfbench/busybox:1";

// ---- the engine --------------------------------------------------------------------------

using Engine = bench::PrivateDockerd;

// ---- the raw API: four calls on one kept-open handle ------------------------------------------

class RawClient {
 public:
  explicit RawClient(const std::string& socket) : easy_(curl_easy_init()), socket_(socket) {}
  ~RawClient() { curl_easy_cleanup(easy_); }

  long Call(const char* method, const std::string& path, const std::string& body,
            std::string* out) {
    curl_easy_reset(easy_);
    curl_easy_setopt(easy_, CURLOPT_UNIX_SOCKET_PATH, socket_.c_str());
    const std::string url = "http://localhost/v1.41" + path;
    curl_easy_setopt(easy_, CURLOPT_URL, url.c_str());
    curl_easy_setopt(easy_, CURLOPT_CUSTOMREQUEST, method);
    curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
    curl_easy_setopt(easy_, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(easy_, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(easy_, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
    out->clear();
    curl_easy_setopt(easy_, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(
        easy_, CURLOPT_WRITEFUNCTION, +[](char* d, size_t s, size_t n, void* u) {
          static_cast<std::string*>(u)->append(d, s * n);
          return s * n;
        });
    long status = 0;
    if (curl_easy_perform(easy_) == CURLE_OK) {
      curl_easy_getinfo(easy_, CURLINFO_RESPONSE_CODE, &status);
    }
    curl_slist_free_all(headers);
    return status;
  }

  // create, start, wait, delete: what a minimal client does for `docker run --rm true`.
  bool RunTrue() {
    std::string out;
    if (Call("POST", "/containers/create",
             std::string(R"({"Image":")") + kImage +
                 R"(","Cmd":["true"],"HostConfig":{"NetworkMode":"none","Init":true}})",
             &out) != 201) {
      return false;
    }
    const auto at = out.find("\"Id\":\"");
    if (at == std::string::npos) return false;
    const std::string id = out.substr(at + 6, 64);
    const bool ok = Call("POST", "/containers/" + id + "/start", "", &out) == 204 &&
                    Call("POST", "/containers/" + id + "/wait", "", &out) == 200;
    return Call("DELETE", "/containers/" + id, "", &out) == 204 && ok;
  }

 private:
  CURL* easy_;
  std::string socket_;
};

// ---- one shared setup for the whole run ---------------------------------------------------

struct Fixture {
  Engine engine{"bfb"};
  std::string unavailable;
  std::shared_ptr<ContainerRunner> runner;
  std::unique_ptr<RawClient> raw;
  EventBus bus;
  std::unique_ptr<Reactor> reactor;
  Subscription events;
  std::mutex mu;
  std::vector<double> event_latency_us;

  Fixture() {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    unavailable = engine.Start();
    if (!unavailable.empty()) return;
    auto r = ContainerRunnerFromUri("docker://" + engine.socket());
    if (!r) {
      unavailable = r.error().ToString();
      return;
    }
    runner = *r;
    if (Status s = ImportImage(); !s.ok()) {
      unavailable = "importing the busybox image: " + s.ToString();
      return;
    }
    raw = std::make_unique<RawClient>(engine.socket());
    reactor = std::make_unique<Reactor>(bus);
    ReactorRule rule;
    rule.name = "latency";
    rule.types = {EventType::kContainerCreated, EventType::kContainerStarted,
                  EventType::kContainerDied, EventType::kContainerDestroyed};
    rule.action = [this](const Event& e) {
      const double us = static_cast<double>(WallNowNs() - e.time_ns) / 1e3;
      std::lock_guard lock(mu);
      event_latency_us.push_back(us);
    };
    reactor->Add(std::move(rule));
    auto sub = runner->Events(bus.Publisher());
    if (!sub) {
      unavailable = sub.error().ToString();
      return;
    }
    events = std::move(*sub);
  }

  Status ImportImage() { return bench::ImportBusybox(*runner, kImage, {"sh", "true"}); }

  bool BitfusionTrue() {
    ContainerSpec spec;
    spec.image = kImage;
    spec.command = {"true"};
    spec.network_mode = "none";
    auto c = runner->Create(spec);
    if (!c) return false;
    if (!(*c)->Start().ok()) return false;
    auto exit = (*c)->Wait(DeadlineAfter(60s));
    return exit.ok() && exit->success();  // the handle removes the container here
  }

  bool CliTrue() {
    const std::string command = "docker --host unix://" + engine.socket() +
                                " run --rm --network none " + kImage + " true >/dev/null 2>&1";
    return std::system(command.c_str()) == 0;
  }
};

Fixture& Shared() {
  static Fixture f;
  return f;
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

// One iteration = one `true` container each way, in a rotating order.
void BM_TrueContainer(benchmark::State& state) {
  Fixture& f = Shared();
  if (!f.unavailable.empty()) {
    state.SkipWithError(("no engine: " + f.unavailable).c_str());
    return;
  }
  std::vector<double> raw_ms, bitfusion_ms, cli_ms;
  std::size_t round = 0;
  for (auto _ : state) {
    for (std::size_t k = 0; k < 3; ++k) {
      const std::size_t which = (round + k) % 3;
      const auto t0 = std::chrono::steady_clock::now();
      const bool ok = which == 0 ? f.raw->RunTrue() : which == 1 ? f.BitfusionTrue() : f.CliTrue();
      const double ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      if (!ok) {
        state.SkipWithError(which == 0   ? "raw API run failed"
                            : which == 1 ? "bitfusion run failed"
                                         : "docker CLI run failed");
        return;
      }
      (which == 0 ? raw_ms : which == 1 ? bitfusion_ms : cli_ms).push_back(ms);
    }
    ++round;
  }
  const double raw = Median(raw_ms), bf = Median(bitfusion_ms), cli = Median(cli_ms);
  state.counters["raw_ms"] = raw;
  state.counters["bitfusion_ms"] = bf;
  state.counters["cli_ms"] = cli;
  state.counters["bitfusion_vs_raw"] = raw > 0 ? bf / raw : 0;
  state.counters["cli_vs_raw"] = raw > 0 ? cli / raw : 0;
  (void)f.bus.Flush(DeadlineAfter(10s));
  std::vector<double> latency;
  {
    std::lock_guard lock(f.mu);
    latency = f.event_latency_us;
  }
  state.counters["event_p50_us"] = Percentile(latency, 0.50);
  state.counters["event_p99_us"] = Percentile(latency, 0.99);
  state.counters["events"] = static_cast<double>(latency.size());
  std::printf(
      "\n`true` container, median of %zu interleaved rounds:\n"
      "  raw API (create, start, wait, delete) %8.1f ms\n"
      "  bitfusion (Create, Start, Wait, remove) %6.1f ms  = %.3fx raw (target <= 1.05)\n"
      "  docker run --rm --network none %13.1f ms  = %.3fx raw (bitfusion should be faster)\n"
      "engine event -> reactor callback over %zu events: p50 %.0f us, p99 %.0f us\n\n",
      raw_ms.size(), raw, bf, raw > 0 ? bf / raw : 0, cli, raw > 0 ? cli / raw : 0, latency.size(),
      Percentile(latency, 0.50), Percentile(latency, 0.99));
}
BENCHMARK(BM_TrueContainer)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace bitfusion

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  const std::string why = bitfusion::Shared().unavailable;
  if (!why.empty()) {
    // A host without an engine (or root) has nothing to measure here; say so and succeed.
    std::printf("docker_benchmark: skipped: %s\n", why.c_str());
    return 0;
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
