// One suite every Provisioner backend must pass (TEST_P bodies only). A backend joins by
// instantiating ProvisionerConformanceTest with a ProvisionerCase. null:// and local:// are
// instantiated in tests/unit/provisioner_conformance_test.cc; aws:// in
// tests/integration/ec2_integration_test.cc against a moto server of its own; softlayer:// in
// tests/integration/softlayer_integration_test.cc against tests/fakes/softlayer_fake.py;
// openstack:// and rackspace:// in tests/integration/openstack_integration_test.cc against
// tests/fakes/openstack_fake.py.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "bitfusion/provisioner.h"
#include "integration/service.h"

namespace bitfusion {

using namespace std::chrono_literals;

struct ProvisionerCase {
  std::string name;
  /// The backend's URI (a function: services pick their ports when they start).
  std::function<std::string()> uri;
  /// A type the backend offers; empty = its default.
  std::string type;
  /// Creates machines of its own that Destroy ends (false for local://, which is this host):
  /// counts above 1, terminating states, the ownership tags, expiry and reaping apply.
  bool disposable = true;
  /// An id of the backend's form that names no machine.
  std::string unknown_id = "i-0123456789abcdef0";
  /// Empty when the backend's service is up; else why not (the test skips, or fails in CI).
  std::function<std::string()> unavailable;
};

inline void PrintTo(const ProvisionerCase& c, std::ostream* os) { *os << c.name; }

class ProvisionerConformanceTest : public ::testing::TestWithParam<ProvisionerCase> {
 protected:
  void SetUp() override {
    const std::string why = GetParam().unavailable ? GetParam().unavailable() : "";
    BITFUSION_REQUIRE_SERVICE(why.empty(), why);
    auto p = ProvisionerFromUri(GetParam().uri());
    ASSERT_TRUE(p.ok()) << p.error().ToString();
    p_ = *p;
  }

  void TearDown() override {
    if (p_ != nullptr && !made_.empty() && GetParam().disposable) (void)p_->Destroy(made_);
  }

  MachineRequest Request(int count = 1) const {
    MachineRequest r;
    r.type = GetParam().type;
    r.count = count;
    r.run_id = "conformance-" + std::to_string(::getpid());
    r.labels["purpose"] = "conformance";
    return r;
  }

  std::vector<MachineInfo> Create(const MachineRequest& r) {
    auto got = p_->Create(r);
    EXPECT_TRUE(got.ok()) << got.error().ToString();
    if (!got.ok()) return {};
    for (const auto& m : *got) made_.push_back(m.id);
    return *got;
  }

  std::optional<MachineInfo> Listed(const std::string& id) {
    auto all = p_->List();
    EXPECT_TRUE(all.ok()) << all.error().ToString();
    if (!all.ok()) return std::nullopt;
    for (const auto& m : *all) {
      if (m.id == id) return m;
    }
    return std::nullopt;
  }

  // Gone from the list, or listed as ending.
  bool Ending(const std::string& id) {
    auto m = Listed(id);
    return !m || m->state == "shutting-down" || m->state == "terminated";
  }

  std::shared_ptr<Provisioner> p_;
  std::vector<std::string> made_;
};

TEST_P(ProvisionerConformanceTest, CreateWaitListDestroy) {
  const int count = GetParam().disposable ? 2 : 1;
  const std::int64_t before = WallNowNs();
  const auto machines = Create(Request(count));
  ASSERT_EQ(machines.size(), static_cast<std::size_t>(count));
  for (const auto& m : machines) {
    EXPECT_FALSE(m.id.empty());
    EXPECT_FALSE(m.provider.empty());
    EXPECT_GE(m.created_ns, before);
    auto ready = p_->WaitReady(m.id, DeadlineAfter(120s));
    ASSERT_TRUE(ready.ok()) << ready.error().ToString();
    EXPECT_EQ(ready->id, m.id);
    EXPECT_EQ(ready->state, "running");
    EXPECT_GT(ready->running_ns, 0);
    EXPECT_GE(ready->ready_ns, ready->running_ns);
    EXPECT_TRUE(Listed(m.id).has_value()) << m.id << " is not listed";
  }
  if (count == 2) {
    EXPECT_NE(machines[0].id, machines[1].id);
  }
  std::vector<std::string> ids;
  for (const auto& m : machines) ids.push_back(m.id);
  const Status destroyed = p_->Destroy(ids);
  ASSERT_TRUE(destroyed.ok()) << destroyed.ToString();
  if (GetParam().disposable) {
    for (const auto& id : ids) EXPECT_TRUE(Ending(id)) << id << " still listed as live";
  }
}

TEST_P(ProvisionerConformanceTest, DestroyIsIdempotent) {
  const auto machines = Create(Request());
  ASSERT_EQ(machines.size(), 1u);
  ASSERT_TRUE(p_->Destroy({machines[0].id}).ok());
  const Status again = p_->Destroy({machines[0].id});
  EXPECT_TRUE(again.ok()) << again.ToString();
}

TEST_P(ProvisionerConformanceTest, UnknownIdIsNotFound) {
  const std::string id = GetParam().unknown_id;
  auto waited = p_->WaitReady(id, DeadlineAfter(20s));
  ASSERT_FALSE(waited.ok());
  EXPECT_EQ(waited.error().code(), StatusCode::kNotFound) << waited.error().ToString();
  const Status destroyed = p_->Destroy({id});
  EXPECT_EQ(destroyed.code(), StatusCode::kNotFound) << destroyed.ToString();
}

TEST_P(ProvisionerConformanceTest, RequirementsNoTypeSatisfiesCreateNothing) {
  MachineRequest r = Request();
  r.type.clear();
  r.requirements.accelerator_kind = "quantum-annealer";
  auto before = p_->List();
  ASSERT_TRUE(before.ok());
  auto got = p_->Create(r);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().code(), StatusCode::kNotFound) << got.error().ToString();
  EXPECT_NE(got.error().message().find("quantum-annealer"), std::string::npos)
      << got.error().message();
  auto after = p_->List();
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->size(), before->size());
}

/// What applies only to backends that create machines of their own (disposable): ownership
/// tags, expiry and reaping, handing machines over. A backend that hands out an existing
/// machine (local://) is not instantiated here.
class DisposableProvisionerConformanceTest : public ProvisionerConformanceTest {};

TEST_P(DisposableProvisionerConformanceTest, OwnershipTagsFromCreation) {
  MachineRequest r = Request();
  r.ttl_s = 3600;
  const auto machines = Create(r);
  ASSERT_EQ(machines.size(), 1u);
  for (const auto& seen : {std::optional<MachineInfo>(machines[0]), Listed(machines[0].id)}) {
    ASSERT_TRUE(seen.has_value());
    const Labels& l = seen->labels;
    EXPECT_EQ(l.count("purpose") ? l.at("purpose") : "", "conformance");
    EXPECT_EQ(l.count(kLabelCreator) ? l.at(kLabelCreator) : "", "bitfusion");
    EXPECT_EQ(l.count(kLabelRunId) ? l.at(kLabelRunId) : "", r.run_id);
    EXPECT_EQ(l.count(kLabelHost) ? l.at(kLabelHost) : "", OwnerIdentity::Self().host);
    EXPECT_EQ(l.count(kLabelPid) ? l.at(kLabelPid) : "", std::to_string(::getpid()));
    EXPECT_EQ(l.count(kLabelPidStart) ? l.at(kLabelPidStart) : "",
              std::to_string(OwnerIdentity::Self().pid_start));
    ASSERT_TRUE(l.count(kLabelExpires));
    EXPECT_NEAR(std::stoll(l.at(kLabelExpires)), WallNowNs() / 1'000'000'000 + 3600, 30);
  }
}

TEST_P(DisposableProvisionerConformanceTest, ReapTakesExpiredAndRunsOnly) {
  MachineRequest short_lived = Request();
  short_lived.ttl_s = 1;
  short_lived.run_id += "-short";
  MachineRequest long_lived = Request();
  long_lived.ttl_s = 3600;
  long_lived.run_id += "-long";
  const auto a = Create(short_lived);
  const auto b = Create(long_lived);
  ASSERT_EQ(a.size(), 1u);
  ASSERT_EQ(b.size(), 1u);
  std::this_thread::sleep_for(2100ms);  // past a's expiry, whole seconds

  ReapPolicy dry;
  dry.dry_run = true;
  auto would = p_->Reap(dry);
  ASSERT_TRUE(would.ok()) << would.error().ToString();
  auto names = [](const MachineReapReport& r, const std::string& id) {
    return std::any_of(r.machines.begin(), r.machines.end(),
                       [&](const std::string& line) { return line.rfind(id + " ", 0) == 0; });
  };
  EXPECT_TRUE(names(*would, a[0].id)) << ::testing::PrintToString(would->machines);
  EXPECT_FALSE(names(*would, b[0].id));
  EXPECT_FALSE(Ending(a[0].id)) << "a dry run destroyed " << a[0].id;

  auto reaped = p_->Reap(ReapPolicy{});
  ASSERT_TRUE(reaped.ok()) << reaped.error().ToString();
  EXPECT_TRUE(names(*reaped, a[0].id));
  EXPECT_TRUE(reaped->errors.empty()) << ::testing::PrintToString(reaped->errors);
  EXPECT_TRUE(Ending(a[0].id));
  EXPECT_FALSE(Ending(b[0].id)) << "reap took a live, unexpired machine";

  ReapPolicy by_run;
  by_run.run_id = long_lived.run_id;
  reaped = p_->Reap(by_run);
  ASSERT_TRUE(reaped.ok()) << reaped.error().ToString();
  EXPECT_TRUE(names(*reaped, b[0].id));
  EXPECT_TRUE(Ending(b[0].id));
}

TEST_P(DisposableProvisionerConformanceTest, KeptMachinesLoseTheirCreatorTagsOnly) {
  const auto machines = Create(Request());
  ASSERT_EQ(machines.size(), 1u);
  const Status kept = p_->Keep({machines[0].id});
  ASSERT_TRUE(kept.ok()) << kept.ToString();
  auto m = Listed(machines[0].id);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->labels.count(kLabelPid), 0u);
  EXPECT_EQ(m->labels.count(kLabelPidStart), 0u);
  EXPECT_EQ(m->labels.count(kLabelCreator), 1u);
  EXPECT_EQ(m->labels.count(kLabelExpires), 1u);
  EXPECT_EQ(m->labels.count(kLabelRunId), 1u);
}

}  // namespace bitfusion
