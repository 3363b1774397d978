// The core's small encoders: base64 (standard and URL-safe) and percent-encoding.
#include <gtest/gtest.h>

#include "core/base64.h"
#include "core/percent_encode.h"

namespace bitfusion::internal {
namespace {

// Docker decodes X-Registry-Auth with Go's base64.URLEncoding, which requires the padding: an
// unpadded header loses its last bytes, the JSON fails to parse and the engine silently goes on
// without credentials (moby/moby#41570); ImageDistributionTest.ARegistryPasswordWorks... saw it.
TEST(EncodingTest, Base64AndItsUrlSafeFormKeepThePadding) {
  EXPECT_EQ(Base64(""), "");
  EXPECT_EQ(Base64("f"), "Zg==");
  EXPECT_EQ(Base64("foobar"), "Zm9vYmFy");  // RFC 4648 section 10
  EXPECT_EQ(Base64("\xfb\xff\xbf"), "+/+/");
  EXPECT_EQ(Base64Url("\xfb\xff\xbf"), "-_-_");
  EXPECT_EQ(Base64Url("fo"), "Zm8=");
  EXPECT_EQ(Base64Url("f"), "Zg==");
  EXPECT_EQ(Base64Url(R"({"username":"u","password":"p?>"})"),
            "eyJ1c2VybmFtZSI6InUiLCJwYXNzd29yZCI6InA_PiJ9");  // 36 bytes: no padding
}

TEST(EncodingTest, PercentEncodingKeepsOnlyUnreservedBytes) {
  EXPECT_EQ(PercentEncode("a-z_A.Z~09"), "a-z_A.Z~09");
  EXPECT_EQ(PercentEncode("a b/c?d=e&f%"), "a%20b%2Fc%3Fd%3De%26f%25");
  EXPECT_EQ(PercentEncode("/a b/", true), "/a%20b/");
  EXPECT_EQ(PercentEncode("\xc3\xa9\xff"), "%C3%A9%FF");
  EXPECT_EQ(PercentEncode(R"({"type":["container"]})"), "%7B%22type%22%3A%5B%22container%22%5D%7D");
}

}  // namespace
}  // namespace bitfusion::internal
