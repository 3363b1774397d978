// A process+ssh:// run cycle (Create, which checks the command over the session's command
// channel; Start, a new channel on the ControlMaster; Wait; the handle destroyed) of `true`
// against a plain `ssh host true` (its own TCP connection, key exchange and login), on a real
// sshd started here on 127.0.0.1 (tests/integration/sshd_server.h; needs root and
// /usr/sbin/sshd). Both run N times in the same run; counters cycle_ms and ssh_ms (per
// command) and ratio = cycle / ssh. Below 1, the runner's cycle is cheaper than one plain ssh.
//
// Measured here (a loaded 2-core VM, 10 commands): empty ~/.bashrc cycle 207 ms, ssh 493 ms,
// ratio 0.42; as is (root runs `pyenv init`) cycle 2.35 s, ssh 2.50 s, ratio 0.94.
//
// Each run pays what the remote login shell costs (bash sources ~/.bashrc for commands that come
// over SSH; this image's root runs `pyenv init`): BM_..._AsIs measures that as it is, and
// BM_..._EmptyBashrc on an sshd in a private mount namespace where ~/.bashrc is /dev/null.
//
//   ssh_runner_benchmark   (BITFUSION_SSH_COMMANDS overrides 20)
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <chrono>
#include <memory>
#include <string>

#include "bitfusion/container_runner.h"
#include "integration/sshd_server.h"
#include "net/ssh_session.h"

namespace {

namespace fs = std::filesystem;
using namespace bitfusion;

int Commands() {
  const char* n = std::getenv("BITFUSION_SSH_COMMANDS");
  return n != nullptr ? std::atoi(n) : 20;
}

struct Bench {
  fs::path dir;
  bitfusion::testing::SshClientFiles client;
  std::unique_ptr<bitfusion::testing::TestSshd> sshd;
  std::shared_ptr<ContainerRunner> runner;
  std::unique_ptr<SshSession> plain;
  std::string error;

  explicit Bench(bool empty_bashrc) {
    dir = bitfusion::testing::FreshDir(empty_bashrc ? "sshrun-bench-bare" : "sshrun-bench");
    if (!bitfusion::testing::IsRoot()) {
      error = "the benchmark's sshd needs root";
      return;
    }
    if (error = client.Make(dir); !error.empty()) return;
    std::vector<std::string> prefix;
    if (empty_bashrc) {
      // Only inside this sshd's own mount namespace; the host's file is untouched.
      prefix = {"unshare",
                "-m",
                "sh",
                "-c",
                "mount --bind /dev/null /root/.bashrc 2>/dev/null; exec \"$@\"",
                "sh"};
    }
    sshd = std::make_unique<bitfusion::testing::TestSshd>(client, "bench", "127.0.0.1",
                                                          bitfusion::testing::FreePort(), prefix);
    if (error = sshd->error(); !error.empty()) return;
    auto r = ContainerRunnerFromUri("process+ssh://root@127.0.0.1:" + std::to_string(sshd->port()) +
                                    "?identity=" + client.key.string() +
                                    "&ssh_config=" + client.config.string());
    if (!r.ok()) {
      error = r.error().ToString();
      return;
    }
    runner = *r;
    SshSessionOptions o;
    o.config_file = client.config;
    plain =
        std::make_unique<SshSession>(SshTarget{"127.0.0.1", sshd->port(), "root", client.key}, o);
  }
  ~Bench() {
    runner.reset();
    plain.reset();
    sshd.reset();
    fs::remove_all(dir);
  }
};

Bench* g_benches[2] = {nullptr, nullptr};

Bench& TheBench(bool empty_bashrc) {
  Bench*& b = g_benches[empty_bashrc ? 1 : 0];
  if (b == nullptr) b = new Bench(empty_bashrc);
  return *b;
}

void Compare(benchmark::State& state, bool empty_bashrc) {
  Bench& b = TheBench(empty_bashrc);
  if (!b.error.empty()) {
    state.SkipWithError(b.error.c_str());
    return;
  }
  const int n = Commands();
  ContainerSpec spec;
  spec.command = {"true"};
  double cycle_s = 0, ssh_s = 0;
  for (auto _ : state) {
    auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < n; ++i) {
      auto c = b.runner->Create(spec);
      if (!c.ok() || !(*c)->Start().ok()) {
        state.SkipWithError(("process+ssh:// cycle failed: " +
                             (c.ok() ? std::string("start") : c.error().ToString()))
                                .c_str());
        return;
      }
      auto exit = (*c)->Wait(DeadlineAfter(std::chrono::seconds(60)));
      if (!exit.ok() || !exit->success()) {
        state.SkipWithError("process+ssh:// command did not succeed");
        return;
      }
    }
    cycle_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    state.PauseTiming();
    start = std::chrono::steady_clock::now();
    for (int i = 0; i < n; ++i) {
      auto r = b.plain->RunUnmultiplexed({"true"}, std::chrono::seconds(60));
      if (!r.ok() || r->exit_status != 0) {
        state.SkipWithError(
            ("plain ssh failed: " + (r.ok() ? r->err : r.error().ToString())).c_str());
        return;
      }
    }
    ssh_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    state.ResumeTiming();
  }
  const double runs = static_cast<double>(state.iterations()) * n;
  state.counters["cycle_ms"] = cycle_s / runs * 1e3;
  state.counters["ssh_ms"] = ssh_s / runs * 1e3;
  state.counters["ratio"] = cycle_s / ssh_s;
  state.counters["commands"] = n;
}

void BM_CycleVsPlainSsh_AsIs(benchmark::State& state) { Compare(state, false); }
void BM_CycleVsPlainSsh_EmptyBashrc(benchmark::State& state) { Compare(state, true); }

BENCHMARK(BM_CycleVsPlainSsh_AsIs)->Unit(benchmark::kMillisecond)->Iterations(1)->UseRealTime();
BENCHMARK(BM_CycleVsPlainSsh_EmptyBashrc)
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1)
    ->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  for (Bench* b : g_benches) delete b;
  return 0;
}
