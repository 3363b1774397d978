// A separate process that leases devices, for the cross-process tests in
// sysfs_allocator_test.cc:
//   bitfusion_device_lease_holder ALLOCATOR_URI LOG ROUNDS COUNT HOLD_MS [EXCLUSIVE]
// Each round leases COUNT gpus (waiting up to 60 s), appends one line to LOG —
// "<pid> <acquired_mono_ns> <released_mono_ns> <device>,<device>..." — written with a single
// write(2) on an O_APPEND descriptor so lines from many holders never interleave, then lets
// the lease go. With HOLD_MS < 0 it prints "held <devices>" on stdout after the first lease
// and holds it until killed.
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "bitfusion/device_allocator.h"

int main(int argc, char** argv) {
  using namespace bitfusion;
  if (argc < 6) {
    std::fprintf(stderr, "usage: %s URI LOG ROUNDS COUNT HOLD_MS [EXCLUSIVE]\n", argv[0]);
    return 2;
  }
  auto allocator = DeviceAllocatorFromUri(argv[1]);
  if (!allocator) {
    std::fprintf(stderr, "%s\n", allocator.error().ToString().c_str());
    return 2;
  }
  const int rounds = std::atoi(argv[3]);
  DeviceRequest request;
  request.kind = DeviceKind::kAny;
  request.count = std::atoi(argv[4]);
  const int hold_ms = std::atoi(argv[5]);
  request.exclusive = argc < 7 || std::string(argv[6]) != "shared";
  const int log = ::open(argv[2], O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (log < 0) return 2;
  for (int round = 0; round < rounds; ++round) {
    auto lease = (*allocator)->Acquire(request, DeadlineAfter(std::chrono::seconds(60)));
    if (!lease) {
      std::fprintf(stderr, "%s\n", lease.error().ToString().c_str());
      return 1;
    }
    const std::int64_t acquired = MonoNowNs();
    std::string ids;
    for (const auto& d : (*lease)->devices()) ids += (ids.empty() ? "" : ",") + d.id;
    if (hold_ms < 0) {
      std::printf("held %s\n", ids.c_str());
      std::fflush(stdout);
      while (true) std::this_thread::sleep_for(std::chrono::seconds(1));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(hold_ms));
    const std::int64_t released = MonoNowNs();
    const std::string line = std::to_string(::getpid()) + " " + std::to_string(acquired) + " " +
                             std::to_string(released) + " " + ids + "\n";
    if (::write(log, line.data(), line.size()) != static_cast<ssize_t>(line.size())) return 1;
    lease->reset();
  }
  ::close(log);
  return 0;
}
