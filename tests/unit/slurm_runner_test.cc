// slurm:// without a cluster: the URI forms, the API version negotiation against canned OpenAPI
// documents, slurmrestd's two error shapes, the batch script's quoting and GRES from a spec.
// The runner against a real Slurm is tests/integration/slurm_runner_test.cc.
#include "runners/slurm_runner.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <string>

#include "bitfusion/provisioner.h"
#include "fakes/http_test_server.h"
#include "net/slurm_rest.h"
#include "runners/slurm_job_spec.h"
#include "scoped_env.h"

namespace bitfusion {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

Result<SlurmRunnerOptions> Options(const std::string& text) {
  auto uri = Uri::Parse(text);
  if (!uri.ok()) return uri.error();
  return SlurmRunnerOptions::FromUri(*uri);
}

TEST(SlurmRunnerOptionsTest, UnixSocketForm) {
  auto o = Options("slurm:///run/slurmrestd.sock?partition=debug&gres=gpu:1&output_dir=/shared/o");
  ASSERT_TRUE(o.ok()) << o.error().ToString();
  EXPECT_EQ(o->socket_path, "/run/slurmrestd.sock");
  EXPECT_TRUE(o->host.empty());
  EXPECT_EQ(o->partition, "debug");
  EXPECT_EQ(o->gres, "gpu:1");
  EXPECT_EQ(o->output_dir, "/shared/o");
  EXPECT_EQ(o->Endpoint(), "unix:/run/slurmrestd.sock");
}

TEST(SlurmRunnerOptionsTest, TcpFormTakesTheTokenFromTheEnvironmentOnly) {
  {
    testing::ScopedEnv unset({{"SLURM_JWT", nullptr}});
    auto o = Options("slurm://bench@slurm.example:6820?partition=gpu");
    ASSERT_FALSE(o.ok());
    EXPECT_THAT(o.error().message(), HasSubstr("SLURM_JWT"));
  }
  testing::ScopedEnv token({{"SLURM_JWT", "eyJ.secret.token"}});
  auto o = Options("slurm://bench@slurm.example:6820?partition=gpu");
  ASSERT_TRUE(o.ok()) << o.error().ToString();
  EXPECT_EQ(o->host, "slurm.example");
  EXPECT_EQ(o->port, 6820);
  EXPECT_EQ(o->user, "bench");
  EXPECT_EQ(o->token, "eyJ.secret.token");
  EXPECT_EQ(o->Endpoint(), "http://slurm.example:6820");

  auto in_uri = Options("slurm://bench@slurm.example:6820?token=eyJ.secret.token");
  ASSERT_FALSE(in_uri.ok());
  EXPECT_THAT(in_uri.error().message(), HasSubstr("SLURM_JWT"));
  EXPECT_THAT(in_uri.error().message(), Not(HasSubstr("eyJ.secret.token")));
  auto as_password = Options("slurm://bench:eyJ.secret.token@slurm.example:6820");
  ASSERT_FALSE(as_password.ok());
  EXPECT_THAT(as_password.error().message(), Not(HasSubstr("eyJ.secret.token")));
}

TEST(SlurmRunnerOptionsTest, BadFormsAreRefused) {
  EXPECT_FALSE(Options("slurm://").ok());
  EXPECT_FALSE(Options("slurm:///run/s.sock?partiton=debug").ok()) << "typo in an option";
  EXPECT_FALSE(Options("slurm:///run/s.sock?output_dir=relative").ok());
}

// The paths part of what slurmrestd serves at /openapi/v3, as 22.05 and a newer release write it.
constexpr const char* kOpenApi2205 = R"({"openapi":"3.0.2","paths":{
  "/slurm/v0.0.38/diag":{},"/slurm/v0.0.38/job/submit":{},"/slurm/v0.0.38/job/{job_id}":{},
  "/openapi/v3":{}}})";
constexpr const char* kOpenApiNewer = R"({"openapi":"3.0.2","paths":{
  "/slurm/v0.0.39/job/submit":{},"/slurm/v0.0.40/job/submit":{},"/slurm/v0.0.41/jobs":{},
  "/slurmdb/v0.0.41/jobs":{}}})";

TEST(SlurmApiVersionTest, PicksTheNewestVersionBothSidesSpeak) {
  auto v = internal::PickSlurmApiVersion(kOpenApi2205, internal::SlurmApiVersionsSpoken(), "x");
  ASSERT_TRUE(v.ok()) << v.error().ToString();
  EXPECT_EQ(*v, "v0.0.38");
  const std::vector<std::string> both = {"v0.0.40", "v0.0.38"};
  v = internal::PickSlurmApiVersion(kOpenApiNewer, both, "x");
  ASSERT_TRUE(v.ok()) << v.error().ToString();
  EXPECT_EQ(*v, "v0.0.40");
  // Numeric, not textual, order.
  v = internal::PickSlurmApiVersion(R"({"paths":{"/slurm/v0.0.9/a":{},"/slurm/v0.0.10/a":{}}})",
                                    {"v0.0.9", "v0.0.10"}, "x");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, "v0.0.10");
}

TEST(SlurmApiVersionTest, NoCommonVersionNamesBothSides) {
  auto v = internal::PickSlurmApiVersion(kOpenApiNewer, internal::SlurmApiVersionsSpoken(),
                                         "unix:/run/slurmrestd.sock");
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.error().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(v.error().message(), HasSubstr("v0.0.41, v0.0.40, v0.0.39"));
  EXPECT_THAT(v.error().message(), HasSubstr("bitfusion speaks v0.0.38"));
  EXPECT_THAT(v.error().message(), HasSubstr("unix:/run/slurmrestd.sock"));
  auto junk = internal::PickSlurmApiVersion("<html>", internal::SlurmApiVersionsSpoken(), "x");
  ASSERT_FALSE(junk.ok());
  EXPECT_THAT(junk.error().message(), HasSubstr("OpenAPI"));
}

TEST(SlurmErrorsTest, BothShapesAreRead) {
  // As slurmrestd 22.05 answered an environment given as a list (both shapes in one answer).
  const auto errors = internal::ParseSlurmErrors(R"({"errors":[
    {"error":"environment must be a dictionary","error_code":-1},
    {"description":"Unable to process key \"environment\"","error_number":-1,
     "error":"Unspecified error","source":"slurm_process_option_data"},
    {"error_code":9001,"error":"Failure during parsing"}]})");
  ASSERT_EQ(errors.size(), 3u);
  EXPECT_EQ(errors[0].error, "environment must be a dictionary");
  EXPECT_EQ(errors[1].description, "Unable to process key \"environment\"");
  EXPECT_EQ(errors[1].code, -1);
  EXPECT_EQ(errors[2].code, 9001);
  EXPECT_TRUE(internal::ParseSlurmErrors("Authentication failure").empty());
  EXPECT_TRUE(internal::ParseSlurmErrors(R"({"errors":[]})").empty());
}

// Numbers and times out of range read as unknown instead of being cast or multiplied into
// undefined behaviour; entries of "jobs" that are not objects are no jobs (the job thread used
// to call as_object() on the first one, which throws and ended the process).
TEST(SlurmJobsTest, OutOfRangeFieldsAndEntriesThatAreNotObjectsAreUnknown) {
  const auto doc = boost::json::parse(R"({"jobs":[1, "x", {"job_id":1e300,"exit_code":-1e300,
    "job_state":"COMPLETED","start_time":9300000000,"end_time":18446744073709551615,
    "submit_time":1700000000,"comment":"bitfusion:{\"a\":\"b\",\"n\":1}"}]})");
  const auto jobs = internal::SlurmJobsOf(doc.as_object());
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].job_id, 0);
  EXPECT_EQ(jobs[0].exit_code, 0);
  EXPECT_EQ(jobs[0].start_ns, 0);  // past 2262
  EXPECT_EQ(jobs[0].end_ns, 0);    // past int64
  EXPECT_EQ(jobs[0].submit_ns, 1'700'000'000'000'000'000);
  EXPECT_TRUE(internal::SlurmJobTerminal(jobs[0].state));
  EXPECT_EQ(internal::SlurmCommentLabels(jobs[0].comment), (Labels{{"a", "b"}}));
  EXPECT_TRUE(internal::SlurmJobsOf(boost::json::object{{"jobs", 3}}).empty());
}

TEST(SlurmNodesTest, GresGpusOfEveryFormSlurmWrites) {
  std::string model;
  EXPECT_EQ(internal::SlurmGresGpus("gpu:fake:2", &model), 2);  // the test cluster's answer
  EXPECT_EQ(model, "fake");
  model.clear();
  EXPECT_EQ(internal::SlurmGresGpus("gpu:a100:4(S:0-1),mps:100,gpu:t4:1(S:1)", &model), 5);
  EXPECT_EQ(model, "a100");
  EXPECT_EQ(internal::SlurmGresGpus("gpu:2"), 2);
  EXPECT_EQ(internal::SlurmGresGpus("gpu"), 1);
  EXPECT_EQ(internal::SlurmGresGpus("gpu:v100"), 1);
  EXPECT_EQ(internal::SlurmGresGpus("mps:100,shard:8"), 0);
  EXPECT_EQ(internal::SlurmGresGpus(""), 0);
  EXPECT_EQ(internal::SlurmGresGpus("gpu:x:-3,gpu:99999999999999999999,gpux:2"), 0);
  EXPECT_EQ(internal::SlurmGresGpus("gpu:a:b:c"), 0);
}

// GET /nodes as the test cluster's slurmrestd 22.05 answered it (trimmed), and states
// that keep jobs off a node.
TEST(SlurmNodesTest, NodesAndTheirStatesAreRead) {
  const auto doc = boost::json::parse(R"j({"nodes":[
    {"name":"vm","state":"idle","state_flags":[],"cpus":16,"real_memory":4000,
     "gres":"gpu:fake:2","partitions":["debug"],"address":"127.0.0.1","hostname":"vm",
     "architecture":"x86_64","operating_system":"Linux 6.1.0","reason":""},
    {"name":"n2","state":"IDLE","state_flags":["DRAIN"],"reason":"disk","cpus":1e300},
    {"name":"n3","state":"down","state_flags":["NOT_RESPONDING"]},
    {"name":"n4","state":"mixed","partitions":["a","b"]},
    7, "x"]})j");
  const auto nodes = internal::SlurmNodesOf(doc.as_object());
  ASSERT_EQ(nodes.size(), 4u);
  EXPECT_EQ(nodes[0].name, "vm");
  EXPECT_EQ(nodes[0].address, "127.0.0.1");
  EXPECT_EQ(nodes[0].cpus, 16);
  EXPECT_EQ(nodes[0].real_memory_mb, 4000);
  EXPECT_EQ(nodes[0].gpus, 2);
  EXPECT_EQ(nodes[0].gpu_model, "fake");
  EXPECT_EQ(nodes[0].partitions, (std::vector<std::string>{"debug"}));
  EXPECT_TRUE(internal::SlurmNodeUsable(nodes[0]));
  EXPECT_EQ(nodes[1].cpus, 0);  // out of range reads as unknown
  EXPECT_EQ(nodes[1].reason, "disk");
  EXPECT_FALSE(internal::SlurmNodeUsable(nodes[1]));  // drained
  EXPECT_FALSE(internal::SlurmNodeUsable(nodes[2]));  // down
  EXPECT_TRUE(internal::SlurmNodeUsable(nodes[3]));   // mixed: shared, but Slurm places jobs
  EXPECT_TRUE(internal::SlurmNodesOf(boost::json::object{{"nodes", 3}}).empty());

  const auto parts = internal::SlurmPartitionsOf(boost::json::parse(R"({"partitions":[
    {"name":"debug","flags":["default"],"state":"UP"},{"name":"gpu","flags":[],"state":"DOWN"},
    {"flags":["default"]}, 1]})")
                                                     .as_object());
  ASSERT_EQ(parts.size(), 2u);
  EXPECT_TRUE(parts[0].is_default);
  EXPECT_FALSE(parts[1].is_default);
  EXPECT_EQ(parts[1].state, "DOWN");
}

TEST(SlurmBatchScriptTest, EveryArgumentIsQuotedForSh) {
  EXPECT_EQ(internal::SlurmBatchScript({"/bin/echo", "it's", "$HOME", "a b"}),
            "#!/bin/sh\nexec '/bin/echo' 'it'\\''s' '$HOME' 'a b'\n");
}

TEST(SlurmGresTest, DeviceRequestsBecomeAGpuCount) {
  ContainerSpec spec;
  EXPECT_EQ(*internal::SlurmGresFor(spec, ""), "");
  EXPECT_EQ(*internal::SlurmGresFor(spec, "gpu:1"), "gpu:1");
  spec.device_requests.push_back(DeviceRequestEntry{"nvidia", 2, {}, {{"gpu"}}, {}});
  EXPECT_EQ(*internal::SlurmGresFor(spec, "gpu:1"), "gpu:2");
  spec.device_requests[0].count = -1;
  EXPECT_EQ(internal::SlurmGresFor(spec, "").error().code(), StatusCode::kInvalidArgument);
  spec.device_requests[0].count = 1;
  spec.device_requests[0].device_ids = {"GPU-1234"};
  auto ids = internal::SlurmGresFor(spec, "");
  ASSERT_FALSE(ids.ok());
  EXPECT_THAT(ids.error().message(), HasSubstr("GPU-1234"));
}

TEST(SlurmExitStatusTest, WaitStatusesAndStatesMap) {
  // exit 3 (slurmrestd 22.05 reports the wait status: 3 << 8).
  auto e = internal::SlurmExitStatus("FAILED", 768, 0, "NonZeroExitCode");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->exit_code, 3);
  EXPECT_EQ(e->signal, 0);
  e = internal::SlurmExitStatus("COMPLETED", 0, 0, "None");
  ASSERT_TRUE(e.ok());
  EXPECT_TRUE(e->success());
  // Killed by SIGTERM.
  e = internal::SlurmExitStatus("FAILED", 15, 0, "");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->exit_code, -1);
  EXPECT_EQ(e->signal, SIGTERM);
  // Cancelled: the signal this handle sent, else SIGKILL.
  e = internal::SlurmExitStatus("CANCELLED", 15, SIGKILL, "");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->signal, SIGKILL);
  e = internal::SlurmExitStatus("CANCELLED", 0, 0, "");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->signal, SIGKILL);
  // Slurm's own time limit (22.05 answered exit_code 15 for `sleep 300` with time_limit 1: its
  // SIGTERM ended it) and the OOM killer.
  e = internal::SlurmExitStatus("TIMEOUT", 15, 0, "TimeLimit");
  ASSERT_TRUE(e.ok());
  EXPECT_TRUE(e->timed_out);
  EXPECT_EQ(e->signal, SIGTERM);
  EXPECT_FALSE(e->success());
  e = internal::SlurmExitStatus("TIMEOUT", 0, 0, "TimeLimit");
  ASSERT_TRUE(e.ok());
  EXPECT_TRUE(e->timed_out);
  EXPECT_EQ(e->signal, SIGKILL);
  e = internal::SlurmExitStatus("OUT_OF_MEMORY", 9, 0, "OutOfMemory");
  ASSERT_TRUE(e.ok());
  EXPECT_TRUE(e->oom_killed);
  EXPECT_EQ(e->signal, SIGKILL);
  // No exit status at all.
  e = internal::SlurmExitStatus("NODE_FAIL", 0, 0, "NodeDown");
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.error().code(), StatusCode::kUnavailable);
  EXPECT_THAT(e.error().message(), HasSubstr("NODE_FAIL"));
  EXPECT_THAT(e.error().message(), HasSubstr("NodeDown"));
}

// A slurmrestd that serves submit, GET /jobs and GET /job/{id}, counting what it is asked. A job
// is RUNNING for its first two appearances in a GET /jobs answer, then COMPLETED; a job in
// `purged` is in no list and GET /job/{id} answers Slurm's error 2017 for it.
class FakeSlurmrestd {
 public:
  FakeSlurmrestd()
      : dir_(std::filesystem::path(::testing::TempDir()) /
             ("bf-slurm-fake-" + std::to_string(::getpid()))),
        server_([this](const testing::TestRequest& r) { return Handle(r); },
                (std::filesystem::create_directories(dir_), (dir_ / "rest.sock").string())) {}
  ~FakeSlurmrestd() { std::filesystem::remove_all(dir_); }

  std::string Uri() const {
    return "slurm://" + (dir_ / "rest.sock").string() + "?output_dir=" + (dir_ / "out").string() +
           "&poll_max=200ms";
  }
  void PurgeNext() {
    std::lock_guard lock(mu_);
    purge_next_ = true;
  }
  int lists() {
    std::lock_guard lock(mu_);
    return lists_;
  }
  int singles() {
    std::lock_guard lock(mu_);
    return singles_;
  }

 private:
  testing::TestResponse Handle(const testing::TestRequest& r) {
    std::lock_guard lock(mu_);
    const std::string prefix = "/slurm/v0.0.38";
    if (r.target == "/openapi/v3") return {200, {}, kOpenApi2205};
    if (r.method == "POST" && r.target == prefix + "/job/submit") {
      const std::int64_t id = next_id_++;
      if (purge_next_) purged_.insert(id);
      purge_next_ = false;
      seen_[id] = 0;
      return {200, {}, R"({"job_id":)" + std::to_string(id) + "}"};
    }
    if (r.method == "GET" && r.target == prefix + "/jobs") {
      ++lists_;
      std::string jobs;
      for (auto& [id, seen] : seen_) {
        if (purged_.count(id)) continue;
        const char* state = seen++ < 2 ? "RUNNING" : "COMPLETED";
        jobs += std::string(jobs.empty() ? "" : ",") + R"({"job_id":)" + std::to_string(id) +
                R"(,"job_state":")" + state + R"(","exit_code":0,"start_time":1700000000})";
      }
      return {200, {}, R"({"jobs":[)" + jobs + "]}"};
    }
    if (r.method == "GET" && r.target.rfind(prefix + "/job/", 0) == 0) {
      ++singles_;
      return {500,
              {},
              R"({"errors":[{"error":"Invalid job id specified","error_number":2017}],"jobs":[]})"};
    }
    return {200, {}, "{}"};
  }

  std::filesystem::path dir_;
  std::mutex mu_;
  std::int64_t next_id_ = 100;
  std::map<std::int64_t, int> seen_;
  std::set<std::int64_t> purged_;
  bool purge_next_ = false;
  int lists_ = 0, singles_ = 0;
  testing::HttpTestServer server_;
};

TEST(SlurmWatcherTest, EightJobsArePolledWithOneListAndNoRequestPerJob) {
  FakeSlurmrestd fake;
  auto options = Options(fake.Uri());
  ASSERT_TRUE(options.ok()) << options.error().ToString();
  auto runner = SlurmRunner::Make(*options);
  ASSERT_TRUE(runner.ok()) << runner.error().ToString();
  std::vector<std::unique_ptr<Container>> jobs;
  for (int i = 0; i < 8; ++i) {
    ContainerSpec spec;
    spec.command = {"true"};
    auto c = (*runner)->Create(spec);
    ASSERT_TRUE(c.ok()) << c.error().ToString();
    ASSERT_TRUE((*c)->Start().ok());
    jobs.push_back(std::move(*c));
  }
  for (auto& c : jobs) {
    auto exit = c->Wait(DeadlineAfter(std::chrono::seconds(30)));
    ASSERT_TRUE(exit.ok()) << exit.error().ToString();
    EXPECT_TRUE(exit->success());
  }
  EXPECT_EQ(fake.singles(), 0) << "every job's state came from GET /jobs";
  // Each job needs three list answers (RUNNING, RUNNING, COMPLETED): a list per job and poll
  // would be at least 24.
  EXPECT_GE(fake.lists(), 3);
  EXPECT_LT(fake.lists(), 24);
}

TEST(SlurmWatcherTest, AJobMissingFromTheListIsAskedAboutAloneAndPurgedIsUnavailable) {
  FakeSlurmrestd fake;
  auto options = Options(fake.Uri());
  ASSERT_TRUE(options.ok()) << options.error().ToString();
  auto runner = SlurmRunner::Make(*options);
  ASSERT_TRUE(runner.ok()) << runner.error().ToString();
  ContainerSpec spec;
  spec.command = {"true"};
  auto c = (*runner)->Create(spec);
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  fake.PurgeNext();
  ASSERT_TRUE((*c)->Start().ok());
  auto exit = (*c)->Wait(DeadlineAfter(std::chrono::seconds(30)));
  ASSERT_FALSE(exit.ok());
  EXPECT_EQ(exit.error().code(), StatusCode::kUnavailable) << exit.error().ToString();
  EXPECT_THAT(exit.error().message(), HasSubstr("purged"));
  EXPECT_EQ(fake.singles(), 1);
  auto info = (*c)->Inspect();
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->state, "dead");
}

// slurm:// as a provisioner against a slurmrestd that answers GET /partitions, /nodes and
// /node/{name} with a cluster of six nodes in the states 22.05 writes: what a single-node test
// cluster cannot show (which nodes are picked, and why the others are not).
class SlurmProvisionerTest : public ::testing::Test {
 protected:
  SlurmProvisionerTest()
      : dir_(std::filesystem::path(::testing::TempDir()) /
             ("bf-slurm-prov-" + std::to_string(::getpid()))),
        server_([this](const testing::TestRequest& r) { return Handle(r); },
                (std::filesystem::create_directories(dir_), (dir_ / "rest.sock").string())) {}
  ~SlurmProvisionerTest() override { std::filesystem::remove_all(dir_); }

  std::shared_ptr<Provisioner> Make(const std::string& options = "") {
    auto p = ProvisionerFromUri("slurm://" + (dir_ / "rest.sock").string() +
                                (options.empty() ? "" : "?" + options));
    EXPECT_TRUE(p.ok()) << p.error().ToString();
    return p.ok() ? *p : nullptr;
  }
  static std::vector<std::string> Ids(const Result<std::vector<MachineInfo>>& machines) {
    std::vector<std::string> out;
    if (machines.ok()) {
      for (const auto& m : *machines) out.push_back(m.id);
    }
    return out;
  }

 private:
  static testing::TestResponse Handle(const testing::TestRequest& r) {
    const std::string prefix = "/slurm/v0.0.38";
    if (r.target == "/openapi/v3") return {200, {}, kOpenApi2205};
    if (r.target == prefix + "/partitions") {
      return {200, {}, R"({"partitions":[{"name":"cpu","flags":["default"],"state":"UP"},
                                         {"name":"gpu","flags":[],"state":"UP"}]})"};
    }
    const std::string nodes[] = {
        R"j({"name":"a1","address":"10.1.0.11","state":"idle","cpus":8,"real_memory":16000,
            "partitions":["cpu"]})j",
        R"j({"name":"a2","state":"mixed","cpus":4,"real_memory":8000,"partitions":["cpu"]})j",
        R"j({"name":"a3","state":"idle","state_flags":["DRAIN"],"reason":"bad dimm","cpus":8,
            "partitions":["cpu"]})j",
        R"j({"name":"g2","state":"allocated","cpus":32,"real_memory":64000,"gres":"gpu:a100:2",
            "partitions":["gpu"]})j",
        R"j({"name":"g1","state":"idle","cpus":32,"real_memory":64000,"gres":"gpu:a100:4(S:0-1)",
            "partitions":["gpu"]})j",
        R"j({"name":"d1","state":"down","state_flags":["NOT_RESPONDING"],"gres":"gpu:a100:8",
            "partitions":["gpu"]})j"};
    if (r.target == prefix + "/nodes") {
      std::string all;
      for (const auto& n : nodes) all += (all.empty() ? "" : ",") + n;
      return {200, {}, R"({"nodes":[)" + all + "]}"};
    }
    for (const auto& n : nodes) {
      const std::string name = boost::json::parse(n).as_object().at("name").as_string().c_str();
      if (r.target == prefix + "/node/" + name) return {200, {}, R"({"nodes":[)" + n + "]}"};
    }
    return {404, {}, "not found"};
  }

  std::filesystem::path dir_;
  testing::HttpTestServer server_;
};

TEST_F(SlurmProvisionerTest, PartitionsAreTypesOfWhatEveryNodeOfThemHas) {
  auto p = Make();
  ASSERT_NE(p, nullptr);
  auto types = p->Types();
  ASSERT_TRUE(types.ok()) << types.error().ToString();
  ASSERT_EQ(types->size(), 2u);
  EXPECT_EQ((*types)[0].name, "cpu");
  EXPECT_EQ((*types)[0].vcpus, 4);                     // a2's
  EXPECT_EQ((*types)[0].memory_bytes, 8000ull << 20);  // a2's; a3 reports none
  EXPECT_EQ((*types)[1].name, "gpu");
  EXPECT_EQ((*types)[1].vcpus, 32);
  ASSERT_EQ((*types)[1].accelerators.size(), 1u);
  EXPECT_EQ((*types)[1].accelerators[0].count, 2);  // g2's
  EXPECT_EQ((*types)[1].accelerators[0].model, "a100");
  auto listed = p->List();
  ASSERT_TRUE(listed.ok()) << listed.error().ToString();
  EXPECT_EQ(Ids(listed), (std::vector<std::string>{"a1", "a2", "a3", "g2", "g1", "d1"}));
}

TEST_F(SlurmProvisionerTest, CreatePicksUsableNodesOfThePartitionIdleFirstAndNeverOneTwice) {
  auto p = Make();
  ASSERT_NE(p, nullptr);
  MachineRequest two;
  two.count = 2;  // no type: the default partition, cpu
  auto got = p->Create(two);
  ASSERT_TRUE(got.ok()) << got.error().ToString();
  EXPECT_EQ(Ids(got), (std::vector<std::string>{"a1", "a2"}));
  EXPECT_EQ((*got)[0].provider, "slurm");
  EXPECT_EQ((*got)[0].type, "cpu");
  EXPECT_EQ((*got)[0].memory_bytes, 16000ull << 20);

  MachineRequest one;
  auto none = p->Create(one);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().code(), StatusCode::kResourceExhausted);
  EXPECT_THAT(none.error().message(), HasSubstr("partition \"cpu\""));
  EXPECT_THAT(none.error().message(), HasSubstr("a1: already one of this plan's machines"));
  EXPECT_THAT(none.error().message(), HasSubstr("a3: idle+DRAIN (bad dimm)"));

  ASSERT_TRUE(p->Destroy({"a2"}).ok());
  EXPECT_EQ(Ids(p->Create(one)), (std::vector<std::string>{"a2"}));

  auto ready = p->WaitReady("a1", DeadlineAfter(std::chrono::seconds(5)));
  ASSERT_TRUE(ready.ok()) << ready.error().ToString();
  EXPECT_EQ(ready->type, "cpu");
  auto drained = p->WaitReady("a3", DeadlineAfter(std::chrono::seconds(5)));
  ASSERT_FALSE(drained.ok());
  EXPECT_EQ(drained.error().code(), StatusCode::kUnavailable);
  EXPECT_THAT(drained.error().message(), HasSubstr("DRAIN"));
}

TEST_F(SlurmProvisionerTest, GpuRequirementsAreJudgedOnEachNodesGres) {
  auto p = Make();
  ASSERT_NE(p, nullptr);
  MachineRequest r;
  r.type = "gpu";
  r.requirements.accelerator_kind = "gpu";
  r.requirements.accelerator_count = 3;
  EXPECT_EQ(Ids(p->Create(r)), (std::vector<std::string>{"g1"}));
  auto more = p->Create(r);
  ASSERT_FALSE(more.ok());
  EXPECT_THAT(more.error().message(), HasSubstr("g2: "));  // 2 GPUs < 3
  EXPECT_THAT(more.error().message(), HasSubstr("d1: down+NOT_RESPONDING"));
}

TEST_F(SlurmProvisionerTest, BadPartitionsAndANodelistAreClearErrors) {
  auto p = Make();
  ASSERT_NE(p, nullptr);
  MachineRequest r;
  r.type = "fpga";
  auto bad = p->Create(r);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.error().message(), HasSubstr("no partition \"fpga\"; it has: cpu, gpu"));
  auto pinned = ProvisionerFromUri("slurm:///run/slurmrestd.sock?nodelist=a1");
  ASSERT_FALSE(pinned.ok());
  EXPECT_THAT(pinned.error().message(), HasSubstr("drop ?nodelist="));
}

// Nodes are SSH endpoints only when the URI says how to log in (for a plan's "host" source):
// their NodeAddr (else host name), the port, user and key given; the SSH keys are not the
// runner's, and without ssh_user the others are refused.
TEST_F(SlurmProvisionerTest, NodesAreLoggedInToOnlyWithAnSshUser) {
  auto plain = Make();
  ASSERT_NE(plain, nullptr);
  auto listed = plain->List();
  ASSERT_TRUE(listed.ok()) << listed.error().ToString();
  EXPECT_EQ((*listed)[0].ssh.host, "") << "not logged in to";
  auto p = Make(
      "ssh_user=bench&ssh_port=2222&ssh_key=/keys/bench&ssh_config=/etc/bf.conf&"
      "connect_timeout=3");
  ASSERT_NE(p, nullptr);
  listed = p->List();
  ASSERT_TRUE(listed.ok()) << listed.error().ToString();
  const MachineInfo& a1 = (*listed)[0];
  EXPECT_EQ(a1.ssh.host, "10.1.0.11");
  EXPECT_EQ(a1.ssh.port, 2222);
  EXPECT_EQ(a1.ssh.user, "bench");
  EXPECT_EQ(a1.ssh.key_name, "/keys/bench");
  EXPECT_EQ((*listed)[1].ssh.host, "a2") << "no NodeAddr: its name";
  for (const auto& [options, says] : std::vector<std::pair<std::string, std::string>>{
           {"ssh_config=/etc/bf.conf", "ssh_config is for logging in to the nodes"},
           {"ssh_user=u&ssh_port=0", "ssh_port must be a port from 1 to 65535"},
           {"ssh_user=u&ssh_key=keys/bench", "ssh_key must be an absolute path"},
           {"ssh_user=u&ssh_colour=red", "ssh_colour"}}) {
    auto bad = ProvisionerFromUri("slurm:///run/slurmrestd.sock?" + options);
    ASSERT_FALSE(bad.ok()) << options;
    EXPECT_THAT(bad.error().message(), HasSubstr(says)) << options;
  }
}

}  // namespace
}  // namespace bitfusion
