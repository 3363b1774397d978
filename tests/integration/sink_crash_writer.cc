// A writer for the sink crash test: writes batch after batch through the sink named by argv[1]
// and prints each batch's number on stdout once Write has returned OK for it (so the test knows
// what the sink acknowledged), until it is killed.
//
//   sink_crash_writer URI [SAMPLES_PER_BATCH]
#include <cstdio>
#include <cstdlib>
#include <string>

#include "bitfusion/result_sink.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: sink_crash_writer URI [SAMPLES_PER_BATCH]\n");
    return 2;
  }
  const int per_batch = argc > 2 ? std::atoi(argv[2]) : 100;
  auto sink = bitfusion::ResultSinkFromUri(argv[1]);
  if (!sink.ok()) {
    std::fprintf(stderr, "sink_crash_writer: %s\n", sink.error().ToString().c_str());
    return 1;
  }
  constexpr std::int64_t kT0 = 1'700'000'000'000'000'000;
  for (std::int64_t batch = 0;; ++batch) {
    bitfusion::SampleBatch b;
    b.labels = {{"run", "crash"}, {"writer", "sink_crash_writer"}};
    const auto series = b.AddSeries({"crash.sample", "1", {}});
    for (int k = 0; k < per_batch; ++k) {
      const std::int64_t n = batch * per_batch + k;
      b.Append(series, kT0 + n, n, static_cast<double>(n) / 8);
    }
    const bitfusion::Status status = (*sink)->Write(b);
    if (!status.ok()) {
      std::fprintf(stderr, "sink_crash_writer: batch %lld: %s\n", static_cast<long long>(batch),
                   status.ToString().c_str());
      return 1;
    }
    std::printf("%lld\n", static_cast<long long>(batch));
    std::fflush(stdout);
  }
}
