// The C++ side of python_sdk_benchmark.py's container benchmark: COUNT cycles of create, start,
// wait and remove through the C++ API, timed inside the process (so process start-up is not
// counted), printing "<cycles> <total ns>". The Python side makes the same calls through the
// bindings; the script interleaves the two and reports the ratio.
//
//   container_lifecycle_reference RUNNER_URI COUNT [IMAGE]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "bitfusion/container_runner.h"

using namespace bitfusion;

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s RUNNER_URI COUNT [IMAGE]\n", argv[0]);
    return 2;
  }
  const int count = std::atoi(argv[2]);
  auto runner = ContainerRunnerFromUri(argv[1]);
  if (!runner) {
    std::fprintf(stderr, "%s\n", runner.error().ToString().c_str());
    return 1;
  }
  ContainerSpec spec;
  if (argc > 3) spec.image = argv[3];
  spec.command = {"true"};
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < count; ++i) {
    auto container = (*runner)->Create(spec);
    if (!container) {
      std::fprintf(stderr, "create: %s\n", container.error().ToString().c_str());
      return 1;
    }
    if (Status s = (*container)->Start(); !s.ok()) {
      std::fprintf(stderr, "start: %s\n", s.ToString().c_str());
      return 1;
    }
    auto exit = (*container)->Wait(DeadlineAfter(std::chrono::minutes(1)));
    if (!exit || !exit->success()) {
      std::fprintf(stderr, "wait: %s\n",
                   exit ? "the command failed" : exit.error().ToString().c_str());
      return 1;
    }
    container->reset();  // removes it, as leaving Python's `with` block does
  }
  const auto ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start)
          .count();
  std::printf("%d %lld\n", count, static_cast<long long>(ns));
  return 0;
}
