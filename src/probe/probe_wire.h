// The wire format between bitfusion-probe (inside a container) and the host's "probe:NAME"
// metric source. Plain C++ and libc only: the probe is linked -static with nothing else.
//
// Why length-prefixed binary records and not lines of text: a tick is a handful of timestamps
// and a few dozen doubles. Printing and parsing a double as text costs more than the probe's
// whole sample (and needs 17 digits to round-trip exactly); binary values are copied, arrive
// bit-exact, and every record's size is known before it is read, so the host never scans for
// delimiters and can refuse an oversized record before buffering it. Series (metric, unit,
// labels) are declared once and then referenced by index, so a steady-state tick is 28 bytes
// plus 12 per value.
//
// Version 1. Every integer and double is little-endian (the probe and the host share a
// machine, so this is what both write anyway; it is stated so that it is a format).
//
//   record  := u32 size | u8 type | body          size = bytes after the size field (type +
//                                                  body), 1 .. kMaxRecordBytes
//   str     := u16 length | bytes
//
//   type 1 HELLO   (first record, exactly once)
//            u8[8] magic "bfprobe\0" | u16 version | u16 flags (0) | i64 interval_ns |
//            i32 probe_pid (in the container's pid namespace) | str cgroup ("v1", "v2",
//            "none") | str hostname
//   type 2 DECLARE one series
//            u32 index (= number of series declared before it) | u8 flags (bit 0: counter) |
//            str metric | str unit | u8 label_count | label_count x (str key | str value)
//   type 3 TICK    one sampling tick
//            i64 wall_ns (CLOCK_REALTIME) | i64 mono_ns (CLOCK_MONOTONIC) |
//            i64 probe_cpu_ns (the probe's own user+system CPU so far, getrusage) |
//            u32 count | count x (u32 series index | f64 value)
//   type 4 END     last record: the probe stops
//            u8 has_exit | i32 exit_code (-1 when killed) | i32 signal (0 when it exited) |
//            i64 probe_cpu_ns
//   type 5 PING    host -> probe, on the probe's stdin (only with --control-stdin)
//            i64 t1 (the host's CLOCK_REALTIME when it sent the PING)
//   type 6 PONG    probe -> host, the answer to one PING
//            i64 t1 (echoed) | i64 t2 (the probe's CLOCK_REALTIME when it read the PING) |
//            i64 t3 (the probe's CLOCK_REALTIME when it wrote the PONG)
//
// PING and PONG are an extension within version 1: a probe answers only when the host started it
// with --control-stdin (the SSH form, host+ssh://), and a host that reads a probe over a socket
// never sends one, so a version-1 peer of either side never sees them. With the host's own
// receive stamp t4 they are the four timestamps of NTP's offset estimate (src/metrics/
// clock_offset.h).
//
// The clocks: a container shares the host's CLOCK_REALTIME and CLOCK_MONOTONIC (Linux time
// namespaces exist since 5.6 but no container engine makes one by default), so TICK stamps are
// on the host's timeline and are stored as they came.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace bitfusion::probe_wire {

inline constexpr std::uint16_t kVersion = 1;
inline constexpr char kMagic[8] = {'b', 'f', 'p', 'r', 'o', 'b', 'e', '\0'};
/// Largest record accepted (a TICK of ~87000 values); anything bigger is a corrupt stream.
inline constexpr std::uint32_t kMaxRecordBytes = 1u << 20;
/// Series a probe declares at most over its life (exited processes' series are not reused); the
/// host refuses more, so a runaway probe cannot grow every batch's series table without bound.
inline constexpr std::uint32_t kMaxSeries = 16384;
inline constexpr std::size_t kSizeBytes = 4;  ///< the u32 size field
inline constexpr std::size_t kTickHeaderBytes = 1 + 8 + 8 + 8 + 4;
inline constexpr std::size_t kTickValueBytes = 4 + 8;

enum class RecordType : std::uint8_t {
  kHello = 1,
  kDeclare = 2,
  kTick = 3,
  kEnd = 4,
  kPing = 5,
  kPong = 6,
};

struct Hello {
  std::uint16_t version = kVersion;
  std::int64_t interval_ns = 0;
  std::int32_t probe_pid = 0;
  std::string_view cgroup;  ///< "v1", "v2" or "none"
  std::string_view hostname;
};

struct Label {
  std::string_view key, value;
};

struct Declare {
  static constexpr std::size_t kMaxLabels = 8;
  std::uint32_t index = 0;
  bool counter = false;
  std::string_view metric, unit;
  Label labels[kMaxLabels];
  std::size_t label_count = 0;
};

/// A TICK's header; its values are read with TickValue(record, i).
struct Tick {
  std::int64_t wall_ns = 0, mono_ns = 0, probe_cpu_ns = 0;
  std::uint32_t count = 0;
};

struct End {
  bool has_exit = false;
  std::int32_t exit_code = -1;
  std::int32_t signal = 0;
  std::int64_t probe_cpu_ns = 0;
};

struct Ping {
  std::int64_t t1 = 0;
};

struct Pong {
  std::int64_t t1 = 0, t2 = 0, t3 = 0;
};

/// One whole record in a buffer: its type and body (what follows the type byte).
struct Record {
  RecordType type = RecordType::kHello;
  const unsigned char* body = nullptr;
  std::size_t size = 0;
};

// ---- encoding: into a caller's buffer, nothing allocated --------------------------------------

/// Appends fields to a fixed buffer; once something does not fit, ok() is false and nothing
/// more is written.
class Writer {
 public:
  Writer(unsigned char* data, std::size_t capacity) : data_(data), capacity_(capacity) {}
  void U8(std::uint8_t v) { Put(&v, 1); }
  void U16(std::uint16_t v) { PutLe(v); }
  void U32(std::uint32_t v) { PutLe(v); }
  void I32(std::int32_t v) { PutLe(static_cast<std::uint32_t>(v)); }
  void I64(std::int64_t v) { PutLe(static_cast<std::uint64_t>(v)); }
  void F64(double v) {
    std::uint64_t bits;
    std::memcpy(&bits, &v, 8);
    PutLe(bits);
  }
  /// A str; longer than 65535 bytes is cut there.
  void Str(std::string_view s) {
    const std::size_t n = s.size() > 0xffff ? 0xffff : s.size();
    U16(static_cast<std::uint16_t>(n));
    Put(s.data(), n);
  }
  void Put(const void* p, std::size_t n) {
    if (!ok_ || capacity_ - size_ < n) {
      ok_ = false;
      return;
    }
    if (n == 0) return;  // memcpy from an empty string_view's null data() is undefined
    std::memcpy(data_ + size_, p, n);
    size_ += n;
  }
  /// Writes `v` at `offset` (a size field reserved earlier).
  void PatchU32(std::size_t offset, std::uint32_t v) {
    if (ok_ && offset + 4 <= size_) StoreLe(data_ + offset, v);
  }
  bool ok() const { return ok_; }
  std::size_t size() const { return size_; }
  unsigned char* data() { return data_; }
  void Clear() {
    size_ = 0;
    ok_ = true;
  }

 private:
  template <class T>
  static void StoreLe(unsigned char* p, T v) {
    for (std::size_t i = 0; i < sizeof(T); ++i) p[i] = static_cast<unsigned char>(v >> (8 * i));
  }
  template <class T>
  void PutLe(T v) {
    unsigned char b[sizeof(T)];
    StoreLe(b, v);
    Put(b, sizeof(T));
  }

  unsigned char* data_;
  std::size_t capacity_;
  std::size_t size_ = 0;
  bool ok_ = true;
};

/// Each appends one whole record to `w`; false when it did not fit (w.ok() is then false).
bool EncodeHello(Writer& w, const Hello& hello);
bool EncodeDeclare(Writer& w, const Declare& declare);
bool EncodeEnd(Writer& w, const End& end);
bool EncodePing(Writer& w, const Ping& ping);
bool EncodePong(Writer& w, const Pong& pong);

/// A TICK is written in three steps so the probe can append values as it parses them:
/// BeginTick, TickValue per value, FinishTick (which fills in the size and count).
std::size_t BeginTick(Writer& w, const Tick& tick);  // returns the record's offset
inline void TickValue(Writer& w, std::uint32_t series, double value) {
  w.U32(series);
  w.F64(value);
}
bool FinishTick(Writer& w, std::size_t record_offset);

// ---- decoding ----------------------------------------------------------------------------------

enum class Next {
  kRecord,    ///< `record` holds one whole record; `consumed` bytes were used
  kNeedMore,  ///< the buffer ends inside a record (or is empty)
  kError,     ///< the stream is corrupt; `error` says how (nothing after it can be trusted)
};

/// Finds the record at the start of [data, data + size). A size field of 0 or above
/// kMaxRecordBytes, or an unknown type, is an error, found as soon as the five bytes that say
/// so have arrived.
Next NextRecord(const unsigned char* data, std::size_t size, Record& record, std::size_t& consumed,
                std::string& error);

/// Each checks that the body has exactly the fields its type says; false with `error` set
/// otherwise. Strings point into the record's bytes. ParseHello also checks the magic and the
/// version and names both versions when they differ.
bool ParseHello(const Record& record, Hello& hello, std::string& error);
bool ParseDeclare(const Record& record, Declare& declare, std::string& error);
bool ParseTick(const Record& record, Tick& tick, std::string& error);
bool ParseEnd(const Record& record, End& end, std::string& error);
bool ParsePing(const Record& record, Ping& ping, std::string& error);
bool ParsePong(const Record& record, Pong& pong, std::string& error);

/// Value `i` (< tick.count) of a TICK record that ParseTick accepted.
inline void TickValueAt(const Record& record, std::uint32_t i, std::uint32_t& series,
                        double& value) {
  const unsigned char* p = record.body + (kTickHeaderBytes - 1) + std::size_t{i} * kTickValueBytes;
  std::uint32_t s = 0;
  std::uint64_t bits = 0;
  for (int k = 0; k < 4; ++k) s |= std::uint32_t{p[k]} << (8 * k);
  for (int k = 0; k < 8; ++k) bits |= std::uint64_t{p[4 + k]} << (8 * k);
  series = s;
  std::memcpy(&value, &bits, 8);
}

}  // namespace bitfusion::probe_wire
