#include "runners/tar_archive.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <utility>

namespace bitfusion::internal {

namespace {

namespace fs = std::filesystem;

constexpr std::size_t kBlock = 512;
// PAX and GNU long-name records hold a name or two; a bigger one is an attack on our memory.
constexpr std::size_t kMaxRecordBytes = 1 << 20;

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

namespace {

// A header's checksum, size and type, and its name and link with the pending PAX and GNU
// long-name records applied (and cleared).
struct Header {
  std::uint64_t size = 0;
  char type = '0';
  std::uint32_t mode = 0;
  std::string name, link;
};

struct PendingNames {
  std::string long_name, long_link;
  std::map<std::string, std::string> pax;
};

Status ParseHeader(const char* h, PendingNames& pending, Header& out) {
  bool ok = true;
  const std::uint64_t stored_sum = ParseNumber(h + 148, 8, ok);
  unsigned sum = 0;
  for (std::size_t i = 0; i < kBlock; ++i) {
    sum += (i >= 148 && i < 156) ? ' ' : static_cast<unsigned char>(h[i]);
  }
  if (!ok || stored_sum != sum) return InvalidArgumentError("header checksum mismatch");
  out.size = ParseNumber(h + 124, 12, ok);
  if (!ok) return InvalidArgumentError("bad size field");
  out.type = h[156];
  if (out.type == 'x' || out.type == 'g' || out.type == 'L' || out.type == 'K') {
    return Status::OK();  // records about the next entry: no name of their own
  }
  std::string name = Field(h, 100);
  if (std::memcmp(h + 257, "ustar", 5) == 0) {
    const std::string prefix = Field(h + 345, 155);
    if (!prefix.empty()) name = prefix + "/" + name;
  }
  if (!pending.long_name.empty()) name = std::exchange(pending.long_name, {});
  if (auto it = pending.pax.find("path"); it != pending.pax.end()) name = it->second;
  out.link = Field(h + 157, 100);
  if (!pending.long_link.empty()) out.link = std::exchange(pending.long_link, {});
  if (auto it = pending.pax.find("linkpath"); it != pending.pax.end()) out.link = it->second;
  pending.pax.clear();
  out.name = Clean(name);
  if (out.type == '\0' || out.type == '7') out.type = '0';
  out.mode = static_cast<std::uint32_t>(ParseNumber(h + 100, 8, ok)) & 07777;
  return Status::OK();
}

// Applies the data of a 'x', 'L' or 'K' entry to the names of the next one.
Status ApplyRecord(char type, std::string_view data, PendingNames& pending) {
  if (type == 'L') {
    pending.long_name = std::string(data.substr(0, strnlen(data.data(), data.size())));
  } else if (type == 'K') {
    pending.long_link = std::string(data.substr(0, strnlen(data.data(), data.size())));
  } else if (type == 'x') {
    std::string_view rest = data;
    while (!rest.empty()) {
      const auto space = rest.find(' ');
      if (space == std::string_view::npos) return InvalidArgumentError("bad PAX record");
      const std::size_t len =
          std::strtoull(std::string(rest.substr(0, space)).c_str(), nullptr, 10);
      if (len <= space + 1 || len > rest.size()) {
        return InvalidArgumentError("bad PAX record length");
      }
      std::string_view record = rest.substr(space + 1, len - space - 2);  // drop '\n'
      const auto eq = record.find('=');
      if (eq != std::string_view::npos) {
        pending.pax[std::string(record.substr(0, eq))] = std::string(record.substr(eq + 1));
      }
      rest.remove_prefix(len);
    }
  }
  return Status::OK();
}

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      Reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  ~Fd() { Reset(); }
  void Reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  int get() const { return fd_; }
  int Release() { return std::exchange(fd_, -1); }

 private:
  int fd_ = -1;
};

// "a/b/c" -> {"a", "b", "c"}; refuses absolute names and "..", drops "." and empty parts.
Result<std::vector<std::string>> Components(const std::string& name, const char* what) {
  if (!name.empty() && name.front() == '/') {
    return InvalidArgumentError(std::string(what) + " \"" + name + "\" is an absolute path");
  }
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (start <= name.size()) {
    const auto slash = std::min(name.find('/', start), name.size());
    std::string part = name.substr(start, slash - start);
    if (part == "..") {
      return InvalidArgumentError(std::string(what) + " \"" + name +
                                  "\" leaves the target directory");
    }
    if (!part.empty() && part != ".") parts.push_back(std::move(part));
    start = slash + 1;
  }
  return parts;
}

}  // namespace

Result<std::vector<TarEntry>> ReadTar(std::string_view archive) {
  std::vector<TarEntry> entries;
  PendingNames pending;
  std::size_t pos = 0;
  auto bad = [&](const Status& why) {
    return InvalidArgumentError("malformed tar archive at byte " + std::to_string(pos) + ": " +
                                why.message());
  };
  while (pos + kBlock <= archive.size()) {
    const char* h = archive.data() + pos;
    if (std::all_of(h, h + kBlock, [](char c) { return c == '\0'; })) break;
    Header header;
    if (Status s = ParseHeader(h, pending, header); !s.ok()) return bad(s);
    const std::size_t data_at = pos + kBlock;
    if (header.size > archive.size() - data_at) {
      return bad(InvalidArgumentError("entry runs past the end"));
    }
    const std::string_view data = archive.substr(data_at, header.size);
    pos = data_at + (header.size + kBlock - 1) / kBlock * kBlock;
    if (header.type == 'x' || header.type == 'L' || header.type == 'K') {
      if (Status s = ApplyRecord(header.type, data, pending); !s.ok()) return bad(s);
      continue;
    }
    if (header.type == 'g') continue;                         // global records: nothing we use
    if (header.name.empty() && header.type == '5') continue;  // "./" itself
    TarEntry e;
    e.name = std::move(header.name);
    e.type = header.type;
    e.mode = header.mode;
    e.link = std::move(header.link);
    e.data = data;
    entries.push_back(std::move(e));
  }
  return entries;
}

struct TarExtractor::State {
  std::filesystem::path dest;
  ExtractLimits limits;
  Fd dest_fd;
  PendingNames pending;
  std::string header;           // the header block being gathered
  std::uint64_t remaining = 0;  // data bytes of the current entry still to come
  std::uint64_t padding = 0;    // then this many bytes up to the next block
  enum class Into { kNothing, kFile, kRecord } into = Into::kNothing;
  char record_type = 0;
  std::string record;  // a PAX or GNU long-name record being gathered
  Fd file;
  std::string file_name;
  std::uint32_t file_mode = 0;
  std::uint64_t total_bytes = 0, entries = 0, offset = 0;
  bool ended = false;

  Status Bad(std::string_view why) const {
    return InvalidArgumentError("malformed tar archive at byte " + std::to_string(offset) + ": " +
                                std::string(why));
  }

  // Opens the directory that holds the last of `parts`, creating the missing ones below dest
  // and never passing through a symlink.
  Result<Fd> OpenParent(const std::vector<std::string>& parts, const std::string& name,
                        bool create) const {
    Fd dir(::dup(dest_fd.get()));
    if (dir.get() < 0) return ErrnoError(errno, "duplicating a descriptor");
    for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
      const char* part = parts[i].c_str();
      int fd = ::openat(dir.get(), part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0 && errno == ENOENT && create) {
        if (::mkdirat(dir.get(), part, 0755) != 0 && errno != EEXIST) {
          return ErrnoError(errno, "creating a directory for \"" + name + "\"");
        }
        fd = ::openat(dir.get(), part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      }
      if (fd < 0 && (errno == ELOOP || errno == ENOTDIR)) {
        return InvalidArgumentError("archive entry \"" + name + "\" passes through " + parts[i] +
                                    ", which is a symlink or not a directory");
      }
      if (fd < 0) return ErrnoError(errno, "opening the directory of \"" + name + "\"");
      dir = Fd(fd);
    }
    return dir;
  }

  // Removes what is at `leaf` (not a non-empty directory) so a new entry replaces it instead
  // of writing through it.
  static Status Clear(int dir, const std::string& leaf, const std::string& name) {
    if (::unlinkat(dir, leaf.c_str(), 0) == 0 || errno == ENOENT) return Status::OK();
    if (errno == EISDIR && ::unlinkat(dir, leaf.c_str(), AT_REMOVEDIR) == 0) return Status::OK();
    return ErrnoError(errno, "replacing \"" + name + "\"");
  }

  Status Begin(Header& h) {
    if (++entries > limits.max_entries) {
      return ResourceExhaustedError("archive has more than " + std::to_string(limits.max_entries) +
                                    " entries");
    }
    if (h.name.empty()) return Status::OK();  // "./" itself
    BITFUSION_ASSIGN_OR_RETURN(auto parts, Components(h.name, "archive entry"));
    if (parts.empty()) return Status::OK();
    const std::string& leaf = parts.back();
    // Never setuid, setgid or sticky: the files come from a container, not from us.
    const std::uint32_t mode = h.mode & 0777;
    switch (h.type) {
      case '5': {
        BITFUSION_ASSIGN_OR_RETURN(Fd parent, OpenParent(parts, h.name, true));
        int fd =
            ::openat(parent.get(), leaf.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
          // Absent, or a symlink or file in the way: a directory takes its place (the mode is
          // never applied through a link).
          BITFUSION_RETURN_IF_ERROR(Clear(parent.get(), leaf, h.name));
          if (::mkdirat(parent.get(), leaf.c_str(), 0700) != 0) {
            return ErrnoError(errno, "creating directory \"" + h.name + "\"");
          }
          fd =
              ::openat(parent.get(), leaf.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
          if (fd < 0) return ErrnoError(errno, "opening directory \"" + h.name + "\"");
        }
        Fd dir(fd);
        // Owner rwx stays, or later entries could not be written into it.
        (void)::fchmod(dir.get(), mode | S_IRWXU);
        return Status::OK();
      }
      case '2': {
        BITFUSION_ASSIGN_OR_RETURN(Fd parent, OpenParent(parts, h.name, true));
        BITFUSION_RETURN_IF_ERROR(Clear(parent.get(), leaf, h.name));
        if (::symlinkat(h.link.c_str(), parent.get(), leaf.c_str()) != 0) {
          return ErrnoError(errno, "creating symlink \"" + h.name + "\"");
        }
        return Status::OK();
      }
      case '1': {
        // A hard link names an earlier entry of the same archive: confined like any name,
        // and linked (never copied), so it cannot reach a file outside dest.
        BITFUSION_ASSIGN_OR_RETURN(auto target, Components(h.link, "archive hard link target"));
        if (target.empty()) return Bad("hard link \"" + h.name + "\" without a target");
        BITFUSION_ASSIGN_OR_RETURN(Fd from, OpenParent(target, h.link, false));
        BITFUSION_ASSIGN_OR_RETURN(Fd parent, OpenParent(parts, h.name, true));
        BITFUSION_RETURN_IF_ERROR(Clear(parent.get(), leaf, h.name));
        if (::linkat(from.get(), target.back().c_str(), parent.get(), leaf.c_str(), 0) != 0) {
          return ErrnoError(errno, "linking \"" + h.name + "\" to \"" + h.link + "\"");
        }
        return Status::OK();
      }
      case '0': {
        BITFUSION_ASSIGN_OR_RETURN(Fd parent, OpenParent(parts, h.name, true));
        BITFUSION_RETURN_IF_ERROR(Clear(parent.get(), leaf, h.name));
        const int fd = ::openat(parent.get(), leaf.c_str(),
                                O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0) return ErrnoError(errno, "creating \"" + h.name + "\"");
        file = Fd(fd);
        file_name = h.name;
        file_mode = mode;
        into = Into::kFile;
        return Status::OK();
      }
      default: return Status::OK();  // devices, FIFOs: not copied out of containers
    }
  }

  Status EndFile() {
    if (file.get() < 0) return Status::OK();
    const int fd = file.Release();
    Status s;
    if (::fchmod(fd, file_mode) != 0) s = ErrnoError(errno, "setting the mode of " + file_name);
    if (::close(fd) != 0 && s.ok()) s = ErrnoError(errno, "writing " + file_name);
    return s;
  }

  Status Data(std::string_view data) {
    switch (into) {
      case Into::kFile:
        total_bytes += data.size();
        if (total_bytes > limits.max_bytes) {
          return ResourceExhaustedError("archive holds more than " +
                                        std::to_string(limits.max_bytes) + " bytes of files");
        }
        while (!data.empty()) {
          const ssize_t n = ::write(file.get(), data.data(), data.size());
          if (n < 0 && errno == EINTR) continue;
          if (n <= 0) return ErrnoError(errno, "writing " + (dest / file_name).string());
          data.remove_prefix(static_cast<std::size_t>(n));
        }
        return Status::OK();
      case Into::kRecord:
        if (record.size() + data.size() > kMaxRecordBytes) return Bad("oversized name record");
        record.append(data);
        return Status::OK();
      case Into::kNothing: return Status::OK();
    }
    return Status::OK();
  }

  Status EntryDone() {
    if (into == Into::kRecord) {
      BITFUSION_RETURN_IF_ERROR(ApplyRecord(record_type, record, pending));
      record.clear();
    }
    if (into == Into::kFile) BITFUSION_RETURN_IF_ERROR(EndFile());
    into = Into::kNothing;
    return Status::OK();
  }

  Status Feed(std::string_view chunk) {
    while (!chunk.empty() && !ended) {
      if (remaining > 0) {
        const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(remaining, chunk.size()));
        BITFUSION_RETURN_IF_ERROR(Data(chunk.substr(0, n)));
        chunk.remove_prefix(n);
        remaining -= n;
        offset += n;
        if (remaining == 0) BITFUSION_RETURN_IF_ERROR(EntryDone());
        continue;
      }
      if (padding > 0) {
        const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(padding, chunk.size()));
        chunk.remove_prefix(n);
        padding -= n;
        offset += n;
        continue;
      }
      const std::size_t n = std::min(kBlock - header.size(), chunk.size());
      header.append(chunk.substr(0, n));
      chunk.remove_prefix(n);
      if (header.size() < kBlock) break;
      const std::string block = std::exchange(header, {});
      if (std::all_of(block.begin(), block.end(), [](char c) { return c == '\0'; })) {
        ended = true;  // what follows the end-of-archive blocks is ignored
        break;
      }
      Header h;
      if (Status s = ParseHeader(block.data(), pending, h); !s.ok()) return Bad(s.message());
      offset += kBlock;
      remaining = h.size;
      padding = (kBlock - h.size % kBlock) % kBlock;
      if (h.type == 'x' || h.type == 'L' || h.type == 'K') {
        into = Into::kRecord;
        record_type = h.type;
      } else if (h.type != 'g') {
        BITFUSION_RETURN_IF_ERROR(Begin(h));
      }
      if (remaining == 0) BITFUSION_RETURN_IF_ERROR(EntryDone());
    }
    return Status::OK();
  }
};

TarExtractor::TarExtractor(std::unique_ptr<State> state) : state_(std::move(state)) {}
TarExtractor::~TarExtractor() = default;

Result<std::unique_ptr<TarExtractor>> TarExtractor::Make(const fs::path& dest,
                                                         const ExtractLimits& limits) {
  const int fd = ::open(dest.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT || errno == ENOTDIR) {
      return NotFoundError("directory " + dest.string() + " does not exist");
    }
    return ErrnoError(errno, "opening " + dest.string());
  }
  auto state = std::make_unique<State>();
  state->dest = dest;
  state->limits = limits;
  state->dest_fd = Fd(fd);
  return std::unique_ptr<TarExtractor>(new TarExtractor(std::move(state)));
}

Status TarExtractor::Write(std::string_view chunk) {
  if (!error_.ok()) return error_;
  error_ = state_->Feed(chunk);
  return error_;
}

Status TarExtractor::Finish() {
  if (!error_.ok()) return error_;
  if (state_->remaining > 0 || state_->padding > 0 || !state_->header.empty() ||
      state_->into != State::Into::kNothing) {
    error_ = state_->Bad("the archive ends in the middle of an entry");
    return error_;
  }
  return Status::OK();
}

Status ExtractTar(std::string_view archive, const fs::path& dest, const ExtractLimits& limits) {
  BITFUSION_ASSIGN_OR_RETURN(auto extractor, TarExtractor::Make(dest, limits));
  BITFUSION_RETURN_IF_ERROR(extractor->Write(archive));
  return extractor->Finish();
}

}  // namespace bitfusion::internal
