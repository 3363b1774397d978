#include "bitfusion/log.h"

#include <gtest/gtest.h>

#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace bitfusion {
namespace {

class LogOnceTest : public testing::Test {
 protected:
  void SetUp() override {
    SetLogHandler([this](LogLevel, std::string_view message) {
      std::lock_guard lock(mu_);
      lines_.emplace_back(message);
    });
  }
  void TearDown() override { SetLogHandler(nullptr); }
  std::vector<std::string> Lines() {
    std::lock_guard lock(mu_);
    return lines_;
  }
  static const RepeatedLog* Find(const std::vector<RepeatedLog>& all, const std::string& cause) {
    for (const auto& r : all) {
      if (r.cause == cause) return &r;
    }
    return nullptr;
  }

  std::mutex mu_;
  std::vector<std::string> lines_;
};

TEST_F(LogOnceTest, OneLinePerCauseAndTheRepeatsAreCounted) {
  const std::string cause =
      "test-cause-" + std::to_string(::testing::UnitTest::GetInstance()->random_seed());
  for (int i = 0; i < 5; ++i) {
    LogOnceAt(LogLevel::kWarning, cause, "store es://u:hunter2@h:1/i is down, try ", i);
  }
  LogOnceAt(LogLevel::kWarning, cause + "-other", "another cause");
  const auto lines = Lines();
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0], "store es://u:***@h:1/i is down, try 0") << "the first one, redacted";
  EXPECT_EQ(lines[1], "another cause");
  const auto repeated = RepeatedLogs();
  const RepeatedLog* r = Find(repeated, cause);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->repeats, 4);
  EXPECT_EQ(r->first_message, "store es://u:***@h:1/i is down, try 0");
  EXPECT_EQ(Find(repeated, cause + "-other"), nullptr) << "met once: not a repeat";
}

TEST_F(LogOnceTest, ManyThreadsOneCauseOneLine) {
  const std::string cause =
      "threads-" + std::to_string(::testing::UnitTest::GetInstance()->random_seed());
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 100; ++i) LogOnce(LogLevel::kWarning, cause, "same cause");
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(Lines().size(), 1u);
  const auto repeated = RepeatedLogs();
  const RepeatedLog* r = Find(repeated, cause);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->repeats, 799);
}

TEST_F(LogOnceTest, BelowTheLevelNothingIsLoggedOrCounted) {
  const std::string cause =
      "quiet-" + std::to_string(::testing::UnitTest::GetInstance()->random_seed());
  const LogLevel before = GetLogLevel();
  SetLogLevel(LogLevel::kError);
  LogOnce(LogLevel::kWarning, cause, "hidden");
  LogOnce(LogLevel::kWarning, cause, "hidden");
  SetLogLevel(before);
  EXPECT_TRUE(Lines().empty());
  EXPECT_EQ(Find(RepeatedLogs(), cause), nullptr);
}

// Found by fuzz/uri_fuzzer.cc: std::regex matches recursively, a stack frame or more per
// character a repetition takes in, so redacting an error that echoed a few hundred kilobytes
// without a space (a URI, a body) overflowed the stack, and its search is quadratic in a run of
// letters (seconds for 8 KiB). Long messages are cut at a space first, so no word, and no secret
// in one, is shown in part.
TEST(RedactTest, LongMessageIsCutAtASpaceInsteadOfOverflowingTheStack) {
  const std::string secret(300000, 'x');
  const std::string out = Redact("cannot parse URI \"es://u:" + secret + "@h/i\" (no host)");
  EXPECT_EQ(out.find("xxx"), std::string::npos);
  EXPECT_EQ(out.rfind("cannot parse URI", 0), 0u);
  EXPECT_NE(out.find("bytes not shown"), std::string::npos) << out;
  EXPECT_LT(out.size(), 2100u);
  const std::string letters = "cannot parse URI \"es://u:***@h?token=5s" + std::string(8000, 'x');
  EXPECT_EQ(Redact(letters), "cannot parse URI [... 8023 bytes not shown]");
  EXPECT_EQ(Redact("password=hunter2 " + std::string(100000, 'y')),
            "password=*** [... 100001 bytes not shown]");
  EXPECT_EQ(Redact("es://elastic:changeme@h:9200/i"), "es://elastic:***@h:9200/i");
  // No secret hint: nothing to mask, nothing cut.
  const std::string plain(100000, 'z');
  EXPECT_EQ(Redact(plain), plain);
}

// A key after an opening parenthesis or bracket, or after a vertical tab, starts a word too.
// Before the move to RE2 the first two were shown ("rejected (password=hunter2)").
TEST(RedactTest, AKeyAfterABracketOrAVerticalTabIsMasked) {
  EXPECT_EQ(Redact("rejected (password=hunter2)"), "rejected (password=***");
  EXPECT_EQ(Redact("args [token=abc123]"), "args [token=***");
  EXPECT_EQ(Redact("x\vsecret: s3cr3t y"), "x\vsecret: *** y");
  // Still not a key: the end of a path.
  EXPECT_EQ(Redact("/etc/passwd: permission denied"), "/etc/passwd: permission denied");
}

}  // namespace
}  // namespace bitfusion
