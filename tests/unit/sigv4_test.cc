// SigV4 against AWS's published Signature Version 4 test suite. The cases under
// tests/fixtures/sigv4/ are copied unchanged from
// boto/botocore@0e6e2404b85dc336dd2889814e089bde7d1a4c55 tests/unit/auth/aws4_testsuite/
// (Apache-2.0; its LICENSE and NOTICE are beside them), with the suite's key, date, region and
// service (botocore tests/unit/auth/test_sigv4.py).
#include "net/sigv4.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/percent_encode.h"
#include "core/sha256.h"

namespace bitfusion::net {
namespace {

const std::filesystem::path kSuite = std::filesystem::path(BITFUSION_TEST_FIXTURES) / "sigv4";
constexpr std::int64_t kSuiteTime = 1440938160;  // 2015-08-30T12:36:00Z

AwsCredentials SuiteCredentials() {
  AwsCredentials c;
  c.access_key_id = "AKIDEXAMPLE";
  c.secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
  return c;
}

std::string Read(const std::string& name, const std::string& ext) {
  std::ifstream in(kSuite / name / (name + "." + ext), std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// "METHOD TARGET HTTP/1.1", "Name:value" lines, an empty line, the body.
SigV4Request ParseReq(const std::string& text) {
  SigV4Request r;
  std::istringstream in(text);
  std::string line;
  std::getline(in, line);
  const auto sp1 = line.find(' ');
  const auto sp2 = line.rfind(' ');
  r.method = line.substr(0, sp1);
  const std::string target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const auto q = target.find('?');
  r.path = target.substr(0, q);
  if (q != std::string::npos) r.query = target.substr(q + 1);
  while (std::getline(in, line) && !line.empty()) {
    const auto colon = line.find(':');
    r.headers.emplace_back(line.substr(0, colon), line.substr(colon + 1));
  }
  std::stringstream rest;
  rest << in.rdbuf();
  r.body = rest.str();
  return r;
}

class SigV4SuiteTest : public ::testing::TestWithParam<std::string> {};

TEST_P(SigV4SuiteTest, CanonicalRequestStringToSignAndAuthorization) {
  const std::string name = GetParam();
  SigV4Request request = ParseReq(Read(name, "req"));
  AwsCredentials credentials = SuiteCredentials();
  if (name == "get-vanilla-with-session-token") {
    // The suite's .req leaves the token header out; its .creq shows it signed.
    credentials.session_token = "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267";
    request.headers.emplace_back("X-Amz-Security-Token", credentials.session_token);
  }
  const SigV4Signature sig =
      SignV4(request, credentials, "us-east-1", "service", kSuiteTime, /*add_headers=*/false);
  EXPECT_EQ(sig.canonical_request, Read(name, "creq"));
  EXPECT_EQ(sig.string_to_sign, Read(name, "sts"));
  EXPECT_EQ(sig.authorization, Read(name, "authz"));
}

INSTANTIATE_TEST_SUITE_P(Aws4TestSuite, SigV4SuiteTest,
                         ::testing::Values("get-vanilla", "get-vanilla-query-order-key-case",
                                           "get-vanilla-query-unreserved", "get-vanilla-utf8-query",
                                           "get-header-value-trim", "get-header-key-duplicate",
                                           "get-vanilla-with-session-token", "post-vanilla",
                                           "post-header-key-sort", "post-x-www-form-urlencoded",
                                           "post-x-www-form-urlencoded-parameters"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n) {
                             if (c == '-') c = '_';
                           }
                           return n;
                         });

TEST(SigV4Test, AddsDateTokenAndAuthorizationHeaders) {
  SigV4Request request;
  request.method = "GET";
  request.headers = {{"Host", "example.amazonaws.com"}};
  AwsCredentials credentials = SuiteCredentials();
  const auto sig = SignV4(request, credentials, "us-east-1", "service", kSuiteTime);
  // The same request as the suite's get-vanilla once X-Amz-Date is in.
  EXPECT_EQ(sig.authorization, Read("get-vanilla", "authz"));
  ASSERT_EQ(request.headers.size(), 3u);
  EXPECT_EQ(request.headers[1],
            (std::pair<std::string, std::string>("X-Amz-Date", "20150830T123600Z")));
  EXPECT_EQ(request.headers[2].first, "Authorization");
  EXPECT_EQ(sig.authorization.find(credentials.secret_access_key), std::string::npos);
}

TEST(SigV4Test, UriEncodingUsesAwsUnreservedSet) {
  EXPECT_EQ(internal::PercentEncode("a b+c/d~e"), "a%20b%2Bc%2Fd~e");
  EXPECT_EQ(internal::PercentEncode("/a b/", true), "/a%20b/");
  EXPECT_EQ(AmzDate(0), "19700101T000000Z");
  EXPECT_EQ(internal::Sha256Hex(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

}  // namespace
}  // namespace bitfusion::net
