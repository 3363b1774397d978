// Tar archives in memory, as the Docker Engine API moves files: image import (a root
// filesystem), build contexts, and copying into and out of containers. Writes POSIX ustar with
// PAX records for long names; reads ustar, PAX and GNU long names. Plain, uncompressed tar is
// all the engine needs, so this stays a few hundred lines instead of a new library dependency.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "bitfusion/status.h"

namespace bitfusion::internal {

class TarWriter {
 public:
  /// A regular file `name` ("bin/busybox"; no leading slash) holding `content`.
  void AddFile(std::string_view name, std::string_view content, std::uint32_t mode = 0644);
  void AddDirectory(std::string_view name, std::uint32_t mode = 0755);
  void AddSymlink(std::string_view name, std::string_view target);
  /// A file, symlink or directory (recursively, in name order) from this host, stored as `name`
  /// (empty for a directory = its contents at the archive root).
  Status AddPath(const std::filesystem::path& host_path, std::string_view name);
  /// The archive, with its end-of-archive blocks; the writer is empty afterwards.
  std::string Finish();

 private:
  void Entry(std::string_view name, char type, std::string_view content, std::uint32_t mode,
             std::string_view link);
  std::string out_;
};

struct TarEntry {
  std::string name;  ///< without leading "./" or "/"
  char type = '0';   ///< '0' file, '5' directory, '2' symlink, '1' hard link
  std::uint32_t mode = 0644;
  std::string link;       ///< symlink or hard link target
  std::string_view data;  ///< points into the archive
};

/// Every entry of `archive`; InvalidArgument when it is not a well-formed tar.
Result<std::vector<TarEntry>> ReadTar(std::string_view archive);

/// What an extraction may write before it is refused with ResourceExhausted.
struct ExtractLimits {
  std::uint64_t max_bytes = std::uint64_t{64} << 30;  ///< file contents, all entries together
  std::uint64_t max_entries = 10'000'000;
};

/// Writes a tar stream under a directory, piece by piece as it arrives, confined to it: every
/// name is resolved with openat(O_NOFOLLOW) from the directory's descriptor, so no entry can
/// write, chmod or link through a symlink, with "..", or to an absolute path; a hard link is a
/// link to an earlier entry (never a copy of a host file); symlinks are created as they are
/// but never followed; an entry replaces whatever is at its name. Modes keep only the rwx bits
/// (never setuid, setgid or sticky; directories keep owner rwx) and owners are never set.
class TarExtractor {
 public:
  /// `dest` must exist; NotFound otherwise.
  static Result<std::unique_ptr<TarExtractor>> Make(const std::filesystem::path& dest,
                                                    const ExtractLimits& limits = {});
  ~TarExtractor();
  TarExtractor(const TarExtractor&) = delete;
  TarExtractor& operator=(const TarExtractor&) = delete;

  /// The next bytes of the archive. After an error every later call returns it.
  Status Write(std::string_view chunk);
  /// InvalidArgument when the archive stopped in the middle of an entry.
  Status Finish();

 private:
  struct State;
  explicit TarExtractor(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
  Status error_;
};

/// TarExtractor over an archive held in memory.
Status ExtractTar(std::string_view archive, const std::filesystem::path& dest,
                  const ExtractLimits& limits = {});

}  // namespace bitfusion::internal
