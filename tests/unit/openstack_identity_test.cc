#include "provisioners/openstack_identity_internal.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

namespace bitfusion::internal {
namespace {

constexpr char kKeystoneAnswer[] = R"({"token":{"expires_at":"2026-12-04T01:02:03.000000Z",
  "catalog":[
    {"type":"identity","name":"keystone","endpoints":[
      {"interface":"public","region":"RegionOne","url":"http://id/v3"}]},
    {"type":"compute","name":"nova","endpoints":[
      {"interface":"internal","region":"RegionOne","url":"http://internal/v2.1/p"},
      {"interface":"public","region":"RegionOne","region_id":"RegionOne",
       "url":"http://one/v2.1/p/"},
      {"interface":"public","region":"RegionTwo","url":"http://two/v2.1/p"}]}]}})";

TEST(KeystoneV3Token, PicksComputeEndpointByRegionAndInterface) {
  auto access = ParseKeystoneV3Token(kKeystoneAnswer, "tok", "RegionTwo", "public");
  ASSERT_TRUE(access.ok()) << access.error().ToString();
  EXPECT_EQ(access->token, "tok");
  EXPECT_EQ(access->compute_url, "http://two/v2.1/p");
  access = ParseKeystoneV3Token(kKeystoneAnswer, "tok", "RegionOne", "public");
  ASSERT_TRUE(access.ok());
  EXPECT_EQ(access->compute_url, "http://one/v2.1/p");  // trailing '/' dropped
  access = ParseKeystoneV3Token(kKeystoneAnswer, "tok", "RegionOne", "internal");
  ASSERT_TRUE(access.ok());
  EXPECT_EQ(access->compute_url, "http://internal/v2.1/p");
  EXPECT_EQ(access->expires, std::chrono::system_clock::from_time_t(1796346123));
}

TEST(KeystoneV3Token, UnknownRegionNamesTheKnownOnes) {
  auto access = ParseKeystoneV3Token(kKeystoneAnswer, "tok", "Mars", "public");
  ASSERT_FALSE(access.ok());
  EXPECT_EQ(access.error().code(), StatusCode::kNotFound);
  EXPECT_NE(access.error().message().find("'Mars'"), std::string::npos);
  EXPECT_NE(access.error().message().find("RegionOne, RegionTwo"), std::string::npos);
  EXPECT_EQ(access.error().message().find("tok"), std::string::npos);
}

TEST(KeystoneV3Token, MissingHeaderOrCatalogueIsAnError) {
  EXPECT_FALSE(ParseKeystoneV3Token(kKeystoneAnswer, "", "RegionOne", "public").ok());
  auto unscoped = ParseKeystoneV3Token(R"({"token":{"expires_at":"2026-12-04T01:02:03Z"}})", "tok",
                                       "RegionOne", "public");
  ASSERT_FALSE(unscoped.ok());
  EXPECT_EQ(unscoped.error().code(), StatusCode::kFailedPrecondition);
  EXPECT_FALSE(ParseKeystoneV3Token("not json", "tok", "RegionOne", "public").ok());
}

TEST(RackspaceV2Token, PicksCloudServersOpenStackNotLegacy) {
  constexpr char kAnswer[] = R"({"access":{"token":{"id":"raxtok",
    "expires":"2012-06-05T11:26:53.000-05:00","tenant":{"id":"123"}},
    "serviceCatalog":[
      {"type":"compute","name":"cloudServers","endpoints":[{"publicURL":"http://legacy/v1.0"}]},
      {"type":"compute","name":"cloudServersOpenStack","endpoints":[
        {"region":"DFW","publicURL":"http://dfw/v2/123"},
        {"region":"LON","publicURL":"http://lon/v2/123"}]}]}})";
  auto access = ParseRackspaceV2Token(kAnswer, "LON");
  ASSERT_TRUE(access.ok()) << access.error().ToString();
  EXPECT_EQ(access->token, "raxtok");
  EXPECT_EQ(access->compute_url, "http://lon/v2/123");
  // 11:26:53 at -05:00 is 16:26:53 UTC.
  EXPECT_EQ(access->expires, std::chrono::system_clock::from_time_t(1338913613));
  auto unknown = ParseRackspaceV2Token(kAnswer, "XYZ");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.error().message().find("DFW, LON"), std::string::npos);
}

TEST(OpenStackIdentityBodies, CarryCredentialsInTheDocumentedShape) {
  auto password =
      boost::json::parse(KeystonePasswordBody({"u", "p", "Default", "proj", "Default"}));
  EXPECT_EQ(password.at_pointer("/auth/identity/methods/0"), "password");
  EXPECT_EQ(password.at_pointer("/auth/identity/password/user/password"), "p");
  EXPECT_EQ(password.at_pointer("/auth/identity/password/user/domain/name"), "Default");
  EXPECT_EQ(password.at_pointer("/auth/scope/project/name"), "proj");
  auto app = boost::json::parse(KeystoneApplicationCredentialBody({"id1", "s1"}));
  EXPECT_EQ(app.at_pointer("/auth/identity/application_credential/secret"), "s1");
  EXPECT_FALSE(app.at_pointer("/auth").as_object().contains("scope"));
  auto rax = boost::json::parse(RackspaceApiKeyBody({"u", "k"}));
  EXPECT_EQ(rax.at_pointer("/auth/RAX-KSKEY:apiKeyCredentials/apiKey"), "k");
}

TEST(OpenStackTime, RejectsGarbage) {
  EXPECT_FALSE(ParseOpenStackTime("yesterday").ok());
  EXPECT_FALSE(ParseOpenStackTime("2026-12-04T01:02:03+5").ok());
}

}  // namespace
}  // namespace bitfusion::internal
