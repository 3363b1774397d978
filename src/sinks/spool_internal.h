// The durable spool in front of network sinks: a directory of segment files, each a sequence of
// cereal-binary records (sample batches, then at most one run record), appended with write(2) as
// the caller writes and fsync'd when sealed. A segment file is removed once the store has
// accepted all of it; what a crashed process left is sent first by the next sink that opens the
// same directory.
//
// Layout of DIR:
//   lock                          flock(2)ed by the one sink using the spool
// (a shared default spool DIR has siblings DIR.2 ... DIR.64 for concurrent processes)
//   segment-0000000000000042.bfs  one per sealed or open segment, numbered in write order
//
// A segment file starts with the 8 bytes "BFSPOOL1"; each record is a 24-byte header (all
// little-endian: u32 kind [1 batch, 2 run], u32 samples, u64 payload bytes, u32 CRC-32 of the
// payload, u32 zero) and the payload: ToBinary(SampleBatch) or ToBinary(RunRecord). A record cut
// short by a crash (the Write that made it never returned) is ignored; a record whose CRC does
// not match ends what is read of that file, and the file is kept as NAME.corrupt.
#pragma once

#include <any>
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "bitfusion/run_record.h"
#include "bitfusion/sample.h"
#include "bitfusion/status.h"

namespace bitfusion::internal {

/// A unit of delivery: batches in write order, then at most one run record.
struct SpoolSegment {
  std::uint64_t seq = 0;
  std::vector<SampleBatch> batches;
  std::optional<RunRecord> run;
  std::int64_t samples = 0;
  std::int64_t memory_bytes = 0;  ///< approximate, of `batches` while loaded
  bool loaded = true;             ///< false: batches and run are only in `file`
  bool batches_sent = false;      ///< the store took the batches; only the run is left
  bool has_run = false;           ///< ends with a run record (in `run` while loaded)
  /// false: its fsync failed, so the file may not hold what was written (the kernel may have
  /// dropped the pages); the records stay in memory until delivered.
  bool synced = true;
  bool replayed = false;  ///< left by an earlier process
  /// What the backend has already delivered of this segment, in its own terms (e.g. which
  /// documents of a bulk request the store took), so a retry sends only the rest.
  std::any backend_progress;
  std::filesystem::path file;  ///< empty for sinks without a spool
  std::int64_t file_bytes = 0;
};

/// About how many bytes `batch` holds in memory: what batch_bytes counts.
std::size_t ApproxBytes(const SampleBatch& batch);

/// A batch whose columns agree and whose samples name series it has: what Write accepts and
/// what a replayed segment must hold. InvalidArgument names what is wrong.
Status CheckBatch(const SampleBatch& batch);

/// $XDG_STATE_HOME/bitfusion/spool/SCHEME-HASH, or ~/.local/state/..., where HASH is 16 hex
/// digits of SHA-256(redacted_uri). Without either (no HOME), FailedPrecondition: there is no
/// /tmp fallback another user could prepare.
Result<std::filesystem::path> DefaultSpoolDir(std::string_view scheme,
                                              std::string_view redacted_uri);

class Spool {
 public:
  /// Creates `dir` if needed (0700) and locks it; a directory that is not this user's or that
  /// others may write is PermissionDenied. Leftover segments are found and listed for
  /// TakeLeftovers.
  /// Without `shared`, another process (or sink) holding `dir` is FailedPrecondition: the
  /// user named that directory. With `shared` (a default spool, which every process writing
  /// to the same store would pick), a process that finds `dir` held takes the first free of
  /// DIR.2 ... DIR.64 instead, and every opening also adopts the segments left in those that no
  /// process holds (their writers crashed), so concurrent runs to one store all have a spool
  /// and nothing a crashed one left waits for a later run to land on its slot.
  static Result<std::unique_ptr<Spool>> Open(const std::filesystem::path& dir, bool shared = false);
  ~Spool();
  Spool(const Spool&) = delete;
  Spool& operator=(const Spool&) = delete;

  /// What earlier processes left, oldest first, not loaded.
  std::vector<std::unique_ptr<SpoolSegment>> TakeLeftovers();

  /// Appends a record to the open segment, starting one when none is open. The bytes are in the
  /// file (the page cache) when this returns: they survive the process, not yet a power cut.
  Status AppendBatch(const SampleBatch& batch);
  Status AppendRun(const RunRecord& run);
  /// Ends the open segment (later records start a new one) and names it in `segment` (seq,
  /// file, file_bytes, synced = false). Without an open segment, leaves `segment.file` empty.
  /// The file is made durable by SyncSealed, which the caller runs outside its own locks, so
  /// that an fsync never holds up a writer.
  void Seal(SpoolSegment& segment);
  /// Fsyncs and closes the segments sealed since the last call (and the directory), and says
  /// for each sequence number whether that worked: a failed fsync means the file may not hold
  /// what was written. Safe to call from any thread, concurrently with the other methods.
  std::vector<std::pair<std::uint64_t, Status>> SyncSealed();
  bool HasUnsynced() const { return unsynced_.load(); }
  /// Reads a segment's records back from its file.
  Status Load(SpoolSegment& segment);
  /// Drops the records of a segment from memory (they stay in the file).
  static void Unload(SpoolSegment& segment);
  /// Deletes a delivered segment's file.
  void Remove(SpoolSegment& segment);

  std::int64_t bytes() const { return bytes_; }
  const std::filesystem::path& dir() const { return dir_; }

 private:
  Spool(std::filesystem::path dir, int lock_fd);
  Status Append(std::uint32_t kind, std::uint32_t samples, const std::string& payload);
  Status Scan();
  /// Moves the segment files of the unheld spool `other` (locked by `lock_fd`) into this one,
  /// oldest first, numbered after this one's.
  Status Adopt(const std::filesystem::path& other);

  const std::filesystem::path dir_;
  int lock_fd_ = -1;
  int open_fd_ = -1;  // the open segment, -1 when none
  std::uint64_t open_seq_ = 0;
  std::int64_t open_bytes_ = 0;
  std::uint64_t next_seq_ = 1;
  std::int64_t bytes_ = 0;
  std::string scratch_;
  std::mutex sync_mu_;                                 // guards sealed_
  std::vector<std::pair<std::uint64_t, int>> sealed_;  // seq and fd, to fsync and close
  std::atomic<bool> unsynced_{false};
  std::vector<std::unique_ptr<SpoolSegment>> leftovers_;
};

}  // namespace bitfusion::internal
