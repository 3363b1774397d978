#include "runners/docker_api.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "core/rfc3339.h"
#include "runners/docker_ssh_tunnel.h"
#include "runners/line_splitter.h"

namespace bitfusion {

namespace json = boost::json;
using namespace std::chrono_literals;

namespace internal {

int DockerApiMinor(std::string_view version) {
  if (version.substr(0, 2) != "1.") return -1;
  int minor = 0;
  for (char c : version.substr(2)) {
    if (c < '0' || c > '9') return -1;
    minor = minor * 10 + (c - '0');
  }
  return minor;
}

std::int64_t ParseEngineTime(std::string_view text) {
  const auto ns = internal::ParseRfc3339(text);
  return ns && *ns > 0 ? *ns : 0;
}

std::int64_t EngineSecondsToNs(std::int64_t seconds) {
  return seconds > 0 && seconds < INT64_MAX / 1'000'000'000 ? seconds * 1'000'000'000 : 0;
}

std::string JsonString(const json::value* v) {
  return v != nullptr && v->is_string() ? std::string(v->get_string()) : std::string();
}
std::int64_t JsonInt(const json::value* v) {
  if (v == nullptr) return 0;
  if (v->is_int64()) return v->get_int64();
  // Out of range (or NaN) reads as missing: a cast would be undefined.
  if (v->is_uint64()) {
    const std::uint64_t u = v->get_uint64();
    return u > static_cast<std::uint64_t>(INT64_MAX) ? 0 : static_cast<std::int64_t>(u);
  }
  if (v->is_double()) {
    const double d = v->get_double();
    return d >= -9.2e18 && d <= 9.2e18 ? static_cast<std::int64_t>(d) : 0;
  }
  return 0;
}
const json::value* JsonAt(const json::value& root, std::initializer_list<std::string_view> keys) {
  const json::value* v = &root;
  for (auto k : keys) {
    if (!v->is_object()) return nullptr;
    v = v->get_object().if_contains(k);
    if (v == nullptr) return nullptr;
  }
  return v;
}
Labels JsonLabels(const json::value* v) {
  Labels out;
  if (v == nullptr || !v->is_object()) return out;
  for (const auto& kv : v->get_object()) {
    if (kv.value().is_string()) out[std::string(kv.key())] = std::string(kv.value().get_string());
  }
  return out;
}
json::object LabelsJson(const Labels& labels) {
  json::object o;
  for (const auto& [k, v] : labels) o[k] = v;
  return o;
}
json::array JsonStrings(const std::vector<std::string>& v) {
  json::array a;
  for (const auto& s : v) a.emplace_back(s);
  return a;
}

}  // namespace internal

using internal::Demuxer;
using internal::DockerApiMinor;
using internal::JsonAt;
using internal::JsonInt;
using internal::JsonLabels;
using internal::JsonLines;
using internal::JsonString;
using internal::kDockerMaxApiMinor;
using internal::kDockerMinApiMinor;
using internal::ParseEngineTime;

DockerApi::DockerApi(DockerRunnerOptions options, std::unique_ptr<net::HttpClient> client,
                     std::unique_ptr<DockerSshTunnel> tunnel)
    : options_(std::move(options)),
      tunnel_(std::move(tunnel)),
      client_(std::move(client)),
      endpoint_(options_.Endpoint()) {
  if (!options_.api_version.empty()) {
    minor_ = DockerApiMinor(options_.api_version);
    prefix_ = "/v" + options_.api_version;
  }
}

DockerApi::~DockerApi() = default;

Result<std::string> DockerApi::Prefix() {
  std::lock_guard lock(mu_);
  if (!prefix_.empty()) return prefix_;
  net::HttpRequest ping;
  ping.target = "/_ping";
  ping.deadline = DeadlineAfter(std::min<std::chrono::milliseconds>(30s, options_.api_timeout));
  auto r = client_->Send(ping);
  if (!r && Reconnected(r.error())) r = client_->Send(ping);
  if (!r) return Unreachable(r.error());
  if (r->status != 200) {
    return UnavailableError("Docker engine at " + endpoint_ + " answered /_ping with HTTP " +
                            std::to_string(r->status) + ": " + r->body);
  }
  const std::string version = r->Header("api-version").value_or("1.41");
  const int minor = DockerApiMinor(version);
  if (minor < kDockerMinApiMinor) {
    return FailedPreconditionError("Docker engine at " + endpoint_ + " speaks API " + version +
                                   "; bitfusion needs 1.41 or newer (Docker 20.10+, Podman 3+)");
  }
  minor_ = std::min(minor, kDockerMaxApiMinor);
  prefix_ = "/v1." + std::to_string(minor_);
  return prefix_;
}

int DockerApi::minor() {
  std::lock_guard lock(mu_);
  return minor_;
}

bool DockerApi::Reconnected(const Status& failure) const {
  // HttpClient says "cannot connect to" only when no connection was made: nothing was sent.
  return tunnel_ != nullptr && failure.code() == StatusCode::kUnavailable &&
         failure.message().rfind("cannot connect to ", 0) == 0 && tunnel_->Restore();
}

Status DockerApi::Unreachable(const Status& s) const {
  if (s.code() != StatusCode::kUnavailable && s.code() != StatusCode::kPermissionDenied) {
    return s;
  }
  std::string hint;
  if (tunnel_ != nullptr) {
    hint = tunnel_->Diagnose();
  } else if (local()) {
    struct stat st {};
    if (::stat(options_.socket_path.c_str(), &st) != 0) {
      hint = "no socket at " + options_.socket_path +
             ": is dockerd running? Start it, or point DOCKER_HOST / the runner URI "
             "(docker:///path/to/docker.sock) at the right socket";
    } else if (::access(options_.socket_path.c_str(), R_OK | W_OK) != 0) {
      hint = "no permission on " + options_.socket_path +
             ": run as root or as a member of the socket's group";
    } else {
      hint = "the socket exists but nothing answers: restart dockerd";
    }
  } else {
    hint = "is the engine listening on " + options_.host + ":" + std::to_string(options_.port) +
           (options_.tls ? " with TLS" : "") + "?";
  }
  return Status(s.code(), s.message() + "; " + hint);
}

Status DockerApi::ApiError(const net::HttpResponse& r, const std::string& method,
                           const std::string& path) const {
  std::string message = r.body;
  boost::system::error_code ec;
  const json::value v = json::parse(r.body, ec);
  if (!ec) {
    if (const auto* m = JsonAt(v, {"message"})) message = JsonString(m);
  }
  while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) {
    message.pop_back();
  }
  const std::string text = "Docker engine at " + endpoint_ + ": " + method + " " + path +
                           ": HTTP " + std::to_string(r.status) + ": " + message;
  switch (r.status) {
    case 400: return InvalidArgumentError(text);
    case 401:
    case 403: return PermissionDeniedError(text);
    case 404: return NotFoundError(text);
    case 409: return FailedPreconditionError(text);
    case 503: return UnavailableError(text);
    default: return FailedPreconditionError(text);
  }
}

DockerApi::Call DockerApi::Get(std::string path) {
  Call c;
  c.path = std::move(path);
  return c;
}

net::HttpRequest DockerApi::Request(const Call& c, const std::string& prefix) const {
  net::HttpRequest req;
  req.method = c.method;
  req.target = prefix + c.path;
  req.body = c.body;
  req.body_source = c.body_source;
  req.deadline = c.deadline;
  req.headers = c.headers;
  if (!c.body.empty() || c.method == "POST" || c.method == "PUT") {
    req.headers.emplace_back("Content-Type", c.content_type);
  }
  return req;
}

Result<net::HttpResponse> DockerApi::Send(const Call& c) {
  BITFUSION_ASSIGN_OR_RETURN(std::string prefix, Prefix());
  net::HttpRequest request = Request(c, prefix);
  // A whole answer is never waited for without end: a wedged engine would hang the run.
  if (request.deadline == kNoDeadline) request.deadline = DeadlineAfter(options_.api_timeout);
  auto r = client_->Send(request);
  if (!r && Reconnected(r.error())) r = client_->Send(request);
  if (!r) return Unreachable(r.error());
  return r;
}

Result<json::value> DockerApi::Json(const Call& c, std::initializer_list<long> ok) {
  BITFUSION_ASSIGN_OR_RETURN(auto r, Send(c));
  if (std::find(ok.begin(), ok.end(), r.status) == ok.end()) {
    return ApiError(r, c.method, c.path);
  }
  if (r.body.empty()) return json::value();
  boost::system::error_code ec;
  json::value v = json::parse(r.body, ec);
  if (ec) {
    return InternalError("Docker engine at " + endpoint_ + ": " + c.method + " " + c.path +
                         " answered with malformed JSON (" + ec.message() + ")");
  }
  return v;
}

namespace internal {

ContainerInfo ContainerInfoFromJson(const json::value& v) {
  ContainerInfo info;
  info.id = JsonString(JsonAt(v, {"Id"}));
  info.name = JsonString(JsonAt(v, {"Name"}));
  if (!info.name.empty() && info.name[0] == '/') info.name.erase(0, 1);
  info.image = JsonString(JsonAt(v, {"Config", "Image"}));
  info.image_id = JsonString(JsonAt(v, {"Image"}));
  info.state = JsonString(JsonAt(v, {"State", "Status"}));
  info.health = JsonString(JsonAt(v, {"State", "Health", "Status"}));
  info.pid = static_cast<int>(JsonInt(JsonAt(v, {"State", "Pid"})));
  info.exit_code = static_cast<int>(JsonInt(JsonAt(v, {"State", "ExitCode"})));
  const auto* oom = JsonAt(v, {"State", "OOMKilled"});
  info.oom_killed = oom != nullptr && oom->is_bool() && oom->get_bool();
  info.created_ns = ParseEngineTime(JsonString(JsonAt(v, {"Created"})));
  info.started_ns = ParseEngineTime(JsonString(JsonAt(v, {"State", "StartedAt"})));
  info.finished_ns = ParseEngineTime(JsonString(JsonAt(v, {"State", "FinishedAt"})));
  info.labels = JsonLabels(JsonAt(v, {"Config", "Labels"}));
  return info;
}

}  // namespace internal

Result<net::HttpResponse> DockerApi::Stream(const Call& c, const net::ChunkCallback& on_chunk,
                                            net::StreamCanceller* canceller) {
  BITFUSION_ASSIGN_OR_RETURN(std::string prefix, Prefix());
  auto r = client_->Stream(Request(c, prefix), on_chunk, canceller);
  if (!r && Reconnected(r.error())) r = client_->Stream(Request(c, prefix), on_chunk, canceller);
  if (!r) return Unreachable(r.error());
  return r;
}

namespace {

// A stream that may be sent twice (docker+ssh://'s forward restored in between): Cancel ends
// whichever request is current, and no second one starts after it.
class RetriedStream final : public net::AsyncStream {
 public:
  void Cancel() override {
    std::vector<std::shared_ptr<net::AsyncStream>> sent;
    {
      std::lock_guard lock(mu_);
      cancelled_ = true;
      sent = sent_;
    }
    for (auto& s : sent) s->Cancel();
  }
  // False when cancelled: `s` is then cancelled too.
  bool Add(std::shared_ptr<net::AsyncStream> s) {
    {
      std::lock_guard lock(mu_);
      if (!cancelled_) {
        sent_.push_back(std::move(s));
        return true;
      }
    }
    s->Cancel();
    return false;
  }

 private:
  std::mutex mu_;
  bool cancelled_ = false;
  std::vector<std::shared_ptr<net::AsyncStream>> sent_;  // at most two
};

}  // namespace

Result<std::shared_ptr<net::AsyncStream>> DockerApi::StartStream(const Call& c,
                                                                 net::ChunkCallback on_chunk,
                                                                 net::DoneCallback on_done) {
  BITFUSION_ASSIGN_OR_RETURN(std::string prefix, Prefix());
  auto retried = std::make_shared<RetriedStream>();
  const net::HttpRequest request = Request(c, prefix);
  std::weak_ptr<RetriedStream> weak = retried;
  // On the pump thread. Reconnected() restores the forward only after a failure to connect,
  // which is quick to see; that one login holds up the pump, as it would any caller.
  auto done = [this, request, weak, on_chunk, on_done,
               again = true](Result<net::HttpResponse> r) mutable {
    if (!r && again && Reconnected(r.error())) {
      again = false;
      auto second =
          client_->StartStream(request, on_chunk, [this, on_done](Result<net::HttpResponse> r2) {
            on_done(r2 ? std::move(r2) : Unreachable(r2.error()));
          });
      if (second) {
        // Its handle dropped uncancelled: the second request runs on, unowned, like the first.
        if (auto self = weak.lock()) self->Add(std::move(*second));
        return;
      }
      r = second.error();
    }
    on_done(r ? std::move(r) : Unreachable(r.error()));
  };
  BITFUSION_ASSIGN_OR_RETURN(auto first, client_->StartStream(request, on_chunk, std::move(done)));
  retried->Add(std::move(first));
  return std::shared_ptr<net::AsyncStream>(std::move(retried));
}

bool internal::LayerProgress::Feed(const json::value& message) {
  const std::string id = JsonString(JsonAt(message, {"id"}));
  const std::string status = JsonString(JsonAt(message, {"status"}));
  // "Pulling from REPO" carries the tag as its id: the image's line, not a layer's.
  if (id.empty() || status.empty() || status.starts_with("Pulling from ")) return false;
  auto [it, named] = layers_.try_emplace(id);
  Layer& layer = it->second;
  const Layer before = layer;
  if (status == "Downloading" || status == "Pushing") {
    const std::int64_t current = JsonInt(JsonAt(message, {"progressDetail", "current"}));
    const std::int64_t total = JsonInt(JsonAt(message, {"progressDetail", "total"}));
    if (total > 0) layer.total = total;
    layer.current = std::max(layer.current, current);
    if (layer.total > 0) layer.current = std::min(layer.current, layer.total);
  } else if (status == "Download complete" || status == "Pull complete" || status == "Pushed") {
    if (layer.total > 0) layer.current = layer.total;
    layer.done = true;
  } else if (status == "Already exists" || status == "Layer already exists" ||
             status.starts_with("Mounted from")) {
    layer.done = true;
  }
  return named || before.current != layer.current || before.total != layer.total ||
         before.done != layer.done;
}

ImageTransferProgress internal::LayerProgress::Now() const {
  ImageTransferProgress p;
  for (const auto& [id, layer] : layers_) {
    p.done_bytes += layer.current;
    p.total_bytes += layer.total;
    ++p.layers;
    if (layer.done) ++p.layers_done;
  }
  return p;
}

Status DockerApi::Progress(const Call& c, std::vector<std::string>* output, std::string* aux_id,
                           const ImageProgressCallback& progress) {
  JsonLines lines;
  internal::LayerProgress layers;
  std::string error;
  auto on_value = [&](const json::value& v) {
    if (progress && layers.Feed(v)) progress(layers.Now());
    if (const auto* e = JsonAt(v, {"error"}); e != nullptr && error.empty()) {
      error = JsonString(e);
    }
    if (const auto* e = JsonAt(v, {"errorDetail", "message"}); e != nullptr && error.empty()) {
      error = JsonString(e);
    }
    if (const auto* id = JsonAt(v, {"aux", "ID"}); id != nullptr && aux_id) {
      *aux_id = JsonString(id);
    }
    std::string text = JsonString(JsonAt(v, {"stream"}));
    if (text.empty()) text = JsonString(JsonAt(v, {"status"}));
    if (!text.empty() && output != nullptr) {
      while (!text.empty() && text.back() == '\n') text.pop_back();
      output->push_back(text);
      if (output->size() > 200) output->erase(output->begin());
    }
  };
  BITFUSION_ASSIGN_OR_RETURN(auto r, Stream(
                                         c,
                                         [&](std::string_view chunk) {
                                           lines.Feed(chunk, on_value);
                                           return true;
                                         },
                                         nullptr));
  lines.Finish(on_value);
  if (r.status < 200 || r.status >= 300) return ApiError(r, c.method, c.path);
  if (!error.empty()) {
    return FailedPreconditionError("Docker engine at " + endpoint_ + ": " + c.method + " " +
                                   c.path + ": " + error);
  }
  return Status::OK();
}

Result<ContainerInfo> DockerApi::InspectContainer(const std::string& id) {
  BITFUSION_ASSIGN_OR_RETURN(auto v, Json(Get("/containers/" + id + "/json")));
  return internal::ContainerInfoFromJson(v);
}

Result<ImageInfo> DockerApi::InspectImage(const std::string& ref) {
  auto v = Json(Get("/images/" + ref + "/json"));
  if (!v) {
    if (v.error().code() == StatusCode::kNotFound) {
      return NotFoundError("image \"" + ref + "\" is not present on the Docker engine at " +
                           endpoint_ + "; pull, build or import it first");
    }
    return v.error();
  }
  ImageInfo info;
  info.id = JsonString(JsonAt(*v, {"Id"}));
  info.digest = info.id;
  if (const auto* digests = JsonAt(*v, {"RepoDigests"});
      digests && digests->is_array() && !digests->get_array().empty()) {
    info.digest = JsonString(&digests->get_array()[0]);
  }
  if (const auto* tags = JsonAt(*v, {"RepoTags"}); tags && tags->is_array()) {
    for (const auto& t : tags->get_array()) info.tags.push_back(JsonString(&t));
  }
  info.size_bytes = JsonInt(JsonAt(*v, {"Size"}));
  info.created_ns = ParseEngineTime(JsonString(JsonAt(*v, {"Created"})));
  info.labels = JsonLabels(JsonAt(*v, {"Config", "Labels"}));
  if (const auto* entry = JsonAt(*v, {"Config", "Entrypoint"}); entry && entry->is_array()) {
    for (const auto& e : entry->get_array()) info.entrypoint.push_back(JsonString(&e));
  }
  return info;
}

Result<std::vector<LogLine>> DockerApi::Logs(const std::string& id, std::size_t tail) {
  Call c;
  c.path = "/containers/" + id + "/logs?stdout=1&stderr=1&tail=" + std::to_string(tail);
  BITFUSION_ASSIGN_OR_RETURN(auto r, Send(c));
  if (r.status != 200) return ApiError(r, c.method, c.path);
  std::vector<LogLine> lines;
  Demuxer demux;
  LineSplitter out(options_.max_line_bytes), err(options_.max_line_bytes);
  demux.Feed(r.body, [&](LogStream s, std::string_view bytes) {
    (s == LogStream::kStdout ? out : err).Feed(bytes, [&](std::string_view line) {
      lines.push_back(LogLine{s, std::string(line)});
    });
  });
  out.Finish([&](std::string_view l) {
    lines.push_back(LogLine{LogStream::kStdout, std::string(l)});
  });
  err.Finish([&](std::string_view l) {
    lines.push_back(LogLine{LogStream::kStderr, std::string(l)});
  });
  return lines;
}

Status DockerApi::RemoveContainer(const std::string& id) {
  Call c;
  c.method = "DELETE";
  c.path = "/containers/" + id + "?force=1&v=1";
  c.deadline = DeadlineAfter(60s);
  BITFUSION_ASSIGN_OR_RETURN(auto r, Send(c));
  if (r.status == 204 || r.status == 200 || r.status == 404) return Status::OK();
  // 409 "removal already in progress": the engine is removing it for us.
  if (r.status == 409 && r.body.find("already in progress") != std::string::npos) {
    return Status::OK();
  }
  return ApiError(r, c.method, c.path);
}

}  // namespace bitfusion
