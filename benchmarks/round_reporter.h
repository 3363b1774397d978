// Paired benchmarks run in interleaved rounds (bitfusion's side, then the reference, round after
// round): a reporter that keeps every round's figures so that main can compare the pairs, and
// the --rounds=N option that sets how many rounds are registered.
#pragma once

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

namespace bitfusion::bench {

class RoundReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& run : runs) {
      if (run.run_type != Run::RT_Iteration || run.error_occurred) continue;
      const std::string name = run.benchmark_name();
      cpu_ns_[name].push_back(run.GetAdjustedCPUTime());
      real_ns_[name].push_back(run.GetAdjustedRealTime());
      for (const auto& [counter, value] : run.counters) counters_[name][counter] = value.value;
    }
    ConsoleReporter::ReportRuns(runs);
  }
  double MedianCpu(const std::string& name) const { return Median(Get(cpu_ns_, name)); }
  double MedianReal(const std::string& name) const { return Median(Get(real_ns_, name)); }
  // The two sides of a round ran back to back, so their ratio is the least disturbed by what
  // else the machine was doing; the median over rounds drops the rounds something hit.
  double MedianRatio(const std::string& numerator, const std::string& denominator) const {
    const std::vector<double>& a = Get(cpu_ns_, numerator);
    const std::vector<double>& b = Get(cpu_ns_, denominator);
    std::vector<double> ratios;
    for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
      if (b[i] > 0) ratios.push_back(a[i] / b[i]);
    }
    return Median(ratios);
  }
  /// The last round's value of counter `counter` of benchmark `name`; 0 when there is none.
  double Counter(const std::string& name, const std::string& counter) const {
    auto it = counters_.find(name);
    if (it == counters_.end()) return 0;
    auto c = it->second.find(counter);
    return c == it->second.end() ? 0 : c->second;
  }

 private:
  static const std::vector<double>& Get(const std::map<std::string, std::vector<double>>& all,
                                        const std::string& name) {
    static const std::vector<double> kNone;
    auto it = all.find(name);
    return it == all.end() ? kNone : it->second;
  }
  static double Median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  }
  std::map<std::string, std::vector<double>> cpu_ns_, real_ns_;
  std::map<std::string, std::map<std::string, double>> counters_;
};

/// Takes --rounds=N (default `rounds`, at least 1) out of argv, then initialises Google
/// Benchmark with the rest. False when an argument is not understood (it has said which).
inline bool InitializeRounds(int argc, char** argv, int& rounds) {
  static std::vector<char*> args;
  args.clear();
  for (int i = 0; i < argc; ++i) {
    if (std::strncmp(argv[i], "--rounds=", 9) == 0) {
      rounds = std::max(1, std::atoi(argv[i] + 9));
    } else {
      args.push_back(argv[i]);
    }
  }
  int n = static_cast<int>(args.size());
  benchmark::Initialize(&n, args.data());
  return !benchmark::ReportUnrecognizedArguments(n, args.data());
}

}  // namespace bitfusion::bench
