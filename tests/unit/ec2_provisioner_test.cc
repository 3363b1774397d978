// aws:// without moto: retries and error codes against a scripted HTTP server, the signed
// request's shape, and the settings and credential chain (environment, files, profiles).
#include "provisioners/ec2_provisioner.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <fstream>

#include "fakes/http_test_server.h"
#include "provisioners/aws_config_internal.h"
#include "scoped_env.h"

namespace bitfusion {
namespace {

using testing::HttpTestServer;
using testing::TestRequest;
using testing::TestResponse;

using testing::ScopedEnv;

constexpr const char* kSecret = "s3cr3t/KEY+never-shown";

ScopedEnv TestCredentials() {
  return ScopedEnv({{"AWS_ACCESS_KEY_ID", "AKIDTEST"},
                    {"AWS_SECRET_ACCESS_KEY", kSecret},
                    {"AWS_SESSION_TOKEN", nullptr},
                    {"AWS_PROFILE", nullptr},
                    {"AWS_ENDPOINT_URL", nullptr},
                    {"AWS_ENDPOINT_URL_EC2", nullptr},
                    {"AWS_EC2_METADATA_DISABLED", "true"}});
}

TestResponse Xml(int status, const std::string& body) {
  TestResponse r;
  r.status = status;
  r.headers = {{"Content-Type", "text/xml"}};
  r.body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n" + body;
  return r;
}

TestResponse Error(int status, const std::string& code, const std::string& message) {
  return Xml(status, "<Response><Errors><Error><Code>" + code + "</Code><Message>" + message +
                         "</Message></Error></Errors><RequestID>r1</RequestID></Response>");
}

const char* kTwoInstances =
    R"(<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <requestId>r</requestId>
  <reservationSet><item><reservationId>r-1</reservationId><instancesSet>
    <item><instanceId>i-1</instanceId><instanceType>g5.xlarge</instanceType>
      <instanceState><code>16</code><name>running</name></instanceState>
      <privateIpAddress>10.0.0.1</privateIpAddress><ipAddress>54.0.0.1</ipAddress>
      <placement><availabilityZone>us-east-1a</availabilityZone></placement>
      <launchTime>2026-01-02T03:04:05.000Z</launchTime>
      <tagSet><item><key>bitfusion.creator</key><value>bitfusion</value></item>
              <item><key>purpose</key><value>x</value></item></tagSet></item>
  </instancesSet></item></reservationSet>
  <nextToken>page2</nextToken>
</DescribeInstancesResponse>)";

const char* kPage2 = R"(<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <reservationSet><item><instancesSet>
    <item><instanceId>i-2</instanceId><instanceType>t3.micro</instanceType>
      <instanceState><code>0</code><name>pending</name></instanceState>
      <instanceLifecycle>spot</instanceLifecycle></item>
  </instancesSet></item></reservationSet>
</DescribeInstancesResponse>)";

std::shared_ptr<Provisioner> Make(const std::string& url) {
  auto p = ProvisionerFromUri("aws://us-east-1?endpoint=" + url + "&backoff=1ms&attempts=4");
  EXPECT_TRUE(p.ok()) << p.error().ToString();
  return p.ok() ? *p : nullptr;
}

TEST(Ec2ProvisionerTest, SignsPagesAndParsesInstances) {
  auto env = TestCredentials();
  std::mutex mu;
  std::vector<TestRequest> seen;
  HttpTestServer server([&](const TestRequest& r) {
    std::lock_guard lock(mu);
    seen.push_back(r);
    return Xml(200, r.body.find("NextToken=page2") != std::string::npos ? kPage2 : kTwoInstances);
  });
  auto p = Make(server.url());
  auto list = p->List();
  ASSERT_TRUE(list.ok()) << list.error().ToString();
  ASSERT_EQ(list->size(), 2u);
  const MachineInfo& a = (*list)[0];
  EXPECT_EQ(a.id, "i-1");
  EXPECT_EQ(a.provider, "aws");
  EXPECT_EQ(a.state, "running");
  EXPECT_EQ(a.address, "54.0.0.1");
  EXPECT_EQ(a.ssh.host, "54.0.0.1");
  EXPECT_EQ(a.ssh.user, "ec2-user");
  EXPECT_EQ(a.zone, "us-east-1a");
  EXPECT_EQ(a.labels.at("purpose"), "x");
  EXPECT_EQ(a.created_ns, 1767323045LL * 1'000'000'000);
  EXPECT_TRUE((*list)[1].spot);
  ASSERT_EQ(seen.size(), 2u);
  const TestRequest& r = seen[0];
  EXPECT_EQ(r.method, "POST");
  EXPECT_NE(r.body.find("Action=DescribeInstances&Version=2016-11-15"), std::string::npos);
  EXPECT_NE(r.body.find("Filter.1.Name=tag%3Abitfusion.creator&Filter.1.Value.1=bitfusion"),
            std::string::npos)
      << r.body;
  EXPECT_NE(r.body.find("MaxResults=1000"), std::string::npos);
  EXPECT_EQ(r.headers.at("content-type"), "application/x-www-form-urlencoded; charset=utf-8");
  const std::string auth = r.headers.at("authorization");
  EXPECT_EQ(auth.rfind("AWS4-HMAC-SHA256 Credential=AKIDTEST/", 0), 0u) << auth;
  EXPECT_NE(auth.find("/us-east-1/ec2/aws4_request, SignedHeaders=content-type;host;x-amz-date, "
                      "Signature="),
            std::string::npos)
      << auth;
  EXPECT_EQ(r.headers.count("x-amz-date"), 1u);
  EXPECT_EQ(auth.find(kSecret), std::string::npos);
}

TEST(Ec2ProvisionerTest, ThrottlingAndCapacityAreRetriedWithBackoff) {
  auto env = TestCredentials();
  std::atomic<int> calls{0};
  HttpTestServer server([&](const TestRequest&) {
    const int n = ++calls;
    if (n == 1) return Error(503, "RequestLimitExceeded", "Request limit exceeded.");
    if (n == 2) return Error(500, "InsufficientInstanceCapacity", "no capacity");
    if (n == 3) return Error(400, "Unavailable", "try later");  // retried by code, not status
    return Xml(200, kPage2);
  });
  auto list = Make(server.url())->List();
  ASSERT_TRUE(list.ok()) << list.error().ToString();
  EXPECT_EQ(calls.load(), 4);
}

TEST(Ec2ProvisionerTest, RetriesRunOutWithTheLastCode) {
  auto env = TestCredentials();
  std::atomic<int> calls{0};
  HttpTestServer server([&](const TestRequest&) {
    ++calls;
    return Error(503, "RequestLimitExceeded", "Request limit exceeded.");
  });
  auto list = Make(server.url())->List();
  ASSERT_FALSE(list.ok());
  EXPECT_EQ(calls.load(), 4);  // attempts=4
  EXPECT_EQ(list.error().code(), StatusCode::kUnavailable);
  EXPECT_NE(list.error().message().find("RequestLimitExceeded"), std::string::npos);
}

TEST(Ec2ProvisionerTest, AuthorizationAndParameterErrorsFailAtOnce) {
  auto env = TestCredentials();
  struct Case {
    int status;
    const char* code;
    StatusCode want;
  };
  for (const Case& c : {Case{401, "AuthFailure", StatusCode::kPermissionDenied},
                        Case{403, "UnauthorizedOperation", StatusCode::kPermissionDenied},
                        Case{400, "InvalidParameterValue", StatusCode::kInvalidArgument},
                        Case{400, "InvalidInstanceID.NotFound", StatusCode::kNotFound},
                        Case{400, "VcpuLimitExceeded", StatusCode::kResourceExhausted}}) {
    std::atomic<int> calls{0};
    HttpTestServer server([&](const TestRequest&) {
      ++calls;
      return Error(c.status, c.code, std::string("detail with ") + kSecret);
    });
    auto p = Make(server.url());
    const Status s = p->Destroy({"i-0123456789abcdef0"});
    EXPECT_EQ(calls.load(), 1) << c.code;
    EXPECT_EQ(s.code(), c.want) << s.ToString();
    EXPECT_NE(s.message().find(c.code), std::string::npos) << s.message();
    EXPECT_NE(s.message().find("aws://us-east-1 TerminateInstances"), std::string::npos);
  }
}

TEST(Ec2ProvisionerTest, RunInstancesCarriesTagsTokenAndSpot) {
  auto env = TestCredentials();
  std::mutex mu;
  std::string run_body;
  HttpTestServer server([&](const TestRequest& r) {
    if (r.body.find("Action=DescribeInstanceTypes") != std::string::npos) {
      return Xml(200, R"(<DescribeInstanceTypesResponse><instanceTypeSet><item>
        <instanceType>g5.xlarge</instanceType><vCpuInfo><defaultVCpus>4</defaultVCpus></vCpuInfo>
        <memoryInfo><sizeInMiB>16384</sizeInMiB></memoryInfo>
        <processorInfo><supportedArchitectures><item>x86_64</item></supportedArchitectures></processorInfo>
        <gpuInfo><gpus><item><name>A10G</name><manufacturer>NVIDIA</manufacturer><count>1</count></item></gpus></gpuInfo>
        </item></instanceTypeSet></DescribeInstanceTypesResponse>)");
    }
    if (r.body.find("Action=DescribeImages") != std::string::npos) {
      return Xml(200, R"(<DescribeImagesResponse><imagesSet>
        <item><imageId>ami-old</imageId><name>al2023-ami-2023.1-kernel-6.1-x86_64</name><creationDate>2025-01-01T00:00:00.000Z</creationDate></item>
        <item><imageId>ami-new</imageId><name>al2023-ami-2023.2-kernel-6.1-x86_64</name><creationDate>2026-01-01T00:00:00.000Z</creationDate></item>
        </imagesSet></DescribeImagesResponse>)");
    }
    std::lock_guard lock(mu);
    run_body = r.body;
    return Xml(200, R"(<RunInstancesResponse><instancesSet>
      <item><instanceId>i-9</instanceId><instanceType>g5.xlarge</instanceType>
      <instanceState><code>0</code><name>pending</name></instanceState></item>
      </instancesSet></RunInstancesResponse>)");
  });
  MachineRequest req;
  req.requirements.accelerator_kind = "gpu";
  req.spot = true;
  req.run_id = "r1";
  req.ssh_key_name = "mykey";
  req.labels["team"] = "perf";
  req.client_token = "tok-1";
  auto made = Make(server.url())->Create(req);
  ASSERT_TRUE(made.ok()) << made.error().ToString();
  ASSERT_EQ(made->size(), 1u);
  EXPECT_EQ((*made)[0].id, "i-9");
  EXPECT_EQ((*made)[0].accelerators.at(0).model, "A10G");
  for (const char* want :
       {"ImageId=ami-new", "InstanceType=g5.xlarge", "MinCount=1&MaxCount=1", "ClientToken=tok-1",
        "TagSpecification.1.ResourceType=instance", "KeyName=mykey",
        "InstanceMarketOptions.MarketType=spot", "Value=perf", "Value=r1", "Key=bitfusion.expires",
        "Key=bitfusion.pid_start", "Key=bitfusion.boot_id"}) {
    EXPECT_NE(run_body.find(want), std::string::npos) << want << " not in " << run_body;
  }
}

TEST(Ec2ProvisionerTest, ARetriedCreateEndsWhatALostAnswerMade) {
  // The first RunInstances makes i-a and i-b but its answer is a 500; the retry (same
  // ClientToken) is answered with i-c and i-d, as by an endpoint that ignores the token. The
  // provisioner must end i-a and i-b and keep i-c and i-d.
  auto env = TestCredentials();
  std::mutex mu;
  int runs = 0;
  std::string terminated;
  auto instance = [](const std::string& id) {
    return "<item><instanceId>" + id + "</instanceId><instanceType>t3.micro</instanceType>" +
           "<instanceState><code>16</code><name>running</name></instanceState></item>";
  };
  HttpTestServer server([&](const TestRequest& r) {
    std::lock_guard lock(mu);
    if (r.body.find("Action=DescribeInstanceTypes") != std::string::npos) {
      return Xml(200,
                 "<R><instanceTypeSet><item><instanceType>t3.micro</instanceType>"
                 "</item></instanceTypeSet></R>");
    }
    if (r.body.find("Action=RunInstances") != std::string::npos) {
      if (++runs == 1) return Error(500, "InternalError", "lost");
      return Xml(200,
                 "<R><instancesSet>" + instance("i-c") + instance("i-d") + "</instancesSet></R>");
    }
    if (r.body.find("Action=DescribeInstances") != std::string::npos) {
      EXPECT_NE(r.body.find("tag%3Abitfusion.client_token&Filter.1.Value.1=tok-lost"),
                std::string::npos)
          << r.body;
      return Xml(200, "<R><reservationSet><item><instancesSet>" + instance("i-a") +
                          instance("i-b") + instance("i-c") + instance("i-d") +
                          "</instancesSet></item></reservationSet></R>");
    }
    terminated += r.body;
    return Xml(200,
               "<R><instancesSet><item><instanceId>x</instanceId><currentState>"
               "<name>shutting-down</name></currentState></item></instancesSet></R>");
  });
  MachineRequest req;
  req.type = "t3.micro";
  req.image = "ami-1";
  req.count = 2;
  req.client_token = "tok-lost";
  auto made = Make(server.url())->Create(req);
  ASSERT_TRUE(made.ok()) << made.error().ToString();
  ASSERT_EQ(made->size(), 2u);
  EXPECT_EQ((*made)[0].id, "i-c");
  EXPECT_EQ(runs, 2);
  EXPECT_NE(terminated.find("InstanceId.1=i-a&InstanceId.2=i-b"), std::string::npos) << terminated;
  EXPECT_EQ(terminated.find("i-c"), std::string::npos);
}

TEST(AwsConfigTest, IniProfilesAndNestedServices) {
  const auto ini = internal::ParseAwsIni(
      "[default]\nregion = eu-west-1\n# comment\n[profile dev]\nservices = local\n"
      "endpoint_url = http://profile:1\n[services local]\nec2 =\n  endpoint_url = http://svc:2\n");
  EXPECT_EQ(ini.at("default").at("region"), "eu-west-1");
  EXPECT_EQ(ini.at("services local").at("ec2.endpoint_url"), "http://svc:2");
  EXPECT_EQ(ini.at("profile dev").at("endpoint_url"), "http://profile:1");
}

TEST(AwsConfigTest, ImdsRoleCredentialsAreReadAndBadAnswersNeverShown) {
  const auto c = internal::ParseImdsCredentials(
      200,
      R"({"Code":"Success","AccessKeyId":"ASIAX","SecretAccessKey":"SECRETKEY","Token":"TOK",)"
      R"("Expiration":"2026-08-01T17:00:00Z"})",
      "bench");
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  EXPECT_EQ(c->access_key_id, "ASIAX");
  EXPECT_EQ(c->session_token, "TOK");
  EXPECT_EQ(c->expires_unix_s, 1785603600);
  EXPECT_EQ(c->source, "the instance role bench (IMDSv2)");
  for (const auto& [status, body] : std::vector<std::pair<int, std::string>>{
           {200, R"({"AccessKeyId":"ASIAX","Token":"SECRETKEY"})"},
           {200, "SECRETKEY not json"},
           {200, R"(["SECRETKEY"])"},
           {404, R"({"AccessKeyId":"ASIAX","SecretAccessKey":"SECRETKEY"})"}}) {
    const auto bad = internal::ParseImdsCredentials(status, body, "bench");
    ASSERT_FALSE(bad.ok()) << body;
    EXPECT_EQ(bad.error().code(), StatusCode::kNotFound);
    EXPECT_EQ(bad.error().message().find("SECRETKEY"), std::string::npos) << bad.error().message();
  }
}

TEST(AwsConfigTest, SettingsAndCredentialChain) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("bf-aws-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "credentials") << "[default]\naws_access_key_id = AKIDDEFAULT\n"
                                        "aws_secret_access_key = d\n[dev]\n"
                                        "aws_access_key_id = AKIDDEV\naws_secret_access_key = x\n";
  std::ofstream(dir / "config") << "[profile dev]\nregion = eu-central-1\nservices = s\n"
                                   "[services s]\nec2 =\n  endpoint_url = http://127.0.0.1:9/\n";
  ScopedEnv env({{"AWS_ACCESS_KEY_ID", nullptr},
                 {"AWS_SECRET_ACCESS_KEY", nullptr},
                 {"AWS_REGION", nullptr},
                 {"AWS_DEFAULT_REGION", nullptr},
                 {"AWS_ENDPOINT_URL", nullptr},
                 {"AWS_ENDPOINT_URL_EC2", nullptr},
                 {"AWS_PROFILE", "dev"},
                 {"AWS_SHARED_CREDENTIALS_FILE", (dir / "credentials").c_str()},
                 {"AWS_CONFIG_FILE", (dir / "config").c_str()},
                 {"AWS_EC2_METADATA_DISABLED", "true"}});
  auto s = internal::ResolveAwsSettings({});
  ASSERT_TRUE(s.ok()) << s.error().ToString();
  EXPECT_EQ(s->region, "eu-central-1");
  EXPECT_EQ(s->endpoint, "http://127.0.0.1:9");
  auto c = internal::ResolveAwsCredentials(*s);
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  EXPECT_EQ(c->access_key_id, "AKIDDEV");
  {
    // The environment wins over the profile; AWS_ENDPOINT_URL over the profile's endpoint.
    ScopedEnv more({{"AWS_ACCESS_KEY_ID", "AKIDENV"},
                    {"AWS_SECRET_ACCESS_KEY", "e"},
                    {"AWS_ENDPOINT_URL", "http://env:3"}});
    EXPECT_EQ(internal::ResolveAwsCredentials(*s)->access_key_id, "AKIDENV");
    EXPECT_EQ(internal::ResolveAwsSettings({"us-west-2", "", ""})->endpoint, "http://env:3");
    EXPECT_EQ(internal::ResolveAwsSettings({"us-west-2", "http://uri:4", ""})->endpoint,
              "http://uri:4");
  }
  {
    ScopedEnv expired({{"AWS_ACCESS_KEY_ID", "AKIDENV"},
                       {"AWS_SECRET_ACCESS_KEY", kSecret},
                       {"AWS_SESSION_TOKEN", "tok"},
                       {"AWS_CREDENTIAL_EXPIRATION", "2020-01-01T00:00:00Z"}});
    auto e = internal::ResolveAwsCredentials(*s);
    ASSERT_FALSE(e.ok());
    EXPECT_EQ(e.error().code(), StatusCode::kPermissionDenied);
    EXPECT_NE(e.error().message().find("expired"), std::string::npos);
    EXPECT_EQ(e.error().message().find(kSecret), std::string::npos);
  }
  {
    ScopedEnv none({{"AWS_PROFILE", "nobody"}});
    auto e = internal::ResolveAwsCredentials(*internal::ResolveAwsSettings({"us-east-1", "", ""}));
    ASSERT_FALSE(e.ok());
    EXPECT_EQ(e.error().code(), StatusCode::kPermissionDenied);
    EXPECT_NE(e.error().message().find("no AWS credentials found"), std::string::npos);
  }
  EXPECT_EQ(internal::ResolveAwsSettings({"mars-north", "", ""}).error().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(internal::ResolveAwsSettings({"us-east-1", "ftp://x", ""}).error().code(),
            StatusCode::kInvalidArgument);
  std::filesystem::remove_all(dir);
}

TEST(AwsConfigTest, InstanceRoleThroughImdsV2) {
  HttpTestServer imds([](const TestRequest& r) {
    TestResponse out;
    if (r.method == "PUT" && r.target == "/latest/api/token") {
      out.body = r.headers.count("x-aws-ec2-metadata-token-ttl-seconds") ? "TOKEN" : "";
      return out;
    }
    if (r.headers.count("x-aws-ec2-metadata-token") == 0 ||
        r.headers.at("x-aws-ec2-metadata-token") != "TOKEN") {
      out.status = 401;
      return out;
    }
    if (r.target == "/latest/meta-data/iam/security-credentials/") {
      out.body = "bench-role\n";
    } else if (r.target == "/latest/meta-data/iam/security-credentials/bench-role") {
      out.body = R"({"Code":"Success","AccessKeyId":"ASIAROLE","SecretAccessKey":"rs",
                     "Token":"st","Expiration":"2999-01-01T00:00:00Z"})";
    } else {
      out.status = 404;
    }
    return out;
  });
  ScopedEnv env({{"AWS_ACCESS_KEY_ID", nullptr},
                 {"AWS_SECRET_ACCESS_KEY", nullptr},
                 {"AWS_PROFILE", "nobody"},
                 {"AWS_EC2_METADATA_DISABLED", nullptr},
                 {"AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.url().c_str()}});
  auto c = internal::ResolveAwsCredentials(*internal::ResolveAwsSettings({"us-east-1", "", ""}));
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  EXPECT_EQ(c->access_key_id, "ASIAROLE");
  EXPECT_EQ(c->session_token, "st");
  EXPECT_GT(c->expires_unix_s, 0);
}

}  // namespace
}  // namespace bitfusion
