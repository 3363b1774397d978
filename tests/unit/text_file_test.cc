// core/text_file: the one reader of /proc and /sys text that device discovery and the host
// fingerprint share.
#include "core/text_file.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>

namespace bitfusion::internal {
namespace {

TEST(TextFileTest, NumbersMustBeWholeNumbers) {
  EXPECT_EQ(ParseNumber<int>("42"), 42);
  EXPECT_EQ(ParseNumber<int>("-3"), -3);
  EXPECT_EQ(ParseNumber<int>("0x10de", 16), 0x10de);
  EXPECT_EQ(ParseNumber<int>("10DE", 16), 0x10de);
  EXPECT_EQ(ParseNumber<std::uint64_t>("18446744073709551615"), 18446744073709551615ULL);
  for (const char* bad : {"", "32K", "4 ", " 4", "x", "99999999999"}) {
    EXPECT_FALSE(ParseNumber<int>(bad).has_value()) << '"' << bad << '"';
  }
  EXPECT_FALSE(ParseNumber<int>("0x", 16).has_value());
}

TEST(TextFileTest, TrimAndColonLines) {
  EXPECT_EQ(Trim("  a b \t\r\n"), "a b");
  EXPECT_EQ(Trim("\n\n"), "");
  const auto lines = ParseColonLines(
      "Model: \t NVIDIA A100\nIRQ:   42\nno colon here\nBus Location: 0000:3b:00.0\nIRQ: 43");
  EXPECT_EQ(lines.at("Model"), "NVIDIA A100");
  EXPECT_EQ(lines.at("IRQ"), "43") << "the last value of a repeated key";
  EXPECT_EQ(lines.at("Bus Location"), "0000:3b:00.0") << "split at the first colon only";
  EXPECT_EQ(lines.size(), 3u);
}

TEST(TextFileTest, FilesAreReadWholeAndTrimmed) {
  const std::string path = ::testing::TempDir() + "text-file-" + std::to_string(::getpid());
  {
    std::ofstream out(path);
    out << "  1234\n";
  }
  EXPECT_EQ(ReadTextFile(path), "  1234\n");
  EXPECT_EQ(ReadTrimmed(path), "1234");
  EXPECT_EQ(ReadInt(path), 1234);
  ::unlink(path.c_str());
  EXPECT_FALSE(ReadTextFile(path).has_value());
  EXPECT_FALSE(ReadInt(path).has_value());
}

}  // namespace
}  // namespace bitfusion::internal
