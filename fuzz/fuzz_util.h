// Helpers shared by the fuzz targets: a private scratch directory and whole-file rewrites.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace bitfusion::fuzz {

/// A directory of the target's own, removed at a normal exit (libFuzzer ends some runs with
/// _Exit, so scripts/fuzz.sh points BITFUSION_FUZZ_SCRATCH at a directory it removes itself).
/// Under /dev/shm when there is one: the targets rewrite files on every input.
inline const std::filesystem::path& ScratchDir() {
  static const std::filesystem::path dir = [] {
    const char* env = std::getenv("BITFUSION_FUZZ_SCRATCH");
    const std::string base = env != nullptr && *env != '\0'              ? env
                             : std::filesystem::is_directory("/dev/shm") ? "/dev/shm"
                                                                         : "/tmp";
    std::string templ = base + "/bitfusion-fuzz-XXXXXX";
    if (::mkdtemp(templ.data()) == nullptr) std::abort();
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(ScratchDir(), ec);
    });
    return std::filesystem::path(templ);
  }();
  return dir;
}

/// Splits `data` at every NUL byte into at most `n` parts (missing parts are empty), so one
/// input can fill several files; the seeds are the fixture files joined with NULs.
inline std::vector<std::string_view> SplitParts(std::string_view data, std::size_t n) {
  std::vector<std::string_view> parts(n);
  for (std::size_t i = 0; i < n && !data.empty(); ++i) {
    const auto nul = i + 1 < n ? data.find('\0') : std::string_view::npos;
    parts[i] = data.substr(0, nul);
    data.remove_prefix(nul == std::string_view::npos ? data.size() : nul + 1);
  }
  return parts;
}

/// A file kept open and rewritten in place (truncated, then written from offset 0), so a source
/// that keeps its own descriptor on the same path reads the new contents.
class RewrittenFile {
 public:
  explicit RewrittenFile(const std::filesystem::path& path) {
    std::error_code ec;
    std::filesystem::create_directories(path.parent_path(), ec);
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) std::abort();
  }
  RewrittenFile(const RewrittenFile&) = delete;
  RewrittenFile& operator=(const RewrittenFile&) = delete;
  ~RewrittenFile() { ::close(fd_); }
  void Set(std::string_view text) const {
    if (::ftruncate(fd_, 0) != 0) std::abort();
    std::size_t done = 0;
    while (done < text.size()) {
      const ssize_t n =
          ::pwrite(fd_, text.data() + done, text.size() - done, static_cast<off_t>(done));
      if (n <= 0) std::abort();
      done += static_cast<std::size_t>(n);
    }
  }

 private:
  int fd_ = -1;
};

}  // namespace bitfusion::fuzz
