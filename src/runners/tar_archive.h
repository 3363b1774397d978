// Tar archives in memory, as the Docker Engine API moves files: image import (a root
// filesystem), build contexts, and copying into and out of containers. Writes POSIX ustar with
// PAX records for long names; reads ustar, PAX and GNU long names. Plain, uncompressed tar is
// all the engine needs, so this stays a few hundred lines instead of a new library dependency.
#pragma once

#include <cstdint>
#include <filesystem>
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

/// Writes `archive` under `dest` (which must exist). Names with ".." or that would pass
/// through a symlink are refused, so an archive cannot write outside `dest`.
Status ExtractTar(std::string_view archive, const std::filesystem::path& dest);

}  // namespace bitfusion::internal
