#include "net/remote_tree.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace bitfusion::internal {
namespace {

namespace fs = std::filesystem;

std::string Read(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// TMPDIR for one test, restored after it.
class ScopedTmpdir {
 public:
  explicit ScopedTmpdir(const fs::path& dir) {
    if (const char* old = ::getenv("TMPDIR")) old_ = old;
    ::setenv("TMPDIR", dir.c_str(), 1);
  }
  ~ScopedTmpdir() {
    if (old_.empty()) {
      ::unsetenv("TMPDIR");
    } else {
      ::setenv("TMPDIR", old_.c_str(), 1);
    }
  }

 private:
  std::string old_;
};

TEST(RemoteTreeTest, CopiesOnlyAllowedPathsUnderTmpdirAndRemovesThemAtTheEnd) {
  const fs::path tmp = fs::path(::testing::TempDir()) / "remote-tree-test";
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  ScopedTmpdir scoped(tmp);
  const std::string output =
      "@@BF-UNAME Linux 6.1.0 x86_64\n"
      "@@BF-FILE /sys/class/x/vendor\n0x10de\n"
      "@@BF-DIR /sys/bus/pci/devices/0000:07:00.0\n"
      "@@BF-LINK /sys/bus/pci/devices/0000:07:00.0/driver /sys/bus/pci/drivers/nvidia\n"
      "@@BF-FILE /etc/passwd\nroot:x:0:0\n"
      "@@BF-FILE /sys/../etc/shadow\nsecret\n"
      "@@BF-FILE sys/relative\nno\n"
      "@@BF-END\n";
  std::vector<std::vector<std::string>> other;
  fs::path root;
  {
    auto tree = RemoteTree::Copy(output, {"/sys/"}, other);
    ASSERT_TRUE(tree.ok()) << tree.error().message();
    root = (*tree)->root();
    EXPECT_EQ(root.parent_path(), tmp) << "made under $TMPDIR";
    EXPECT_EQ(Read(root / "sys/class/x/vendor"), "0x10de");
    EXPECT_TRUE(fs::is_directory(root / "sys/bus/pci/devices/0000:07:00.0"));
    const fs::path link = root / "sys/bus/pci/devices/0000:07:00.0/driver";
    ASSERT_TRUE(fs::is_symlink(link));
    EXPECT_EQ(fs::read_symlink(link), fs::path("../../drivers/nvidia"));
    EXPECT_FALSE(fs::exists(root / "etc/passwd")) << "not under an allowed prefix";
    EXPECT_FALSE(fs::exists(root / "etc/shadow")) << "a path with .. is refused";
    EXPECT_FALSE(fs::exists(root / "sys/relative"));
    EXPECT_FALSE(fs::exists(tmp / "etc"));
    ASSERT_EQ(other.size(), 2u);
    EXPECT_EQ(other[0], (std::vector<std::string>{"UNAME", "Linux", "6.1.0", "x86_64"}));
    EXPECT_EQ(other[1], (std::vector<std::string>{"END"}));
  }
  EXPECT_FALSE(fs::exists(root)) << "removed with the tree";
  fs::remove_all(tmp);
}

TEST(RemoteTreeTest, AnUnwritableTmpdirIsNamedInTheError) {
  ScopedTmpdir scoped("/proc/bf-no-such-dir");
  std::vector<std::vector<std::string>> other;
  auto tree = RemoteTree::Copy("@@BF-END\n", {"/sys/"}, other);
  ASSERT_FALSE(tree.ok());
  EXPECT_NE(tree.error().message().find("TMPDIR"), std::string::npos) << tree.error().message();
}

}  // namespace
}  // namespace bitfusion::internal
