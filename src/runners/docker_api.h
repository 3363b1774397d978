// The Docker Engine API as docker:// speaks it: one HTTP client, the API version negotiated
// once with /_ping, the engine's answers turned into statuses that name the call and what to
// do, and the small JSON and stream readers every part of the backend shares.
#pragma once

#include <boost/json.hpp>

#include <algorithm>
#include <array>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "bitfusion/container_runner.h"
#include "net/http_client.h"
#include "runners/docker_runner.h"

namespace bitfusion {

class DockerSshTunnel;

namespace internal {

// The oldest engine API this backend speaks (Docker 20.10), and the newest whose request
// shapes it knows; newer engines still accept this one.
inline constexpr int kDockerMinApiMinor = 41;
inline constexpr int kDockerMaxApiMinor = 47;
// CDI device names in DeviceRequests arrived with API 1.44 (Docker 25).
inline constexpr int kDockerCdiApiMinor = 44;

// "1.41" -> 41; anything else -> -1.
int DockerApiMinor(std::string_view version);

// An engine time -> ns since the epoch; 0 for Docker's zero time ("0001-01-01T00:00:00Z") or
// anything unreadable.
std::int64_t ParseEngineTime(std::string_view text);
// Engine seconds since the epoch ("Created", an event's "time") -> ns; 0 for none, for a time
// before 1970 and for one past 2262, which ns in an int64 cannot hold.
std::int64_t EngineSecondsToNs(std::int64_t seconds);

// Readers of the engine's JSON that treat a missing or mistyped field as empty.
std::string JsonString(const boost::json::value* v);
std::int64_t JsonInt(const boost::json::value* v);
const boost::json::value* JsonAt(const boost::json::value& root,
                                 std::initializer_list<std::string_view> keys);
Labels JsonLabels(const boost::json::value* v);
// A container's inspection (GET /containers/ID/json) as ContainerInfo.
ContainerInfo ContainerInfoFromJson(const boost::json::value& v);
boost::json::object LabelsJson(const Labels& labels);
boost::json::array JsonStrings(const std::vector<std::string>& v);

// Sums a pull's or push's progress over the image's layers from the engine's progress messages
// ({"id": LAYER, "status": ..., "progressDetail": {"current": N, "total": M}}): bytes count
// while a layer is "Downloading" (pull) or "Pushing" (push); a layer is done at "Download
// complete", "Pull complete", "Pushed", or when it is "Already exists", "Layer already exists"
// or "Mounted from ...". The image's own lines (without an id, or "Pulling from REPO" with the
// tag as its id) are not counted.
class LayerProgress {
 public:
  // True when `message` changed the sums.
  bool Feed(const boost::json::value& message);
  ImageTransferProgress Now() const;

 private:
  struct Layer {
    std::int64_t current = 0;
    std::int64_t total = 0;
    bool done = false;
  };
  std::map<std::string, Layer> layers_;
};

// Splits NDJSON streams (events, stats, build and pull progress) into parsed values. A line
// longer than kMaxLine (no engine writes one; a broken or hostile peer might) is skipped up to
// its newline instead of being buffered without bound, and counted.
class JsonLines {
 public:
  static constexpr std::size_t kMaxLine = 16u << 20;

  template <class F>
  void Feed(std::string_view chunk, F&& on_value) {
    while (!chunk.empty()) {
      const auto nl = chunk.find('\n');
      const std::string_view piece = chunk.substr(0, nl);
      if (!skipping_) {
        if (buffer_.size() + piece.size() > kMaxLine) {
          buffer_.clear();
          skipping_ = true;
          ++skipped_;
        } else {
          buffer_.append(piece);
        }
      }
      if (nl == std::string_view::npos) break;
      if (!skipping_) Parse(buffer_, on_value);
      buffer_.clear();
      skipping_ = false;
      chunk.remove_prefix(nl + 1);
    }
  }
  template <class F>
  void Finish(F&& on_value) {
    if (!skipping_) Parse(buffer_, on_value);
    buffer_.clear();
    skipping_ = false;
  }
  // Lines skipped for their length so far.
  std::size_t skipped() const { return skipped_; }

 private:
  template <class F>
  void Parse(std::string_view line, F&& on_value) {
    if (line.find_first_not_of(" \r\t") == std::string_view::npos) return;
    boost::system::error_code ec;
    boost::json::value v = boost::json::parse(line, ec);
    if (!ec) on_value(v);
  }
  std::string buffer_;
  bool skipping_ = false;
  std::size_t skipped_ = 0;
};

// Docker's multiplexed stream of a container without a TTY: frames of an 8-byte header
// (stream, 0, 0, 0, big-endian length) and a payload, split anywhere by the transport. A
// payload is passed on as it arrives, in as many pieces as the transport made of it, so a
// frame's declared length (up to 4 GiB) never decides how much is held in memory.
class Demuxer {
 public:
  template <class F>
  void Feed(std::string_view chunk, F&& on_bytes) {
    while (!chunk.empty()) {
      if (remaining_ == 0) {
        const std::size_t take = std::min(chunk.size(), header_.size() - header_fill_);
        std::copy_n(chunk.data(), take, header_.data() + header_fill_);
        header_fill_ += take;
        chunk.remove_prefix(take);
        if (header_fill_ < header_.size()) return;
        const auto* h = reinterpret_cast<const unsigned char*>(header_.data());
        stream_ = h[0] == 2 ? LogStream::kStderr : LogStream::kStdout;
        remaining_ = (std::size_t{h[4]} << 24) | (std::size_t{h[5]} << 16) |
                     (std::size_t{h[6]} << 8) | std::size_t{h[7]};
        header_fill_ = 0;
        continue;
      }
      const std::size_t take = std::min(chunk.size(), remaining_);
      on_bytes(stream_, chunk.substr(0, take));
      remaining_ -= take;
      chunk.remove_prefix(take);
    }
  }

 private:
  std::array<char, 8> header_{};
  std::size_t header_fill_ = 0;
  std::size_t remaining_ = 0;
  LogStream stream_ = LogStream::kStdout;
};

}  // namespace internal

// Concurrency: every method may be called from several threads at once.
class DockerApi {
 public:
  // `tunnel`: docker+ssh://'s forward, which `client` connects through; kept as long as this.
  DockerApi(DockerRunnerOptions options, std::unique_ptr<net::HttpClient> client,
            std::unique_ptr<DockerSshTunnel> tunnel = nullptr);
  ~DockerApi();

  const std::string& endpoint() const { return endpoint_; }
  const DockerRunnerOptions& options() const { return options_; }
  // The engine runs on this host: its bind mount sources and processes can be seen from here.
  bool local() const { return options_.local(); }

  // "/v1.41", negotiated once with /_ping (retried on the next call if the engine was down).
  Result<std::string> Prefix();
  // The negotiated (or pinned) minor API version; -1 before Prefix() succeeded.
  int minor();

  // Adds a hint to a failure to reach the engine at all.
  Status Unreachable(const Status& s) const;
  // The engine's error answer as a status naming the call.
  Status ApiError(const net::HttpResponse& r, const std::string& method,
                  const std::string& path) const;

  struct Call {
    std::string method = "GET";
    std::string path;  // after the version prefix: "/containers/json"
    std::string body;
    std::string content_type = "application/json";
    net::Headers headers;
    // When set, the body is streamed from here (chunked) instead of `body`.
    net::BodySource body_source;
    // kNoDeadline: options().api_timeout from now for Send and Json; none for Stream (the
    // caller ends it).
    Deadline deadline = kNoDeadline;
  };
  static Call Get(std::string path);

  // Any HTTP status is an answer; only transport failures (and the deadline) are errors.
  Result<net::HttpResponse> Send(const Call& c);
  // The answer's JSON when its status is one of `ok`, else the engine's error.
  Result<boost::json::value> Json(const Call& c, std::initializer_list<long> ok = {200, 201, 204});
  Result<net::HttpResponse> Stream(const Call& c, const net::ChunkCallback& on_chunk,
                                   net::StreamCanceller* canceller);
  // Stream() without a thread: the call runs on the HTTP client's stream pump, and on_chunk
  // and on_done are called there (see net::HttpClient::StartStream: they must be quick). A
  // call through docker+ssh://'s forward that could not connect is sent once more after the
  // forward is restored, as Stream() does; Cancel() on the result covers that second request.
  Result<std::shared_ptr<net::AsyncStream>> StartStream(const Call& c, net::ChunkCallback on_chunk,
                                                        net::DoneCallback on_done);
  // An NDJSON progress stream (build, pull, push, import, load): the first {"error": ...} (or
  // {"errorDetail": {"message": ...}}) is the result, even on HTTP 200.
  // `progress`, when given, is told the layers' sums as they change (see LayerProgress).
  Status Progress(const Call& c, std::vector<std::string>* output, std::string* aux_id,
                  const ImageProgressCallback& progress = nullptr);

  Result<ContainerInfo> InspectContainer(const std::string& id);
  Result<ImageInfo> InspectImage(const std::string& ref);
  // Lines of a finished (non-follow) log answer.
  Result<std::vector<LogLine>> Logs(const std::string& id, std::size_t tail);
  // Force-removes a container and its anonymous volumes; a missing one is not an error.
  Status RemoveContainer(const std::string& id);

 private:
  net::HttpRequest Request(const Call& c, const std::string& prefix) const;
  // After a call failed: whether the SSH forward it went through was down and answers again,
  // so that the call, which never reached anything, may be sent once more.
  bool Reconnected(const Status& failure) const;

  const DockerRunnerOptions options_;
  const std::unique_ptr<DockerSshTunnel> tunnel_;  // outlives client_, which uses it
  const std::unique_ptr<net::HttpClient> client_;
  const std::string endpoint_;
  std::mutex mu_;
  std::string prefix_;
  int minor_ = -1;
};

}  // namespace bitfusion
