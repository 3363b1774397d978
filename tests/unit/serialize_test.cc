#include "bitfusion/serialize.h"

#include <gtest/gtest.h>

#include <cmath>

namespace bitfusion {
namespace {

RunRecord MakeRecord() {
  RunRecord r;
  r.run_id = "0123abcd";
  r.plan = "quickstart";
  r.benchmark = "bf-stream";
  r.repetition = 3;
  r.command = {"bf-stream", "--size", "64M"};
  r.machine.hostname = "h";
  r.machine.cpu.model_name = "Some CPU";
  r.machine.cpu.caches.push_back({3, "Unified", 32u << 20, 64, 1});
  r.machine.accelerators.push_back(
      {"gpu", "NVIDIA", "0x10de", "0x2330", "0x030200", "0000:17:00.0", "nvidia", "", 0, 1});
  r.machine.labels = {{"rack", "a1"}};
  r.exit.exit_code = 0;
  r.exit.usage.max_rss_bytes = 1 << 20;
  r.results.push_back({"stream.triad", 12.5, "GB/s", {{"threads", "2"}}, 1700000000000000000, 5});
  r.overhead.samples = 100;
  r.labels = {{"owner", "perf-team"}};
  return r;
}

TEST(SerializeTest, RunRecordJsonRoundTrip) {
  const RunRecord in = MakeRecord();
  const std::string json = ToJson(in);
  // Labels are objects, fields sit at the top level.
  EXPECT_NE(json.find("\"labels\": {\n\"owner\": \"perf-team\"\n}"), std::string::npos) << json;
  EXPECT_EQ(json.rfind("{\n\"run_id\":", 0), 0u) << json;
  RunRecord out;
  ASSERT_TRUE(FromJson(json, out).ok());
  EXPECT_EQ(out.run_id, in.run_id);
  EXPECT_EQ(out.command, in.command);
  EXPECT_EQ(out.machine.cpu.caches.size(), 1u);
  EXPECT_EQ(out.machine.accelerators.at(0).pci_address, "0000:17:00.0");
  EXPECT_EQ(out.machine.labels, in.machine.labels);
  EXPECT_EQ(out.results.at(0).metadata, in.results.at(0).metadata);
  EXPECT_EQ(out.results.at(0).timestamp_ns, in.results.at(0).timestamp_ns);
  EXPECT_EQ(out.exit.usage.max_rss_bytes, 1 << 20);
}

TEST(SerializeTest, SampleBatchBinaryRoundTripKeepsNaN) {
  SampleBatch in;
  in.labels = {{"run", "x"}};
  auto idx = in.AddSeries({"m", "1", {{"cpu", "1"}}});
  in.Append(idx, 1, 2, 3.25);
  in.Append(idx, 4, 5, std::nan(""));
  SampleBatch out;
  ASSERT_TRUE(FromBinary(ToBinary(in), out).ok());
  EXPECT_EQ(out.labels, in.labels);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out.value[0], 3.25);
  EXPECT_TRUE(std::isnan(out.value[1]));
  EXPECT_EQ(out.series[0].labels.at("cpu"), "1");
}

TEST(SerializeTest, MalformedInputIsAnErrorNotACrash) {
  RunRecord r;
  EXPECT_EQ(FromJson("{\"run_id\": 5", r).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(FromBinary(std::string("\x01\x02", 2), r).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace bitfusion
