#include "bitfusion/uri.h"

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>
#include <string_view>

namespace bitfusion {
namespace {

TEST(UriTest, BareWordIsScheme) {
  auto uri = Uri::Parse("host");
  ASSERT_TRUE(uri.ok());
  EXPECT_EQ(uri->scheme, "host");
  EXPECT_TRUE(uri->path.empty());
  EXPECT_EQ(uri->ToString(), "host");
}

TEST(UriTest, BareWordWithOptions) {
  auto uri = Uri::Parse("host?proc_root=/tmp/x&y");
  ASSERT_TRUE(uri.ok()) << uri.error().ToString();
  EXPECT_EQ(uri->scheme, "host");
  EXPECT_EQ(uri->Query("proc_root"), "/tmp/x");
  EXPECT_EQ(uri->Query("y"), "");
}

// Found by fuzz/uri_fuzzer.cc: Boost 1.81's parse_query measured the options with strlen, so a
// view into a longer buffer took in what followed it (and read past an unterminated one).
TEST(UriTest, BareWordOptionsEndWhereTheViewEnds) {
  const std::string buffer = "host?proc_root=/x,host?proc_root=/y";
  auto uri = Uri::Parse(std::string_view(buffer).substr(0, buffer.find(',')));
  ASSERT_TRUE(uri.ok()) << uri.error().ToString();
  ASSERT_EQ(uri->query.size(), 1u);
  EXPECT_EQ(uri->Query("proc_root"), "/x");
}

TEST(UriTest, OpaqueForm) {
  auto uri = Uri::Parse("process:1234");
  ASSERT_TRUE(uri.ok());
  EXPECT_EQ(uri->scheme, "process");
  EXPECT_EQ(uri->path, "1234");
  EXPECT_EQ(uri->ToString(), "process:1234");
}

TEST(UriTest, FullFormWithSecretsRedactedInToString) {
  auto uri = Uri::Parse("ES+HTTPS://elastic:s3cr%40t@db.example:9243/bench?gzip=true&x=1");
  ASSERT_TRUE(uri.ok()) << uri.error().ToString();
  EXPECT_EQ(uri->scheme, "es+https");
  EXPECT_EQ(uri->user, "elastic");
  EXPECT_EQ(uri->password, "s3cr@t");
  EXPECT_EQ(uri->host, "db.example");
  EXPECT_EQ(uri->port, 9243);
  EXPECT_EQ(uri->path, "/bench");
  EXPECT_EQ(uri->Query("gzip"), "true");
  EXPECT_EQ(uri->ToString(), "es+https://elastic:***@db.example:9243/bench?gzip=true&x=1");
}

TEST(UriTest, FilePaths) {
  EXPECT_EQ(Uri::Parse("sqlite://results.db")->FilePath(), "results.db");
  EXPECT_EQ(Uri::Parse("sqlite://out/results.db")->FilePath(), "out/results.db");
  EXPECT_EQ(Uri::Parse("sqlite:///tmp/r.db")->FilePath(), "/tmp/r.db");
  EXPECT_EQ(Uri::Parse("csv:r.csv")->FilePath(), "r.csv");
}

TEST(UriTest, TypedQueryValues) {
  auto uri = *Uri::Parse("x://h?n=42&d=10ms&b=false&bad=4x");
  EXPECT_EQ(*uri.QueryInt("n", 0), 42);
  EXPECT_EQ(*uri.QueryInt("missing", 7), 7);
  EXPECT_EQ(*uri.QueryDuration("d", {}), std::chrono::milliseconds(10));
  EXPECT_FALSE(*uri.QueryBool("b", true));
  auto bad = uri.QueryInt("bad", 0);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("bad=\"4x\""), std::string::npos);
}

TEST(UriTest, UnknownQueryKeyNamesTheKnownOnes) {
  auto uri = *Uri::Parse("sqlite://r.db?batchsize=5");
  Status s = uri.CheckQueryKeys({"batch_samples", "max_delay"});
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("\"batchsize\""), std::string::npos);
  EXPECT_NE(s.message().find("batch_samples, max_delay"), std::string::npos);
  EXPECT_TRUE(uri.CheckQueryKeys({"batchsize"}).ok());
}

TEST(UriTest, MalformedUriIsInvalidArgumentWithoutPassword) {
  auto uri = Uri::Parse("es://u:pw@host:99999/x");
  ASSERT_FALSE(uri.ok());
  EXPECT_EQ(uri.error().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(uri.error().message().find("pw@"), std::string::npos) << uri.error().message();
  EXPECT_FALSE(Uri::Parse("").ok());
  EXPECT_FALSE(Uri::Parse("not a uri").ok());
}

TEST(UriTest, PasswordsWithSlashOrAtAreMaskedInParseErrors) {
  // Not percent-encoded, so the text does not parse; the error must still not show them.
  for (const char* text : {"es://elastic:pa/ss@h:9200/idx", "es://elastic:p@ss@h:99999/idx",
                           "influx://u:a/b@c@h:1:2/db?x=1"}) {
    auto uri = Uri::Parse(text);
    if (uri.ok()) {
      EXPECT_EQ(uri->ToString().find("ss@"), std::string::npos) << uri->ToString();
      continue;
    }
    const std::string message = uri.error().message();
    for (const char* secret : {"pa/ss", "p@ss", "a/b@c", "ss@h", "/ss", "b@c"}) {
      EXPECT_EQ(message.find(secret), std::string::npos) << text << " -> " << message;
    }
  }
}

// Found by fuzz/uri_fuzzer.cc: Boost 1.81's params iterator read past the end of an empty query
// followed by a fragment (ASan heap-buffer-overflow). An empty query is no option.
TEST(UriTest, AnEmptyQueryBeforeAFragmentHasNoOptions) {
  const std::string text = "p2r-stats:ID?#unner";
  auto heap = std::make_unique<char[]>(text.size());  // no NUL after it, as a view may have
  std::memcpy(heap.get(), text.data(), text.size());
  auto u = Uri::Parse(std::string_view(heap.get(), text.size()));
  ASSERT_TRUE(u.ok()) << u.error().ToString();
  EXPECT_TRUE(u->query.empty());
  auto plain = Uri::Parse("es://h:9200/i?");
  ASSERT_TRUE(plain.ok()) << plain.error().ToString();
  EXPECT_TRUE(plain->query.empty());
}

}  // namespace
}  // namespace bitfusion
