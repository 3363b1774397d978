// openstack:// (Keystone v3 + Nova) and rackspace:// (Rackspace identity v2.0 + Nova) against
// tests/fakes/openstack_fake.py (the strict fake of both), started by the test on a free port
// and stopped by PID: the provisioner conformance suite for each, plus the error paths (wrong
// and missing credentials, unknown region, flavour and image, throttling, quota, a lost create
// answer, a half-made batch, "No valid host", an expired token), paging, GPU flavours from
// extra specs, application credentials, and that no password, key or token shows up anywhere.
#include <stdlib.h>

#include <boost/json.hpp>
#include <fstream>
#include <mutex>

#include "bitfusion/log.h"
#include "conformance/provisioner_conformance.h"
#include "net/http_client.h"
#include "provisioners/openstack_provisioner.h"
#include "scoped_env.h"

namespace bitfusion {
namespace {

using testing::ScopedEnv;
using testing::ServiceProcess;

constexpr const char* kUser = "demo";
constexpr const char* kPassword = "Op3nSt4ck-p4ssw0rd-5e7c1a";
constexpr const char* kAppId = "4f1c0c2a9e5b4d0e8a7b6c5d4e3f2a1b";
constexpr const char* kAppSecret = "app-cred-secret-91b2c3d4e5f6";
constexpr const char* kRaxUser = "raxuser";
constexpr const char* kRaxKey = "0a1b2c3d4e5f60718293a4b5c6d7e8f9";
constexpr const char* kUbuntu = "8a3b2c1d-0000-4000-8000-000000000001";

class OpenStackFake {
 public:
  OpenStackFake() {
    const std::string python = "/usr/bin/python3";
    if (!testing::HaveProgram(python)) {
      error_ = "/usr/bin/python3 not found";
      return;
    }
    dir_ = testing::FreshDir("openstack-fake");
    remove_dir_.path = dir_;
    const std::string port_file = (dir_ / "port").string();
    process_ = std::make_unique<ServiceProcess>(
        std::vector<std::string>{python, BITFUSION_SOURCE_DIR "/tests/fakes/openstack_fake.py",
                                 "--port-file", port_file, "--build-seconds", "0.2",
                                 "--delete-seconds", "0.2", "--instances-quota", "300"},
        (dir_ / "fake.log").string(),
        std::vector<std::string>{
            std::string("OPENSTACK_FAKE_USER=") + kUser + ":" + kPassword,
            std::string("OPENSTACK_FAKE_APP_CRED=") + kAppId + ":" + kAppSecret,
            std::string("OPENSTACK_FAKE_RAX_USER=") + kRaxUser + ":" + kRaxKey});
    const bool up = process_->WaitReady([&] {
      std::ifstream in(port_file);
      return static_cast<bool>(in >> port_);
    });
    if (!up) {
      error_ = "openstack_fake did not start: " + process_->Log();
      return;
    }
    net::HttpClientOptions o;
    o.base_url = base();
    control_ = *net::HttpClient::Make(o);
  }

  const std::string& error() const { return error_; }
  std::string base() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int port() const { return port_; }
  pid_t pid() const { return process_ ? process_->pid() : -1; }

  void Post(const std::string& target, const std::string& body) {
    net::HttpRequest r;
    r.method = "POST";
    r.target = target;
    r.body = body;
    r.headers = {{"Content-Type", "application/json"}};
    r.deadline = DeadlineAfter(std::chrono::seconds(10));
    auto got = control_->Send(r);
    ASSERT_TRUE(got.ok() && got->status == 200) << target << " " << body;
  }

  /// POST /_fake/faults with `faults` (a JSON object).
  void Inject(const std::string& faults) { Post("/_fake/faults", faults); }

  boost::json::object State() {
    net::HttpRequest r;
    r.target = "/_fake/state";
    r.deadline = DeadlineAfter(std::chrono::seconds(10));
    auto got = control_->Send(r);
    if (!got.ok()) return {};
    return boost::json::parse(got->body).as_object();
  }

  std::int64_t Stat(const char* name) {
    return State().at("stats").as_object().at(name).as_int64();
  }

  /// Servers neither deleting nor gone.
  std::int64_t Live() {
    std::int64_t n = 0;
    const boost::json::object state = State();
    for (const auto& s : state.at("servers").as_array()) {
      const auto& o = s.as_object();
      const auto& task = o.at("OS-EXT-STS:task_state");
      n += !o.at("gone").as_bool() && !(task.is_string() && task.as_string() == "deleting");
    }
    return n;
  }

 private:
  std::filesystem::path dir_;
  testing::RemoveDirLater remove_dir_;  // after the process has stopped
  std::unique_ptr<ServiceProcess> process_;
  std::unique_ptr<net::HttpClient> control_;
  std::string error_;
  int port_ = 0;
};

// One fake for the whole process (ONE_PROCESS in tests/CMakeLists.txt); the environment carries
// the credentials as openrc files and the Rackspace tools set them.
OpenStackFake* g_fake = nullptr;

OpenStackFake& Fake() {
  static OpenStackFake* fake = g_fake = [] {
    auto* f = new OpenStackFake();
    ::setenv("OS_USERNAME", kUser, 1);
    ::setenv("OS_PASSWORD", kPassword, 1);
    ::setenv("OS_PROJECT_NAME", "demo", 1);
    ::setenv("RACKSPACE_USERNAME", kRaxUser, 1);
    ::setenv("RACKSPACE_API_KEY", kRaxKey, 1);
    for (const char* v :
         {"OS_APPLICATION_CREDENTIAL_ID", "OS_APPLICATION_CREDENTIAL_SECRET", "OS_AUTH_URL",
          "OS_REGION_NAME", "OS_INTERFACE", "RS_USERNAME", "RS_API_KEY"}) {
      ::unsetenv(v);
    }
    return f;
  }();
  return *fake;
}

struct FakeShutdown : ::testing::Environment {
  void TearDown() override { delete g_fake; }
};
const auto* const kShutdown = ::testing::AddGlobalTestEnvironment(new FakeShutdown);

std::string OpenStackUri(const std::string& extra = "") {
  return "openstack://127.0.0.1:" + std::to_string(Fake().port()) +
         "/v3?tls=false&region=RegionOne&image=ubuntu-22.04&type=m1.small&wait_ssh=false"
         "&poll=50ms&backoff=10ms" +
         extra;
}

std::string RackspaceUri(const std::string& region = "DFW", const std::string& extra = "") {
  return "rackspace://" + region + "?identity=" + Fake().base() + "/v2.0&image=" + kUbuntu +
         "&type=m1.small&wait_ssh=false&poll=50ms&backoff=10ms" + extra;
}

const ProvisionerCase kOpenStack{
    "openstack", [] { return OpenStackUri(); },          "m1.small",
    true,        "00000000-0000-4000-8000-000000000000", [] { return Fake().error(); }};
const ProvisionerCase kRackspace{
    "rackspace", [] { return RackspaceUri(); },          "m1.small",
    true,        "00000000-0000-4000-8000-000000000000", [] { return Fake().error(); }};
INSTANTIATE_TEST_SUITE_P(Fake, ProvisionerConformanceTest,
                         ::testing::Values(kOpenStack, kRackspace),
                         [](const auto& info) { return info.param.name; });
INSTANTIATE_TEST_SUITE_P(Fake, DisposableProvisionerConformanceTest,
                         ::testing::Values(kOpenStack, kRackspace),
                         [](const auto& info) { return info.param.name; });

class OpenStackFakeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    BITFUSION_REQUIRE_SERVICE(Fake().error().empty(), Fake().error());
    auto p = ProvisionerFromUri(OpenStackUri());
    ASSERT_TRUE(p.ok()) << p.error().ToString();
    p_ = *p;
  }
  MachineRequest Request(int count = 1) {
    MachineRequest r;
    r.type = "m1.small";
    r.count = count;
    r.run_id = "openstack-test-" + std::to_string(::getpid());
    return r;
  }
  std::shared_ptr<Provisioner> p_;
};

std::string Cmdline(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline");
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

TEST_F(OpenStackFakeTest, WrongSecretsArePermissionDeniedAndNoSecretOrTokenAnywhere) {
  std::mutex mu;
  std::string logged;
  SetLogHandler([&](LogLevel, std::string_view message) {
    std::lock_guard lock(mu);
    logged += std::string(message) + "\n";
  });
  const LogLevel level = GetLogLevel();
  SetLogLevel(LogLevel::kTrace);
  const std::string wrong = std::string("x") + kPassword;
  Result<std::vector<MachineInfo>> keystone = std::vector<MachineInfo>{};
  Result<std::vector<MachineInfo>> rackspace = std::vector<MachineInfo>{};
  {
    ScopedEnv env({{"OS_PASSWORD", wrong.c_str()}, {"RACKSPACE_API_KEY", wrong.c_str()}});
    auto p = ProvisionerFromUri(OpenStackUri());
    ASSERT_TRUE(p.ok()) << p.error().ToString();
    keystone = (*p)->List();
    auto r = ProvisionerFromUri(RackspaceUri());
    ASSERT_TRUE(r.ok()) << r.error().ToString();
    rackspace = (*r)->List();
  }
  // A good password's work, logged at the most verbose level, must not show it (or a token).
  auto made = p_->Create(Request());
  ASSERT_TRUE(made.ok()) << made.error().ToString();
  auto ready = p_->WaitReady((*made)[0].id, DeadlineAfter(60s));
  ASSERT_TRUE(ready.ok()) << ready.error().ToString();
  EXPECT_TRUE(p_->Destroy({(*made)[0].id}).ok());
  SetLogLevel(level);
  SetLogHandler(nullptr);

  ASSERT_FALSE(keystone.ok());
  EXPECT_EQ(keystone.error().code(), StatusCode::kPermissionDenied) << keystone.error().ToString();
  EXPECT_NE(keystone.error().message().find("401"), std::string::npos);
  EXPECT_NE(keystone.error().message().find("OS_PASSWORD"), std::string::npos)
      << keystone.error().message();
  ASSERT_FALSE(rackspace.ok());
  EXPECT_EQ(rackspace.error().code(), StatusCode::kPermissionDenied);
  EXPECT_NE(rackspace.error().message().find("RACKSPACE_API_KEY"), std::string::npos)
      << rackspace.error().message();
  for (const char* secret : {kPassword, kRaxKey}) {
    EXPECT_EQ(keystone.error().message().find(secret), std::string::npos);
    EXPECT_EQ(rackspace.error().message().find(secret), std::string::npos);
    EXPECT_EQ(logged.find(secret), std::string::npos) << logged;
  }
  EXPECT_EQ(logged.find(wrong), std::string::npos);
  EXPECT_EQ(logged.find("gAAAA"), std::string::npos) << "a token was logged: " << logged;
  std::ostringstream record;
  record << ::testing::PrintToString(*ready) << ready->hostname << ready->ssh.key_name;
  for (const auto& [k, v] : ready->labels) record << k << v;
  EXPECT_EQ(record.str().find(kPassword), std::string::npos);
  EXPECT_EQ(record.str().find("gAAAA"), std::string::npos);
  for (const pid_t pid : {::getpid(), Fake().pid()}) {
    const std::string cmdline = Cmdline(pid);
    EXPECT_FALSE(cmdline.empty());
    EXPECT_EQ(cmdline.find(kPassword), std::string::npos) << pid;
    EXPECT_EQ(cmdline.find(kRaxKey), std::string::npos) << pid;
  }
}

TEST_F(OpenStackFakeTest, MissingCredentialsSayWhatToSetAndAppCredentialsWork) {
  {
    ScopedEnv env({{"OS_USERNAME", nullptr}, {"OS_PASSWORD", nullptr}});
    auto p = ProvisionerFromUri(OpenStackUri());
    ASSERT_FALSE(p.ok());
    EXPECT_EQ(p.error().code(), StatusCode::kPermissionDenied);
    EXPECT_NE(p.error().message().find("OS_PASSWORD"), std::string::npos) << p.error().message();
    EXPECT_NE(p.error().message().find("OS_APPLICATION_CREDENTIAL_ID"), std::string::npos);
  }
  {
    ScopedEnv env({{"OS_USERNAME", nullptr},
                   {"OS_PASSWORD", nullptr},
                   {"OS_APPLICATION_CREDENTIAL_ID", kAppId},
                   {"OS_APPLICATION_CREDENTIAL_SECRET", kAppSecret}});
    auto p = ProvisionerFromUri(OpenStackUri());
    ASSERT_TRUE(p.ok()) << p.error().ToString();
    auto types = (*p)->Types();
    EXPECT_TRUE(types.ok()) << types.error().ToString();
  }
  {
    ScopedEnv env({{"OS_PROJECT_NAME", nullptr}});
    auto p = ProvisionerFromUri(OpenStackUri());
    ASSERT_FALSE(p.ok());
    EXPECT_EQ(p.error().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(p.error().message().find("OS_PROJECT_NAME"), std::string::npos);
  }
  {
    ScopedEnv env({{"RACKSPACE_API_KEY", nullptr}});
    auto p = ProvisionerFromUri(RackspaceUri());
    ASSERT_FALSE(p.ok());
    EXPECT_EQ(p.error().code(), StatusCode::kPermissionDenied);
    EXPECT_NE(p.error().message().find("RACKSPACE_API_KEY"), std::string::npos);
  }
  auto in_uri = ProvisionerFromUri("openstack://demo:hunter2secret@127.0.0.1/v3");
  ASSERT_FALSE(in_uri.ok());
  EXPECT_EQ(in_uri.error().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(in_uri.error().message().find("hunter2secret"), std::string::npos);
}

TEST_F(OpenStackFakeTest, UnknownRegionFlavourImageAndLabelsAreRefusedBeforeAnythingIsMade) {
  const auto creates = Fake().Stat("creates");
  auto moon = ProvisionerFromUri(OpenStackUri("&region=Moon"));
  ASSERT_TRUE(moon.ok()) << moon.error().ToString();
  auto got = (*moon)->Create(Request());
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().code(), StatusCode::kNotFound) << got.error().ToString();
  EXPECT_NE(got.error().message().find("Moon"), std::string::npos);
  EXPECT_NE(got.error().message().find("RegionTwo"), std::string::npos) << got.error().message();
  auto lunar = ProvisionerFromUri(RackspaceUri("LUNA"));
  ASSERT_TRUE(lunar.ok());
  got = (*lunar)->Create(Request());
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().code(), StatusCode::kNotFound);
  EXPECT_NE(got.error().message().find("DFW"), std::string::npos) << got.error().message();

  MachineRequest r = Request();
  r.type = "m9.enormous";
  got = p_->Create(r);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(got.error().message().find("m9.enormous"), std::string::npos);
  EXPECT_NE(got.error().message().find("m1.large"), std::string::npos) << got.error().message();
  r = Request();
  r.image = "beos-5";
  got = p_->Create(r);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(got.error().message().find("debian-12"), std::string::npos) << got.error().message();
  r = Request();
  r.labels["bad,label"] = "x";
  got = p_->Create(r);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().code(), StatusCode::kInvalidArgument);
  r = Request();
  r.spot = true;
  EXPECT_EQ(p_->Create(r).error().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Fake().Stat("creates"), creates);
  // What only Nova can judge comes back with its message: a key pair it does not know, an
  // image UUID it does not have.
  r = Request();
  r.ssh_key_name = "nobody-key";
  got = p_->Create(r);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(got.error().message().find("Invalid key_name"), std::string::npos)
      << got.error().message();
  r = Request();
  r.image = "8a3b2c1d-0000-4000-8000-00000000dead";
  got = p_->Create(r);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(got.error().message().find("could not be found"), std::string::npos);
  EXPECT_EQ(Fake().Stat("creates"), creates);
}

TEST_F(OpenStackFakeTest, ThrottlingAndUnavailableAreRetried) {
  const auto live = Fake().Live();
  Fake().Inject(R"({"over_limit": 2, "over_limit_status": 413, "retry_after": 0})");
  auto listed = p_->List();
  EXPECT_TRUE(listed.ok()) << listed.error().ToString();
  Fake().Inject(R"({"over_limit": 1, "over_limit_status": 429, "retry_after": 0})");
  auto made = p_->Create(Request());
  ASSERT_TRUE(made.ok()) << made.error().ToString();
  EXPECT_EQ(Fake().Live(), live + 1);
  Fake().Inject(R"({"unavailable": 2})");
  EXPECT_TRUE(p_->Destroy({(*made)[0].id}).ok());
  EXPECT_EQ(Fake().Live(), live);
}

TEST_F(OpenStackFakeTest, QuotaIsResourceExhaustedAndAHalfMadeBatchIsDeleted) {
  const auto live = Fake().Live();
  Fake().Inject(R"({"create_fail_after": 2})");
  auto got = p_->Create(Request(4));
  Fake().Inject(R"({"create_fail_after": -1})");
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().code(), StatusCode::kResourceExhausted) << got.error().ToString();
  EXPECT_NE(got.error().message().find("Quota exceeded"), std::string::npos);
  EXPECT_NE(got.error().message().find("nothing was left behind"), std::string::npos)
      << got.error().message();
  EXPECT_EQ(Fake().Live(), live);
}

TEST_F(OpenStackFakeTest, LostCreateAnswerMakesNoSecondServer) {
  const auto creates = Fake().Stat("creates");
  Fake().Inject(R"({"error_after_create": 1})");
  auto made = p_->Create(Request(2));
  ASSERT_TRUE(made.ok()) << made.error().ToString();
  ASSERT_EQ(made->size(), 2u);
  EXPECT_EQ(Fake().Stat("creates"), creates + 2);
  EXPECT_NE((*made)[0].id, (*made)[1].id);
  auto listed = p_->List();
  ASSERT_TRUE(listed.ok());
  for (const auto& m : *made) {
    EXPECT_TRUE(std::any_of(
        listed->begin(), listed->end(),
        [&](const MachineInfo& l) { return l.id == m.id && l.labels.count(kLabelCreator) == 1; }))
        << m.id << " is not listed with its metadata";
  }
  // Another process sees them too, with the type named and Nova's created time.
  auto other = ProvisionerFromUri(OpenStackUri());
  ASSERT_TRUE(other.ok());
  auto seen = (*other)->List();
  ASSERT_TRUE(seen.ok()) << seen.error().ToString();
  auto it = std::find_if(seen->begin(), seen->end(),
                         [&](const MachineInfo& l) { return l.id == (*made)[0].id; });
  ASSERT_NE(it, seen->end());
  EXPECT_NEAR(static_cast<double>(it->created_ns), static_cast<double>(WallNowNs()), 120e9);
  EXPECT_EQ(it->type, "m1.small");
  EXPECT_EQ(it->memory_bytes, 2048ULL << 20);
  EXPECT_EQ(it->labels.at(kLabelRunId), Request().run_id);
  EXPECT_TRUE(p_->Destroy({(*made)[0].id, (*made)[1].id}).ok());
  // With no retries left, a lost answer is still looked up: nothing is left behind.
  auto once = ProvisionerFromUri(OpenStackUri("&attempts=1"));
  ASSERT_TRUE(once.ok());
  Fake().Inject(R"({"error_after_create": 1})");
  auto single = (*once)->Create(Request());
  ASSERT_TRUE(single.ok()) << single.error().ToString();
  EXPECT_EQ(Fake().Stat("creates"), creates + 3);
  EXPECT_TRUE((*once)->Destroy({(*single)[0].id}).ok());
  // A provisioner that did not delete it: once Nova forgets the server, it is NotFound.
  std::this_thread::sleep_for(400ms);
  EXPECT_EQ((*other)->Destroy({(*made)[0].id}).code(), StatusCode::kNotFound);
}

TEST_F(OpenStackFakeTest, NoValidHostSurfacesTheFaultAsCapacity) {
  Fake().Inject(R"({"no_valid_host": 1})");
  auto made = p_->Create(Request());
  ASSERT_TRUE(made.ok()) << made.error().ToString();
  auto ready = p_->WaitReady((*made)[0].id, DeadlineAfter(60s));
  ASSERT_FALSE(ready.ok());
  EXPECT_EQ(ready.error().code(), StatusCode::kResourceExhausted) << ready.error().ToString();
  EXPECT_NE(ready.error().message().find("No valid host was found"), std::string::npos);
  auto listed = p_->List();
  ASSERT_TRUE(listed.ok());
  auto it = std::find_if(listed->begin(), listed->end(),
                         [&](const MachineInfo& m) { return m.id == (*made)[0].id; });
  ASSERT_NE(it, listed->end());
  EXPECT_EQ(it->state, "error");
  EXPECT_TRUE(p_->Destroy({(*made)[0].id}).ok());
}

TEST_F(OpenStackFakeTest, ExpiredTokenIsRenewed) {
  auto before = p_->List();
  ASSERT_TRUE(before.ok()) << before.error().ToString();
  Fake().Post("/_fake/expire_tokens", "{}");
  auto after = p_->List();
  EXPECT_TRUE(after.ok()) << after.error().ToString();
}

TEST_F(OpenStackFakeTest, ListPagesPastOneHundred) {
  auto a = p_->Create(Request(100));
  ASSERT_TRUE(a.ok()) << a.error().ToString();
  auto b = p_->Create(Request(3));
  ASSERT_TRUE(b.ok()) << b.error().ToString();
  std::vector<std::string> ids;
  for (const auto* made : {&*a, &*b}) {
    for (const auto& m : *made) ids.push_back(m.id);
  }
  auto listed = p_->List();
  ASSERT_TRUE(listed.ok()) << listed.error().ToString();
  std::size_t found = 0;
  for (const auto& m : *listed) found += std::count(ids.begin(), ids.end(), m.id);
  EXPECT_EQ(found, ids.size());
  EXPECT_TRUE(p_->Destroy(ids).ok());
}

TEST_F(OpenStackFakeTest, AcceleratorsComeFromFlavourExtraSpecs) {
  auto types = p_->Types();
  ASSERT_TRUE(types.ok()) << types.error().ToString();
  auto find = [&](const std::string& name) {
    return std::find_if(types->begin(), types->end(),
                        [&](const MachineType& t) { return t.name == name; });
  };
  auto gpu = find("g1.a100x2");
  ASSERT_NE(gpu, types->end());
  EXPECT_EQ(gpu->vcpus, 16);
  EXPECT_EQ(gpu->memory_bytes, 65536ULL << 20);
  ASSERT_EQ(gpu->accelerators.size(), 1u);
  EXPECT_EQ(gpu->accelerators[0].kind, "gpu");
  EXPECT_EQ(gpu->accelerators[0].vendor, "NVIDIA");
  EXPECT_EQ(gpu->accelerators[0].model, "a100");
  EXPECT_EQ(gpu->accelerators[0].count, 2);
  auto vgpu = find("v1.vgpu");
  ASSERT_NE(vgpu, types->end());
  ASSERT_EQ(vgpu->accelerators.size(), 1u);
  EXPECT_EQ(vgpu->accelerators[0].model, "vGPU");
  auto plain = find("m1.large");
  ASSERT_NE(plain, types->end());
  EXPECT_TRUE(plain->accelerators.empty());

  MachineRequest r = Request();
  r.type.clear();
  r.requirements.accelerator_kind = "gpu";
  r.requirements.accelerator_model = "A100";
  r.requirements.accelerator_count = 2;
  auto made = p_->Create(r);
  ASSERT_TRUE(made.ok()) << made.error().ToString();
  EXPECT_EQ((*made)[0].type, "g1.a100x2");
  auto ready = p_->WaitReady((*made)[0].id, DeadlineAfter(60s));
  ASSERT_TRUE(ready.ok()) << ready.error().ToString();
  EXPECT_EQ(ready->type, "g1.a100x2");
  EXPECT_FALSE(ready->ssh.host.empty());
  EXPECT_EQ(ready->zone, "nova");
  ASSERT_EQ(ready->accelerators.size(), 1u);
  EXPECT_GT(ready->running_ns, 0);
  EXPECT_GE(ready->ready_ns, ready->running_ns);
  EXPECT_TRUE(p_->Destroy({(*made)[0].id}).ok());
}

TEST(OpenStackOptionsTest, FromUriBuildsTheIdentityUrlAndTakesNoSecrets) {
  auto parse = [](const std::string& text) {
    auto uri = Uri::Parse(text);
    EXPECT_TRUE(uri.ok()) << text;
    return OpenStackProvisionerOptions::FromUri(*uri);
  };
  ScopedEnv env({{"OS_AUTH_URL", "https://keystone.example:5000/v3/"},
                 {"OS_REGION_NAME", "RegionTwo"},
                 {"OS_PROJECT_NAME", "bench"}});
  auto o = parse(
      "openstack://keystone.lab:5000?region=RegionOne&interface=internal&project=p"
      "&user_domain=ud&project_domain=pd&type=m1.large&image=debian-12"
      "&network=0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0&ssh_user=debian&wait_ssh=false&poll=1s"
      "&attempts=3&backoff=1s");
  ASSERT_TRUE(o.ok()) << o.error().ToString();
  EXPECT_EQ(o->identity_url, "https://keystone.lab:5000/v3");
  EXPECT_EQ(o->region, "RegionOne");
  EXPECT_EQ(o->interface, "internal");
  EXPECT_EQ(o->project, "p");
  EXPECT_EQ(o->user_domain, "ud");
  EXPECT_EQ(o->project_domain, "pd");
  EXPECT_EQ(o->default_type, "m1.large");
  EXPECT_EQ(o->image, "debian-12");
  EXPECT_EQ(o->ssh_user, "debian");
  EXPECT_FALSE(o->wait_ssh);
  EXPECT_EQ(o->max_attempts, 3);
  auto from_env = parse("openstack://");
  ASSERT_TRUE(from_env.ok()) << from_env.error().ToString();
  EXPECT_EQ(from_env->identity_url, "https://keystone.example:5000/v3");
  EXPECT_EQ(from_env->region, "RegionTwo");
  EXPECT_EQ(from_env->project, "bench");
  auto rax = parse("rackspace://iad");
  ASSERT_TRUE(rax.ok());
  EXPECT_EQ(rax->region, "IAD");
  EXPECT_EQ(rax->identity_url, "https://identity.api.rackspacecloud.com/v2.0");
  for (const char* bad :
       {"rackspace://", "rackspace://DFW/x", "rackspace://DFW?region=ORD", "openstack://h?colour=1",
        "openstack://h?interface=sideways", "openstack://h?network=net1",
        "openstack://h?attempts=0", "rackspace://u:topsecret@DFW"}) {
    auto got = parse(bad);
    ASSERT_FALSE(got.ok()) << bad;
    EXPECT_EQ(got.error().code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_EQ(got.error().message().find("topsecret"), std::string::npos);
  }
  ScopedEnv no_url({{"OS_AUTH_URL", nullptr}});
  auto none = parse("openstack://");
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.error().message().find("OS_AUTH_URL"), std::string::npos);
}

}  // namespace
}  // namespace bitfusion
