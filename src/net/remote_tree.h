// Files of another host, copied here through the output of one script run there over SSH: so
// that code written for a filesystem root (the fingerprint's procfs and sysfs readers, PCI
// discovery) reads another machine's files as it reads a recorded tree.
//
// The output is a sequence of sections, each a header line "\n@@BF-KIND PATH [WORD...]" and a
// body up to the next header:
//   FILE PATH       a file and its contents (empty for a device node: only its name counts)
//   DIR PATH        a directory
//   LINK PATH TO    a symbolic link; only the name of its target is kept, the link written
//                   as "../../drivers/NAME" (what a PCI function's driver link is read for)
// Other kinds (UNAME, END, ...) are handed back to the caller, words split on blanks.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "bitfusion/status.h"

namespace bitfusion::internal {

class RemoteTree {
 public:
  /// Writes the sections into a fresh private directory. Only absolute paths without ".."
  /// that start with one of `allowed` ("/sys/", "/etc/os-release") are written: the other
  /// host does not choose where this one writes. Headers of other kinds go to `other`, in
  /// order, as {KIND, WORD...}.
  static Result<std::unique_ptr<RemoteTree>> Copy(const std::string& output,
                                                  const std::vector<std::string>& allowed,
                                                  std::vector<std::vector<std::string>>& other);
  /// Removes the directory.
  ~RemoteTree();
  RemoteTree(const RemoteTree&) = delete;
  RemoteTree& operator=(const RemoteTree&) = delete;

  /// The copy's root: the remote "/sys/x" is root()/"sys/x".
  const std::filesystem::path& root() const { return root_; }

 private:
  explicit RemoteTree(std::filesystem::path root) : root_(std::move(root)) {}
  std::filesystem::path root_;
};

}  // namespace bitfusion::internal
