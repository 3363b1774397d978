// What a Docker engine (or something posing as one) sends docker://: NDJSON streams (/events,
// stats, build and pull progress) through JsonLines and each value through the event reader,
// the stats reader (ParseDockerStats) and the field readers; multiplexed log and exec streams
// through the Demuxer and the line splitter. The first byte picks the stream, the second how the
// transport splits it.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "runners/docker_api.h"
#include "runners/docker_container.h"
#include "runners/docker_events.h"
#include "runners/line_splitter.h"

namespace json = boost::json;
using namespace bitfusion;

namespace {

// Feeds `data` in pieces of `step` bytes (1..256), as a transport might deliver it.
template <class F>
void InPieces(std::string_view data, std::size_t step, F&& feed) {
  for (std::size_t i = 0; i < data.size(); i += step) feed(data.substr(i, step));
}

std::size_t Touch(const json::value& v) {
  std::size_t n = 0;
  const Event e = internal::DockerEventFromJson(v, "docker://fuzz");
  n += e.action.size() + e.subject.size() + e.attributes.size();
  // The field readers every part of the backend uses on inspect, stats and progress answers.
  n += static_cast<std::size_t>(
      internal::JsonInt(internal::JsonAt(v, {"cpu_stats", "online_cpus"})));
  n += internal::JsonString(internal::JsonAt(v, {"errorDetail", "message"})).size();
  n += internal::JsonLabels(internal::JsonAt(v, {"Config", "Labels"})).size();
  // A stats stream's reading (GET /containers/ID/stats) and a list's "Created".
  const ContainerStats st = internal::ParseDockerStats(v);
  n += static_cast<std::size_t>((st.rx_bytes ^ st.tx_bytes ^ st.read_bytes ^ st.write_bytes) & 1);
  n += static_cast<std::size_t>(
      internal::EngineSecondsToNs(internal::JsonInt(internal::JsonAt(v, {"Created"}))) & 1);
  return n;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const bool multiplexed = (data[0] & 1) != 0;
  const std::size_t step = 1 + data[1];
  const std::string_view body(reinterpret_cast<const char*>(data) + 2, size - 2);
  volatile std::size_t sink = 0;
  if (multiplexed) {
    internal::Demuxer demux;
    LineSplitter out(64), err(64);
    std::size_t bytes = 0;
    InPieces(body, step, [&](std::string_view piece) {
      demux.Feed(piece, [&](LogStream s, std::string_view b) {
        bytes += b.size();
        (s == LogStream::kStdout ? out : err).Feed(b, [&](std::string_view line) {
          if (line.size() > 64) __builtin_trap();
          sink = sink + line.size();
        });
      });
    });
    out.Finish([&](std::string_view l) { sink = sink + l.size(); });
    err.Finish([&](std::string_view l) { sink = sink + l.size(); });
    // Payload bytes can never exceed what came in, less the headers.
    if (bytes > body.size()) __builtin_trap();
  } else {
    internal::JsonLines lines;
    auto on_value = [&](const json::value& v) { sink = sink + Touch(v); };
    InPieces(body, step, [&](std::string_view piece) { lines.Feed(piece, on_value); });
    lines.Finish(on_value);
  }
  return 0;
}
