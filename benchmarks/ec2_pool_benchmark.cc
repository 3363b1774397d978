// Bringing up and tearing down a 100-machine pool on moto's EC2 server (started here with
// signature checking on, as the tests do), next to references in the same run
// (ec2_pool_reference.py) that make the same calls one after another:
//
//   DescribeInstanceTypes, RunInstances (100 at once, with the ownership tags and a ClientToken),
//   DescribeInstances per instance until running (one call each on moto), DeleteTags (Keep),
//   TerminateInstances
//
// BM_PoolVsBoto3: bitfusion's aws:// provisioner against boto3 in one Python process (its
// interpreter start and import are not counted). Target: vs_boto3 = bitfusion wall / boto3's
// <= 1.0. BM_PoolVsAwsCli: against one `aws ec2 ...` process per call (each pays the CLI's
// start); counter vs_awscli. Both references run while the timer is paused.
//
//   ec2_pool_benchmark [--benchmark_repetitions=N] (BITFUSION_POOL_SIZE overrides 100)
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <cstdio>
#include <string>

#include "bitfusion/provisioner.h"
#include "integration/moto_server.h"

namespace {

using bitfusion::MachineRequest;
using bitfusion::testing::MotoServer;

int PoolSize() {
  const char* n = std::getenv("BITFUSION_POOL_SIZE");
  return n != nullptr ? std::atoi(n) : 100;
}

MotoServer& Moto() {
  static MotoServer* moto = [] {
    auto* m = new MotoServer();
    if (m->error().empty()) {
      ::setenv("AWS_ACCESS_KEY_ID", m->access_key_id().c_str(), 1);
      ::setenv("AWS_SECRET_ACCESS_KEY", m->secret_access_key().c_str(), 1);
      ::setenv("AWS_ENDPOINT_URL", m->url().c_str(), 1);
      ::setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
      ::setenv("AWS_CONFIG_FILE", "/nonexistent", 1);
      ::setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent", 1);
    }
    return m;
  }();
  return *moto;
}

constexpr const char* kImage = "ami-0ed094fb1304fd857";  // an Amazon Linux 2023 AMI moto ships

// One bitfusion round: a fresh provisioner (no cached catalogue), create, wait, keep, destroy.
bool BitfusionRound(benchmark::State& state) {
  auto p = bitfusion::ProvisionerFromUri("aws://us-east-1?wait_ssh=false&poll=10ms");
  if (!p.ok()) {
    state.SkipWithError(p.error().ToString().c_str());
    return false;
  }
  MachineRequest r;
  r.type = "t3.micro";
  r.image = kImage;
  r.count = PoolSize();
  r.run_id = "bench";
  auto made = (*p)->Create(r);
  if (!made.ok()) {
    state.SkipWithError(made.error().ToString().c_str());
    return false;
  }
  std::vector<std::string> ids;
  for (const auto& m : *made) {
    ids.push_back(m.id);
    auto ready = (*p)->WaitReady(m.id, bitfusion::DeadlineAfter(std::chrono::seconds(60)));
    if (!ready.ok()) {
      state.SkipWithError(ready.error().ToString().c_str());
      return false;
    }
  }
  if (!(*p)->Keep(ids).ok() || !(*p)->Destroy(ids).ok()) {
    state.SkipWithError("keep or destroy failed");
    return false;
  }
  return true;
}

// Runs the reference; its wall time in seconds, or < 0.
double Reference(const char* client) {
  const std::string cmd = std::string(BITFUSION_MOTO_PYTHON) + " " + BITFUSION_POOL_REFERENCE +
                          " --client " + client + " --count " + std::to_string(PoolSize()) +
                          " --image " + kImage;
  FILE* f = ::popen(cmd.c_str(), "r");
  if (f == nullptr) return -1;
  char buf[256] = {};
  const bool got = std::fgets(buf, sizeof buf, f) != nullptr;
  if (::pclose(f) != 0 || !got) return -1;
  double wall = -1;
  std::sscanf(buf, "{\"wall_s\": %lf", &wall);
  return wall;
}

void Compare(benchmark::State& state, const char* client, const char* counter) {
  if (!Moto().error().empty()) {
    state.SkipWithError(Moto().error().c_str());
    return;
  }
  double ours = 0, theirs = 0;
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    if (!BitfusionRound(state)) return;
    ours += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    state.PauseTiming();
    const double ref = Reference(client);
    state.ResumeTiming();
    if (ref < 0) {
      state.SkipWithError("the reference failed");
      return;
    }
    theirs += ref;
  }
  const double n = static_cast<double>(state.iterations());
  state.counters["bitfusion_s"] = ours / n;
  state.counters[std::string(client) + "_s"] = theirs / n;
  state.counters[counter] = ours / theirs;
  state.counters["machines"] = PoolSize();
}

void BM_PoolVsBoto3(benchmark::State& state) { Compare(state, "boto3", "vs_boto3"); }
void BM_PoolVsAwsCli(benchmark::State& state) { Compare(state, "awscli", "vs_awscli"); }

BENCHMARK(BM_PoolVsBoto3)->Unit(benchmark::kMillisecond)->Iterations(3)->UseRealTime();
BENCHMARK(BM_PoolVsAwsCli)->Unit(benchmark::kMillisecond)->Iterations(1)->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  delete &Moto();
  return 0;
}
