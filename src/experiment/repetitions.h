// The repetitions of each (benchmark, metric) in a set of run records: what every summary and
// comparison is computed over.
#pragma once

#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "bitfusion/run_record.h"

namespace bitfusion::internal {

struct RepetitionKey {
  std::string benchmark;
  std::string metric;
  bool operator<(const RepetitionKey& o) const {
    return std::tie(benchmark, metric) < std::tie(o.benchmark, o.metric);
  }
};

struct RepetitionValues {
  std::string unit;
  std::vector<double> values;  ///< in the order the runs were made
};

struct Repetitions {
  std::vector<RepetitionKey> order;  ///< first seen: benchmarks in run order, wall_time first
  std::map<RepetitionKey, RepetitionValues> values;
};

/// One value per measured (not warm-up), successful run and metric. A Google Benchmark import
/// holds one run whose results are per entry and repetition: each "iteration" entry counts, as
/// benchmark "PROGRAM:ENTRY" (aggregates summarise those and are left out, as compare.py does;
/// so are gbench.iterations and gbench.error).
Repetitions CollectRepetitions(const std::vector<RunRecord>& runs);

}  // namespace bitfusion::internal
