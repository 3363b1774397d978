// This process's thread count and resident memory (/proc/self/status), for the tests and
// benchmarks that show the library's threads do not grow with the number of things it follows.
#pragma once

#include <fstream>
#include <string>

namespace bitfusion::testing {

struct ProcessStatus {
  long threads = -1;  ///< "Threads:"
  long rss_kib = -1;  ///< "VmRSS:"
};

/// -1 for what /proc/self/status does not say.
inline ProcessStatus ReadProcessStatus() {
  ProcessStatus st;
  std::ifstream status("/proc/self/status");
  for (std::string key; status >> key;) {
    if (key == "Threads:") status >> st.threads;
    if (key == "VmRSS:") status >> st.rss_kib;
    status.ignore(1 << 20, '\n');
  }
  return st;
}

inline long ThreadsOfThisProcess() { return ReadProcessStatus().threads; }

}  // namespace bitfusion::testing
