#include "sinks/spool_internal.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <system_error>
#include <utility>

#include "bitfusion/log.h"
#include "bitfusion/serialize.h"
#include "core/sha256.h"
#include "core/state_dir.h"

namespace bitfusion::internal {
namespace {

constexpr char kFileMagic[8] = {'B', 'F', 'S', 'P', 'O', 'O', 'L', '1'};
constexpr std::size_t kHeaderBytes = 24;
constexpr std::uint32_t kKindBatch = 1;
constexpr std::uint32_t kKindRun = 2;
// No record is ever this large; a length beyond it is damage, not data.
constexpr std::uint64_t kMaxRecordBytes = std::uint64_t{1} << 34;

struct RecordHeader {
  std::uint32_t kind = 0;
  std::uint32_t samples = 0;
  std::uint64_t bytes = 0;
  std::uint32_t crc = 0;
};

void PutU32(char* p, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xFF);
}
void PutU64(char* p, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xFF);
}
std::uint32_t GetU32(const char* p) {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}
std::uint64_t GetU64(const char* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

std::uint32_t Crc32(std::string_view bytes) {
  uLong crc = crc32(0L, Z_NULL, 0);
  // zlib takes uInt lengths: feed large payloads in pieces.
  while (!bytes.empty()) {
    const std::size_t n = std::min<std::size_t>(bytes.size(), 1u << 30);
    crc = crc32(crc, reinterpret_cast<const Bytef*>(bytes.data()), static_cast<uInt>(n));
    bytes.remove_prefix(n);
  }
  return static_cast<std::uint32_t>(crc);
}

std::string SegmentName(std::uint64_t seq) {
  char name[64];
  std::snprintf(name, sizeof(name), "segment-%016" PRIu64 ".bfs", seq);
  return name;
}

// The sequence number of a segment file name, or 0 for other files.
std::uint64_t SegmentSeq(const std::string& name) {
  if (name.size() != 8 + 16 + 4 || name.rfind("segment-", 0) != 0 || name.substr(24) != ".bfs") {
    return 0;
  }
  std::uint64_t seq = 0;
  for (char c : name.substr(8, 16)) {
    if (c < '0' || c > '9') return 0;
    seq = seq * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return seq;
}

Status WriteAll(int fd, std::string_view bytes, const std::filesystem::path& path) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError(errno, "cannot write spool segment " + path.string());
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return Status::OK();
}

Result<std::string> ReadWhole(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError(errno, "cannot open spool segment " + path.string());
  std::string out;
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return ErrnoError(err, "cannot read spool segment " + path.string());
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return out;
}

// Walks the records of a segment file's bytes; `on_record` gets each whole record. Returns the
// length of the well-formed prefix. `check_crc` also stops at a record whose CRC is wrong and
// sets `corrupt`.
template <class F>
std::size_t WalkRecords(std::string_view data, bool check_crc, bool& corrupt, F&& on_record) {
  corrupt = false;
  if (data.size() < sizeof(kFileMagic) ||
      std::memcmp(data.data(), kFileMagic, sizeof(kFileMagic)) != 0) {
    corrupt = !data.empty();
    return 0;
  }
  std::size_t at = sizeof(kFileMagic);
  while (data.size() - at >= kHeaderBytes) {
    const char* h = data.data() + at;
    RecordHeader header{GetU32(h), GetU32(h + 4), GetU64(h + 8), GetU32(h + 16)};
    if ((header.kind != kKindBatch && header.kind != kKindRun) || header.bytes > kMaxRecordBytes) {
      corrupt = true;
      break;
    }
    if (data.size() - at - kHeaderBytes < header.bytes) break;  // cut short by a crash
    const std::string_view payload = data.substr(at + kHeaderBytes, header.bytes);
    if (check_crc && Crc32(payload) != header.crc) {
      corrupt = true;
      break;
    }
    on_record(header, payload);
    at += kHeaderBytes + header.bytes;
  }
  return at;
}

}  // namespace

std::size_t ApproxBytes(const SampleBatch& batch) {
  std::size_t bytes =
      batch.size() * (sizeof(std::uint32_t) + 2 * sizeof(std::int64_t) + sizeof(double));
  for (const auto& [k, v] : batch.labels) bytes += k.size() + v.size() + 64;
  for (const Series& s : batch.series) {
    bytes += s.metric.size() + s.unit.size() + 96;
    for (const auto& [k, v] : s.labels) bytes += k.size() + v.size() + 64;
  }
  return bytes;
}

Status CheckBatch(const SampleBatch& batch) {
  const std::size_t n = batch.value.size();
  if (batch.series_index.size() != n || batch.timestamp_ns.size() != n ||
      batch.monotonic_ns.size() != n) {
    return InvalidArgumentError(
        "malformed SampleBatch: columns series_index/timestamp_ns/monotonic_ns/value have " +
        std::to_string(batch.series_index.size()) + "/" +
        std::to_string(batch.timestamp_ns.size()) + "/" +
        std::to_string(batch.monotonic_ns.size()) + "/" + std::to_string(n) +
        " entries; fill them with SampleBatch::Append");
  }
  for (std::size_t i = 0; i < n; ++i) {
    if (batch.series_index[i] >= batch.series.size()) {
      return InvalidArgumentError("malformed SampleBatch: sample " + std::to_string(i) +
                                  " names series " + std::to_string(batch.series_index[i]) +
                                  " but the batch has " + std::to_string(batch.series.size()) +
                                  "; add series with SampleBatch::AddSeries");
    }
  }
  return Status::OK();
}

Result<std::filesystem::path> DefaultSpoolDir(std::string_view scheme,
                                              std::string_view redacted_uri) {
  // No guessable /tmp path: another local user could make it first and read, or plant, what is
  // replayed with this user's credentials.
  BITFUSION_ASSIGN_OR_RETURN(
      const auto state, StateDir("give the sink URI spool=DIR (a directory only you can write)"));
  return state / "spool" / (std::string(scheme) + "-" + Sha256Hex(redacted_uri).substr(0, 16));
}

Spool::Spool(std::filesystem::path dir, int lock_fd) : dir_(std::move(dir)), lock_fd_(lock_fd) {}

Spool::~Spool() {
  if (open_fd_ >= 0) ::close(open_fd_);
  for (const auto& [seq, fd] : sealed_) ::close(fd);
  if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the flock
}

namespace {

constexpr int kSharedSlots = 64;

std::filesystem::path Slot(const std::filesystem::path& dir, int slot) {
  return slot == 1 ? dir : std::filesystem::path(dir.string() + "." + std::to_string(slot));
}

// Creates `dir` if needed (0700), checks that it is this user's and closed to others, and
// flocks its lock file: the locked fd, or FailedPrecondition when another holds it (`busy`).
Result<int> LockDir(const std::filesystem::path& dir, bool create, bool& busy) {
  busy = false;
  std::error_code ec;
  if (!create && !std::filesystem::exists(dir, ec)) {
    return NotFoundError(dir.string() + " does not exist");
  }
  // Replayed segments are sent with this user's credentials: the directory must be this user's
  // and closed to others, or someone else could plant records in it.
  BITFUSION_RETURN_IF_ERROR(
      EnsurePrivateDir(dir, "use a spool directory of your own with the sink URI's spool=DIR"));
  const std::filesystem::path lock_path = dir / "lock";
  const int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    return ErrnoError(errno, "cannot open " + lock_path.string() +
                                 "; is the spool directory writable? (spool=DIR chooses another)");
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    ::close(fd);
    if (err == EWOULDBLOCK) {
      busy = true;
      return FailedPreconditionError("spool directory " + dir.string() +
                                     " is in use by another sink (in this or another process); "
                                     "give each sink its own spool=DIR");
    }
    return ErrnoError(err, "cannot lock " + lock_path.string());
  }
  return fd;
}

}  // namespace

Result<std::unique_ptr<Spool>> Spool::Open(const std::filesystem::path& dir, bool shared) {
  bool busy = false;
  int slot = 1;
  Result<int> fd = LockDir(dir, true, busy);
  while (!fd.ok() && busy && shared && slot < kSharedSlots) {
    ++slot;
    fd = LockDir(Slot(dir, slot), true, busy);
  }
  if (!fd.ok()) {
    if (busy && shared) {
      return FailedPreconditionError("all " + std::to_string(kSharedSlots) + " spools " +
                                     dir.string() +
                                     "[.N] are in use by other sinks; give this "
                                     "one its own spool=DIR");
    }
    return fd.error();
  }
  auto spool = std::unique_ptr<Spool>(new Spool(Slot(dir, slot), *fd));
  if (shared) {
    // What crashed writers left in slots no one holds now is this process's to send.
    for (int other = 1; other <= kSharedSlots; ++other) {
      if (other == slot) continue;
      bool other_busy = false;
      Result<int> other_fd = LockDir(Slot(dir, other), false, other_busy);
      if (!other_fd.ok()) continue;  // held, absent or not ours: left alone
      const Status adopted = spool->Adopt(Slot(dir, other));
      ::close(*other_fd);
      BITFUSION_RETURN_IF_ERROR(adopted);
    }
  }
  BITFUSION_RETURN_IF_ERROR(spool->Scan());
  return spool;
}

Status Spool::Adopt(const std::filesystem::path& other) {
  std::vector<std::pair<std::uint64_t, std::filesystem::path>> files;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(other, ec)) {
    const std::uint64_t seq = SegmentSeq(entry.path().filename().string());
    if (seq != 0) files.emplace_back(seq, entry.path());
  }
  if (ec || files.empty()) return Status::OK();
  std::sort(files.begin(), files.end());
  // Numbered after everything already here, in their own order.
  for (const auto& entry : std::filesystem::directory_iterator(dir_, ec)) {
    next_seq_ = std::max(next_seq_, SegmentSeq(entry.path().filename().string()) + 1);
  }
  for (const auto& [seq, path] : files) {
    const std::filesystem::path to = dir_ / SegmentName(next_seq_++);
    std::filesystem::rename(path, to, ec);
    if (ec) {
      return ErrnoError(ec.value(),
                        "cannot move spool segment " + path.string() + " to " + to.string());
    }
  }
  LogAt(LogLevel::kInfo, "spool ", dir_.string(), " took ", files.size(),
        " segments that a stopped process left in ", other.string());
  return Status::OK();
}

Status Spool::Scan() {
  std::vector<std::pair<std::uint64_t, std::filesystem::path>> files;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir_, ec)) {
    const std::uint64_t seq = SegmentSeq(entry.path().filename().string());
    if (seq != 0) files.emplace_back(seq, entry.path());
  }
  if (ec) return ErrnoError(ec.value(), "cannot list spool directory " + dir_.string());
  std::sort(files.begin(), files.end());
  for (auto& [seq, path] : files) {
    next_seq_ = std::max(next_seq_, seq + 1);
    BITFUSION_ASSIGN_OR_RETURN(const std::string data, ReadWhole(path));
    auto segment = std::make_unique<SpoolSegment>();
    segment->seq = seq;
    segment->file = path;
    segment->file_bytes = static_cast<std::int64_t>(data.size());
    segment->loaded = false;
    segment->replayed = true;
    bool corrupt = false;
    int records = 0;
    WalkRecords(data, false, corrupt, [&](const RecordHeader& h, std::string_view) {
      segment->samples += h.samples;
      if (h.kind == kKindRun) segment->has_run = true;
      ++records;
    });
    bytes_ += segment->file_bytes;
    if (records == 0) {
      // An empty segment: a crash right after it was started. Nothing to send.
      std::filesystem::remove(path, ec);
      bytes_ -= segment->file_bytes;
      continue;
    }
    leftovers_.push_back(std::move(segment));
  }
  return Status::OK();
}

std::vector<std::unique_ptr<SpoolSegment>> Spool::TakeLeftovers() { return std::move(leftovers_); }

Status Spool::Append(std::uint32_t kind, std::uint32_t samples, const std::string& payload) {
  std::string& out = scratch_;
  out.clear();
  if (open_fd_ < 0) {
    const std::uint64_t seq = next_seq_++;
    const std::filesystem::path path = dir_ / SegmentName(seq);
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) return ErrnoError(errno, "cannot create spool segment " + path.string());
    open_fd_ = fd;
    open_seq_ = seq;
    open_bytes_ = 0;
    out.append(kFileMagic, sizeof(kFileMagic));
  }
  char header[kHeaderBytes] = {};
  PutU32(header, kind);
  PutU32(header + 4, samples);
  PutU64(header + 8, payload.size());
  PutU32(header + 16, Crc32(payload));
  out.append(header, sizeof(header));
  // One write(2) per record (header and payload together) where it fits, so a crash leaves
  // either the record or a cut-off tail that reading ignores.
  const std::filesystem::path path = dir_ / SegmentName(open_seq_);
  Status status;
  if (payload.size() < (std::size_t{1} << 20)) {
    out += payload;
    status = WriteAll(open_fd_, out, path);
  } else {
    status = WriteAll(open_fd_, out, path);
    if (status.ok()) status = WriteAll(open_fd_, payload, path);
  }
  if (!status.ok()) {
    if (open_bytes_ == 0) {
      // Nothing of this segment was written but (perhaps) part of its header: drop the file, so
      // the next record starts a fresh segment with its header instead of following a file
      // that a later start would read as empty and delete, records and all.
      ::close(std::exchange(open_fd_, -1));
      std::error_code ec;
      std::filesystem::remove(path, ec);
      return status;
    }
    // A partial record at the end would be read as a crash's cut-off tail; cut it off now so
    // later records stay readable.
    [[maybe_unused]] const int rc = ::ftruncate(open_fd_, static_cast<off_t>(open_bytes_));
    return status;
  }
  const auto written = static_cast<std::int64_t>((open_bytes_ == 0 ? sizeof(kFileMagic) : 0) +
                                                 kHeaderBytes + payload.size());
  open_bytes_ += written;
  bytes_ += written;
  return Status::OK();
}

Status Spool::AppendBatch(const SampleBatch& batch) {
  return Append(kKindBatch, static_cast<std::uint32_t>(batch.size()), ToBinary(batch));
}

Status Spool::AppendRun(const RunRecord& run) { return Append(kKindRun, 0, ToBinary(run)); }

void Spool::Seal(SpoolSegment& segment) {
  if (open_fd_ < 0) return;
  segment.seq = open_seq_;
  segment.file = dir_ / SegmentName(open_seq_);
  segment.file_bytes = open_bytes_;
  segment.synced = false;  // until SyncSealed says otherwise
  std::lock_guard lock(sync_mu_);
  sealed_.emplace_back(open_seq_, std::exchange(open_fd_, -1));
  unsynced_ = true;
}

std::vector<std::pair<std::uint64_t, Status>> Spool::SyncSealed() {
  std::vector<std::pair<std::uint64_t, int>> sealed;
  {
    std::lock_guard lock(sync_mu_);
    sealed.swap(sealed_);
    unsynced_ = false;
  }
  std::vector<std::pair<std::uint64_t, Status>> out;
  bool any = false;
  for (const auto& [seq, fd] : sealed) {
    Status status;
    if (::fdatasync(fd) != 0) {
      status =
          ErrnoError(errno, "cannot fsync spool segment " + (dir_ / SegmentName(seq)).string());
    }
    ::close(fd);
    any = any || status.ok();
    out.emplace_back(seq, std::move(status));
  }
  if (any) {
    // The segments' directory entries must survive a power cut too.
    const int dir_fd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd >= 0) {
      ::fsync(dir_fd);
      ::close(dir_fd);
    }
  }
  return out;
}

Status Spool::Load(SpoolSegment& segment) {
  if (segment.loaded) return Status::OK();
  BITFUSION_ASSIGN_OR_RETURN(const std::string data, ReadWhole(segment.file));
  segment.batches.clear();
  segment.run.reset();
  std::int64_t samples = 0;
  std::int64_t memory = 0;
  Status decoded;
  bool corrupt = false;
  const std::size_t good =
      WalkRecords(data, true, corrupt, [&](const RecordHeader& h, std::string_view payload) {
        if (!decoded.ok()) return;
        if (h.kind == kKindBatch) {
          SampleBatch batch;
          decoded = FromBinary(payload, batch);
          // Damage that the CRC did not catch (or a planted file) must not reach the encoders,
          // which index the columns without checking.
          if (decoded.ok()) decoded = CheckBatch(batch);
          if (!decoded.ok()) return;
          samples += static_cast<std::int64_t>(batch.size());
          memory += static_cast<std::int64_t>(ApproxBytes(batch));
          segment.batches.push_back(std::move(batch));
        } else {
          RunRecord run;
          decoded = FromBinary(payload, run);
          if (decoded.ok()) segment.run = std::move(run);
        }
      });
  if (!decoded.ok()) corrupt = true;
  if (corrupt || good < data.size()) {
    const std::int64_t lost = segment.samples - samples;
    LogAt(LogLevel::kWarning, "spool segment ", segment.file.string(), " holds ",
          data.size() - good, " bytes that cannot be read back",
          corrupt ? " (damaged)" : " (cut short by a crash)", "; ", lost > 0 ? lost : 0,
          " samples in them are lost, the ", samples, " before them are sent");
    if (corrupt) {
      // Kept for a post-mortem; the readable records are delivered from memory.
      std::error_code ec;
      const std::filesystem::path kept = segment.file.string() + ".corrupt";
      std::filesystem::rename(segment.file, kept, ec);
      if (!ec) segment.file = kept;
    }
  }
  segment.samples = samples;
  segment.memory_bytes = memory;
  segment.loaded = true;
  return Status::OK();
}

void Spool::Unload(SpoolSegment& segment) {
  if (segment.file.empty() || !segment.loaded || !segment.synced) return;
  std::vector<SampleBatch>().swap(segment.batches);
  segment.run.reset();
  segment.memory_bytes = 0;
  segment.loaded = false;
}

void Spool::Remove(SpoolSegment& segment) {
  if (segment.file.empty()) return;
  std::error_code ec;
  if (segment.file.extension() == ".corrupt") {
    segment.file.clear();
    return;
  }
  std::filesystem::remove(segment.file, ec);
  if (ec) {
    LogAt(LogLevel::kWarning, "cannot remove delivered spool segment ", segment.file.string(), ": ",
          ec.message(), "; it would be sent again (harmlessly: ids are deterministic)");
  }
  bytes_ -= segment.file_bytes;
  segment.file.clear();
}

}  // namespace bitfusion::internal
