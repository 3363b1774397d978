// Importing Google Benchmark results (the JSON that `--benchmark_format=json` or
// `--benchmark_out=FILE` writes) as bitfusion samples and a run record, for any ResultSink.
#pragma once

#include <string>
#include <string_view>

#include "bitfusion/export.h"
#include "bitfusion/run_record.h"
#include "bitfusion/sample.h"
#include "bitfusion/status.h"

namespace bitfusion {

struct GbenchImportOptions {
  /// The run's id; empty: derived from the file's bytes (SHA-256, 32 hex digits), so importing
  /// the same file twice names the same run and network stores keep it once.
  std::string run_id;
  /// Added to every sample's labels and to the run record's.
  Labels labels;
};

/// One Google Benchmark program's output as bitfusion sees it.
///
/// Each entry of "benchmarks" (iterations and aggregates alike) gives samples with labels
/// benchmark (the entry's name), run_name, run_type ("iteration" or "aggregate"),
/// repetition_index, threads, family_index, and aggregate_name / label when present:
///   gbench.real_time, gbench.cpu_time    in the entry's time_unit ("ns", "us", "ms", "s")
///   gbench.iterations                    unit "1"
///   gbench.bytes_per_second              unit "B/s"
///   gbench.items_per_second              unit "1/s"
///   gbench.counter.NAME                  each user counter, unit "1" ("%" for an aggregate
///                                        whose aggregate_unit is "percentage")
/// An entry with error_occurred gives one sample gbench.error (value 1) labelled with its
/// error_message, and makes the run's status "failed". Every sample carries the batch labels
/// run (the run id) and program (the executable's file name), and is stamped with the
/// context's date (monotonic_ns 0).
///
/// The context becomes the run record: benchmark = the executable's file name, command = its
/// path, machine.hostname = host_name, machine.cpu.threads = num_cpus, machine.cpu.max_mhz =
/// mhz_per_cpu, machine.cpu.caches from caches (instances = num_cpus / num_sharing), start and
/// end = date, and labels library_build_type, cpu_scaling_enabled, load_avg_1m/5m/15m,
/// gbench_library_version. results = every sample above.
struct GbenchImport {
  RunRecord run;
  SampleBatch samples;
};

/// Reads Google Benchmark's JSON. Malformed JSON, or JSON without "context" and "benchmarks",
/// is InvalidArgument saying what is missing; numbers are read exactly (shortest round trip).
BITFUSION_EXPORT Result<GbenchImport> ImportGoogleBenchmarkJson(
    std::string_view json, const GbenchImportOptions& options = {});

}  // namespace bitfusion
