// aws:// against moto's EC2 server, started by the test with signature checking and
// instance-type validation on: the provisioner conformance suite, plus what only a real API
// shows (wrong secrets, unknown types, ClientToken idempotency, requirements resolution).
#include <stdlib.h>

#include "bitfusion/pool.h"
#include "conformance/provisioner_conformance.h"
#include "integration/moto_server.h"

namespace bitfusion {
namespace {

using testing::MotoServer;

// One server for the whole process (ONE_PROCESS in tests/CMakeLists.txt); the environment
// carries its key as AWS users' tools read it.
MotoServer* g_moto = nullptr;

MotoServer& Moto() {
  static MotoServer* moto = g_moto = [] {
    auto* m = new MotoServer();
    if (m->error().empty()) {
      ::setenv("AWS_ACCESS_KEY_ID", m->access_key_id().c_str(), 1);
      ::setenv("AWS_SECRET_ACCESS_KEY", m->secret_access_key().c_str(), 1);
      ::unsetenv("AWS_SESSION_TOKEN");
      ::unsetenv("AWS_PROFILE");
      ::setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
      ::setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config", 1);
      ::setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials", 1);
    }
    return m;
  }();
  return *moto;
}

struct MotoShutdown : ::testing::Environment {
  void TearDown() override { delete g_moto; }
};

std::string Uri() {
  return "aws://us-east-1?endpoint=" + Moto().url() + "&wait_ssh=false&poll=50ms&backoff=20ms";
}

const ProvisionerCase kAws{
    "aws", Uri, "t3.micro", true, "i-0123456789abcdef0", [] { return Moto().error(); }};
INSTANTIATE_TEST_SUITE_P(Moto, ProvisionerConformanceTest, ::testing::Values(kAws),
                         [](const auto& info) { return info.param.name; });
INSTANTIATE_TEST_SUITE_P(Moto, DisposableProvisionerConformanceTest, ::testing::Values(kAws),
                         [](const auto& info) { return info.param.name; });

class Ec2MotoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    BITFUSION_REQUIRE_SERVICE(Moto().error().empty(), Moto().error());
    auto p = ProvisionerFromUri(Uri());
    ASSERT_TRUE(p.ok()) << p.error().ToString();
    p_ = *p;
  }
  std::size_t Live() {
    auto all = p_->List();
    EXPECT_TRUE(all.ok()) << all.error().ToString();
    std::size_t n = 0;
    for (const auto& m : all.ok() ? *all : std::vector<MachineInfo>{}) {
      n += m.state == "pending" || m.state == "running";
    }
    return n;
  }
  std::shared_ptr<Provisioner> p_;
};

// A pool over aws:// makes, reuses and, on Close, terminates its machines.
TEST_F(Ec2MotoTest, PoolAcquiresReusesAndTerminatesOnClose) {
  const std::size_t before = Live();
  PoolOptions options;
  options.candidates = {{p_, "aws://us-east-1", ""}};
  options.run_id = "pool-moto";
  auto pool = Pool::Create(options);
  ASSERT_TRUE(pool.ok()) << pool.error().ToString();
  {
    std::vector<PoolAttempt> attempts;
    auto got = (*pool)->Acquire("t3.micro", 2, DeadlineAfter(std::chrono::minutes(2)), &attempts);
    ASSERT_TRUE(got.ok()) << got.error().ToString();
    ASSERT_EQ(got->size(), 2u);
    ASSERT_EQ(attempts.size(), 1u);
    EXPECT_EQ((*got)[0].info().type, "t3.micro");
    EXPECT_EQ(Live(), before + 2);
  }
  auto again = (*pool)->Acquire("t3.micro", 1, DeadlineAfter(std::chrono::minutes(2)));
  ASSERT_TRUE(again.ok()) << again.error().ToString();
  EXPECT_EQ(Live(), before + 2);  // reused, none made
  EXPECT_TRUE((*pool)->Close().ok());
  EXPECT_EQ(Live(), before);
}

TEST_F(Ec2MotoTest, WrongSecretIsAuthFailureAndNeverShown) {
  const std::string good = Moto().secret_access_key();
  const std::string wrong = "wrong-" + good;
  ::setenv("AWS_SECRET_ACCESS_KEY", wrong.c_str(), 1);
  auto p = ProvisionerFromUri(Uri());
  ASSERT_TRUE(p.ok());
  auto listed = (*p)->List();
  ::setenv("AWS_SECRET_ACCESS_KEY", good.c_str(), 1);
  ASSERT_FALSE(listed.ok());
  EXPECT_EQ(listed.error().code(), StatusCode::kPermissionDenied) << listed.error().ToString();
  EXPECT_NE(listed.error().message().find("AuthFailure"), std::string::npos)
      << listed.error().message();
  EXPECT_EQ(listed.error().message().find(wrong), std::string::npos);
  EXPECT_EQ(listed.error().message().find(good), std::string::npos);
}

TEST_F(Ec2MotoTest, UnknownTypeIsRefusedBeforeAnythingIsMade) {
  const std::size_t before = Live();
  MachineRequest r;
  r.type = "zz9.huge";
  auto got = p_->Create(r);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(got.error().message().find("InvalidInstanceType"), std::string::npos)
      << got.error().message();
  r.type = "t3.micro";
  r.image = "ami-doesnotexist";
  got = p_->Create(r);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().code(), StatusCode::kInvalidArgument) << got.error().ToString();
  EXPECT_EQ(Live(), before);
}

// moto 5.2 does not honour ClientToken (a repeated RunInstances makes new instances), so the
// retry-after-a-lost-answer path is checked against a scripted server in
// tests/unit/ec2_provisioner_test.cc; here: the token is sent and every instance carries it.
TEST_F(Ec2MotoTest, EveryInstanceCarriesItsCreatesToken) {
  MachineRequest r;
  r.type = "t3.micro";
  r.count = 2;
  r.client_token = "bf-test-" + std::to_string(::getpid());
  auto made = p_->Create(r);
  ASSERT_TRUE(made.ok()) << made.error().ToString();
  ASSERT_EQ(made->size(), 2u);
  std::vector<std::string> ids;
  for (const auto& m : *made) ids.push_back(m.id);
  auto all = p_->List();
  ASSERT_TRUE(all.ok());
  int tagged = 0;
  for (const auto& m : *all) {
    auto it = m.labels.find("bitfusion.client_token");
    tagged += it != m.labels.end() && it->second == r.client_token;
  }
  EXPECT_EQ(tagged, 2);
  EXPECT_TRUE(p_->Destroy(ids).ok());
}

TEST_F(Ec2MotoTest, TypesCarryAcceleratorsAndRequirementsResolve) {
  auto types = p_->Types();
  ASSERT_TRUE(types.ok()) << types.error().ToString();
  EXPECT_GT(types->size(), 100u);
  auto find = [&](const std::string& name) -> const MachineType* {
    for (const auto& t : *types) {
      if (t.name == name) return &t;
    }
    return nullptr;
  };
  const MachineType* g5 = find("g5.xlarge");
  ASSERT_NE(g5, nullptr);
  EXPECT_EQ(g5->vcpus, 4);
  EXPECT_EQ(g5->memory_bytes, 16ULL << 30);
  ASSERT_EQ(g5->accelerators.size(), 1u);
  EXPECT_EQ(g5->accelerators[0].kind, "gpu");
  EXPECT_EQ(g5->accelerators[0].vendor, "NVIDIA");
  EXPECT_EQ(g5->accelerators[0].model, "A10G");
  const MachineType* f2 = find("f2.6xlarge");
  ASSERT_NE(f2, nullptr);
  ASSERT_FALSE(f2->accelerators.empty());
  EXPECT_EQ(f2->accelerators[0].kind, "fpga");

  MachineRequest r;
  r.requirements.accelerator_kind = "gpu";
  r.requirements.accelerator_model = "A10G";
  auto made = p_->Create(r);
  ASSERT_TRUE(made.ok()) << made.error().ToString();
  ASSERT_EQ(made->size(), 1u);
  EXPECT_EQ((*made)[0].type, "g5.xlarge");  // no prices: the smallest A10G type
  EXPECT_TRUE(p_->Destroy({(*made)[0].id}).ok());
}

TEST_F(Ec2MotoTest, MissingCredentialsSayWhereTheyWereLookedFor) {
  const std::string id = Moto().access_key_id(), secret = Moto().secret_access_key();
  ::unsetenv("AWS_ACCESS_KEY_ID");
  ::unsetenv("AWS_SECRET_ACCESS_KEY");
  auto p = ProvisionerFromUri(Uri());
  auto listed = p.ok() ? (*p)->List() : Result<std::vector<MachineInfo>>(p.error());
  ::setenv("AWS_ACCESS_KEY_ID", id.c_str(), 1);
  ::setenv("AWS_SECRET_ACCESS_KEY", secret.c_str(), 1);
  ASSERT_FALSE(listed.ok());
  EXPECT_EQ(listed.error().code(), StatusCode::kPermissionDenied);
  EXPECT_NE(listed.error().message().find("no AWS credentials found"), std::string::npos);
  auto bad_region = ProvisionerFromUri("aws://moon-base?endpoint=" + Moto().url());
  ASSERT_FALSE(bad_region.ok());
  EXPECT_EQ(bad_region.error().code(), StatusCode::kInvalidArgument);
}

const auto* const kShutdown = ::testing::AddGlobalTestEnvironment(new MotoShutdown);

}  // namespace
}  // namespace bitfusion
