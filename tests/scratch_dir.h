// A directory of this test program's own (under gtest's TempDir, named after the process), made
// on first use and removed when the program ends, for files tests write and need no longer:
// fake library configs, copied sysfs trees. BITFUSION_KEEP_TEST_DIRS=1 keeps it for a
// post-mortem.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

namespace bitfusion::testing {

inline const std::filesystem::path& ScratchDir() {
  struct Dir {
    std::filesystem::path path =
        std::filesystem::path(::testing::TempDir()) / ("bf-scratch-" + std::to_string(::getpid()));
    Dir() { std::filesystem::create_directories(path); }
    ~Dir() {
      if (std::getenv("BITFUSION_KEEP_TEST_DIRS") != nullptr) return;
      std::error_code ec;
      std::filesystem::remove_all(path, ec);
    }
  };
  static const Dir dir;
  return dir.path;
}

/// `name` inside ScratchDir(), as a string.
inline std::string ScratchPath(const std::string& name) { return (ScratchDir() / name).string(); }

}  // namespace bitfusion::testing
