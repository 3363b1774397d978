// Extracting archives a container made (CopyOut): whatever runs in the container chooses the
// names, links, modes and size, so every hostile archive here is built byte by byte and must
// leave everything outside the target directory as it was.
#include "runners/tar_archive.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

namespace bitfusion {
namespace {

namespace fs = std::filesystem;

// One ustar entry, written field by field.
std::string RawEntry(const std::string& name, char type, const std::string& content, unsigned mode,
                     const std::string& link = "") {
  char h[512] = {};
  std::memcpy(h, name.data(), std::min<std::size_t>(name.size(), 100));
  std::snprintf(h + 100, 8, "%07o", mode);
  std::snprintf(h + 108, 8, "%07o", 0u);
  std::snprintf(h + 116, 8, "%07o", 0u);
  std::snprintf(h + 124, 12, "%011zo", content.size());
  std::snprintf(h + 136, 12, "%011o", 0u);
  h[156] = type;
  std::memcpy(h + 157, link.data(), std::min<std::size_t>(link.size(), 100));
  std::memcpy(h + 257, "ustar", 6);
  std::memcpy(h + 263, "00", 2);
  std::memset(h + 148, ' ', 8);
  unsigned sum = 0;
  for (unsigned char c : h) sum += c;
  std::snprintf(h + 148, 8, "%06o", sum);
  std::string out(h, sizeof h);
  out += content;
  out.append((512 - content.size() % 512) % 512, '\0');
  return out;
}

std::string End() { return std::string(1024, '\0'); }

class TarExtractTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::path(::testing::TempDir()) /
            ("bf-untar-" +
             std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) + "-" +
             std::to_string(::getpid()));
    fs::remove_all(root_);
    fs::create_directories(out_ = root_ / "out");
    fs::create_directories(victim_dir_ = root_ / "victim");
    fs::permissions(victim_dir_, fs::perms(0700));
    victim_ = victim_dir_ / "shadow";
    std::ofstream(victim_) << "secret\n";
    fs::permissions(victim_, fs::perms(0600));
  }
  void TearDown() override { fs::remove_all(root_); }

  static std::string Read(const fs::path& p) {
    std::ifstream in(p);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  static unsigned Mode(const fs::path& p) {
    struct stat st {};
    EXPECT_EQ(::lstat(p.c_str(), &st), 0) << p;
    return st.st_mode & 07777;
  }

  fs::path root_, out_, victim_dir_, victim_;
};

TEST_F(TarExtractTest, ADirectoryEntryAfterASymlinkOfTheSameNameDoesNotChmodItsTarget) {
  const std::string archive =
      RawEntry("d", '2', "", 0777, victim_dir_.string()) + RawEntry("d/", '5', "", 0777) + End();
  const Status s = internal::ExtractTar(archive, out_);
  EXPECT_EQ(Mode(victim_dir_), 0700u) << "the symlink's target was chmodded";
  EXPECT_EQ(Mode(victim_), 0600u);
  if (s.ok()) {
    EXPECT_TRUE(fs::is_directory(fs::symlink_status(out_ / "d")))
        << "the directory replaces the symlink";
  }
}

TEST_F(TarExtractTest, AHardLinkToAnAbsolutePathIsRefused) {
  const std::string archive = RawEntry("stolen", '1', "", 0644, victim_.string()) + End();
  const Status s = internal::ExtractTar(archive, out_);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  EXPECT_NE(Read(out_ / "stolen"), "secret\n") << "a host file was copied into the output";
  EXPECT_EQ(Read(victim_), "secret\n");
}

TEST_F(TarExtractTest, AHardLinkThroughASymlinkIsRefused) {
  const std::string archive = RawEntry("s", '2', "", 0777, victim_dir_.string()) +
                              RawEntry("stolen", '1', "", 0644, "s/shadow") + End();
  const Status s = internal::ExtractTar(archive, out_);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(Read(out_ / "stolen"), "secret\n") << "a host file was copied into the output";
}

TEST_F(TarExtractTest, AHardLinkToAnEarlierEntryWorks) {
  const std::string archive = RawEntry("dir/", '5', "", 0755) +
                              RawEntry("dir/a", '0', "data", 0644) +
                              RawEntry("b", '1', "", 0644, "dir/a") + End();
  const Status s = internal::ExtractTar(archive, out_);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(Read(out_ / "b"), "data");
}

TEST_F(TarExtractTest, SetuidSetgidAndStickyBitsAreDropped) {
  const std::string archive =
      RawEntry("suid", '0', "#!/bin/sh\n", 06755) + RawEntry("sticky/", '5', "", 01777) + End();
  const Status s = internal::ExtractTar(archive, out_);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(Mode(out_ / "suid"), 0755u);
  EXPECT_EQ(Mode(out_ / "sticky"), 0777u);
}

TEST_F(TarExtractTest, AFileEntryReplacesASymlinkInsteadOfWritingThroughIt) {
  const std::string archive = RawEntry("f", '2', "", 0777, victim_.string()) +
                              RawEntry("f", '0', "overwritten", 0644) + End();
  const Status s = internal::ExtractTar(archive, out_);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(Read(victim_), "secret\n");
  EXPECT_EQ(Read(out_ / "f"), "overwritten");
  EXPECT_FALSE(fs::is_symlink(fs::symlink_status(out_ / "f")));
}

// ---- streaming and limits (TarExtractor) ----------------------------------------------------

TEST_F(TarExtractTest, StreamsPieceByPieceAndRefusesATruncatedArchive) {
  const std::string archive = RawEntry("dir/", '5', "", 0755) +
                              RawEntry("dir/f", '0', std::string(1500, 'x'), 0640) + End();
  auto x = internal::TarExtractor::Make(out_);
  ASSERT_TRUE(x.ok());
  for (char c : archive) ASSERT_TRUE((*x)->Write(std::string_view(&c, 1)).ok());
  ASSERT_TRUE((*x)->Finish().ok());
  EXPECT_EQ(Read(out_ / "dir" / "f"), std::string(1500, 'x'));
  EXPECT_EQ(Mode(out_ / "dir" / "f"), 0640u);

  auto cut = internal::TarExtractor::Make(root_ / "out");
  ASSERT_TRUE(cut.ok());
  ASSERT_TRUE((*cut)->Write(std::string_view(archive).substr(0, 1000)).ok());
  EXPECT_EQ((*cut)->Finish().code(), StatusCode::kInvalidArgument);
}

TEST_F(TarExtractTest, SizeAndEntryLimits) {
  internal::ExtractLimits small;
  small.max_bytes = 100;
  const Status big =
      internal::ExtractTar(RawEntry("f", '0', std::string(101, 'x'), 0644) + End(), out_, small);
  EXPECT_EQ(big.code(), StatusCode::kResourceExhausted) << big.ToString();

  internal::ExtractLimits few;
  few.max_entries = 2;
  const Status many =
      internal::ExtractTar(RawEntry("a", '0', "", 0644) + RawEntry("b", '0', "", 0644) +
                               RawEntry("c", '0', "", 0644) + End(),
                           out_, few);
  EXPECT_EQ(many.code(), StatusCode::kResourceExhausted) << many.ToString();
  EXPECT_EQ(internal::TarExtractor::Make(root_ / "missing").error().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace bitfusion
