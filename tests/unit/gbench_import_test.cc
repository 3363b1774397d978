// Google Benchmark JSON (libbenchmark 1.7's --benchmark_format=json) as samples and a run record.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "bitfusion/gbench_import.h"

namespace bitfusion {
namespace {

// What libbenchmark 1.7.1 writes, with one of everything: an iteration with bytes/items per
// second and a user counter, aggregates (one of them a percentage), a failed benchmark.
constexpr const char* kJson = R"({
  "context": {
    "date": "2024-03-05T10:20:30+02:00",
    "host_name": "bench-7",
    "executable": "/opt/bench/bin/codec_benchmark",
    "num_cpus": 8,
    "mhz_per_cpu": 3200,
    "cpu_scaling_enabled": true,
    "caches": [
      {"type": "Data", "level": 1, "size": 49152, "num_sharing": 2},
      {"type": "Unified", "level": 3, "size": 33554432, "num_sharing": 8}
    ],
    "load_avg": [0.5,1.25,2],
    "library_build_type": "release"
  },
  "benchmarks": [
    {
      "name": "BM_Encode/4096", "family_index": 0, "per_family_instance_index": 0,
      "run_name": "BM_Encode/4096", "run_type": "iteration", "repetitions": 2,
      "repetition_index": 1, "threads": 1, "iterations": 170123,
      "real_time": 4.1098765432109876e+03, "cpu_time": 4.1000000000000005e+03,
      "time_unit": "ns", "bytes_per_second": 9.9664307200000000e+08,
      "items_per_second": 2.4390243902439025e+05, "ratio": 3.3333333333333335e-01,
      "label": "lz4"
    },
    {
      "name": "BM_Encode/4096_cv", "family_index": 0, "per_family_instance_index": 0,
      "run_name": "BM_Encode/4096", "run_type": "aggregate", "repetitions": 2, "threads": 1,
      "aggregate_name": "cv", "aggregate_unit": "percentage", "iterations": 2,
      "real_time": 1.2e-02, "cpu_time": 1.1e-02, "time_unit": "ns"
    },
    {
      "name": "BM_Decode", "family_index": 1, "per_family_instance_index": 0,
      "run_name": "BM_Decode", "run_type": "iteration", "repetitions": 1,
      "repetition_index": 0, "threads": 1, "iterations": 0, "real_time": 0, "cpu_time": 0,
      "time_unit": "ms", "error_occurred": true, "error_message": "input missing"
    }
  ]
})";

std::map<std::string, Sample> ByMetric(const GbenchImport& in, const std::string& benchmark) {
  std::map<std::string, Sample> out;
  for (std::size_t i = 0; i < in.samples.size(); ++i) {
    Sample s = in.samples.At(i);
    if (s.metadata["benchmark"] == benchmark) out[s.metric] = s;
  }
  return out;
}

TEST(GbenchImportTest, EveryFieldBecomesASampleWithItsUnitAndExactValue) {
  GbenchImportOptions options;
  options.labels = {{"team", "codecs"}};
  auto imported = ImportGoogleBenchmarkJson(kJson, options);
  ASSERT_TRUE(imported.ok()) << imported.status().ToString();
  const auto encode = ByMetric(*imported, "BM_Encode/4096");
  ASSERT_EQ(encode.size(), 6u);
  EXPECT_EQ(encode.at("gbench.real_time").value, 4.1098765432109876e+03);
  EXPECT_EQ(encode.at("gbench.real_time").unit, "ns");
  EXPECT_EQ(encode.at("gbench.cpu_time").value, 4.1000000000000005e+03) << "read exactly";
  EXPECT_EQ(encode.at("gbench.iterations").value, 170123);
  EXPECT_EQ(encode.at("gbench.bytes_per_second").unit, "B/s");
  EXPECT_EQ(encode.at("gbench.items_per_second").value, 2.4390243902439025e+05);
  EXPECT_EQ(encode.at("gbench.counter.ratio").value, 3.3333333333333335e-01);
  const Labels& labels = encode.at("gbench.real_time").metadata;
  EXPECT_EQ(labels.at("label"), "lz4");
  EXPECT_EQ(labels.at("repetition_index"), "1");
  EXPECT_EQ(labels.at("run_type"), "iteration");
  EXPECT_EQ(labels.at("program"), "codec_benchmark");
  EXPECT_EQ(labels.at("team"), "codecs");
  EXPECT_EQ(labels.at("run"), imported->run.run_id);
  // 2024-03-05T10:20:30+02:00 is 08:20:30 UTC.
  EXPECT_EQ(encode.at("gbench.real_time").timestamp_ns, 1'709'626'830'000'000'000);

  const auto cv = ByMetric(*imported, "BM_Encode/4096_cv");
  EXPECT_EQ(cv.at("gbench.real_time").unit, "%");
  EXPECT_EQ(cv.at("gbench.real_time").metadata.at("aggregate_name"), "cv");

  const auto decode = ByMetric(*imported, "BM_Decode");
  ASSERT_EQ(decode.size(), 1u) << "a failed benchmark has no measurements, only its error";
  EXPECT_EQ(decode.at("gbench.error").metadata.at("error_message"), "input missing");
}

TEST(GbenchImportTest, TheContextBecomesTheRunRecord) {
  auto imported = ImportGoogleBenchmarkJson(kJson);
  ASSERT_TRUE(imported.ok()) << imported.status().ToString();
  const RunRecord& run = imported->run;
  EXPECT_EQ(run.run_id.size(), 32u);
  EXPECT_EQ(run.run_id, ImportGoogleBenchmarkJson(kJson)->run.run_id)
      << "the same file names the same run";
  EXPECT_EQ(run.benchmark, "codec_benchmark");
  EXPECT_EQ(run.command, std::vector<std::string>{"/opt/bench/bin/codec_benchmark"});
  EXPECT_EQ(run.machine.hostname, "bench-7");
  EXPECT_EQ(run.machine.cpu.threads, 8);
  EXPECT_EQ(run.machine.cpu.max_mhz, 3200);
  ASSERT_EQ(run.machine.cpu.caches.size(), 2u);
  EXPECT_EQ(run.machine.cpu.caches[0].size_bytes, 49152u);
  EXPECT_EQ(run.machine.cpu.caches[0].instances, 4);
  EXPECT_EQ(run.machine.cpu.caches[1].instances, 1);
  EXPECT_EQ(run.labels.at("load_avg_5m"), "1.25");
  EXPECT_EQ(run.labels.at("library_build_type"), "release");
  EXPECT_EQ(run.labels.at("cpu_scaling_enabled"), "true");
  EXPECT_EQ(run.exit.start_ns, 1'709'626'830'000'000'000);
  EXPECT_EQ(run.status, kRunFailed);
  EXPECT_NE(run.error.find("BM_Decode: input missing"), std::string::npos) << run.error;
  EXPECT_EQ(run.results.size(), imported->samples.size());
}

TEST(GbenchImportTest, WhatIsNotGoogleBenchmarkJsonIsRefusedSayingWhy) {
  auto garbage = ImportGoogleBenchmarkJson("{not json");
  ASSERT_FALSE(garbage.ok());
  EXPECT_EQ(garbage.error().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(garbage.error().message().find("--benchmark_format=json"), std::string::npos);
  auto other = ImportGoogleBenchmarkJson(R"({"results": []})");
  ASSERT_FALSE(other.ok());
  EXPECT_NE(other.error().message().find("\"benchmarks\""), std::string::npos);
}

std::string WithContext(const std::string& context) {
  return R"({"context": {)" + context + R"(}, "benchmarks": [])" + "}";
}

TEST(GbenchImportTest, CountsThatAreNoIntegersAreRefusedSayingWhich) {
  // A count converted to an integer must be one: 1e300, a negative size or a NaN (a string
  // "#nan" reads like a number here) would overflow or be undefined.
  for (const auto& [context, field] : std::vector<std::pair<std::string, std::string>>{
           {R"("num_cpus": 1e300)", "num_cpus"},
           {R"("num_cpus": "#nan")", "num_cpus"},
           {R"("num_cpus": 2.5)", "num_cpus"},
           {R"("caches": [{"level": 1, "size": -1}])", "size"},
           {R"("caches": [{"level": 1, "size": 1e300}])", "size"},
           {R"("caches": [{"level": 1e20, "size": 1}])", "level"},
           {R"("caches": [{"level": 1, "size": 1, "num_sharing": "#inf"}])", "num_sharing"}}) {
    auto imported = ImportGoogleBenchmarkJson(WithContext(context));
    ASSERT_FALSE(imported.ok()) << context;
    EXPECT_EQ(imported.error().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(imported.error().message().find(field), std::string::npos)
        << imported.error().message();
  }
  auto fine = ImportGoogleBenchmarkJson(
      WithContext(R"("num_cpus": 4, "caches": [{"level": 2, "size": 1048576, "num_sharing": 2}])"));
  ASSERT_TRUE(fine.ok()) << fine.error().ToString();
  EXPECT_EQ(fine->run.machine.cpu.threads, 4);
  ASSERT_EQ(fine->run.machine.cpu.caches.size(), 1u);
  EXPECT_EQ(fine->run.machine.cpu.caches[0].size_bytes, 1048576u);
  EXPECT_EQ(fine->run.machine.cpu.caches[0].instances, 2);
}

TEST(GbenchImportTest, ADateWithHugeFieldsIsUnreadableNotOverflowed) {
  for (const char* date : {"99999999999-01-01T00:00:00+00:00", "2024-01-01T99999999999:00:00",
                           "2024-13-45T10:00:00"}) {
    auto imported =
        ImportGoogleBenchmarkJson(WithContext(std::string(R"("date": ")") + date + "\""));
    ASSERT_TRUE(imported.ok()) << imported.error().ToString();
    EXPECT_EQ(imported->run.exit.start_ns, 0) << date;
  }
}

// Found by fuzz/gbench_fuzzer.cc: a well-formed date past 2262 (or before 1677) overflowed the
// conversion to nanoseconds (UBSan: signed integer overflow).
TEST(GbenchImportTest, ADateNanosecondsCannotHoldIsUnreadableNotOverflowed) {
  for (const char* date :
       {"8192-03-05T10:20:30+02:00", "2263-01-01T00:00:00+00:00", "1000-01-01T00:00:00+00:00"}) {
    auto imported =
        ImportGoogleBenchmarkJson(WithContext(std::string(R"("date": ")") + date + "\""));
    ASSERT_TRUE(imported.ok()) << imported.error().ToString();
    EXPECT_EQ(imported->run.exit.start_ns, 0) << date;
  }
  auto near_end = ImportGoogleBenchmarkJson(WithContext(R"("date": "2262-01-01T00:00:00+00:00")"));
  ASSERT_TRUE(near_end.ok());
  EXPECT_EQ(near_end->run.exit.start_ns, 9'214'646'400'000'000'000);
}

}  // namespace
}  // namespace bitfusion
