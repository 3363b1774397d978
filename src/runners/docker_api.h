// The Docker Engine API as docker:// speaks it: one HTTP client, the API version negotiated
// once with /_ping, the engine's answers turned into statuses that name the call and what to
// do, and the small JSON and stream readers every part of the backend shares.
#pragma once

#include <boost/json.hpp>

#include <cstdint>
#include <initializer_list>
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

// Readers of the engine's JSON that treat a missing or mistyped field as empty.
std::string JsonString(const boost::json::value* v);
std::int64_t JsonInt(const boost::json::value* v);
const boost::json::value* JsonAt(const boost::json::value& root,
                                 std::initializer_list<std::string_view> keys);
Labels JsonLabels(const boost::json::value* v);
boost::json::object LabelsJson(const Labels& labels);
boost::json::array JsonStrings(const std::vector<std::string>& v);

// Splits NDJSON streams (events, stats, build and pull progress) into parsed values.
class JsonLines {
 public:
  template <class F>
  void Feed(std::string_view chunk, F&& on_value) {
    buffer_.append(chunk);
    std::size_t start = 0;
    while (true) {
      const auto nl = buffer_.find('\n', start);
      if (nl == std::string::npos) break;
      Parse(std::string_view(buffer_).substr(start, nl - start), on_value);
      start = nl + 1;
    }
    buffer_.erase(0, start);
  }
  template <class F>
  void Finish(F&& on_value) {
    Parse(buffer_, on_value);
    buffer_.clear();
  }

 private:
  template <class F>
  void Parse(std::string_view line, F&& on_value) {
    if (line.find_first_not_of(" \r\t") == std::string_view::npos) return;
    boost::system::error_code ec;
    boost::json::value v = boost::json::parse(line, ec);
    if (!ec) on_value(v);
  }
  std::string buffer_;
};

// Docker's multiplexed stream of a container without a TTY: frames of an 8-byte header
// (stream, 0, 0, 0, big-endian length) and a payload, split anywhere by the transport.
class Demuxer {
 public:
  template <class F>
  void Feed(std::string_view chunk, F&& on_frame) {
    buffer_.append(chunk);
    std::size_t pos = 0;
    while (buffer_.size() - pos >= 8) {
      const auto* h = reinterpret_cast<const unsigned char*>(buffer_.data() + pos);
      const std::size_t len = (std::size_t{h[4]} << 24) | (std::size_t{h[5]} << 16) |
                              (std::size_t{h[6]} << 8) | std::size_t{h[7]};
      if (buffer_.size() - pos - 8 < len) break;
      const LogStream stream = h[0] == 2 ? LogStream::kStderr : LogStream::kStdout;
      on_frame(stream, std::string_view(buffer_).substr(pos + 8, len));
      pos += 8 + len;
    }
    buffer_.erase(0, pos);
  }

 private:
  std::string buffer_;
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
  // An NDJSON progress stream (build, pull, import): the first {"error": ...} is the result.
  Status Progress(const Call& c, std::vector<std::string>* output, std::string* aux_id);

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
