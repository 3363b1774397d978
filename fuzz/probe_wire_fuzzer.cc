// The probe's wire records (bitfusion-probe inside a container -> the host's probe:NAME
// source, and the clock probe's PING/PONG): NextRecord over the stream and the parser of each
// record's type, the way the host reads them.
#include <cstddef>
#include <cstdint>
#include <string>

#include "probe/probe_wire.h"

namespace wire = bitfusion::probe_wire;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::size_t pos = 0;
  double sum = 0;
  while (pos <= size) {
    wire::Record record;
    std::size_t consumed = 0;
    std::string error;
    const wire::Next next = wire::NextRecord(data + pos, size - pos, record, consumed, error);
    if (next != wire::Next::kRecord) break;
    if (consumed == 0 || consumed > size - pos) __builtin_trap();
    pos += consumed;
    switch (record.type) {
      case wire::RecordType::kHello: {
        wire::Hello hello;
        if (wire::ParseHello(record, hello, error)) sum += hello.cgroup.size();
        break;
      }
      case wire::RecordType::kDeclare: {
        wire::Declare declare;
        if (wire::ParseDeclare(record, declare, error)) {
          for (std::size_t i = 0; i < declare.label_count; ++i) {
            sum += declare.labels[i].key.size() + declare.labels[i].value.size();
          }
        }
        break;
      }
      case wire::RecordType::kTick: {
        wire::Tick tick;
        if (wire::ParseTick(record, tick, error)) {
          for (std::uint32_t i = 0; i < tick.count; ++i) {
            std::uint32_t series = 0;
            double value = 0;
            wire::TickValueAt(record, i, series, value);
            sum += series;
          }
        }
        break;
      }
      case wire::RecordType::kEnd: {
        wire::End end;
        if (wire::ParseEnd(record, end, error)) sum += end.exit_code;
        break;
      }
      case wire::RecordType::kPing: {
        wire::Ping ping;
        if (wire::ParsePing(record, ping, error)) sum += static_cast<double>(ping.t1);
        break;
      }
      case wire::RecordType::kPong: {
        wire::Pong pong;
        if (wire::ParsePong(record, pong, error)) sum += static_cast<double>(pong.t2);
        break;
      }
    }
  }
  volatile double sink = sum;
  (void)sink;
  return 0;
}
