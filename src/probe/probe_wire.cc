#include "probe/probe_wire.h"

#include <string>

namespace bitfusion::probe_wire {
namespace {

// Reads fields off a record's body; once one is missing, ok is false and everything reads 0.
struct Reader {
  const unsigned char* p;
  std::size_t left;
  bool ok = true;

  template <class T>
  T Le() {
    if (!ok || left < sizeof(T)) {
      ok = false;
      return 0;
    }
    T v = 0;
    for (std::size_t i = 0; i < sizeof(T); ++i) v |= static_cast<T>(T{p[i]} << (8 * i));
    p += sizeof(T);
    left -= sizeof(T);
    return v;
  }
  std::uint8_t U8() { return Le<std::uint8_t>(); }
  std::uint16_t U16() { return Le<std::uint16_t>(); }
  std::uint32_t U32() { return Le<std::uint32_t>(); }
  std::int32_t I32() { return static_cast<std::int32_t>(Le<std::uint32_t>()); }
  std::int64_t I64() { return static_cast<std::int64_t>(Le<std::uint64_t>()); }
  std::string_view Str() {
    const std::uint16_t n = U16();
    if (!ok || left < n) {
      ok = false;
      return {};
    }
    std::string_view s(reinterpret_cast<const char*>(p), n);
    p += n;
    left -= n;
    return s;
  }
};

const char* TypeName(RecordType type) {
  switch (type) {
    case RecordType::kHello: return "HELLO";
    case RecordType::kDeclare: return "DECLARE";
    case RecordType::kTick: return "TICK";
    case RecordType::kEnd: return "END";
    case RecordType::kPing: return "PING";
    case RecordType::kPong: return "PONG";
  }
  return "?";
}

bool Finish(const Reader& r, const Record& record, std::string& error) {
  if (!r.ok) {
    error = std::string(TypeName(record.type)) + " record of " + std::to_string(record.size + 1) +
            " bytes is truncated: its fields need more";
    return false;
  }
  if (r.left != 0) {
    error = std::string(TypeName(record.type)) + " record has " + std::to_string(r.left) +
            " bytes after its last field";
    return false;
  }
  return true;
}

std::size_t BeginRecord(Writer& w, RecordType type) {
  const std::size_t offset = w.size();
  w.U32(0);
  w.U8(static_cast<std::uint8_t>(type));
  return offset;
}

bool EndRecord(Writer& w, std::size_t offset) {
  if (!w.ok()) return false;
  const std::size_t size = w.size() - offset - kSizeBytes;
  if (size > kMaxRecordBytes) return false;
  w.PatchU32(offset, static_cast<std::uint32_t>(size));
  return true;
}

}  // namespace

bool EncodeHello(Writer& w, const Hello& hello) {
  const std::size_t at = BeginRecord(w, RecordType::kHello);
  w.Put(kMagic, sizeof kMagic);
  w.U16(hello.version);
  w.U16(0);
  w.I64(hello.interval_ns);
  w.I32(hello.probe_pid);
  w.Str(hello.cgroup);
  w.Str(hello.hostname);
  return EndRecord(w, at);
}

bool EncodeDeclare(Writer& w, const Declare& declare) {
  const std::size_t at = BeginRecord(w, RecordType::kDeclare);
  w.U32(declare.index);
  w.U8(declare.counter ? 1 : 0);
  w.Str(declare.metric);
  w.Str(declare.unit);
  const std::size_t n =
      declare.label_count > Declare::kMaxLabels ? Declare::kMaxLabels : declare.label_count;
  w.U8(static_cast<std::uint8_t>(n));
  for (std::size_t i = 0; i < n; ++i) {
    w.Str(declare.labels[i].key);
    w.Str(declare.labels[i].value);
  }
  return EndRecord(w, at);
}

bool EncodeEnd(Writer& w, const End& end) {
  const std::size_t at = BeginRecord(w, RecordType::kEnd);
  w.U8(end.has_exit ? 1 : 0);
  w.I32(end.exit_code);
  w.I32(end.signal);
  w.I64(end.probe_cpu_ns);
  return EndRecord(w, at);
}

bool EncodePing(Writer& w, const Ping& ping) {
  const std::size_t at = BeginRecord(w, RecordType::kPing);
  w.I64(ping.t1);
  return EndRecord(w, at);
}

bool EncodePong(Writer& w, const Pong& pong) {
  const std::size_t at = BeginRecord(w, RecordType::kPong);
  w.I64(pong.t1);
  w.I64(pong.t2);
  w.I64(pong.t3);
  return EndRecord(w, at);
}

std::size_t BeginTick(Writer& w, const Tick& tick) {
  const std::size_t at = BeginRecord(w, RecordType::kTick);
  w.I64(tick.wall_ns);
  w.I64(tick.mono_ns);
  w.I64(tick.probe_cpu_ns);
  w.U32(0);  // count, filled in by FinishTick
  return at;
}

bool FinishTick(Writer& w, std::size_t at) {
  if (!w.ok()) return false;
  const std::size_t values = w.size() - at - kSizeBytes - kTickHeaderBytes;
  w.PatchU32(at + kSizeBytes + kTickHeaderBytes - 4,
             static_cast<std::uint32_t>(values / kTickValueBytes));
  return EndRecord(w, at);
}

Next NextRecord(const unsigned char* data, std::size_t size, Record& record, std::size_t& consumed,
                std::string& error) {
  if (size < kSizeBytes + 1) return Next::kNeedMore;
  std::uint32_t n = 0;
  for (int i = 0; i < 4; ++i) n |= std::uint32_t{data[i]} << (8 * i);
  if (n == 0 || n > kMaxRecordBytes) {
    error = "record size " + std::to_string(n) + " is outside 1.." +
            std::to_string(kMaxRecordBytes) +
            " bytes: the stream is not from a bitfusion-probe, or is corrupt";
    return Next::kError;
  }
  const std::uint8_t type = data[kSizeBytes];
  if (type < static_cast<std::uint8_t>(RecordType::kHello) ||
      type > static_cast<std::uint8_t>(RecordType::kPong)) {
    error = "unknown record type " + std::to_string(type) + " (this bitfusion reads wire version " +
            std::to_string(kVersion) + ": types 1..6)";
    return Next::kError;
  }
  if (size - kSizeBytes < n) return Next::kNeedMore;
  record.type = static_cast<RecordType>(type);
  record.body = data + kSizeBytes + 1;
  record.size = n - 1;
  consumed = kSizeBytes + n;
  return Next::kRecord;
}

bool ParseHello(const Record& record, Hello& hello, std::string& error) {
  Reader r{record.body, record.size};
  if (record.size < sizeof kMagic || std::memcmp(record.body, kMagic, sizeof kMagic) != 0) {
    error = "HELLO record lacks the magic \"bfprobe\": the peer is not a bitfusion-probe";
    return false;
  }
  r.p += sizeof kMagic;
  r.left -= sizeof kMagic;
  hello.version = r.U16();
  if (r.ok && hello.version != kVersion) {
    error = "bitfusion-probe speaks wire version " + std::to_string(hello.version) +
            ", this bitfusion reads version " + std::to_string(kVersion) +
            ": mount the bitfusion-probe of the same bitfusion release";
    return false;
  }
  (void)r.U16();
  hello.interval_ns = r.I64();
  hello.probe_pid = r.I32();
  hello.cgroup = r.Str();
  hello.hostname = r.Str();
  return Finish(r, record, error);
}

bool ParseDeclare(const Record& record, Declare& declare, std::string& error) {
  Reader r{record.body, record.size};
  declare.index = r.U32();
  declare.counter = (r.U8() & 1) != 0;
  declare.metric = r.Str();
  declare.unit = r.Str();
  const std::uint8_t n = r.U8();
  if (r.ok && n > Declare::kMaxLabels) {
    error = "DECLARE record of series " + std::to_string(declare.index) + " has " +
            std::to_string(n) + " labels; at most " + std::to_string(Declare::kMaxLabels) +
            " are allowed";
    return false;
  }
  declare.label_count = n;
  for (std::size_t i = 0; i < n; ++i) {
    declare.labels[i].key = r.Str();
    declare.labels[i].value = r.Str();
  }
  if (!Finish(r, record, error)) return false;
  if (declare.metric.empty()) {
    error = "DECLARE record of series " + std::to_string(declare.index) + " has no metric name";
    return false;
  }
  return true;
}

bool ParseTick(const Record& record, Tick& tick, std::string& error) {
  Reader r{record.body, record.size};
  tick.wall_ns = r.I64();
  tick.mono_ns = r.I64();
  tick.probe_cpu_ns = r.I64();
  tick.count = r.U32();
  if (!r.ok) return Finish(r, record, error);
  if (r.left != std::size_t{tick.count} * kTickValueBytes) {
    error = "TICK record says " + std::to_string(tick.count) + " values but carries " +
            std::to_string(r.left) + " bytes of them (" + std::to_string(kTickValueBytes) +
            " each)";
    return false;
  }
  return true;
}

bool ParseEnd(const Record& record, End& end, std::string& error) {
  Reader r{record.body, record.size};
  end.has_exit = r.U8() != 0;
  end.exit_code = r.I32();
  end.signal = r.I32();
  end.probe_cpu_ns = r.I64();
  return Finish(r, record, error);
}

bool ParsePing(const Record& record, Ping& ping, std::string& error) {
  Reader r{record.body, record.size};
  ping.t1 = r.I64();
  return Finish(r, record, error);
}

bool ParsePong(const Record& record, Pong& pong, std::string& error) {
  Reader r{record.body, record.size};
  pong.t1 = r.I64();
  pong.t2 = r.I64();
  pong.t3 = r.I64();
  return Finish(r, record, error);
}

}  // namespace bitfusion::probe_wire
