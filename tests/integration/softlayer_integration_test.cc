// softlayer:// against tests/fakes/softlayer_fake.py (the strict fake of SoftLayer's classic
// REST API), started by the test on a free port and stopped by PID: the provisioner conformance
// suite for virtual guests and for bare metal, plus the error paths (wrong key, unknown
// datacenter and flavour, throttling, capacity, a lost create answer), paging, GPU flavours and
// presets, the tag window, and that the API key shows up nowhere.
#include <stdlib.h>

#include <boost/json.hpp>
#include <fstream>
#include <mutex>

#include "bitfusion/log.h"
#include "conformance/provisioner_conformance.h"
#include "net/http_client.h"
#include "provisioners/softlayer_provisioner.h"
#include "scoped_env.h"

namespace bitfusion {
namespace {

using testing::ScopedEnv;
using testing::ServiceProcess;

constexpr const char* kUser = "SL424242";
constexpr const char* kKey = "9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0";

class SoftLayerFake {
 public:
  SoftLayerFake() {
    const std::string python = "/usr/bin/python3";
    if (!testing::HaveProgram(python)) {
      error_ = "/usr/bin/python3 not found";
      return;
    }
    dir_ = testing::FreshDir("softlayer-fake");
    remove_dir_.path = dir_;
    const std::string port_file = (dir_ / "port").string();
    process_ = std::make_unique<ServiceProcess>(
        std::vector<std::string>{python, BITFUSION_SOURCE_DIR "/tests/fakes/softlayer_fake.py",
                                 "--port-file", port_file, "--provision-seconds", "0.2"},
        (dir_ / "fake.log").string(),
        std::vector<std::string>{std::string("SOFTLAYER_FAKE_USER=") + kUser + ":" + kKey});
    const bool up = process_->WaitReady([&] {
      std::ifstream in(port_file);
      return static_cast<bool>(in >> port_);
    });
    if (!up) {
      error_ = "softlayer_fake did not start: " + process_->Log();
      return;
    }
    net::HttpClientOptions o;
    o.base_url = "http://127.0.0.1:" + std::to_string(port_);
    control_ = *net::HttpClient::Make(o);
    o.user = kUser;
    o.password = kKey;
    api_ = *net::HttpClient::Make(o);
  }

  const std::string& error() const { return error_; }
  std::string endpoint() const {
    return "http://127.0.0.1:" + std::to_string(port_) + "/rest/v3.1";
  }
  pid_t pid() const { return process_ ? process_->pid() : -1; }

  /// POST /_fake/faults with `faults` (a JSON object).
  void Inject(const std::string& faults) {
    net::HttpRequest r;
    r.method = "POST";
    r.target = "/_fake/faults";
    r.body = faults;
    r.deadline = DeadlineAfter(std::chrono::seconds(10));
    auto got = control_->Send(r);
    ASSERT_TRUE(got.ok() && got->status == 200) << faults;
  }

  /// GET /_fake/state: every guest and the request counters.
  boost::json::object State() {
    net::HttpRequest r;
    r.target = "/_fake/state";
    r.deadline = DeadlineAfter(std::chrono::seconds(10));
    auto got = control_->Send(r);
    if (!got.ok()) return {};
    return boost::json::parse(got->body).as_object();
  }

  /// A call to the SoftLayer API itself, as another tool (or a creator killed half-way) makes
  /// it: `target` below /rest/v3.1, `params` the JSON parameters (empty = none).
  boost::json::value Api(const std::string& method, const std::string& target,
                         const std::string& params = "") {
    net::HttpRequest r;
    r.method = method;
    r.target = "/rest/v3.1" + target;
    if (!params.empty()) {
      r.body = "{\"parameters\": " + params + "}";
      r.headers = {{"Content-Type", "application/json"}};
    }
    r.deadline = DeadlineAfter(std::chrono::seconds(10));
    auto got = api_->Send(r);
    EXPECT_TRUE(got.ok() && got->status < 300) << target << ": " << (got.ok() ? got->body : "");
    return got.ok() ? boost::json::parse(got->body) : boost::json::value();
  }

  std::int64_t Stat(const char* name) {
    const boost::json::object state = State();
    return state.at("stats").as_object().at(name).as_int64();
  }

  std::int64_t Live() {
    std::int64_t n = 0;
    const boost::json::object state = State();
    for (const auto& g : state.at("guests").as_array()) n += !g.as_object().at("gone").as_bool();
    return n;
  }

 private:
  std::filesystem::path dir_;
  testing::RemoveDirLater remove_dir_;  // after the process has stopped
  std::unique_ptr<ServiceProcess> process_;
  std::unique_ptr<net::HttpClient> control_;
  std::unique_ptr<net::HttpClient> api_;
  std::string error_;
  int port_ = 0;
};

// One fake for the whole process (ONE_PROCESS in tests/CMakeLists.txt); the environment carries
// the credentials as the SoftLayer CLI reads them.
SoftLayerFake* g_fake = nullptr;

SoftLayerFake& Fake() {
  static SoftLayerFake* fake = g_fake = [] {
    auto* f = new SoftLayerFake();
    ::setenv("SL_USERNAME", kUser, 1);
    ::setenv("SL_API_KEY", kKey, 1);
    ::unsetenv("SL_ENDPOINT_URL");
    return f;
  }();
  return *fake;
}

struct FakeShutdown : ::testing::Environment {
  void TearDown() override { delete g_fake; }
};
const auto* const kShutdown = ::testing::AddGlobalTestEnvironment(new FakeShutdown);

std::string Uri(const std::string& datacenter = "dal13", const std::string& extra = "") {
  return "softlayer://" + datacenter + "?endpoint=" + Fake().endpoint() +
         "&poll=50ms&backoff=10ms&type=B1_1X2X25&wait_ssh=false" + extra;
}

const ProvisionerCase kSoftLayer{"softlayer", [] { return Uri(); }, "B1_1X2X25",
                                 true,        "99999999",           [] { return Fake().error(); }};
constexpr const char* kPreset = "S1270_8GB_2X1TBSATA_NORAID";
const ProvisionerCase kBareMetal{"softlayer_bare_metal",
                                 [] { return Uri(); },
                                 kPreset,
                                 true,
                                 "00000000-0000-4000-8000-000000000000",
                                 [] { return Fake().error(); }};
INSTANTIATE_TEST_SUITE_P(Fake, ProvisionerConformanceTest,
                         ::testing::Values(kSoftLayer, kBareMetal),
                         [](const auto& info) { return info.param.name; });
INSTANTIATE_TEST_SUITE_P(Fake, DisposableProvisionerConformanceTest,
                         ::testing::Values(kSoftLayer, kBareMetal),
                         [](const auto& info) { return info.param.name; });

class SoftLayerFakeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    BITFUSION_REQUIRE_SERVICE(Fake().error().empty(), Fake().error());
    auto p = ProvisionerFromUri(Uri());
    ASSERT_TRUE(p.ok()) << p.error().ToString();
    p_ = *p;
  }
  MachineRequest Request(int count = 1) {
    MachineRequest r;
    r.type = "B1_1X2X25";
    r.count = count;
    r.run_id = "softlayer-test-" + std::to_string(::getpid());
    return r;
  }
  std::shared_ptr<Provisioner> p_;
};

TEST_F(SoftLayerFakeTest, WrongKeyIsPermissionDeniedNamingTheCodeAndNoSecretAnywhere) {
  std::mutex mu;
  std::string logged;
  SetLogHandler([&](LogLevel, std::string_view message) {
    std::lock_guard lock(mu);
    logged += std::string(message) + "\n";
  });
  const LogLevel level = GetLogLevel();
  SetLogLevel(LogLevel::kTrace);
  const std::string wrong = std::string("0000") + kKey;
  Result<std::vector<MachineInfo>> listed = std::vector<MachineInfo>{};
  {
    ScopedEnv env({{"SL_API_KEY", wrong.c_str()}});
    auto p = ProvisionerFromUri(Uri());
    ASSERT_TRUE(p.ok()) << p.error().ToString();
    listed = (*p)->List();
  }
  // A good key's work, logged at the most verbose level, must not show it either.
  MachineRequest r = Request();
  auto made = p_->Create(r);
  ASSERT_TRUE(made.ok()) << made.error().ToString();
  auto ready = p_->WaitReady((*made)[0].id, DeadlineAfter(60s));
  ASSERT_TRUE(ready.ok()) << ready.error().ToString();
  EXPECT_TRUE(p_->Destroy({(*made)[0].id}).ok());
  SetLogLevel(level);
  SetLogHandler(nullptr);

  ASSERT_FALSE(listed.ok());
  EXPECT_EQ(listed.error().code(), StatusCode::kPermissionDenied) << listed.error().ToString();
  EXPECT_NE(listed.error().message().find("SoftLayer_Exception_InvalidLegacyToken"),
            std::string::npos)
      << listed.error().message();
  EXPECT_NE(listed.error().message().find("SL_API_KEY"), std::string::npos);
  EXPECT_EQ(listed.error().message().find(wrong), std::string::npos);
  EXPECT_EQ(listed.error().message().find(kKey), std::string::npos);
  EXPECT_EQ(logged.find(kKey), std::string::npos) << logged;
  std::ostringstream record;
  record << ::testing::PrintToString(*ready) << ready->hostname << ready->ssh.key_name;
  for (const auto& [k, v] : ready->labels) record << k << v;
  EXPECT_EQ(record.str().find(kKey), std::string::npos);
  // Not in any URL the fake saw, nor in the process list (the fake takes it from its env).
  EXPECT_EQ(Fake().Stat("keys_in_urls"), 0);
  for (const pid_t pid : {::getpid(), Fake().pid()}) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline");
    const std::string cmdline((std::istreambuf_iterator<char>(in)), {});
    EXPECT_FALSE(cmdline.empty());
    EXPECT_EQ(cmdline.find(kKey), std::string::npos) << pid;
  }
}

TEST_F(SoftLayerFakeTest, MissingCredentialsSayWhereTheyWereLookedForAndTheFileWorks) {
  const auto home = testing::FreshDir("softlayer-home");
  testing::RemoveDirLater remove_home;
  remove_home.path = home;
  ScopedEnv env({{"SL_USERNAME", nullptr},
                 {"SL_API_KEY", nullptr},
                 {"SOFTLAYER_USERNAME", nullptr},
                 {"SOFTLAYER_API_KEY", nullptr},
                 {"HOME", home.c_str()}});
  auto p = ProvisionerFromUri(Uri());
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.error().code(), StatusCode::kPermissionDenied);
  EXPECT_NE(p.error().message().find("SL_API_KEY"), std::string::npos) << p.error().message();
  {
    std::ofstream out(home / ".softlayer");
    out << "[softlayer]\nusername = " << kUser << "\napi_key = " << kKey << "\n";
  }
  std::filesystem::permissions(home / ".softlayer", std::filesystem::perms::owner_read |
                                                        std::filesystem::perms::owner_write);
  p = ProvisionerFromUri(Uri());
  ASSERT_TRUE(p.ok()) << p.error().ToString();
  auto listed = (*p)->List();
  EXPECT_TRUE(listed.ok()) << listed.error().ToString();
  auto in_uri = ProvisionerFromUri("softlayer://" + std::string(kUser) + ":secret@dal13");
  ASSERT_FALSE(in_uri.ok());
  EXPECT_EQ(in_uri.error().message().find("secret"), std::string::npos);
}

TEST_F(SoftLayerFakeTest, UnknownDatacenterAndFlavourAreRefusedBeforeAnythingIsMade) {
  const auto creates = Fake().Stat("creates");
  auto moon = ProvisionerFromUri(Uri("moon01"));
  ASSERT_TRUE(moon.ok()) << moon.error().ToString();
  auto got = (*moon)->Create(Request());
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().code(), StatusCode::kInvalidArgument) << got.error().ToString();
  EXPECT_NE(got.error().message().find("moon01"), std::string::npos);
  MachineRequest r = Request();
  r.type = "ZZ9_1X1X1";
  got = p_->Create(r);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(got.error().message().find("ZZ9_1X1X1"), std::string::npos);
  // What only SoftLayer can judge comes back with its code: an OS it does not know.
  r = Request();
  r.image = "BEOS_5";
  got = p_->Create(r);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(got.error().message().find("SoftLayer_Exception_Public"), std::string::npos)
      << got.error().message();
  r = Request();
  r.labels["bad,label"] = "x";
  got = p_->Create(r);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Fake().Stat("creates"), creates);
}

TEST_F(SoftLayerFakeTest, ThrottlingIsRetried) {
  Fake().Inject(R"({"rate_limit": 2})");
  auto listed = p_->List();
  EXPECT_TRUE(listed.ok()) << listed.error().ToString();
  const auto live = Fake().Live();
  Fake().Inject(R"({"rate_limit": 1})");
  auto made = p_->Create(Request());
  ASSERT_TRUE(made.ok()) << made.error().ToString();
  EXPECT_EQ(Fake().Live(), live + 1);
  EXPECT_TRUE(p_->Destroy({(*made)[0].id}).ok());
}

TEST_F(SoftLayerFakeTest, CapacityErrorIsRetriedThenNamed) {
  const auto live = Fake().Live();
  Fake().Inject(R"({"capacity": 1})");
  auto made = p_->Create(Request());
  ASSERT_TRUE(made.ok()) << made.error().ToString();
  EXPECT_TRUE(p_->Destroy({(*made)[0].id}).ok());

  auto p = ProvisionerFromUri(Uri("dal13", "&attempts=2"));
  ASSERT_TRUE(p.ok());
  Fake().Inject(R"({"capacity": 2})");
  auto failed = (*p)->Create(Request());
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.error().code(), StatusCode::kResourceExhausted) << failed.error().ToString();
  EXPECT_NE(
      failed.error().message().find("SoftLayer_Exception_Virtual_Host_Pool_InsufficientResources"),
      std::string::npos)
      << failed.error().message();
  EXPECT_EQ(Fake().Live(), live);
}

TEST_F(SoftLayerFakeTest, LostCreateAnswerMakesNoSecondGuest) {
  const auto creates = Fake().Stat("creates");
  Fake().Inject(R"({"lost_create": 1})");
  auto made = p_->Create(Request(2));
  ASSERT_TRUE(made.ok()) << made.error().ToString();
  ASSERT_EQ(made->size(), 2u);
  EXPECT_EQ(Fake().Stat("creates"), creates + 2);
  auto listed = p_->List();
  ASSERT_TRUE(listed.ok());
  for (const auto& m : *made) {
    EXPECT_TRUE(std::any_of(
        listed->begin(), listed->end(),
        [&](const MachineInfo& l) { return l.id == m.id && l.labels.count(kLabelCreator) == 1; }))
        << m.id << " is not listed with its tags";
  }
  // Another process sees them too, with SoftLayer's createDate (its local time and offset).
  auto other = ProvisionerFromUri(Uri());
  ASSERT_TRUE(other.ok());
  auto seen = (*other)->List();
  ASSERT_TRUE(seen.ok()) << seen.error().ToString();
  auto it = std::find_if(seen->begin(), seen->end(),
                         [&](const MachineInfo& l) { return l.id == (*made)[0].id; });
  ASSERT_NE(it, seen->end());
  EXPECT_NEAR(static_cast<double>(it->created_ns), static_cast<double>(WallNowNs()), 120e9);
  EXPECT_EQ(it->type, "B1_1X2X25");
  EXPECT_EQ(it->labels.at(kLabelRunId), Request().run_id);
  EXPECT_TRUE(p_->Destroy({(*made)[0].id, (*made)[1].id}).ok());
  // With no retries left, a lost answer is still looked up: nothing is left behind untagged.
  auto once = ProvisionerFromUri(Uri("dal13", "&attempts=1"));
  ASSERT_TRUE(once.ok());
  Fake().Inject(R"({"lost_create": 1})");
  auto single = (*once)->Create(Request());
  ASSERT_TRUE(single.ok()) << single.error().ToString();
  EXPECT_EQ(Fake().Stat("creates"), creates + 3);
  EXPECT_TRUE((*once)->Destroy({(*single)[0].id}).ok());
  // Destroy by a provisioner that did not cancel them: SoftLayer no longer knows them.
  EXPECT_EQ((*other)->Destroy({(*made)[0].id}).code(), StatusCode::kNotFound);
}

TEST_F(SoftLayerFakeTest, ListPagesPastOneHundred) {
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

TEST_F(SoftLayerFakeTest, GpuFlavoursCarryAcceleratorsAndPrices) {
  auto types = p_->Types();
  ASSERT_TRUE(types.ok()) << types.error().ToString();
  auto it = std::find_if(types->begin(), types->end(),
                         [](const MachineType& t) { return t.name == "AC1_8X60X25"; });
  ASSERT_NE(it, types->end());
  EXPECT_EQ(it->vcpus, 8);
  EXPECT_EQ(it->memory_bytes, 60ULL << 30);
  EXPECT_GT(it->hourly_price_usd, 0.0);
  ASSERT_EQ(it->accelerators.size(), 1u);
  EXPECT_EQ(it->accelerators[0].kind, "gpu");
  EXPECT_EQ(it->accelerators[0].model, "P100");

  MachineRequest r = Request();
  r.type.clear();
  r.requirements.accelerator_kind = "gpu";
  r.requirements.accelerator_model = "P100";
  auto made = p_->Create(r);
  ASSERT_TRUE(made.ok()) << made.error().ToString();
  EXPECT_EQ((*made)[0].type, "AC1_8X60X25");
  auto ready = p_->WaitReady((*made)[0].id, DeadlineAfter(60s));
  ASSERT_TRUE(ready.ok()) << ready.error().ToString();
  EXPECT_EQ(ready->type, "AC1_8X60X25");
  EXPECT_FALSE(ready->ssh.host.empty());
  EXPECT_EQ(ready->zone, "dal13");
  ASSERT_EQ(ready->accelerators.size(), 1u);
  EXPECT_TRUE(p_->Destroy({(*made)[0].id}).ok());
}

TEST_F(SoftLayerFakeTest, BareMetalPresetsAreOrderedByGlobalIdentifierAndCancelled) {
  auto types = p_->Types();
  ASSERT_TRUE(types.ok()) << types.error().ToString();
  auto find = [&](const std::string& name) {
    return std::find_if(types->begin(), types->end(),
                        [&](const MachineType& t) { return t.name == name; });
  };
  auto plain = find(kPreset);
  ASSERT_NE(plain, types->end());
  EXPECT_EQ(plain->memory_bytes, 8ULL << 30);
  EXPECT_EQ(plain->cpu_vendor, "Intel");
  EXPECT_NEAR(plain->hourly_price_usd, 0.338, 1e-9);
  EXPECT_TRUE(plain->accelerators.empty());
  auto gpu = find("D2620V4_128GB_2X800GB_SSD_RAID_1_K80_GPU2");
  ASSERT_NE(gpu, types->end());
  ASSERT_EQ(gpu->accelerators.size(), 1u);
  EXPECT_EQ(gpu->accelerators[0].model, "K80");
  EXPECT_EQ(gpu->accelerators[0].count, 2);

  // Two K80s: only the bare-metal preset has them.
  MachineRequest r = Request();
  r.type.clear();
  r.requirements.accelerator_kind = "gpu";
  r.requirements.accelerator_model = "K80";
  r.requirements.accelerator_count = 2;
  auto made = p_->Create(r);
  ASSERT_TRUE(made.ok()) << made.error().ToString();
  const std::string id = (*made)[0].id;
  EXPECT_EQ(id.size(), 36u) << id;  // the globalIdentifier: createObject answers no id yet
  EXPECT_EQ((*made)[0].type, gpu->name);
  auto ready = p_->WaitReady(id, DeadlineAfter(60s));
  ASSERT_TRUE(ready.ok()) << ready.error().ToString();
  EXPECT_EQ(ready->type, gpu->name);
  EXPECT_EQ(ready->memory_bytes, 128ULL << 30);
  EXPECT_FALSE(ready->ssh.host.empty());
  ASSERT_EQ(ready->accelerators.size(), 1u);
  EXPECT_EQ(ready->labels.at(kLabelRunId), r.run_id);

  ASSERT_TRUE(p_->Destroy({id}).ok());
  auto listed = p_->List();
  ASSERT_TRUE(listed.ok());
  auto it = std::find_if(listed->begin(), listed->end(),
                         [&](const MachineInfo& m) { return m.id == id; });
  ASSERT_NE(it, listed->end()) << "a cancelled server stays until it is reclaimed";
  EXPECT_EQ(it->state, "shutting-down");
  EXPECT_TRUE(p_->Destroy({id}).ok()) << "destroying a cancelled server again";
  std::this_thread::sleep_for(1500ms);  // the fake reclaims after a second
  EXPECT_TRUE(p_->Destroy({id}).ok()) << "reclaimed after this provisioner cancelled it";
  auto other = ProvisionerFromUri(Uri());
  ASSERT_TRUE(other.ok());
  EXPECT_EQ((*other)->Destroy({id}).code(), StatusCode::kNotFound);

  r = Request();
  r.type = kPreset;
  r.image = "0c1d2e3f-4a5b-6c7d-8e9f-0a1b2c3d4e5f";
  auto image = p_->Create(r);
  ASSERT_FALSE(image.ok());
  EXPECT_EQ(image.error().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(image.error().message().find("OS code"), std::string::npos);
}

TEST_F(SoftLayerFakeTest, AGuestKilledBeforeItsTagsIsListedAndReapedAfterItsWindow) {
  // What a creator killed between createObject and setTags leaves: a guest with bitfusion's
  // kind of name in its domain, and no tags.
  auto guest = [&](const std::string& hostname, const std::string& domain) {
    const std::string t = R"([{"hostname": ")" + hostname + R"(", "domain": ")" + domain +
                          R"(", "datacenter": {"name": "dal13"}, "hourlyBillingFlag": true,)"
                          R"( "localDiskFlag": false, "operatingSystemReferenceCode":)"
                          R"( "UBUNTU_LATEST", "supplementalCreateObjectOptions":)"
                          R"( {"flavorKeyName": "B1_1X2X25"}}])";
    return std::to_string(
        Fake().Api("POST", "/SoftLayer_Virtual_Guest/createObject.json", t).at("id").as_int64());
  };
  const std::string orphan = guest("bf-killed-0", "bitfusion.invalid");
  const std::string foreign = guest("bf-killed-1", "someone.else");
  const std::string unnamed = guest("web-1", "bitfusion.invalid");

  auto listed = p_->List();
  ASSERT_TRUE(listed.ok()) << listed.error().ToString();
  auto find = [&](const std::string& id) {
    return std::find_if(listed->begin(), listed->end(),
                        [&](const MachineInfo& m) { return m.id == id; });
  };
  auto it = find(orphan);
  ASSERT_NE(it, listed->end()) << "an untagged bf- guest is not listed";
  EXPECT_EQ(it->labels.at(kLabelCreator), "bitfusion");
  EXPECT_EQ(it->labels.count(kLabelHost), 0u);
  EXPECT_EQ(it->labels.at("bitfusion.untagged"), "true");
  EXPECT_NEAR(std::stoll(it->labels.at(kLabelExpires)), WallNowNs() / 1'000'000'000 + 900, 120);
  EXPECT_EQ(find(foreign), listed->end());
  EXPECT_EQ(find(unnamed), listed->end());

  // Within its window a live creator may still tag it: reap leaves it.
  ReapPolicy dry;
  dry.dry_run = true;
  auto would = p_->Reap(dry);
  ASSERT_TRUE(would.ok());
  for (const auto& line : would->machines) EXPECT_NE(line.rfind(orphan + " ", 0), 0u) << line;
  // Past it (SoftLayer made it 20 minutes ago), any host's reap ends it.
  net::HttpClientOptions o;
  o.base_url = Fake().endpoint().substr(0, Fake().endpoint().find("/rest"));
  auto control = net::HttpClient::Make(o);
  ASSERT_TRUE(control.ok());
  net::HttpRequest backdate;
  backdate.method = "POST";
  backdate.target = "/_fake/backdate";
  backdate.body = R"({"id": )" + orphan + R"(, "seconds": 1200})";
  backdate.deadline = DeadlineAfter(10s);
  auto aged = (*control)->Send(backdate);
  ASSERT_TRUE(aged.ok() && aged->status == 200);
  auto reaped = p_->Reap(ReapPolicy{});
  ASSERT_TRUE(reaped.ok()) << reaped.error().ToString();
  EXPECT_TRUE(
      std::any_of(reaped->machines.begin(), reaped->machines.end(),
                  [&](const std::string& line) { return line.rfind(orphan + " ", 0) == 0; }))
      << ::testing::PrintToString(reaped->machines);
  listed = p_->List();
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(find(orphan), listed->end());
  Fake().Api("GET", "/SoftLayer_Virtual_Guest/" + foreign + "/deleteObject.json");
  Fake().Api("GET", "/SoftLayer_Virtual_Guest/" + unnamed + "/deleteObject.json");
}

TEST(SoftLayerOptionsTest, FromUriTakesADatacenterAndNoSecrets) {
  auto parse = [](const std::string& text) {
    auto uri = Uri::Parse(text);
    EXPECT_TRUE(uri.ok()) << text;
    return SoftLayerProvisionerOptions::FromUri(*uri);
  };
  auto o = parse(
      "softlayer://wdc07?endpoint=http://h:1/rest/v3.1&type=AC1_8X60X25&os=DEBIAN_LATEST"
      "&domain=lab.example&hourly=false&private=true&poll=1s&attempts=3&backoff=1s"
      "&wait_ssh=false");
  ASSERT_TRUE(o.ok()) << o.error().ToString();
  EXPECT_EQ(o->datacenter, "wdc07");
  EXPECT_EQ(o->endpoint, "http://h:1/rest/v3.1");
  EXPECT_EQ(o->default_type, "AC1_8X60X25");
  EXPECT_EQ(o->os_code, "DEBIAN_LATEST");
  EXPECT_EQ(o->domain, "lab.example");
  EXPECT_FALSE(o->hourly);
  EXPECT_TRUE(o->private_only);
  EXPECT_FALSE(o->wait_ssh);
  EXPECT_EQ(o->max_attempts, 3);
  EXPECT_EQ(o->initial_backoff, std::chrono::seconds(1));
  for (const char* bad : {"softlayer://", "softlayer://dal13/x", "softlayer://dal13?colour=red",
                          "softlayer://dal13?attempts=0", "softlayer://u:topsecret@dal13"}) {
    auto got = parse(bad);
    ASSERT_FALSE(got.ok()) << bad;
    EXPECT_EQ(got.error().code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_EQ(got.error().message().find("topsecret"), std::string::npos);
  }
}

}  // namespace
}  // namespace bitfusion
