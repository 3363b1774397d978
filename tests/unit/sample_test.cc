#include "bitfusion/sample.h"

#include <gtest/gtest.h>

namespace bitfusion {
namespace {

TEST(SampleBatchTest, ColumnsAndMaterialisedSamples) {
  SampleBatch batch;
  batch.labels = {{"run", "r1"}, {"machine", "m"}};
  auto user = batch.AddSeries({"cpu.user", "s", {{"cpu", "0"}}});
  auto mem = batch.AddSeries({"mem.used", "bytes", {}});
  batch.Append(user, 100, 10, 1.5);
  batch.Append(mem, 101, 11, 4096);
  ASSERT_EQ(batch.size(), 2u);
  Sample s = batch.At(0);
  EXPECT_EQ(s.metric, "cpu.user");
  EXPECT_EQ(s.unit, "s");
  EXPECT_EQ(s.value, 1.5);
  EXPECT_EQ(s.timestamp_ns, 100);
  EXPECT_EQ(s.monotonic_ns, 10);
  EXPECT_EQ(s.metadata, (Labels{{"run", "r1"}, {"machine", "m"}, {"cpu", "0"}}));
  EXPECT_EQ(batch.At(1).metadata.count("cpu"), 0u);
}

TEST(SampleBatchTest, ClearKeepsSeriesAndCapacity) {
  SampleBatch batch;
  auto idx = batch.AddSeries({"x", "1", {}});
  batch.Reserve(64);
  for (int i = 0; i < 64; ++i) batch.Append(idx, i, i, i);
  const auto* data = batch.value.data();
  batch.ClearSamples();
  EXPECT_TRUE(batch.empty());
  EXPECT_EQ(batch.series.size(), 1u);
  batch.Append(idx, 1, 1, 1);
  EXPECT_EQ(batch.value.data(), data) << "refilling after ClearSamples must not reallocate";
}

TEST(SampleBatchTest, AppendBatchRemapsSeriesAndKeepsDifferingLabels) {
  SampleBatch a;
  a.labels = {{"run", "r1"}};
  a.Append(a.AddSeries({"x", "1", {}}), 1, 1, 1);
  SampleBatch b;
  b.labels = {{"run", "r2"}};
  b.Append(b.AddSeries({"y", "1", {}}), 2, 2, 2);
  a.AppendBatch(b);
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a.At(0).metadata.at("run"), "r1");
  EXPECT_EQ(a.At(1).metric, "y");
  EXPECT_EQ(a.At(1).metadata.at("run"), "r2");
}

TEST(SampleBatchTest, AppendBatchNeverLendsLabelsToSamplesThatLackThem) {
  SampleBatch a;
  a.labels = {{"run", "r1"}, {"container", "c1"}, {"host", "h"}};
  a.Append(a.AddSeries({"x", "1", {}}), 1, 1, 1);
  SampleBatch b;
  b.labels = {{"run", "r2"}, {"host", "h"}};  // no container label
  b.Append(b.AddSeries({"y", "1", {}}), 2, 2, 2);
  a.AppendBatch(b);
  EXPECT_EQ(a.At(0).metadata, (Labels{{"run", "r1"}, {"container", "c1"}, {"host", "h"}}));
  EXPECT_EQ(a.At(1).metadata, (Labels{{"run", "r2"}, {"host", "h"}}));
  EXPECT_EQ(a.labels, (Labels{{"host", "h"}})) << "only what both share stays shared";
}

}  // namespace
}  // namespace bitfusion
