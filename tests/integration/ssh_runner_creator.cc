// The creator for the process+ssh:// orphan test: starts `sh -c 'sleep 300 & echo $!; wait'` on
// the runner named by argv[1], prints "GROUP_ID SLEEP_PID" once both are known, and waits to be
// killed (SIGKILL: nothing of bitfusion's cleanup runs).
//
//   ssh_runner_creator URI
#include <unistd.h>

#include <cstdio>
#include <mutex>
#include <string>
#include <thread>

#include "bitfusion/container_runner.h"

int main(int argc, char** argv) {
  using namespace std::chrono_literals;
  if (argc < 2) {
    std::fprintf(stderr, "usage: ssh_runner_creator URI\n");
    return 2;
  }
  auto runner = bitfusion::ContainerRunnerFromUri(argv[1]);
  if (!runner.ok()) {
    std::fprintf(stderr, "ssh_runner_creator: %s\n", runner.error().ToString().c_str());
    return 1;
  }
  bitfusion::ContainerSpec spec;
  spec.command = {"/bin/sh", "-c", "sleep 300 & echo $!; wait"};
  auto c = (*runner)->Create(spec);
  if (!c.ok()) {
    std::fprintf(stderr, "ssh_runner_creator: %s\n", c.error().ToString().c_str());
    return 1;
  }
  std::mutex mu;
  std::string child;
  auto sub = (*c)->Logs([&](bitfusion::LogStream s, std::string_view line) {
    std::lock_guard lock(mu);
    if (s == bitfusion::LogStream::kStdout && child.empty()) child = line;
  });
  if (!(*c)->Start().ok()) return 1;
  for (;;) {
    auto info = (*c)->Inspect();
    std::string got;
    {
      std::lock_guard lock(mu);
      got = child;
    }
    if (info.ok() && info->pid > 0 && !got.empty()) {
      std::printf("%d %s\n", info->pid, got.c_str());
      std::fflush(stdout);
      break;
    }
    std::this_thread::sleep_for(10ms);
  }
  for (;;) ::pause();
}
