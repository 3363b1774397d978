// Ignores a signal (SIGPIPE, for a test that writes to a pipe whose reader has gone) for one
// scope and puts the old disposition back.
#pragma once

#include <signal.h>

#include <cstdlib>

namespace bitfusion::testing {

class ScopedIgnoreSignal {
 public:
  explicit ScopedIgnoreSignal(int signal) : signal_(signal) {
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    if (::sigaction(signal_, &ignore, &old_) != 0) std::abort();
  }
  ~ScopedIgnoreSignal() { ::sigaction(signal_, &old_, nullptr); }
  ScopedIgnoreSignal(const ScopedIgnoreSignal&) = delete;
  ScopedIgnoreSignal& operator=(const ScopedIgnoreSignal&) = delete;

 private:
  int signal_;
  struct sigaction old_ {};
};

}  // namespace bitfusion::testing
