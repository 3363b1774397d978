// Defaults and warnings about how the network backends protect their connections: PostgreSQL's
// sslmode, TLS without verification, and secrets in files other users can read.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "bitfusion/log.h"
#include "bitfusion/uri.h"
#include "net/http_client.h"
#include "sinks/es_sink.h"
#include "sinks/postgres_sink.h"

namespace bitfusion {
namespace {

namespace fs = std::filesystem;

std::optional<std::string> SslMode(const std::string& uri) {
  auto parsed = Uri::Parse(uri);
  EXPECT_TRUE(parsed.ok()) << uri;
  auto options = PostgresSinkOptions::FromUri(*parsed);
  EXPECT_TRUE(options.ok()) << options.error().ToString();
  std::optional<std::string> mode;
  for (const auto& [key, value] : options->connection) {
    if (key == "sslmode") mode = value;
  }
  return mode;
}

TEST(PostgresSslModeTest, RemoteHostsVerifyTheServerUnlessTheUriSaysOtherwise) {
  ::unsetenv("PGSSLMODE");
  EXPECT_EQ(SslMode("postgres://me@db.example.com:5432/bench"), "verify-full");
  EXPECT_EQ(SslMode("postgres://me@10.0.0.7/bench"), "verify-full");
  EXPECT_EQ(SslMode("postgres://me@db.example.com/bench?sslmode=require"), "require");
  EXPECT_EQ(SslMode("postgres://me@db.example.com/bench?sslmode=disable"), "disable");
  // This machine: unix sockets and loopback keep libpq's default.
  EXPECT_EQ(SslMode("postgres://me@localhost/bench"), std::nullopt);
  EXPECT_EQ(SslMode("postgres://me@127.0.0.1:5433/bench"), std::nullopt);
  EXPECT_EQ(SslMode("postgres://me@[::1]:5433/bench"), std::nullopt);
  EXPECT_EQ(SslMode("postgres://me@%2Frun%2Fpostgresql/bench"), std::nullopt);
  EXPECT_EQ(SslMode("postgres:///bench"), std::nullopt);
  ::setenv("PGSSLMODE", "require", 1);
  EXPECT_EQ(SslMode("postgres://me@db.example.com/bench"), std::nullopt)
      << "PGSSLMODE is libpq's to apply";
  ::unsetenv("PGSSLMODE");
}

class Warnings {
 public:
  Warnings() {
    SetLogHandler([this](LogLevel level, std::string_view m) {
      if (level < LogLevel::kWarning) return;
      std::lock_guard lock(mu_);
      lines_.emplace_back(m);
    });
  }
  ~Warnings() { SetLogHandler(nullptr); }
  std::vector<std::string> Lines() {
    std::lock_guard lock(mu_);
    return lines_;
  }

 private:
  std::mutex mu_;
  std::vector<std::string> lines_;
};

class SecretFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) / ("bf-secrets-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path Secret(const std::string& name, fs::perms mode) {
    const fs::path p = dir_ / name;
    std::ofstream(p) << "c2VjcmV0\n";
    fs::permissions(p, mode);
    return p;
  }
  fs::path dir_;
};

TEST_F(SecretFileTest, TlsWithoutVerificationAndAReadableClientKeyAreWarnedAbout) {
  const fs::path shared = Secret("key.pem", fs::perms(0644));
  const fs::path own = Secret("own-key.pem", fs::perms(0600));
  {
    Warnings w;
    net::HttpClientOptions o;
    o.base_url = "https://engine.example:2376";
    o.verify_peer = false;
    o.key_file = shared.string();
    ASSERT_TRUE(net::HttpClient::Make(o).ok());
    EXPECT_THAT(w.Lines(), ::testing::Contains(::testing::HasSubstr("does not verify")));
    EXPECT_THAT(w.Lines(), ::testing::Contains(::testing::AllOf(
                               ::testing::HasSubstr(shared.string()),
                               ::testing::HasSubstr("can be read by other users"))));
  }
  {
    Warnings w;
    net::HttpClientOptions o;
    o.base_url = "https://engine.example:2376";
    o.key_file = own.string();
    ASSERT_TRUE(net::HttpClient::Make(o).ok());
    EXPECT_THAT(w.Lines(), ::testing::IsEmpty());
  }
}

TEST_F(SecretFileTest, AnElasticsearchApiKeyFileOthersCanReadIsWarnedAbout) {
  const fs::path shared = Secret("es.key", fs::perms(0640));
  Warnings w;
  auto options = ElasticsearchSinkOptions::FromUri(
      *Uri::Parse("es+https://es.example:9200/bench?api_key_file=" + shared.string()));
  ASSERT_TRUE(options.ok()) << options.error().ToString();
  EXPECT_THAT(w.Lines(), ::testing::Contains(::testing::HasSubstr(shared.string())));
}

}  // namespace
}  // namespace bitfusion
