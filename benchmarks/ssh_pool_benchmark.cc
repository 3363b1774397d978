// Commands on a static:// host: 100 through the session the pool's machine uses (SshSession::Run:
// its command channel, a remote shell started once over the ControlMaster that Create opens)
// against 100 fresh `ssh` invocations (each its own TCP connection, key exchange and login), on
// a real sshd started here on 127.0.0.1 (as the tests start it: tests/integration/sshd_server.h;
// needs root and /usr/sbin/sshd).
//
// BM_MultiplexedVsFreshSsh_*: counters multiplexed_ms and fresh_ms (per command) and speedup =
// fresh / multiplexed, measured in the same run. Target: speedup >= 10.
//
// A fresh `ssh` pays what the remote login shell costs per command: bash sources ~/.bashrc for
// commands that come over SSH (this image's root runs `pyenv init`, ~0.45 s); the channel's
// shell reads it once. So it runs twice: BM_..._AsIs with the login shell as it is, and
// BM_..._EmptyBashrc on a second sshd in a private mount namespace (unshare -m) where
// ~/.bashrc is /dev/null, which measures the connection alone.
//
//   ssh_pool_benchmark [--benchmark_repetitions=N]   (BITFUSION_SSH_COMMANDS overrides 100)
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <string>

#include "integration/sshd_server.h"
#include "provisioners/static_provisioner.h"

namespace {

namespace fs = std::filesystem;
using namespace bitfusion;

int Commands() {
  const char* n = std::getenv("BITFUSION_SSH_COMMANDS");
  return n != nullptr ? std::atoi(n) : 100;
}

struct Bench {
  fs::path dir;
  bitfusion::testing::SshClientFiles client;
  std::unique_ptr<bitfusion::testing::TestSshd> sshd;
  std::shared_ptr<StaticProvisioner> pool;
  std::shared_ptr<SshSession> session;
  std::string error;

  explicit Bench(bool empty_bashrc) {
    dir = bitfusion::testing::FreshDir(empty_bashrc ? "ssh-bench-bare" : "ssh-bench");
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
    std::ofstream(dir / "inventory.json")
        << R"({"hosts": [{"name": "metal", "address": "127.0.0.1", "user": "root", )"
        << R"("key": "client_key", "port": )" << sshd->port() << "}]}";
    auto p = ProvisionerFromUri("static://" + (dir / "inventory.json").string() +
                                "?lease_dir=" + (dir / "leases").string() +
                                "&ssh_config=" + client.config.string());
    if (!p.ok()) {
      error = p.error().ToString();
      return;
    }
    pool = std::dynamic_pointer_cast<StaticProvisioner>(*p);
    MachineRequest r;
    r.type = "metal";
    if (auto made = pool->Create(r); !made.ok()) {
      error = made.error().ToString();
      return;
    }
    session = *pool->Session("metal");
  }
  ~Bench() {
    if (pool) (void)pool->Destroy({"metal"});
    session.reset();
    pool.reset();
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
  const std::vector<std::string> cmd = {"true"};
  double mux_s = 0, fresh_s = 0;
  for (auto _ : state) {
    auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < n; ++i) {
      auto r = b.session->Run(cmd, std::chrono::seconds(30));
      if (!r.ok() || r->exit_status != 0) {
        state.SkipWithError(
            ("multiplexed command failed: " + (r.ok() ? r->err : r.error().ToString())).c_str());
        return;
      }
    }
    mux_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    state.PauseTiming();
    start = std::chrono::steady_clock::now();
    for (int i = 0; i < n; ++i) {
      auto r = b.session->RunUnmultiplexed(cmd, std::chrono::seconds(30));
      if (!r.ok() || r->exit_status != 0) {
        state.SkipWithError(
            ("fresh ssh failed: " + (r.ok() ? r->err : r.error().ToString())).c_str());
        return;
      }
    }
    fresh_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    state.ResumeTiming();
  }
  const double runs = static_cast<double>(state.iterations()) * n;
  state.counters["multiplexed_ms"] = mux_s / runs * 1e3;
  state.counters["fresh_ms"] = fresh_s / runs * 1e3;
  state.counters["speedup"] = fresh_s / mux_s;
  state.counters["commands"] = n;
}

void BM_MultiplexedVsFreshSsh_AsIs(benchmark::State& state) { Compare(state, false); }
void BM_MultiplexedVsFreshSsh_EmptyBashrc(benchmark::State& state) { Compare(state, true); }

BENCHMARK(BM_MultiplexedVsFreshSsh_AsIs)
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1)
    ->UseRealTime();
BENCHMARK(BM_MultiplexedVsFreshSsh_EmptyBashrc)
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
