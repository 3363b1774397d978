#include "runners/tar_archive.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

namespace bitfusion::internal {

namespace {

namespace fs = std::filesystem;

constexpr std::size_t kBlock = 512;

void PutOctal(char* field, std::size_t width, std::uint64_t value) {
  // width-1 digits and a NUL, as every tar reads.
  std::snprintf(field, width, "%0*llo", static_cast<int>(width - 1),
                static_cast<unsigned long long>(value));
}

std::string PaxRecord(std::string_view key, std::string_view value) {
  // "%d key=value\n", where %d counts the whole record including its own digits.
  const std::size_t body = key.size() + value.size() + 3;  // space, '=', '\n'
  std::size_t len = body + 1;
  while (std::to_string(len).size() + body != len) ++len;
  return std::to_string(len) + " " + std::string(key) + "=" + std::string(value) + "\n";
}

void Pad(std::string& out) {
  if (out.size() % kBlock != 0) out.append(kBlock - out.size() % kBlock, '\0');
}

std::string Clean(std::string_view name) {
  while (name.substr(0, 2) == "./") name.remove_prefix(2);
  while (!name.empty() && name.front() == '/') name.remove_prefix(1);
  std::string out(name);
  while (!out.empty() && out.back() == '/') out.pop_back();
  return out;
}

std::uint64_t ParseNumber(const char* field, std::size_t width, bool& ok) {
  // Base-256 (GNU) for large values: high bit of the first byte set.
  if (static_cast<unsigned char>(field[0]) & 0x80) {
    std::uint64_t v = static_cast<unsigned char>(field[0]) & 0x7f;
    for (std::size_t i = 1; i < width; ++i) v = (v << 8) | static_cast<unsigned char>(field[i]);
    return v;
  }
  std::uint64_t v = 0;
  std::size_t i = 0;
  while (i < width && (field[i] == ' ' || field[i] == '\0')) {
    if (field[i] == '\0') return 0;  // an all-empty field
    ++i;
  }
  for (; i < width && field[i] >= '0' && field[i] <= '7'; ++i) v = v * 8 + (field[i] - '0');
  for (; i < width; ++i) {
    if (field[i] != ' ' && field[i] != '\0') ok = false;
  }
  return v;
}

std::string Field(const char* p, std::size_t width) { return std::string(p, strnlen(p, width)); }

Result<std::string> ReadWholeFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) return ErrnoError(errno, "reading " + p.string());
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

void TarWriter::Entry(std::string_view name_in, char type, std::string_view content,
                      std::uint32_t mode, std::string_view link) {
  std::string name = Clean(name_in);
  if (type == '5') name += "/";
  std::string pax;
  if (name.size() > 100) pax += PaxRecord("path", name);
  if (link.size() > 100) pax += PaxRecord("linkpath", link);
  if (!pax.empty()) {
    Entry("PaxHeaders/" + std::to_string(out_.size()), 'x', pax, 0644, {});
  }
  char h[kBlock];
  std::memset(h, 0, sizeof h);
  if (!name.empty()) std::memcpy(h, name.data(), std::min<std::size_t>(name.size(), 100));
  PutOctal(h + 100, 8, mode & 07777);
  PutOctal(h + 108, 8, 0);  // uid: root in the container
  PutOctal(h + 116, 8, 0);
  PutOctal(h + 124, 12, content.size());
  PutOctal(h + 136, 12, 0);  // mtime: fixed, so the same input gives the same archive
  h[156] = type;
  if (!link.empty()) std::memcpy(h + 157, link.data(), std::min<std::size_t>(link.size(), 100));
  std::memcpy(h + 257, "ustar", 6);
  std::memcpy(h + 263, "00", 2);
  std::memset(h + 148, ' ', 8);
  unsigned sum = 0;
  for (unsigned char c : h) sum += c;
  std::snprintf(h + 148, 8, "%06o", sum);
  h[155] = ' ';
  out_.append(h, sizeof h);
  out_.append(content);
  Pad(out_);
}

void TarWriter::AddFile(std::string_view name, std::string_view content, std::uint32_t mode) {
  Entry(name, '0', content, mode, {});
}

void TarWriter::AddDirectory(std::string_view name, std::uint32_t mode) {
  Entry(name, '5', {}, mode, {});
}

void TarWriter::AddSymlink(std::string_view name, std::string_view target) {
  Entry(name, '2', {}, 0777, target);
}

Status TarWriter::AddPath(const fs::path& host_path, std::string_view name) {
  std::error_code ec;
  const auto st = fs::symlink_status(host_path, ec);
  if (ec) return ErrnoError(ec.value(), "reading " + host_path.string());
  const auto mode = static_cast<std::uint32_t>(st.permissions()) & 07777;
  if (fs::is_symlink(st)) {
    const auto target = fs::read_symlink(host_path, ec);
    if (ec) return ErrnoError(ec.value(), "reading link " + host_path.string());
    AddSymlink(name, target.string());
  } else if (fs::is_directory(st)) {
    if (!name.empty()) AddDirectory(name, mode);
    std::vector<fs::path> children;
    for (const auto& e : fs::directory_iterator(host_path, ec)) children.push_back(e.path());
    if (ec) return ErrnoError(ec.value(), "listing " + host_path.string());
    std::sort(children.begin(), children.end());
    for (const auto& c : children) {
      const std::string child_name =
          name.empty() ? c.filename().string() : std::string(name) + "/" + c.filename().string();
      BITFUSION_RETURN_IF_ERROR(AddPath(c, child_name));
    }
  } else if (fs::is_regular_file(st)) {
    BITFUSION_ASSIGN_OR_RETURN(std::string content, ReadWholeFile(host_path));
    AddFile(name, content, mode);
  } else {
    return InvalidArgumentError(host_path.string() +
                                " is not a regular file, directory or symlink; it cannot be "
                                "archived");
  }
  return Status::OK();
}

std::string TarWriter::Finish() {
  out_.append(2 * kBlock, '\0');
  return std::exchange(out_, {});
}

Result<std::vector<TarEntry>> ReadTar(std::string_view archive) {
  std::vector<TarEntry> entries;
  std::string long_name, long_link;
  std::map<std::string, std::string> pax;
  std::size_t pos = 0;
  auto bad = [&](const std::string& why) {
    return InvalidArgumentError("malformed tar archive at byte " + std::to_string(pos) + ": " +
                                why);
  };
  while (pos + kBlock <= archive.size()) {
    const char* h = archive.data() + pos;
    if (std::all_of(h, h + kBlock, [](char c) { return c == '\0'; })) break;
    bool ok = true;
    const std::uint64_t stored_sum = ParseNumber(h + 148, 8, ok);
    unsigned sum = 0;
    for (std::size_t i = 0; i < kBlock; ++i) {
      sum += (i >= 148 && i < 156) ? ' ' : static_cast<unsigned char>(h[i]);
    }
    if (!ok || stored_sum != sum) return bad("header checksum mismatch");
    const std::uint64_t size = ParseNumber(h + 124, 12, ok);
    if (!ok) return bad("bad size field");
    const std::size_t data_at = pos + kBlock;
    if (size > archive.size() - data_at) return bad("entry runs past the end");
    const std::string_view data = archive.substr(data_at, size);
    pos = data_at + (size + kBlock - 1) / kBlock * kBlock;
    const char type = h[156];
    if (type == 'x' || type == 'g') {
      if (type == 'g') continue;  // global records: nothing we use
      std::string_view rest = data;
      while (!rest.empty()) {
        const auto space = rest.find(' ');
        if (space == std::string_view::npos) return bad("bad PAX record");
        const std::size_t len =
            std::strtoull(std::string(rest.substr(0, space)).c_str(), nullptr, 10);
        if (len <= space + 1 || len > rest.size()) return bad("bad PAX record length");
        std::string_view record = rest.substr(space + 1, len - space - 2);  // drop '\n'
        const auto eq = record.find('=');
        if (eq != std::string_view::npos) {
          pax[std::string(record.substr(0, eq))] = std::string(record.substr(eq + 1));
        }
        rest.remove_prefix(len);
      }
      continue;
    }
    if (type == 'L') {
      long_name = std::string(data.substr(0, strnlen(data.data(), data.size())));
      continue;
    }
    if (type == 'K') {
      long_link = std::string(data.substr(0, strnlen(data.data(), data.size())));
      continue;
    }
    TarEntry e;
    std::string name = Field(h, 100);
    if (std::memcmp(h + 257, "ustar", 5) == 0) {
      const std::string prefix = Field(h + 345, 155);
      if (!prefix.empty()) name = prefix + "/" + name;
    }
    if (!long_name.empty()) name = std::exchange(long_name, {});
    if (auto it = pax.find("path"); it != pax.end()) name = it->second;
    e.link = Field(h + 157, 100);
    if (!long_link.empty()) e.link = std::exchange(long_link, {});
    if (auto it = pax.find("linkpath"); it != pax.end()) e.link = it->second;
    pax.clear();
    e.name = Clean(name);
    e.type = type == '\0' || type == '7' ? '0' : type;
    e.mode = static_cast<std::uint32_t>(ParseNumber(h + 100, 8, ok)) & 07777;
    e.data = data;
    if (e.name.empty() && e.type == '5') continue;  // "./" itself
    entries.push_back(std::move(e));
  }
  return entries;
}

Status ExtractTar(std::string_view archive, const fs::path& dest) {
  BITFUSION_ASSIGN_OR_RETURN(auto entries, ReadTar(archive));
  std::error_code ec;
  if (!fs::is_directory(dest, ec))
    return NotFoundError("directory " + dest.string() + " does not exist");
  for (const auto& e : entries) {
    const fs::path rel(e.name);
    for (const auto& part : rel) {
      if (part == "..") {
        return InvalidArgumentError("archive entry \"" + e.name + "\" leaves the target directory");
      }
    }
    // No parent inside dest may be a symlink: it could point anywhere.
    fs::path parent = dest;
    for (auto it = rel.begin(); it != rel.end() && std::next(it) != rel.end(); ++it) {
      parent /= *it;
      if (fs::is_symlink(fs::symlink_status(parent, ec))) {
        return InvalidArgumentError("archive entry \"" + e.name + "\" passes through symlink " +
                                    parent.string());
      }
    }
    const fs::path target = dest / rel;
    fs::create_directories(target.parent_path(), ec);
    if (ec) return ErrnoError(ec.value(), "creating " + target.parent_path().string());
    switch (e.type) {
      case '5':
        fs::create_directories(target, ec);
        if (ec) return ErrnoError(ec.value(), "creating " + target.string());
        ::chmod(target.c_str(), e.mode);
        break;
      case '2':
        fs::remove(target, ec);
        fs::create_symlink(e.link, target, ec);
        if (ec) return ErrnoError(ec.value(), "creating symlink " + target.string());
        break;
      case '0':
      case '1': {
        std::string_view content = e.data;
        std::string linked;
        if (e.type == '1') {
          for (const auto& part : fs::path(e.link)) {
            if (part == "..") {
              return InvalidArgumentError("archive hard link \"" + e.name +
                                          "\" points outside the target directory");
            }
          }
          BITFUSION_ASSIGN_OR_RETURN(linked, ReadWholeFile(dest / fs::path(e.link)));
          content = linked;
        }
        fs::remove(target, ec);
        std::ofstream out(target, std::ios::binary | std::ios::trunc);
        out.write(content.data(), static_cast<std::streamsize>(content.size()));
        if (!out) return ErrnoError(errno, "writing " + target.string());
        out.close();
        ::chmod(target.c_str(), e.mode);
        break;
      }
      default: break;  // devices, FIFOs: not copied out of containers
    }
  }
  return Status::OK();
}

}  // namespace bitfusion::internal
