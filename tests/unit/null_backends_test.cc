// The null:// backends are real no-op implementations; check they keep their promises.
#include <gtest/gtest.h>

#include "bitfusion/container_runner.h"
#include "bitfusion/device_allocator.h"
#include "bitfusion/provisioner.h"
#include "bitfusion/result_sink.h"

namespace bitfusion {
namespace {

TEST(NullProvisionerTest, LifecycleInMemory) {
  auto p = *ProvisionerFromUri("null://");
  MachineRequest req;
  req.count = 2;
  auto machines = p->Create(req);
  ASSERT_TRUE(machines.ok());
  ASSERT_EQ(machines->size(), 2u);
  auto ready = p->WaitReady(machines->at(0).id, DeadlineAfter(std::chrono::seconds(1)));
  ASSERT_TRUE(ready.ok());
  EXPECT_GT(ready->ready_ns, 0);
  EXPECT_EQ(p->List()->size(), 2u);
  EXPECT_TRUE(p->Destroy({machines->at(0).id}).ok());
  EXPECT_EQ(p->List()->size(), 1u);
  EXPECT_EQ(p->Destroy({"nope"}).code(), StatusCode::kNotFound);
  req.count = 0;
  EXPECT_EQ(p->Create(req).error().code(), StatusCode::kInvalidArgument);
}

TEST(NullRunnerTest, ContainerExitsZero) {
  auto runner = *ContainerRunnerFromUri("null://");
  auto c = runner->Create(ContainerSpec{});
  ASSERT_TRUE(c.ok());
  EXPECT_EQ((*c)->Wait(kNoDeadline).error().code(), StatusCode::kFailedPrecondition);
  ASSERT_TRUE((*c)->Start().ok());
  auto exit = (*c)->Wait(kNoDeadline);
  ASSERT_TRUE(exit.ok());
  EXPECT_TRUE(exit->success());
}

TEST(NullAllocatorTest, NoDevices) {
  auto a = *DeviceAllocatorFromUri("null://");
  EXPECT_TRUE(a->Discover()->empty());
  DeviceRequest req;
  req.count = 1;
  auto lease = a->Acquire(req, kNoDeadline);
  ASSERT_FALSE(lease.ok());
  EXPECT_EQ(lease.error().code(), StatusCode::kResourceExhausted);
  req.count = 0;
  EXPECT_TRUE(a->Acquire(req, kNoDeadline).ok());
}

TEST(NullSinkTest, CountsAndClosesCleanly) {
  auto sink = *ResultSinkFromUri("null://?batch_samples=2");
  SampleBatch batch;
  auto idx = batch.AddSeries({"m", "1", {}});
  batch.Append(idx, 1, 1, 1);
  ASSERT_TRUE(sink->Write(batch).ok());
  EXPECT_EQ(sink->counters().samples_pending, 1);
  ASSERT_TRUE(sink->Write(batch).ok());
  EXPECT_EQ(sink->counters().samples_written, 2);
  ASSERT_TRUE(sink->Write(RunRecord{}).ok());
  EXPECT_EQ(sink->counters().runs_written, 1);
  ASSERT_TRUE(sink->Close().ok());
  EXPECT_EQ(sink->Write(batch).code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(sink->Close().ok()) << "Close is idempotent";
}

}  // namespace
}  // namespace bitfusion
