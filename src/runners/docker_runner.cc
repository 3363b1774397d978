#include "runners/docker_runner.h"

#include <unistd.h>
#include <boost/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <fstream>

#include "bitfusion/registry.h"
#include "bitfusion/run_record.h"
#include "core/base64.h"
#include "core/percent_encode.h"
#include "net/http_client.h"
#include "net/ssh_uri.h"
#include "runners/container_spec_checks.h"
#include "runners/docker_api.h"
#include "runners/docker_container.h"
#include "runners/docker_events.h"
#include "runners/docker_spec.h"
#include "runners/docker_ssh_tunnel.h"
#include "runners/tar_archive.h"

namespace bitfusion {

namespace json = boost::json;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

using internal::CreateBody;
using internal::DockerApiMinor;
using internal::JsonAt;
using internal::JsonInt;
using internal::JsonLabels;
using internal::JsonString;
using internal::kDockerCdiApiMinor;
using internal::kDockerMinApiMinor;
using internal::LabelFilter;
using internal::LabelsJson;
using internal::SpecOwnerLabels;
using internal::SplitRef;
using internal::ValidateImageRef;
using internal::ValidateSpec;

// ---- options ------------------------------------------------------------------------------

std::string DockerRunnerOptions::Endpoint() const {
  if (!ssh.host.empty()) {
    return "ssh://" + (ssh.user.empty() ? "" : ssh.user + "@") + ssh.host +
           (ssh.port != 0 ? ":" + std::to_string(ssh.port) : "") + ssh.socket_path;
  }
  if (host.empty()) return "unix://" + socket_path;
  return std::string(tls ? "https://" : "http://") + host + ":" + std::to_string(port);
}

Result<DockerRunnerOptions> DockerRunnerOptions::FromUri(const Uri& uri) {
  BITFUSION_RETURN_IF_ERROR(
      uri.CheckQueryKeys({"ca", "cert", "key", "verify", "api", "ttl", "init", "connect_timeout",
                          "api_timeout", "max_line_bytes", "log_buffer_bytes", "run_id", "socket",
                          "ssh_config", "identity", "ssh_option", "runtime_dir"}));
  DockerRunnerOptions o;
  const char* env_host = std::getenv("DOCKER_HOST");
  const char* env_verify = std::getenv("DOCKER_TLS_VERIFY");
  const char* env_certs = std::getenv("DOCKER_CERT_PATH");
  const bool tls_verify_env = env_verify != nullptr && *env_verify != '\0';
  std::string cert_dir = env_certs != nullptr && *env_certs != '\0' ? env_certs : "";
  if (cert_dir.empty()) {
    if (const char* home = std::getenv("HOME")) cert_dir = std::string(home) + "/.docker";
  }

  auto set_tcp = [&](const std::string& host, std::optional<std::uint16_t> port, bool tls) {
    o.socket_path.clear();
    o.host = host;
    o.tls = tls;
    o.port = port.value_or(tls ? 2376 : 2375);
  };
  // `from` is the URI or DOCKER_HOST's ssh://USER@HOST:PORT; the options are the URI's.
  auto set_ssh = [&](const Uri& from, const std::string& shown) -> Status {
    if (!from.password.empty()) {
      return InvalidArgumentError(shown +
                                  " carries a password; SSH logs in with a key here (identity=, "
                                  "ssh-agent or ~/.ssh/config), never a password");
    }
    o.socket_path.clear();
    o.ssh.host = from.host;
    o.ssh.user = from.user;
    o.ssh.port = from.port.value_or(0);
    return Status::OK();
  };
  if (uri.scheme == "docker+ssh") {
    if (uri.host.empty()) {
      return InvalidArgumentError(
          "docker+ssh:// needs USER@HOST[:PORT], e.g. docker+ssh://bench@10.0.0.5");
    }
    if (!uri.path.empty() && uri.path != "/") {
      return InvalidArgumentError("the engine's socket on the host goes in ?socket=" + uri.path +
                                  ", not in the path of " + uri.ToString());
    }
    BITFUSION_RETURN_IF_ERROR(set_ssh(uri, uri.ToString()));
  } else if (uri.scheme == "docker+tls") {
    if (uri.host.empty()) {
      return InvalidArgumentError("docker+tls:// needs HOST:PORT, e.g. docker+tls://10.0.0.5:2376");
    }
    set_tcp(uri.host, uri.port, true);
  } else if (!uri.host.empty()) {
    set_tcp(uri.host, uri.port, false);
  } else if (!uri.path.empty()) {
    if (uri.path[0] != '/') {
      return InvalidArgumentError("docker:// socket path \"" + uri.path +
                                  "\" must be absolute: docker:///var/run/docker.sock");
    }
    o.socket_path = uri.path;
  } else if (env_host != nullptr && *env_host != '\0') {
    std::string_view h(env_host);
    if (h.substr(0, 7) == "unix://") {
      o.socket_path = std::string(h.substr(7));
    } else if (h.substr(0, 6) == "tcp://") {
      auto parsed = Uri::Parse("tcp://" + std::string(h.substr(6)));
      if (!parsed || parsed->host.empty()) {
        return InvalidArgumentError("DOCKER_HOST=\"" + std::string(h) +
                                    "\" is not tcp://HOST:PORT or unix:///PATH");
      }
      set_tcp(parsed->host, parsed->port, tls_verify_env);
    } else if (h.substr(0, 6) == "ssh://") {
      // As the docker CLI takes it: ssh://[USER@]HOST[:PORT], nothing after.
      auto parsed = Uri::Parse(h);
      if (!parsed || parsed->host.empty() || !parsed->query.empty() ||
          (!parsed->path.empty() && parsed->path != "/")) {
        return InvalidArgumentError("DOCKER_HOST=\"" + (parsed ? parsed->ToString() : "ssh://…") +
                                    "\" is not ssh://[USER@]HOST[:PORT]; the engine's socket "
                                    "there goes in docker://?socket=PATH");
      }
      BITFUSION_RETURN_IF_ERROR(set_ssh(*parsed, "DOCKER_HOST=" + parsed->ToString()));
    } else {
      return InvalidArgumentError("DOCKER_HOST=\"" + std::string(h) +
                                  "\" is not supported here; use unix:///PATH, tcp://HOST:PORT "
                                  "or ssh://USER@HOST[:PORT]");
    }
  }
  if (!o.ssh.host.empty()) {
    if (auto socket = uri.Query("socket")) {
      if (socket->empty() || (*socket)[0] != '/' ||
          socket->find_first_of(": \t\r\n") != std::string::npos) {
        return InvalidArgumentError("socket=" + *socket + " in " + uri.ToString() +
                                    " must be the absolute path of the engine's socket on " +
                                    o.ssh.host + ", without ':' or spaces");
      }
      o.ssh.socket_path = *socket;
    }
    // Only the paths are checked and passed on: a key's contents never reach a message.
    auto readable = [&](const char* key, std::string& out) -> Status {
      if (auto v = uri.Query(key)) {
        if (v->empty() || ::access(v->c_str(), R_OK) != 0) {
          return NotFoundError(std::string(key) + " file \"" + *v + "\" given in " +
                               uri.ToString() + " cannot be read");
        }
        out = *v;
      }
      return Status::OK();
    };
    BITFUSION_RETURN_IF_ERROR(readable("ssh_config", o.ssh.config_file));
    BITFUSION_RETURN_IF_ERROR(readable("identity", o.ssh.identity_file));
    // The same login options as the other SSH backends (process+ssh://, static://), so that a
    // plan's docker machines share their provisioner's connection settings.
    BITFUSION_ASSIGN_OR_RETURN(const std::filesystem::path runtime_dir,
                               internal::RuntimeDirFromUri(uri, "docker+ssh"));
    o.ssh.runtime_dir = runtime_dir.string();
    BITFUSION_ASSIGN_OR_RETURN(o.ssh.options, internal::SshOptionsFromUri(uri, "docker+ssh"));
  } else if (uri.Query("socket") || uri.Query("ssh_config") || uri.Query("identity") ||
             uri.Query("ssh_option") || uri.Query("runtime_dir")) {
    return InvalidArgumentError(
        "socket=, ssh_config=, identity=, ssh_option= and runtime_dir= go with "
        "docker+ssh://USER@HOST (or docker:// with DOCKER_HOST=ssh://…), not " +
        uri.ToString() + "; a local socket is docker:///PATH");
  }
  if (o.tls) {
    auto file = [&](const char* key, const char* name, std::string& out) -> Status {
      if (auto v = uri.Query(key)) {
        if (::access(v->c_str(), R_OK) != 0) {
          return NotFoundError(std::string(key) + " file " + *v + " given in " + uri.ToString() +
                               " cannot be read");
        }
        out = *v;
      } else if (!cert_dir.empty() && ::access((cert_dir + "/" + name).c_str(), R_OK) == 0) {
        out = cert_dir + "/" + name;
      }
      return Status::OK();
    };
    BITFUSION_RETURN_IF_ERROR(file("ca", "ca.pem", o.ca_file));
    BITFUSION_RETURN_IF_ERROR(file("cert", "cert.pem", o.cert_file));
    BITFUSION_RETURN_IF_ERROR(file("key", "key.pem", o.key_file));
    if (o.cert_file.empty() != o.key_file.empty()) {
      return InvalidArgumentError("a client certificate needs its key and the other way round (" +
                                  uri.ToString() + ")");
    }
    BITFUSION_ASSIGN_OR_RETURN(o.verify, uri.QueryBool("verify", true));
  } else if (uri.Query("ca") || uri.Query("cert") || uri.Query("key")) {
    return InvalidArgumentError("certificates go with docker+tls://HOST:PORT, not " +
                                uri.ToString());
  }
  o.api_version = uri.Query("api").value_or("");
  if (!o.api_version.empty() && DockerApiMinor(o.api_version) < kDockerMinApiMinor) {
    return InvalidArgumentError("api=" + o.api_version + " in " + uri.ToString() +
                                " is not an API version 1.41 or newer");
  }
  BITFUSION_ASSIGN_OR_RETURN(o.ttl, uri.QueryDuration("ttl", o.ttl));
  BITFUSION_ASSIGN_OR_RETURN(o.init, uri.QueryBool("init", o.init));
  BITFUSION_ASSIGN_OR_RETURN(auto connect, uri.QueryDuration("connect_timeout", o.connect_timeout));
  o.connect_timeout = std::chrono::duration_cast<std::chrono::milliseconds>(connect);
  BITFUSION_ASSIGN_OR_RETURN(auto api_timeout, uri.QueryDuration("api_timeout", o.api_timeout));
  if (api_timeout < 1ms) {
    return InvalidArgumentError("api_timeout in " + uri.ToString() +
                                " must be at least 1ms (it bounds each engine call; e.g. "
                                "api_timeout=60s)");
  }
  o.api_timeout = std::chrono::duration_cast<std::chrono::milliseconds>(api_timeout);
  BITFUSION_ASSIGN_OR_RETURN(auto line, uri.QueryInt("max_line_bytes", 64 * 1024));
  BITFUSION_ASSIGN_OR_RETURN(auto buffer, uri.QueryInt("log_buffer_bytes", 1 << 20));
  if (line < 1 || buffer < 0 || o.ttl.count() <= 0) {
    return InvalidArgumentError(
        "max_line_bytes must be >= 1, log_buffer_bytes >= 0 and ttl > 0 "
        "in " +
        uri.ToString());
  }
  o.max_line_bytes = static_cast<std::size_t>(line);
  o.log_buffer_bytes = static_cast<std::size_t>(buffer);
  o.run_id = uri.Query("run_id").value_or("");
  return o;
}

// ---- the runner ---------------------------------------------------------------------------

Result<std::shared_ptr<DockerRunner>> DockerRunner::Make(const DockerRunnerOptions& options) {
  DockerRunnerOptions o = options;
  if (o.run_id.empty()) o.run_id = NewRunId();
  net::HttpClientOptions http;
  std::unique_ptr<DockerSshTunnel> tunnel;
  if (!o.ssh.host.empty()) {
    BITFUSION_ASSIGN_OR_RETURN(tunnel, DockerSshTunnel::Open(o));
    http.base_url = "http://localhost";
    http.unix_socket = tunnel->local_socket();
  } else if (o.host.empty()) {
    if (o.socket_path.empty()) return InvalidArgumentError("docker:// needs a socket or a host");
    http.base_url = "http://localhost";
    http.unix_socket = o.socket_path;
  } else {
    http.base_url = o.Endpoint();
    http.ca_file = o.ca_file;
    http.cert_file = o.cert_file;
    http.key_file = o.key_file;
    http.verify_peer = o.verify;
  }
  http.connect_timeout = o.connect_timeout;
  http.peer_name = "Docker engine at " + o.Endpoint();
  // Idempotent calls (inspect, list, logs, delete) survive a brief engine hiccup.
  http.retry.max_attempts = 2;
  http.retry.initial_backoff = 50ms;
  BITFUSION_ASSIGN_OR_RETURN(auto client, net::HttpClient::Make(http));
  auto api = std::make_shared<DockerApi>(o, std::move(client), std::move(tunnel));
  return std::shared_ptr<DockerRunner>(new DockerRunner(o, std::move(api)));
}

DockerRunner::DockerRunner(const DockerRunnerOptions& options, std::shared_ptr<DockerApi> api)
    : options_(options), api_(std::move(api)) {}
DockerRunner::~DockerRunner() = default;

Result<RunnerCapabilities> DockerRunner::Capabilities() {
  BITFUSION_ASSIGN_OR_RETURN(auto version, api_->Json(DockerApi::Get("/version")));
  BITFUSION_ASSIGN_OR_RETURN(auto info, api_->Json(DockerApi::Get("/info")));
  RunnerCapabilities caps;
  caps.engine = "docker";
  if (const auto* comps = JsonAt(version, {"Components"}); comps && comps->is_array()) {
    for (const auto& c : comps->get_array()) {
      if (JsonString(JsonAt(c, {"Name"})).find("Podman") != std::string::npos)
        caps.engine = "podman";
    }
  }
  caps.version = JsonString(JsonAt(version, {"Version"}));
  caps.api_version = "1." + std::to_string(api_->minor());
  caps.storage_driver = JsonString(JsonAt(info, {"Driver"}));
  caps.data_root = JsonString(JsonAt(info, {"DockerRootDir"}));
  caps.images = caps.containers = caps.exec = caps.copy = caps.stats = caps.health_checks =
      caps.events = caps.reap = true;
  if (const auto* runtimes = JsonAt(info, {"Runtimes"}); runtimes && runtimes->is_object()) {
    caps.gpu_runtime = runtimes->get_object().contains("nvidia");
  }
  caps.cdi = api_->minor() >= kDockerCdiApiMinor;
  return caps;
}

Status DockerRunner::EnsureImage(const std::string& image, Deadline deadline) {
  BITFUSION_RETURN_IF_ERROR(ValidateImageRef(image));
  auto present = api_->InspectImage(image);
  if (present.ok() || present.error().code() != StatusCode::kNotFound) return present.status();
  auto pulled = PullImage(image, {}, deadline);
  if (pulled.ok()) return Status::OK();
  return NotFoundError("image \"" + image + "\" is not on the Docker engine at " +
                       api_->endpoint() + " and pulling it failed (" + pulled.error().message() +
                       "); build or import it, or make its registry reachable");
}

Result<std::unique_ptr<Container>> DockerRunner::Create(const ContainerSpec& spec) {
  // Nothing is sent before the spec is known to be valid; only CDI names need the engine's
  // API version to be judged.
  // A remote engine's (TCP, SSH) bind mount sources and devices are not on this host to check.
  BITFUSION_RETURN_IF_ERROR(ValidateSpec(spec, api_->local(), /*api_minor=*/-1));
  if (!spec.cdi_devices.empty()) {
    BITFUSION_RETURN_IF_ERROR(api_->Prefix().status());
    BITFUSION_RETURN_IF_ERROR(ValidateSpec(spec, api_->local(), api_->minor()));
  }
  Labels labels = SpecOwnerLabels(spec, options_.run_id, options_.ttl);

  // Named (by us when the spec does not), and the name recorded, so Reap can tell this container
  // from one made of an image committed from it (which inherits its labels).
  const std::string name = spec.name.empty() ? "bf-" + NewRunId().substr(0, 20) : spec.name;
  labels[kDockerNameLabel] = name;

  DockerApi::Call c;
  c.method = "POST";
  c.path = "/containers/create?name=" + internal::PercentEncode(name);
  c.body = json::serialize(CreateBody(spec, labels, options_.init));
  c.deadline = DeadlineAfter(120s);
  BITFUSION_ASSIGN_OR_RETURN(auto r, api_->Send(c));
  if (r.status == 404) {
    return NotFoundError("image \"" + spec.image + "\" is not present on the Docker engine at " +
                         api_->endpoint() + "; pull, build or import it first (EnsureImage)");
  }
  if (r.status == 409) {
    return AlreadyExistsError("a container named \"" + spec.name + "\" already exists on " +
                              api_->endpoint() + "; pick another name or leave it empty");
  }
  if (r.status != 201) return api_->ApiError(r, c.method, c.path);
  boost::system::error_code ec;
  const json::value v = json::parse(r.body, ec);
  const std::string id = ec ? "" : JsonString(JsonAt(v, {"Id"}));
  if (id.empty()) return InternalError("container create answered without an Id: " + r.body);
  return NewDockerContainer(api_, id, name, spec.timeout_ns);
}

Result<ImageInfo> DockerRunner::ImportImage(const ImportSpec& spec, Deadline deadline) {
  BITFUSION_RETURN_IF_ERROR(ValidateImageRef(spec.tag));
  std::string archive;
  std::error_code ec;
  if (fs::is_directory(spec.rootfs, ec)) {
    internal::TarWriter tar;
    BITFUSION_RETURN_IF_ERROR(tar.AddPath(spec.rootfs, ""));
    archive = tar.Finish();
  } else {
    std::ifstream in(spec.rootfs, std::ios::binary);
    if (!in) return ErrnoError(errno, "reading root filesystem archive " + spec.rootfs.string());
    archive.assign(std::istreambuf_iterator<char>(in), {});
  }
  DockerApi::Call c;
  c.method = "POST";
  // The tag goes inside `repo` (which may carry one): Podman ignores a separate `tag`.
  c.path = "/images/create?fromSrc=-&repo=" + internal::PercentEncode(spec.tag) +
           "&message=" + internal::PercentEncode("imported by bitfusion");
  Labels labels = spec.labels;
  labels[kLabelCreator] = "bitfusion";
  labels[kDockerImageLabel] = spec.tag;
  std::vector<std::string> changes = spec.changes;
  for (const auto& [k, v] : labels) {
    changes.push_back("LABEL " + json::serialize(json::string(k)) + "=" +
                      json::serialize(json::string(v)));
  }
  for (const auto& change : changes) c.path += "&changes=" + internal::PercentEncode(change);
  c.body = std::move(archive);
  c.content_type = "application/x-tar";
  c.deadline = deadline;
  BITFUSION_RETURN_IF_ERROR(
      api_->Progress(c, nullptr, nullptr).WithContext("importing " + spec.tag));
  return api_->InspectImage(spec.tag);
}

Result<ImageInfo> DockerRunner::BuildImage(const BuildSpec& spec, Deadline deadline) {
  BITFUSION_RETURN_IF_ERROR(ValidateImageRef(spec.tag));
  std::error_code ec;
  if (!fs::is_directory(spec.context_dir, ec)) {
    return NotFoundError("build context " + spec.context_dir.string() + " is not a directory");
  }
  if (!fs::exists(spec.context_dir / spec.dockerfile, ec) &&
      !spec.extra_files.count(spec.dockerfile)) {
    return NotFoundError("no " + spec.dockerfile + " in build context " +
                         spec.context_dir.string());
  }
  internal::TarWriter tar;
  BITFUSION_RETURN_IF_ERROR(tar.AddPath(spec.context_dir, ""));
  for (const auto& [name, path] : spec.extra_files) {
    if (name.empty() || name[0] == '/' || name.find("..") != std::string::npos) {
      return InvalidArgumentError("extra build file name \"" + name +
                                  "\" must be a relative path inside the context");
    }
    if (!fs::exists(path, ec)) {
      return NotFoundError("extra build file " + path.string() + " (for " + name +
                           ") does not exist");
    }
    BITFUSION_RETURN_IF_ERROR(tar.AddPath(path, name));
  }
  Labels labels = spec.labels;
  labels[kLabelCreator] = "bitfusion";
  labels[kDockerImageLabel] = spec.tag;
  json::object args;
  for (const auto& [k, v] : spec.build_args) args[k] = v;
  DockerApi::Call c;
  c.method = "POST";
  // version=1: the classic builder, which every engine has and which needs no BuildKit session.
  c.path = "/build?t=" + internal::PercentEncode(spec.tag) +
           "&dockerfile=" + internal::PercentEncode(spec.dockerfile) +
           "&rm=1&forcerm=1&version=1&labels=" +
           internal::PercentEncode(json::serialize(LabelsJson(labels)));
  if (!args.empty()) c.path += "&buildargs=" + internal::PercentEncode(json::serialize(args));
  c.body = tar.Finish();
  c.content_type = "application/x-tar";
  c.deadline = deadline;
  std::vector<std::string> output;
  if (Status s = api_->Progress(c, &output, nullptr); !s.ok()) {
    std::string tail;
    for (std::size_t i = output.size() > 10 ? output.size() - 10 : 0; i < output.size(); ++i) {
      tail += "\n  " + output[i];
    }
    return Status(s.code(), "building " + spec.tag + " from " + spec.context_dir.string() + ": " +
                                s.message() + (tail.empty() ? "" : "; build output:" + tail));
  }
  return api_->InspectImage(spec.tag);
}

// Docker's X-Registry-Auth: the credentials as base64url JSON ("{}" is anonymous).
static std::string RegistryAuthHeader(const RegistryAuth& auth) {
  json::object a;
  if (!auth.username.empty()) {
    a["username"] = auth.username;
    a["password"] = auth.password;
  }
  if (!auth.identity_token.empty()) a["identitytoken"] = auth.identity_token;
  if (!auth.server.empty()) a["serveraddress"] = auth.server;
  return internal::Base64Url(json::serialize(a));
}

Result<ImageInfo> DockerRunner::PullImage(const std::string& image, const RegistryAuth& auth,
                                          Deadline deadline,
                                          const ImageProgressCallback& progress) {
  BITFUSION_RETURN_IF_ERROR(ValidateImageRef(image));
  const auto [repo, tag] = SplitRef(image);
  DockerApi::Call c;
  c.method = "POST";
  c.path = "/images/create?fromImage=" + internal::PercentEncode(repo) +
           "&tag=" + internal::PercentEncode(tag);
  c.deadline = deadline;
  if (!auth.username.empty() || !auth.identity_token.empty()) {
    c.headers.emplace_back("X-Registry-Auth", RegistryAuthHeader(auth));
  }
  BITFUSION_RETURN_IF_ERROR(
      api_->Progress(c, nullptr, nullptr, progress).WithContext("pulling " + image));
  return api_->InspectImage(image);
}

Result<ImageInfo> DockerRunner::InspectImage(const std::string& image) {
  BITFUSION_RETURN_IF_ERROR(ValidateImageRef(image));
  return api_->InspectImage(image);
}

Result<std::vector<ImageInfo>> DockerRunner::ListImages(const Labels& labels) {
  BITFUSION_ASSIGN_OR_RETURN(
      auto v, api_->Json(DockerApi::Get("/images/json?filters=" + LabelFilter(labels))));
  std::vector<ImageInfo> out;
  if (!v.is_array()) return out;
  for (const auto& e : v.get_array()) {
    ImageInfo info;
    info.id = JsonString(JsonAt(e, {"Id"}));
    info.digest = info.id;
    if (const auto* d = JsonAt(e, {"RepoDigests"}); d && d->is_array() && !d->get_array().empty()) {
      info.digest = JsonString(&d->get_array()[0]);
    }
    if (const auto* t = JsonAt(e, {"RepoTags"}); t && t->is_array()) {
      for (const auto& tag : t->get_array()) {
        const std::string s = JsonString(&tag);
        if (s != "<none>:<none>") info.tags.push_back(s);
      }
    }
    info.size_bytes = JsonInt(JsonAt(e, {"Size"}));
    info.created_ns = internal::EngineSecondsToNs(JsonInt(JsonAt(e, {"Created"})));
    info.labels = JsonLabels(JsonAt(e, {"Labels"}));
    out.push_back(std::move(info));
  }
  return out;
}

Status DockerRunner::RemoveImage(const std::string& image, bool force) {
  BITFUSION_RETURN_IF_ERROR(ValidateImageRef(image));
  DockerApi::Call c;
  c.method = "DELETE";
  c.path = "/images/" + image + (force ? "?force=1" : "");
  c.deadline = DeadlineAfter(120s);
  auto r = api_->Json(c);
  if (!r && r.error().code() == StatusCode::kNotFound) {
    return NotFoundError("image \"" + image + "\" is not present on the Docker engine at " +
                         api_->endpoint());
  }
  return r.status();
}

Status DockerRunner::TagImage(const std::string& image, const std::string& target) {
  BITFUSION_RETURN_IF_ERROR(ValidateImageRef(image));
  BITFUSION_RETURN_IF_ERROR(ValidateImageRef(target));
  const auto [repo, tag] = SplitRef(target);
  DockerApi::Call c;
  c.method = "POST";
  c.path = "/images/" + image + "/tag?repo=" + internal::PercentEncode(repo) +
           "&tag=" + internal::PercentEncode(tag);
  auto r = api_->Json(c);
  if (!r && r.error().code() == StatusCode::kNotFound) {
    return NotFoundError("image \"" + image + "\" is not present on the Docker engine at " +
                         api_->endpoint() + "; cannot tag it " + target);
  }
  return r.status();
}

Status DockerRunner::PushImage(const std::string& image, const RegistryAuth& auth,
                               Deadline deadline, const ImageProgressCallback& progress) {
  BITFUSION_RETURN_IF_ERROR(ValidateImageRef(image));
  const auto [repo, tag] = SplitRef(image);
  const auto slash = repo.find('/');
  const std::string registry = slash == std::string::npos ? "docker.io" : repo.substr(0, slash);
  DockerApi::Call c;
  c.method = "POST";
  c.path = "/images/" + repo + "/push?tag=" + internal::PercentEncode(tag);
  c.deadline = deadline;
  // Engines before API 1.42 read the credentials from the body without this header, and
  // refuse an empty body: anonymous is "{}".
  c.headers.emplace_back("X-Registry-Auth", RegistryAuthHeader(auth));
  return api_->Progress(c, nullptr, nullptr, progress)
      .WithContext("pushing " + image + " to registry " + registry);
}

Status DockerRunner::SaveImage(const std::string& image, const ArchiveSink& sink,
                               Deadline deadline) {
  BITFUSION_RETURN_IF_ERROR(ValidateImageRef(image));
  DockerApi::Call c;
  c.path = "/images/get?names=" + internal::PercentEncode(image);
  c.deadline = deadline;
  bool stopped = false;
  BITFUSION_ASSIGN_OR_RETURN(auto r, api_->Stream(
                                         c,
                                         [&](std::string_view chunk) {
                                           if (sink(chunk)) return true;
                                           stopped = true;
                                           return false;
                                         },
                                         nullptr));
  if (r.status == 404) {
    return NotFoundError("image \"" + image + "\" is not present on the Docker engine at " +
                         api_->endpoint() + "; cannot save it");
  }
  if (r.status != 200) return api_->ApiError(r, c.method, c.path);
  if (stopped) return CancelledError("saving " + image + ": the receiver stopped the archive");
  return Status::OK();
}

Result<std::vector<std::string>> DockerRunner::LoadImage(const ArchiveSource& source,
                                                         Deadline deadline) {
  if (!source) return InvalidArgumentError("LoadImage: no archive source");
  DockerApi::Call c;
  c.method = "POST";
  c.path = "/images/load?quiet=1";
  c.content_type = "application/x-tar";
  c.body_source = source;
  c.deadline = deadline;
  std::vector<std::string> output;
  BITFUSION_RETURN_IF_ERROR(api_->Progress(c, &output, nullptr).WithContext("loading images"));
  std::vector<std::string> loaded;
  for (const auto& line : output) {
    if (line.rfind("Loaded image", 0) == 0) loaded.push_back(line);
  }
  return loaded;
}

Result<std::vector<ContainerInfo>> DockerRunner::ListContainers(const Labels& labels) {
  BITFUSION_ASSIGN_OR_RETURN(
      auto v, api_->Json(DockerApi::Get("/containers/json?all=1&filters=" + LabelFilter(labels))));
  std::vector<ContainerInfo> out;
  if (!v.is_array()) return out;
  for (const auto& e : v.get_array()) {
    ContainerInfo info;
    info.id = JsonString(JsonAt(e, {"Id"}));
    if (const auto* names = JsonAt(e, {"Names"});
        names && names->is_array() && !names->get_array().empty()) {
      info.name = JsonString(&names->get_array()[0]);
      if (!info.name.empty() && info.name[0] == '/') info.name.erase(0, 1);
    }
    info.image = JsonString(JsonAt(e, {"Image"}));
    info.image_id = JsonString(JsonAt(e, {"ImageID"}));
    info.state = JsonString(JsonAt(e, {"State"}));
    info.created_ns = internal::EngineSecondsToNs(JsonInt(JsonAt(e, {"Created"})));
    info.labels = JsonLabels(JsonAt(e, {"Labels"}));
    out.push_back(std::move(info));
  }
  return out;
}

Result<ContainerInfo> DockerRunner::InspectContainer(const std::string& id) {
  if (id.empty() || id.find_first_of("/?#% ") != std::string::npos) {
    return InvalidArgumentError("\"" + id + "\" is not a container id or name");
  }
  auto info = api_->InspectContainer(id);
  if (!info && info.error().code() == StatusCode::kNotFound) {
    return NotFoundError("no container \"" + id + "\" on the Docker engine at " +
                         options_.Endpoint() + " (" + info.error().message() + ")");
  }
  return info;
}

Result<std::unique_ptr<Container>> DockerRunner::OpenContainer(const std::string& id) {
  if (id.empty() || id.find_first_of("/?#% ") != std::string::npos) {
    return InvalidArgumentError("\"" + id + "\" is not a container id or name");
  }
  auto info = api_->InspectContainer(id);
  if (!info) {
    if (info.error().code() == StatusCode::kNotFound) {
      return NotFoundError("no container \"" + id + "\" on the Docker engine at " +
                           options_.Endpoint());
    }
    return info.error();
  }
  return AttachDockerContainer(api_, info->id);
}

Result<std::vector<LogLine>> DockerRunner::TailLogs(const std::string& container_id,
                                                    std::size_t lines) {
  return api_->Logs(container_id, lines);
}

Result<Subscription> DockerRunner::Events(EventCallback callback) {
  // Fail now, not silently in the pump, when the engine cannot be reached at all.
  BITFUSION_RETURN_IF_ERROR(api_->Prefix().status());
  std::string source;
  if (!options_.ssh.host.empty()) {
    source = "docker+ssh://" +
             SshTarget{options_.ssh.host, options_.ssh.port, options_.ssh.user, {}}.ToString();
  } else {
    source = (options_.tls ? "docker+tls://" : "docker://") +
             (options_.host.empty() ? options_.socket_path
                                    : options_.host + ":" + std::to_string(options_.port));
  }
  return FollowDockerEvents(api_, std::move(source), std::move(callback));
}

namespace {

// An image reference as the engine lists it in RepoTags: "busybox" -> "busybox:latest",
// "docker.io/library/busybox:1" -> "busybox:1".
std::string CanonicalTag(std::string ref) {
  for (const char* prefix : {"docker.io/", "index.docker.io/", "library/"}) {
    if (ref.rfind(prefix, 0) == 0) ref.erase(0, std::string_view(prefix).size());
  }
  const auto slash = ref.rfind('/');
  if (ref.find('@') == std::string::npos &&
      ref.find(':', slash == std::string::npos ? 0 : slash) == std::string::npos) {
    ref += ":latest";
  }
  return ref;
}

}  // namespace

Result<ReapReport> DockerRunner::Reap(const ReapPolicy& policy) {
  const std::int64_t now_s = WallNowNs() / 1'000'000'000;
  auto verdict = [&](const Labels& labels) { return ReapReason(labels, policy, now_s); };

  ReapReport report;
  BITFUSION_ASSIGN_OR_RETURN(auto containers, ListContainers({{kLabelCreator, "bitfusion"}}));
  for (const auto& c : containers) {
    ReapPolicy p = policy;
    if (auto named = c.labels.find(kDockerNameLabel); named != c.labels.end()) {
      if (c.name == named->second + kDockerKeptSuffix) {
        p.dead_creators = false;  // kept: its run id and expiry decide
      } else if (c.name != named->second) {
        continue;  // made from an image committed from ours, or renamed by someone: not ours
      }
    }
    const std::string why = ReapReason(c.labels, p, now_s);
    if (why.empty()) continue;
    const std::string line = c.id.substr(0, 12) + " " + c.name + " (" + why + ")";
    if (!policy.dry_run) {
      if (Status s = api_->RemoveContainer(c.id); !s.ok()) {
        report.errors.push_back(line + ": " + s.message());
        continue;
      }
    }
    report.containers.push_back(line);
  }
  BITFUSION_ASSIGN_OR_RETURN(auto images, ListImages({{kLabelCreator, "bitfusion"}}));
  for (const auto& i : images) {
    // An image derived from ours (FROM it, or committed from one of our containers) carries our
    // labels under tags of its own.
    if (auto tag = i.labels.find(kDockerImageLabel); tag != i.labels.end()) {
      const std::string want = CanonicalTag(tag->second);
      if (std::none_of(i.tags.begin(), i.tags.end(),
                       [&](const std::string& t) { return CanonicalTag(t) == want; })) {
        continue;
      }
    } else if (i.labels.count(kDockerNameLabel) != 0) {
      continue;
    }
    const std::string why = verdict(i.labels);
    if (why.empty()) continue;
    const std::string name = i.tags.empty() ? i.id : i.tags.front();
    const std::string line = name + " (" + why + ")";
    if (!policy.dry_run) {
      DockerApi::Call c;
      c.method = "DELETE";
      c.path = "/images/" + i.id + "?force=1";
      c.deadline = DeadlineAfter(120s);
      if (auto r = api_->Json(c); !r && r.error().code() != StatusCode::kNotFound) {
        report.errors.push_back(line + ": " + r.error().message());
        continue;
      }
    }
    report.images.push_back(line);
  }
  return report;
}

BITFUSION_REGISTER(ContainerRunner, "docker", DockerRunnerOptions, DockerRunner);
BITFUSION_REGISTER(ContainerRunner, "docker+tls", DockerRunnerOptions, DockerRunner);
BITFUSION_REGISTER(ContainerRunner, "docker+ssh", DockerRunnerOptions, DockerRunner);

}  // namespace bitfusion
