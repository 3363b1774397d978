#include "bitfusion/registry.h"

#include <gtest/gtest.h>

#include "bitfusion/container_runner.h"
#include "bitfusion/device_allocator.h"
#include "bitfusion/log.h"
#include "bitfusion/metric_stream.h"
#include "bitfusion/provisioner.h"
#include "bitfusion/result_sink.h"
#include "bitfusion/uri.h"

namespace bitfusion {
namespace {

TEST(RegistryTest, EveryInterfaceHasANullBackend) {
  EXPECT_TRUE(ProvisionerFromUri("null://").ok());
  EXPECT_TRUE(ContainerRunnerFromUri("null://").ok());
  EXPECT_TRUE(DeviceAllocatorFromUri("null://").ok());
  EXPECT_TRUE(MetricSourceFromUri("null").ok());
  EXPECT_TRUE(ResultSinkFromUri("null://").ok());
}

TEST(RegistryTest, UnknownSchemeListsTheKnownOnes) {
  auto sink = ResultSinkFromUri("mongo://localhost/x");
  ASSERT_FALSE(sink.ok());
  EXPECT_EQ(sink.error().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(sink.error().message().find("unknown scheme \"mongo\""), std::string::npos);
  EXPECT_NE(sink.error().message().find("null"), std::string::npos) << sink.error().message();
}

TEST(RegistryTest, HostApplicationsCanRegisterBackends) {
  struct CountingSink final : ResultSink {
    CountingSink() : ResultSink("counting://", ResultSinkOptions{}) {}
    ~CountingSink() override { CloseOnDestroy(); }
    Status WriteSamples(const std::vector<SampleBatch>&) override { return Status::OK(); }
    Status WriteRun(const RunRecord&) override { return Status::OK(); }
  };
  EXPECT_TRUE(Registry<ResultSink>::Instance().Add(
      "counting", [](const Uri&) -> Result<std::shared_ptr<ResultSink>> {
        return std::shared_ptr<ResultSink>(std::make_shared<CountingSink>());
      }));
  auto schemes = Registry<ResultSink>::Instance().Schemes();
  EXPECT_NE(std::find(schemes.begin(), schemes.end(), "counting"), schemes.end());
  auto sink = ResultSinkFromUri("counting://");
  ASSERT_TRUE(sink.ok());
  EXPECT_EQ((*sink)->uri(), "counting://");
}

TEST(RegistryTest, BackendOptionsRejectUnknownKeys) {
  auto sink = ResultSinkFromUri("null://?bogus=1");
  ASSERT_FALSE(sink.ok());
  EXPECT_NE(sink.error().message().find("bogus"), std::string::npos);
}

// What a plan checks before anything runs: the options, read as Make reads them, with nothing
// made (a host+ssh:// source would log in and start a probe; a docker:// runner would connect).
TEST(RegistryTest, CheckReadsTheOptionsAndMakesNothing) {
  auto& sources = Registry<MetricSource>::Instance();
  // 192.0.2.0/24 is TEST-NET-1: nothing answers there, so a source made would fail.
  EXPECT_TRUE(sources.Check(*Uri::Parse("host+ssh://root@192.0.2.1?connect_timeout=1")).ok());
  EXPECT_FALSE(MetricSourceFromUri("host+ssh://root@192.0.2.1?connect_timeout=1").ok())
      << "made, it does connect";
  Status bad = sources.Check(*Uri::Parse("host+ssh://root@192.0.2.1?bogus=1"));
  EXPECT_EQ(bad.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.message().find("bogus"), std::string::npos) << bad.ToString();
  Status unknown = sources.Check(*Uri::Parse("nosuch://x"));
  EXPECT_EQ(unknown.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(unknown.message().find("unknown scheme \"nosuch\""), std::string::npos);
  EXPECT_FALSE(Registry<ContainerRunner>::Instance()
                   .Check(*Uri::Parse("docker:///nonexistent/docker.sock?bogus=1"))
                   .ok());
  EXPECT_TRUE(Registry<ContainerRunner>::Instance()
                  .Check(*Uri::Parse("docker:///nonexistent/docker.sock"))
                  .ok())
      << "no engine is asked";
  // A backend registered with a factory alone is checked for its scheme only.
  EXPECT_TRUE(Registry<ResultSink>::Instance().Add(
      "unchecked", [](const Uri&) -> Result<std::shared_ptr<ResultSink>> {
        return InvalidArgumentError("never made here");
      }));
  EXPECT_TRUE(Registry<ResultSink>::Instance().Check(*Uri::Parse("unchecked://a?b=c")).ok());
}

TEST(LogTest, RedactsSecrets) {
  EXPECT_EQ(Redact("es://elastic:changeme@h:9200/i"), "es://elastic:***@h:9200/i");
  EXPECT_EQ(Redact("password=hunter2 next"), "password=*** next");
  EXPECT_EQ(Redact("Authorization: Basic ZWxhc3RpYzpjaGFuZ2VtZQ=="), "Authorization: ***");
  EXPECT_EQ(Redact("{\"api_key\": \"abc123\"}"), "{\"api_key\": \"***\"}");
  EXPECT_EQ(Redact("AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG"), "AWS_SECRET_ACCESS_KEY=***");
  EXPECT_EQ(Redact("header Bearer abcdefghijkl"), "header Bearer ***");
  EXPECT_EQ(Redact("plain message, 3 samples"), "plain message, 3 samples");
  EXPECT_EQ(Redact("/etc/passwd: switching to WAL mode"), "/etc/passwd: switching to WAL mode");
  EXPECT_EQ(Redact("x?token=abc&y=1"), "x?token=***&y=1");
  EXPECT_EQ(Redact("DB_PASSWORD=abc --api-key=k"), "DB_PASSWORD=*** --api-key=***");
  // Passwords that were not percent-encoded: '/' and '@' inside them.
  EXPECT_EQ(Redact("es://elastic:pa/ss@h:9200/i failed"), "es://elastic:***@h:9200/i failed");
  EXPECT_EQ(Redact("es://elastic:p@ss@h:9200/i?x=1"), "es://elastic:***@h:9200/i?x=1");
  EXPECT_EQ(Redact("two: es://a:b@h/x and es://c:d@g/y"), "two: es://a:***@h/x and es://c:***@g/y");
}

TEST(LogTest, HandlerSeesRedactedMessagesAtOrAboveLevel) {
  std::vector<std::string> seen;
  SetLogHandler([&](LogLevel, std::string_view m) { seen.emplace_back(m); });
  const LogLevel old = GetLogLevel();
  SetLogLevel(LogLevel::kInfo);
  LogAt(LogLevel::kDebug, "hidden");
  LogAt(LogLevel::kInfo, "token=", "abc", " shown");
  SetLogLevel(old);
  SetLogHandler(nullptr);
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0], "token=*** shown");
}

}  // namespace
}  // namespace bitfusion
