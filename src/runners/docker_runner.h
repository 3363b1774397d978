// docker://, docker+tls:// and docker+ssh:// — a Docker Engine API (local unix socket, plain
// TCP, TCP with mutual TLS, or another host's unix socket forwarded over SSH) driven over the
// one libcurl HTTP client. Works with engine API 1.41 (Docker 20.10) and newer, negotiated with
// /_ping; Podman's Docker-compatible API answers the same calls.
//
// An engine reached over TCP or SSH is remote: bind mount sources and device nodes are not
// checked on this host, and an exec that outlives its deadline cannot be killed from here.
//
// Every object it creates carries bitfusion's labels (creator, run id, expiry, host, creating
// process and its start time), so Reap() — and `bitfusion reap` — can remove what a crashed
// process left behind. Container handles remove their container when destroyed.
//
// Exit status: the engine reports 128+N for a process killed by signal N, and that is what
// ExitStatus::exit_code holds (ExitStatus::signal stays 0: the engine cannot tell "killed by
// SIGKILL" from "exit 137"). Resource usage (ExitStatus::usage) is not reported by the engine
// after exit; use Container::Stats while it runs.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "bitfusion/container_runner.h"
#include "bitfusion/uri.h"

namespace bitfusion {

namespace net {
class HttpClient;
}

struct DockerRunnerOptions {
  /// Unix socket of the engine (docker:///var/run/docker.sock); empty when `host` or `ssh` is
  /// set.
  std::string socket_path = "/var/run/docker.sock";
  /// TCP endpoint (docker+tls://HOST:PORT, or docker://HOST:PORT for plain TCP).
  std::string host;
  std::uint16_t port = 0;
  bool tls = false;
  /// PEM files for TLS: the CA that signed the engine's certificate (empty = system store), and
  /// this client's certificate and key for mutual TLS.
  std::string ca_file, cert_file, key_file;
  /// Check the engine's certificate and name (TLS only).
  bool verify = true;
  /// docker+ssh://USER@HOST:PORT: the engine's unix socket on another host, reached with the
  /// system ssh client (one master connection, the socket forwarded to a socket in its private
  /// 0700 directory). Empty host = not over SSH.
  struct Ssh {
    std::string host;           ///< as ssh takes it (a ~/.ssh/config Host alias works)
    std::string user;           ///< empty = ssh's choice
    std::uint16_t port = 0;     ///< 0 = ssh's choice (22, or the config's Port)
    std::string config_file;    ///< `ssh -F FILE`; empty = ~/.ssh/config
    std::string identity_file;  ///< `ssh -i FILE` (only the path is passed on); empty = ssh's
    /// The engine's socket on that host.
    std::string socket_path = "/var/run/docker.sock";
    /// Extra `ssh -o KEY=VALUE` options (?ssh_option=, repeatable), ahead of the tunnel's defaults.
    std::vector<std::string> options;
    /// Parent of the private control directory (?runtime_dir=); empty = $XDG_RUNTIME_DIR, else
    /// /tmp.
    std::string runtime_dir;
  } ssh;
  /// Pin the API version ("1.41"); empty = negotiate with the engine (/_ping).
  std::string api_version;
  /// Expiry written on created containers: now + ttl, or now + max(ttl, timeout + 10 min) for
  /// one with a timeout.
  std::chrono::nanoseconds ttl = std::chrono::hours(24);
  /// Run an init process (docker-init / catatonit) as PID 1, so signals reach the command and
  /// orphans are reaped.
  bool init = true;
  std::chrono::milliseconds connect_timeout{5'000};
  /// Deadline of each engine call that is not a stream the caller ends (inspect, list, version,
  /// a log tail, exec polling, ...) and is not given a deadline of its own, so that a wedged
  /// engine fails a run and its cleanup instead of hanging them.
  std::chrono::milliseconds api_timeout{60'000};
  /// Output lines longer than this are delivered in pieces.
  std::size_t max_line_bytes = 64 * 1024;
  /// Output kept per container and replayed to a late Logs() subscriber.
  std::size_t log_buffer_bytes = 1 << 20;
  /// Written as the bitfusion.run_id label when the spec's labels have no "run_id". Empty =
  /// a fresh id per runner.
  std::string run_id;

  /// docker:// (DOCKER_HOST, else /var/run/docker.sock), docker:///path/to.sock,
  /// docker://HOST:PORT (plain TCP), docker+tls://HOST:PORT (certificates from ?ca=&cert=&key=,
  /// else DOCKER_CERT_PATH/{ca,cert,key}.pem, else ~/.docker), docker+ssh://USER@HOST:PORT
  /// (?socket=/var/run/docker.sock&ssh_config=FILE&identity=KEY). DOCKER_HOST=tcp://… with
  /// DOCKER_TLS_VERIFY set means TLS; DOCKER_HOST=ssh://USER@HOST:PORT means docker+ssh (the
  /// ssh options may then be given to docker://). Options: ?api=1.41&ttl=24h&init=true
  /// &verify=true&connect_timeout=5s&api_timeout=60s&max_line_bytes=65536
  /// &log_buffer_bytes=1048576&run_id=ID.
  static Result<DockerRunnerOptions> FromUri(const Uri& uri);

  /// "unix:///var/run/docker.sock", "https://127.0.0.1:2376",
  /// "ssh://bench@10.0.0.5:22/var/run/docker.sock": for messages.
  std::string Endpoint() const;
  /// The engine runs on this host (a unix socket here, not TCP or SSH).
  bool local() const { return host.empty() && ssh.host.empty(); }
};

class DockerApi;

class DockerRunner final : public ContainerRunner {
 public:
  static Result<std::shared_ptr<DockerRunner>> Make(const DockerRunnerOptions& options);
  ~DockerRunner() override;

  /// Engine, version and negotiated API version; gpu_runtime when an "nvidia" runtime is
  /// configured; cdi from API 1.44 on.
  Result<RunnerCapabilities> Capabilities() override;
  /// Present, or pulled (anonymously); NotFound names the image otherwise.
  Status EnsureImage(const std::string& image, Deadline deadline) override;
  /// Validates every field before anything is sent (names, mounts, device paths, cgroup rules,
  /// cpuset, limits); NotFound names a missing image.
  Result<std::unique_ptr<Container>> Create(const ContainerSpec& spec) override;

  Result<ImageInfo> ImportImage(const ImportSpec& spec, Deadline deadline) override;
  /// With the engine's classic builder (POST /build with a tar context).
  Result<ImageInfo> BuildImage(const BuildSpec& spec, Deadline deadline) override;
  Result<ImageInfo> PullImage(const std::string& image, const RegistryAuth& auth, Deadline deadline,
                              const ImageProgressCallback& progress = nullptr) override;
  Result<ImageInfo> InspectImage(const std::string& image) override;
  Result<std::vector<ImageInfo>> ListImages(const Labels& labels) override;
  Status RemoveImage(const std::string& image, bool force) override;
  Status TagImage(const std::string& image, const std::string& target) override;
  /// POST /images/{name}/push; the engine reports a refusal inside its progress stream (on
  /// HTTP 200), and that is what the error carries.
  Status PushImage(const std::string& image, const RegistryAuth& auth, Deadline deadline,
                   const ImageProgressCallback& progress = nullptr) override;
  /// GET /images/get, streamed.
  Status SaveImage(const std::string& image, const ArchiveSink& sink, Deadline deadline) override;
  /// POST /images/load with a chunked body read from `source`.
  Result<std::vector<std::string>> LoadImage(const ArchiveSource& source,
                                             Deadline deadline) override;
  Result<std::vector<ContainerInfo>> ListContainers(const Labels& labels) override;
  Result<std::unique_ptr<Container>> OpenContainer(const std::string& id) override;
  Result<ContainerInfo> InspectContainer(const std::string& id) override;
  Result<std::vector<LogLine>> TailLogs(const std::string& container_id,
                                        std::size_t lines) override;
  /// Container events from /events, resumed with `since` after a dropped connection (an
  /// engine restart) so none is lost or repeated.
  Result<Subscription> Events(EventCallback callback) override;
  Result<ReapReport> Reap(const ReapPolicy& policy) override;

  const DockerRunnerOptions& options() const { return options_; }

 private:
  DockerRunner(const DockerRunnerOptions& options, std::shared_ptr<DockerApi> api);
  DockerRunnerOptions options_;
  std::shared_ptr<DockerApi> api_;
};

}  // namespace bitfusion
