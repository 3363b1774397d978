// A process that submits one Slurm job through slurm:// and then waits to be killed: the
// "creator" whose death slurm_runner_test checks Reap against.
//   slurm_runner_creator URI LABEL_VALUE   prints the job's id, then sleeps until killed.
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "bitfusion/container_runner.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: slurm_runner_creator URI LABEL_VALUE\n";
    return 2;
  }
  auto runner = bitfusion::ContainerRunnerFromUri(argv[1]);
  if (!runner.ok()) {
    std::cerr << runner.error().ToString() << "\n";
    return 1;
  }
  bitfusion::ContainerSpec spec;
  spec.command = {"sleep", "300"};
  spec.labels["bf-creator-test"] = argv[2];
  auto c = (*runner)->Create(spec);
  if (!c.ok()) {
    std::cerr << c.error().ToString() << "\n";
    return 1;
  }
  if (auto s = (*c)->Start(); !s.ok()) {
    std::cerr << s.ToString() << "\n";
    return 1;
  }
  std::cout << (*c)->id() << std::endl;
  for (;;) ::pause();
}
