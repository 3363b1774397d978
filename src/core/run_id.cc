#include <sys/random.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <random>

#include "bitfusion/run_record.h"

namespace bitfusion {

std::string NewRunId() {
  std::uint8_t bytes[16] = {};
  std::size_t got = 0;
  while (got < sizeof bytes) {
    const ssize_t n = ::getrandom(bytes + got, sizeof bytes - got, 0);
    if (n > 0) {
      got += static_cast<std::size_t>(n);
    } else if (errno != EINTR) {
      std::random_device device;  // getrandom unavailable (seccomp, old kernel)
      for (auto& b : bytes) b = static_cast<std::uint8_t>(device());
      break;
    }
  }
  char hex[33];
  for (std::size_t i = 0; i < sizeof bytes; ++i) std::snprintf(hex + 2 * i, 3, "%02x", bytes[i]);
  return std::string(hex, 32);
}

}  // namespace bitfusion
