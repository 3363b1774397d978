#include "net/remote_tree.h"

#include <stdlib.h>

#include <cerrno>
#include <fstream>
#include <optional>
#include <sstream>
#include <utility>

namespace bitfusion::internal {

namespace fs = std::filesystem;

Result<std::unique_ptr<RemoteTree>> RemoteTree::Copy(const std::string& output,
                                                     const std::vector<std::string>& allowed,
                                                     std::vector<std::vector<std::string>>& other) {
  std::error_code ec;
  const fs::path tmp = fs::temp_directory_path(ec);  // $TMPDIR, else /tmp
  if (ec) return InternalError("no temporary directory: " + ec.message() + "; set TMPDIR");
  std::string templ = (tmp / "bf-remote-tree-XXXXXX").string();
  if (::mkdtemp(templ.data()) == nullptr) {
    return ErrnoError(errno, "creating a temporary directory under " + tmp.string() +
                                 " (set TMPDIR to a writable one)");
  }
  std::unique_ptr<RemoteTree> tree(new RemoteTree(templ));
  const fs::path& root = tree->root_;
  auto local = [&](const std::string& remote) -> std::optional<fs::path> {
    const fs::path p(remote);
    if (!p.is_absolute()) return std::nullopt;
    for (const auto& part : p) {
      if (part == "..") return std::nullopt;
    }
    for (const auto& prefix : allowed) {
      if (remote.rfind(prefix, 0) == 0) return root / p.relative_path();
    }
    return std::nullopt;
  };
  const std::string text = "\n" + output;
  std::vector<std::pair<fs::path, std::string>> links;
  for (std::size_t pos = text.find("\n@@BF-"); pos != std::string::npos;) {
    const std::size_t header_start = pos + 6;
    const std::size_t header_end = text.find('\n', header_start);
    const std::size_t next = text.find("\n@@BF-", header_start);
    const std::string header = text.substr(
        header_start, (header_end == std::string::npos ? text.size() : header_end) - header_start);
    const std::string body =
        header_end == std::string::npos || (next != std::string::npos && header_end > next)
            ? std::string()
            : text.substr(header_end + 1,
                          (next == std::string::npos ? text.size() : next) - header_end - 1);
    std::istringstream in(header);
    std::vector<std::string> words;
    for (std::string w; in >> w;) words.push_back(std::move(w));
    pos = next;
    if (words.empty()) continue;
    const std::string& kind = words[0];
    if ((kind == "FILE" || kind == "DIR" || kind == "LINK") && words.size() >= 2) {
      const auto p = local(words[1]);
      if (!p) continue;
      std::error_code ec;
      if (kind == "LINK") {
        if (words.size() >= 3) links.emplace_back(*p, fs::path(words[2]).filename().string());
        continue;
      }
      fs::create_directories(kind == "DIR" ? *p : p->parent_path(), ec);
      if (kind == "FILE") std::ofstream(*p, std::ios::binary) << body;
    } else if (kind != "FILE" && kind != "DIR" && kind != "LINK") {
      other.push_back(std::move(words));
    }
  }
  // Links last, pointing nowhere: only their names are read, and no file is written through
  // one.
  for (const auto& [link, name] : links) {
    std::error_code ec;
    fs::create_directories(link.parent_path(), ec);
    fs::create_symlink(fs::path("../../drivers") / name, link, ec);
  }
  return tree;
}

RemoteTree::~RemoteTree() {
  std::error_code ec;
  fs::remove_all(root_, ec);
}

}  // namespace bitfusion::internal
