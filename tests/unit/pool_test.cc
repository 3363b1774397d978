#include "bitfusion/pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>

namespace bitfusion {
namespace {

// A scripted provisioner: capacity errors in given zones, a failing WaitReady, a blocking
// WaitReady, and a record of every machine alive.
class FakeProvisioner : public Provisioner {
 public:
  explicit FakeProvisioner(std::string name) : name_(std::move(name)) {}

  Result<std::vector<MachineInfo>> Create(const MachineRequest& request) override {
    std::lock_guard lock(mu_);
    creates.push_back(request);
    if (capacity_error_zones.count(request.zone) > 0) {
      return ResourceExhaustedError("InsufficientInstanceCapacity in " + request.zone);
    }
    if (fail_create_with_invalid) return InvalidArgumentError("InvalidParameterValue");
    std::vector<MachineInfo> out;
    for (int i = 0; i < request.count - short_by; ++i) {
      MachineInfo m;
      m.id = name_ + "-" + std::to_string(next_++);
      m.type = request.type;
      m.zone = request.zone;
      m.state = "pending";
      alive.insert(m.id);
      out.push_back(m);
    }
    return out;
  }
  Result<MachineInfo> WaitReady(const std::string& id, Deadline deadline) override {
    std::unique_lock lock(mu_);
    if (fail_wait_ready_for.count(id) > 0) return UnavailableError("boot failed for " + id);
    if (block_wait_ready) {
      // Waits for the deadline; the pool must pass it through.
      cv_.wait_until(lock, deadline, [] { return false; });
      return DeadlineExceededError("not ready before the deadline");
    }
    MachineInfo m;
    m.id = id;
    m.state = "running";
    return m;  // without type or zone: the pool keeps what Create said
  }
  Result<std::vector<MachineInfo>> List() override { return std::vector<MachineInfo>{}; }
  Status Destroy(const std::vector<std::string>& ids) override {
    std::lock_guard lock(mu_);
    if (fail_destroy) return UnavailableError("the provider is down");
    for (const auto& id : ids) {
      alive.erase(id);
      destroyed.push_back(id);
    }
    return Status::OK();
  }
  Result<std::vector<MachineType>> Types() override { return std::vector<MachineType>{}; }

  std::size_t Alive() {
    std::lock_guard lock(mu_);
    return alive.size();
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::string name_;
  int next_ = 0;
  std::set<std::string> capacity_error_zones;
  std::set<std::string> fail_wait_ready_for;
  bool fail_create_with_invalid = false;
  bool block_wait_ready = false;
  bool fail_destroy = false;
  int short_by = 0;  // Create makes this many fewer machines than asked (a half-done batch)
  std::vector<MachineRequest> creates;
  std::set<std::string> alive;
  std::vector<std::string> destroyed;
};

PoolOptions Options(
    const std::vector<std::pair<std::shared_ptr<FakeProvisioner>, std::string>>& candidates) {
  PoolOptions options;
  for (const auto& [p, zone] : candidates) {
    options.candidates.push_back({p, p->name_ + (zone.empty() ? "" : "/" + zone), zone});
  }
  options.run_id = "run-1";
  return options;
}

TEST(PoolTest, RejectsNoCandidates) {
  auto pool = Pool::Create(PoolOptions{});
  ASSERT_FALSE(pool.ok());
  EXPECT_EQ(pool.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(pool.status().message().find("candidates"), std::string::npos);
}

TEST(PoolTest, CandidatesByUri) {
  PoolOptions options;
  options.candidates = {{nullptr, "", "", "null://"}};
  EXPECT_TRUE(Pool::Create(options).ok());
  options.candidates = {{nullptr, "", "", "nosuch://x"}};
  auto bad = Pool::Create(options);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("candidate 1"), std::string::npos)
      << bad.status().message();
  options.candidates = {{nullptr, "", "", ""}};
  EXPECT_EQ(Pool::Create(options).status().code(), StatusCode::kInvalidArgument);
}

TEST(PoolTest, FailsOverZoneThenRegionThenProvisionerAndLogsAttempts) {
  auto east = std::make_shared<FakeProvisioner>("east");
  auto west = std::make_shared<FakeProvisioner>("west");
  auto other = std::make_shared<FakeProvisioner>("other");
  east->capacity_error_zones = {"east-a", "east-b"};
  west->capacity_error_zones = {""};
  auto pool = *Pool::Create(Options({{east, "east-a"}, {east, "east-b"}, {west, ""}, {other, ""}}));
  std::vector<PoolAttempt> attempts;
  auto got = pool->Acquire("g5.xlarge", 2, kNoDeadline, &attempts);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ASSERT_EQ(got->size(), 2u);
  ASSERT_EQ(attempts.size(), 4u);
  EXPECT_EQ(attempts[0].candidate, "east/east-a");
  EXPECT_EQ(attempts[0].zone, "east-a");
  EXPECT_EQ(attempts[0].status.code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(attempts[1].zone, "east-b");
  EXPECT_EQ(attempts[2].candidate, "west");
  EXPECT_EQ(attempts[2].status.code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(attempts[3].candidate, "other");
  EXPECT_TRUE(attempts[3].status.ok());
  EXPECT_EQ(other->Alive(), 2u);
  ASSERT_EQ(other->creates.size(), 1u);
  EXPECT_EQ(other->creates[0].run_id, "run-1");
  EXPECT_EQ(other->creates[0].count, 2);
}

TEST(PoolTest, AllCandidatesExhaustedNamesEachInTheError) {
  auto east = std::make_shared<FakeProvisioner>("east");
  east->capacity_error_zones = {"east-a", "east-b"};
  auto pool = *Pool::Create(Options({{east, "east-a"}, {east, "east-b"}}));
  auto got = pool->Acquire("g5.xlarge", 1, kNoDeadline);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), StatusCode::kResourceExhausted);
  const std::string msg = got.status().message();
  EXPECT_NE(msg.find("east/east-a zone east-a"), std::string::npos) << msg;
  EXPECT_NE(msg.find("east/east-b zone east-b"), std::string::npos) << msg;
  EXPECT_NE(msg.find("add candidates"), std::string::npos) << msg;
}

TEST(PoolTest, OtherErrorsDoNotFailOver) {
  auto a = std::make_shared<FakeProvisioner>("a");
  auto b = std::make_shared<FakeProvisioner>("b");
  a->fail_create_with_invalid = true;
  auto pool = *Pool::Create(Options({{a, ""}, {b, ""}}));
  std::vector<PoolAttempt> attempts;
  auto got = pool->Acquire("t3.micro", 1, kNoDeadline, &attempts);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(attempts.size(), 1u);
  EXPECT_TRUE(b->creates.empty());
}

TEST(PoolTest, HalfReadyBatchIsDestroyedAllOrNothing) {
  auto a = std::make_shared<FakeProvisioner>("a");
  a->fail_wait_ready_for = {"a-1"};
  auto pool = *Pool::Create(Options({{a, ""}}));
  auto got = pool->Acquire("t3.micro", 3, kNoDeadline);
  ASSERT_FALSE(got.ok());
  EXPECT_NE(got.status().message().find("a-1"), std::string::npos) << got.status().message();
  EXPECT_EQ(a->Alive(), 0u);
  EXPECT_EQ(a->destroyed.size(), 3u);
  EXPECT_TRUE(pool->Snapshot().empty());
}

TEST(PoolTest, ShortBatchIsDestroyed) {
  auto a = std::make_shared<FakeProvisioner>("a");
  a->short_by = 1;
  auto pool = *Pool::Create(Options({{a, ""}}));
  auto got = pool->Acquire("t3.micro", 3, kNoDeadline);
  ASSERT_FALSE(got.ok());
  EXPECT_NE(got.status().message().find("made 2 machines for a request of 3"), std::string::npos)
      << got.status().message();
  EXPECT_EQ(a->Alive(), 0u);
}

TEST(PoolTest, HandleMayOutliveItsPool) {
  auto a = std::make_shared<FakeProvisioner>("a");
  PoolMachine kept;
  {
    auto pool = *Pool::Create(Options({{a, ""}}));
    auto got = pool->Acquire("t3.micro", 1, kNoDeadline);
    ASSERT_TRUE(got.ok());
    kept = std::move((*got)[0]);
    EXPECT_FALSE((*got)[0].valid());
  }
  EXPECT_TRUE(kept.valid());
  EXPECT_EQ(a->Alive(), 0u);  // the pool's destructor destroyed it
  kept.Release();
  EXPECT_FALSE(kept.valid());
}

TEST(PoolTest, AddedWithOwnerIsDestroyedOnClose) {
  auto a = std::make_shared<FakeProvisioner>("a");
  auto pool = *Pool::Create(Options({{a, ""}}));
  auto made = a->Create(MachineRequest{.type = "t3.micro"});
  ASSERT_TRUE(made.ok());
  ASSERT_TRUE(pool->Add((*made)[0], a).ok());
  EXPECT_EQ(pool->Snapshot()["t3.micro"].idle, 1);
  EXPECT_TRUE(pool->Close().ok());
  EXPECT_EQ(a->Alive(), 0u);
}

TEST(PoolTest, CloseThatCouldNotDestroyNamesTheMachinesAndTheReapCommand) {
  auto a = std::make_shared<FakeProvisioner>("a");
  auto pool = *Pool::Create(Options({{a, ""}}));
  auto leased = pool->Acquire("t3.micro", 1, kNoDeadline);
  ASSERT_TRUE(leased.ok());
  {
    std::lock_guard lock(a->mu_);
    a->fail_destroy = true;
  }
  const Status closed = pool->Close();
  ASSERT_EQ(closed.code(), StatusCode::kUnavailable);
  EXPECT_NE(closed.message().find("could not destroy a-0"), std::string::npos) << closed.message();
  // A command that exists (cli/reap_command.cc), with the run id the machines are tagged with.
  EXPECT_NE(closed.message().find("`bitfusion reap --provisioner URI --run-id run-1`"),
            std::string::npos)
      << closed.message();
  EXPECT_EQ(a->Alive(), 1u);
}

TEST(PoolTest, DeadlinePassesToWaitReadyAndMachinesAreDestroyed) {
  auto a = std::make_shared<FakeProvisioner>("a");
  a->block_wait_ready = true;
  auto pool = *Pool::Create(Options({{a, ""}}));
  auto got = pool->Acquire("t3.micro", 2, DeadlineAfter(std::chrono::milliseconds(20)));
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(a->Alive(), 0u);
}

TEST(PoolTest, PassedDeadlineFailsBeforeCreating) {
  auto a = std::make_shared<FakeProvisioner>("a");
  auto pool = *Pool::Create(Options({{a, ""}}));
  auto got = pool->Acquire("t3.micro", 1, std::chrono::steady_clock::now());
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(a->creates.empty());
}

TEST(PoolTest, ReleasedMachinesAreReused) {
  auto a = std::make_shared<FakeProvisioner>("a");
  auto pool = *Pool::Create(Options({{a, ""}}));
  std::string first;
  {
    auto got = pool->Acquire("t3.micro", 1, kNoDeadline);
    ASSERT_TRUE(got.ok());
    first = (*got)[0].id();
    EXPECT_EQ(pool->Snapshot()["t3.micro"].leased, 1);
  }  // released by the handle
  EXPECT_EQ(pool->Snapshot()["t3.micro"].idle, 1);
  auto again = pool->Acquire("t3.micro", 2, kNoDeadline);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)[0].id(), first);
  EXPECT_EQ(a->creates.size(), 2u);
  EXPECT_EQ(a->creates[1].count, 1);  // only the missing one is made
  pool->Release(std::move((*again)[1]));
  EXPECT_EQ(pool->Snapshot()["t3.micro"].idle, 1);
}

TEST(PoolTest, FailedAcquireGivesTakenIdleMachinesBack) {
  auto a = std::make_shared<FakeProvisioner>("a");
  auto pool = *Pool::Create(Options({{a, ""}}));
  { auto warm = pool->Acquire("t3.micro", 1, kNoDeadline); }
  a->fail_create_with_invalid = true;
  auto got = pool->Acquire("t3.micro", 2, kNoDeadline);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(pool->Snapshot()["t3.micro"].idle, 1);
  EXPECT_EQ(a->Alive(), 1u);
}

TEST(PoolTest, IdleMachinesAreTornDownButTargetsAreKept) {
  auto a = std::make_shared<FakeProvisioner>("a");
  auto options = Options({{a, ""}});
  options.idle_timeout = std::chrono::milliseconds(1);
  auto pool = *Pool::Create(options);
  ASSERT_TRUE(pool->SetTarget("warm", 1).ok());
  EXPECT_EQ(a->Alive(), 1u);
  { auto got = pool->Acquire("cold", 2, kNoDeadline); }
  // Waits on state, not on a time: the reaper destroys the two idle "cold" machines.
  // The bound only keeps a broken reaper from hanging the test.
  const Deadline give_up = DeadlineAfter(std::chrono::seconds(60));
  while (a->Alive() != 1u && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(a->Alive(), 1u);
  auto snap = pool->Snapshot();
  EXPECT_EQ(snap.count("cold"), 0u);
  EXPECT_EQ(snap["warm"].idle, 1);
}

TEST(PoolTest, CloseDestroysEverythingItMadeButNotAddedMachines) {
  auto a = std::make_shared<FakeProvisioner>("a");
  auto pool = *Pool::Create(Options({{a, ""}}));
  auto leased = pool->Acquire("t3.micro", 2, kNoDeadline);
  ASSERT_TRUE(leased.ok());
  { auto idle = pool->Acquire("t3.micro", 1, kNoDeadline); }
  MachineInfo office;
  office.id = "office-1";
  office.type = "static";
  ASSERT_TRUE(pool->Add(office).ok());
  EXPECT_EQ(pool->Add(office).code(), StatusCode::kAlreadyExists);
  auto got = pool->Acquire("static", 1, kNoDeadline);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ((*got)[0].id(), "office-1");
  EXPECT_TRUE(pool->Close().ok());
  EXPECT_EQ(a->Alive(), 0u);
  EXPECT_EQ(a->destroyed.size(), 3u);  // not office-1
  EXPECT_EQ(pool->Acquire("t3.micro", 1, kNoDeadline).status().code(),
            StatusCode::kFailedPrecondition);
  // Handles outliving Close release nothing and do not crash.
}

TEST(PoolTest, RemoveRefusesLeasedMachines) {
  auto a = std::make_shared<FakeProvisioner>("a");
  auto pool = *Pool::Create(Options({{a, ""}}));
  auto got = pool->Acquire("t3.micro", 1, kNoDeadline);
  ASSERT_TRUE(got.ok());
  const std::string id = (*got)[0].id();
  EXPECT_EQ(pool->Remove(id).code(), StatusCode::kFailedPrecondition);
  got->clear();
  EXPECT_TRUE(pool->Remove(id).ok());
  EXPECT_EQ(pool->Remove(id).code(), StatusCode::kNotFound);
  EXPECT_TRUE(pool->Close().ok());
  EXPECT_EQ(a->Alive(), 1u);  // removed: no longer the pool's
}

TEST(PoolTest, DestructorDuringExceptionDestroysMachines) {
  auto a = std::make_shared<FakeProvisioner>("a");
  try {
    auto pool = *Pool::Create(Options({{a, ""}}));
    auto got = pool->Acquire("t3.micro", 2, kNoDeadline);
    ASSERT_TRUE(got.ok());
    EXPECT_EQ(a->Alive(), 2u);
    throw std::runtime_error("host application failed");
  } catch (const std::runtime_error&) {
  }
  EXPECT_EQ(a->Alive(), 0u);
}

TEST(PoolTest, ConcurrentAcquireFromSeveralThreads) {
  auto a = std::make_shared<FakeProvisioner>("a");
  auto b = std::make_shared<FakeProvisioner>("b");
  a->capacity_error_zones = {"z1"};
  auto pool = *Pool::Create(Options({{a, "z1"}, {b, ""}}));
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20; ++i) {
        auto got = pool->Acquire("t3.micro", 2, kNoDeadline);
        if (got.ok() && got->size() == 2u && (*got)[0].id() != (*got)[1].id()) ++ok;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 160);
  EXPECT_LE(b->Alive(), 16u);  // reuse: never more than 8 threads x 2 at once
  EXPECT_TRUE(pool->Close().ok());
  EXPECT_EQ(b->Alive(), 0u);
  EXPECT_EQ(a->Alive(), 0u);
}

}  // namespace
}  // namespace bitfusion
