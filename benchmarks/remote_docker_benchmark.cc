// A containerised run on another host's engine, reached over SSH, three ways in one run with the
// order rotating each round (so drift on a noisy machine hits them alike):
//   - warm: docker+ssh:// with its runner held, as a plan holds it for all of a machine's runs
//     (one master connection, the engine's socket forwarded): Create + Start + Wait + the handle
//     destroyed (remove) of a `true` container;
//   - cold: the same, with a fresh runner per run, so each run also pays the runner's master
//     connection, its socket forward and their teardown;
//   - cli: `docker -H ssh://root@127.0.0.1:PORT run --rm --network none IMAGE true`, the same
//     run done by hand (the docker CLI runs `ssh … docker system dial-stdio` for each connection
//     it opens).
// Counters: warm_ms, cold_ms, cli_ms (medians per run) and warm_ratio = warm / cli,
// cold_ratio = cold / cli; warm_logins, cold_logins, cli_logins: the sshd's logins per run.
// Target (issue 10): both ratios <= 1.1.
//
// Both sides reach the same engine through the same sshd on 127.0.0.1 with the same key and
// ssh_config: a dockerd of the benchmark's own (benchmarks/private_dockerd.h) and an sshd started
// here (tests/integration/sshd_server.h) whose sessions get DOCKER_HOST pointing at that dockerd
// (sshd's SetEnv), so `docker system dial-stdio` on the "remote" end finds it. The docker CLI
// runs `ssh` from PATH; a two-line wrapper in front of it adds `-F ssh_config -i key`. The sshd
// runs in a private mount namespace where root's ~/.bashrc is /dev/null: bash sources it for
// every command that comes over SSH (this image's runs `pyenv init`, ~0.45 s), which would
// otherwise dominate each of the CLI's logins; the host's file is untouched.
//
// Measured here (a 2-core VM, other builds running, 10 rounds): see docs/runners.md.
//
// Needs root (dockerd, sshd, unshare), dockerd, sshd and the docker CLI; without them it says
// which is missing and exits 0.
//
//   remote_docker_benchmark   (BITFUSION_REMOTE_RUNS overrides 10 rounds)
#include <benchmark/benchmark.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "bitfusion/container_runner.h"
#include "integration/sshd_server.h"
#include "private_dockerd.h"

namespace bitfusion {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

constexpr const char* kImage = "bfbench/busybox:1";

int Rounds() {
  const char* n = std::getenv("BITFUSION_REMOTE_RUNS");
  return n != nullptr && std::atoi(n) > 0 ? std::atoi(n) : 10;
}

struct Fixture {
  bench::PrivateDockerd engine{"bfr"};
  fs::path dir;
  testing::SshClientFiles client;
  std::unique_ptr<testing::TestSshd> sshd;
  std::string uri;  // docker+ssh://… for the warm and cold runners
  std::string cli;  // the docker CLI command line, up to the image
  std::shared_ptr<ContainerRunner> warm;
  std::string unavailable;

  Fixture() {
    if (!testing::IsRoot()) {
      unavailable = "the benchmark's dockerd and sshd need root";
      return;
    }
    if (!testing::HaveProgram("docker")) {
      unavailable = "no docker CLI to compare with";
      return;
    }
    if (unavailable = engine.Start(); !unavailable.empty()) return;
    dir = testing::FreshDir("remote-docker-bench");
    if (unavailable = client.Make(dir); !unavailable.empty()) return;
    const std::vector<std::string> empty_bashrc = {
        "unshare",
        "-m",
        "sh",
        "-c",
        "mount --bind /dev/null /root/.bashrc 2>/dev/null; exec \"$@\"",
        "sh"};
    sshd = std::make_unique<testing::TestSshd>(
        client, "remote", "127.0.0.1", testing::FreePort(), empty_bashrc, std::vector<int>{},
        "SetEnv DOCKER_HOST=unix://" + engine.socket() + "\n");
    if (unavailable = sshd->error(); !unavailable.empty()) return;
    const std::string target = "root@127.0.0.1:" + std::to_string(sshd->port());
    uri = "docker+ssh://" + target + "?socket=" + engine.socket() +
          "&ssh_config=" + client.config.string() + "&identity=" + client.key.string();

    // The docker CLI execs `ssh` from PATH with its own arguments only.
    const fs::path bin = dir / "bin";
    fs::create_directories(bin);
    std::ofstream(bin / "ssh") << "#!/bin/sh\nexec /usr/bin/ssh -F " << client.config.string()
                               << " -i " << client.key.string() << " \"$@\"\n";
    fs::permissions(bin / "ssh", fs::perms::owner_all);
    fs::create_directories(dir / "docker-config");  // no user's CLI configuration or contexts
    cli = "env -u DOCKER_HOST -u DOCKER_CONTEXT PATH=" + bin.string() +
          ":$PATH DOCKER_CONFIG=" + (dir / "docker-config").string() + " docker -H ssh://" +
          target + " run --rm --network none " + kImage + " true >/dev/null 2>" +
          (dir / "cli.err").string();

    auto local = ContainerRunnerFromUri("docker://" + engine.socket());
    if (!local.ok()) {
      unavailable = local.error().ToString();
      return;
    }
    if (Status s = bench::ImportBusybox(**local, kImage, {"true"}); !s.ok()) {
      unavailable = "importing the busybox image: " + s.ToString();
      return;
    }
    auto r = ContainerRunnerFromUri(uri);
    if (!r.ok()) {
      unavailable = r.error().ToString();
      return;
    }
    warm = *r;
  }
  ~Fixture() {
    warm.reset();
    sshd.reset();
    engine.Stop();
    std::error_code ec;
    if (!dir.empty()) fs::remove_all(dir, ec);
  }

  static std::string Run(ContainerRunner& runner) {
    ContainerSpec spec;
    spec.image = kImage;
    spec.command = {"true"};
    spec.network_mode = "none";
    auto c = runner.Create(spec);
    if (!c.ok()) return "create: " + c.error().ToString();
    if (Status s = (*c)->Start(); !s.ok()) return "start: " + s.ToString();
    auto exit = (*c)->Wait(DeadlineAfter(60s));
    if (!exit.ok()) return "wait: " + exit.error().ToString();
    return exit->success() ? "" : "the container failed";  // the handle removes it here
  }
  std::string Cold() {
    auto r = ContainerRunnerFromUri(uri);
    if (!r.ok()) return r.error().ToString();
    return Run(**r);  // and the runner, its master connection and forward go with it
  }
  std::string Cli() {
    if (std::system(cli.c_str()) == 0) return "";
    std::ifstream in(dir / "cli.err");
    return "docker -H ssh:// failed: " + std::string(std::istreambuf_iterator<char>(in), {});
  }
};

Fixture* g_fixture = nullptr;

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

void BM_RemoteRunVsDockerCliOverSsh(benchmark::State& state) {
  if (g_fixture == nullptr) g_fixture = new Fixture;
  Fixture& f = *g_fixture;
  if (!f.unavailable.empty()) {
    state.SkipWithError(("not run: " + f.unavailable).c_str());
    return;
  }
  // One of each first, unmeasured: the engine's first container and the first logins are slow.
  for (const std::string& e : {Fixture::Run(*f.warm), f.Cold(), f.Cli()}) {
    if (!e.empty()) {
      state.SkipWithError(e.c_str());
      return;
    }
  }
  std::vector<double> ms[3];
  int logins[3] = {0, 0, 0};  // sshd's accepted logins, per way
  const int rounds = Rounds();
  for (auto _ : state) {
    for (int round = 0; round < rounds; ++round) {
      for (int k = 0; k < 3; ++k) {
        const int which = (round + k) % 3;
        const int logins_before = f.sshd->Logins();
        const auto t0 = std::chrono::steady_clock::now();
        const std::string error = which == 0   ? Fixture::Run(*f.warm)
                                  : which == 1 ? f.Cold()
                                               : f.Cli();
        const double elapsed =
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                .count();
        if (!error.empty()) {
          state.SkipWithError(error.c_str());
          return;
        }
        ms[which].push_back(elapsed);
        logins[which] += f.sshd->Logins() - logins_before;
      }
    }
  }
  const double warm = Median(ms[0]), cold = Median(ms[1]), cli = Median(ms[2]);
  state.counters["warm_ms"] = warm;
  state.counters["cold_ms"] = cold;
  state.counters["cli_ms"] = cli;
  state.counters["warm_ratio"] = warm / cli;
  state.counters["cold_ratio"] = cold / cli;
  state.counters["runs_each"] = static_cast<double>(ms[0].size());
  // Why the CLI costs what it does: a login per connection it opens.
  const double runs = static_cast<double>(ms[0].size());
  state.counters["warm_logins"] = logins[0] / runs;
  state.counters["cold_logins"] = logins[1] / runs;
  state.counters["cli_logins"] = logins[2] / runs;
}

BENCHMARK(BM_RemoteRunVsDockerCliOverSsh)
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1)
    ->UseRealTime();

}  // namespace
}  // namespace bitfusion

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  delete bitfusion::g_fixture;
  return 0;
}
