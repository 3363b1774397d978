// Redact (bitfusion/log.h): every Status message and every log line passes through it, so its
// cost is paid on every error and warning, in fuzzing on every input that ends in an error, and
// by a plan that logs a warning per run.
//
// Targets: a message with no secret in it costs at most 20 times copying it (vs_copy <= 20: one
// scan for any pattern); one with a secret (a URI with user info, a key=value, an Authorization
// header; 70 to 170 bytes) at most 200 times. Reference: a std::string copy of the same text,
// measured in the same run (copy_ns), which Redact must return anyway. A 2 KiB message of plain
// words with a token at its end, the longest Redact reads before cutting, is measured too.
// With std::regex (before RE2) the same messages took 1,400 to 3,300 times their copy.
//
//   redact_benchmark [Google Benchmark flags]
#include <benchmark/benchmark.h>

#include <chrono>
#include <string>
#include <vector>

#include "bitfusion/log.h"

namespace {

const std::vector<std::string>& Messages() {
  static const std::vector<std::string> messages = [] {
    std::vector<std::string> m = {
        "sink es://elastic:changeme@127.0.0.1:9200/bench failed: connection refused (retry in 2s)",
        "keystone answered 401 for POST /v3/auth/tokens: {\"error\": {\"message\": \"The request "
        "you have made requires authentication.\", \"code\": 401}} (password=hunter2 rejected)",
        "GET /v2.0/servers: Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJib2IifQ.x",
        "cannot open /sys/class/drm/card0/device/uevent: No such file or directory",
    };
    std::string words;
    while (words.size() < 2000) words += "plain words of a long error message ";
    m.push_back(words + "token=abcdef0123456789");
    return m;
  }();
  return messages;
}

const char* const kNames[] = {"uri_userinfo", "json_key_value", "authorization", "no_secret",
                              "2KiB_words"};

// Both loops time the same texts, so the ratio is Redact's cost per byte copied.
double CopyNsPerCall(const std::string& text) {
  constexpr int kCalls = 200000;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kCalls; ++i) {
    std::string copy(text);
    benchmark::DoNotOptimize(copy);
  }
  return std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start)
             .count() /
         kCalls;
}

void BM_Redact(benchmark::State& state) {
  const std::string& text = Messages()[state.range(0)];
  state.SetLabel(kNames[state.range(0)]);
  for (auto _ : state) {
    std::string out = bitfusion::Redact(text);
    benchmark::DoNotOptimize(out);
  }
  const double copy_ns = CopyNsPerCall(text);  // after the timed loop: not in its time
  state.counters["copy_ns"] = copy_ns;
  state.counters["bytes"] = static_cast<double>(text.size());
}
BENCHMARK(BM_Redact)->DenseRange(0, 4);

// Redact's time (ns, the Time column) over the copy's, per message.
class VsCopyReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    std::vector<Run> with_ratio = runs;
    for (Run& r : with_ratio) {
      const auto copy = r.counters.find("copy_ns");
      if (copy != r.counters.end() && copy->second.value > 0 &&
          r.time_unit == benchmark::kNanosecond) {
        r.counters["vs_copy"] = r.GetAdjustedRealTime() / copy->second.value;
      }
    }
    ConsoleReporter::ReportRuns(with_ratio);
  }
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  VsCopyReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
