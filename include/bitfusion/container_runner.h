// ContainerRunner: runs things in containers (or, for process://, as plain child processes).
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "bitfusion/clock.h"
#include "bitfusion/container.h"
#include "bitfusion/event.h"
#include "bitfusion/export.h"
#include "bitfusion/ownership.h"
#include "bitfusion/registry.h"
#include "bitfusion/status.h"
#include "bitfusion/subscription.h"
#include "bitfusion/wait_strategy.h"

namespace bitfusion {

/// What an engine can do; lets a DeviceAllocator pick how to pass devices in.
struct RunnerCapabilities {
  std::string engine;          ///< "process", "docker", "podman", "null"
  std::string version;         ///< engine version
  std::string api_version;     ///< negotiated API version, e.g. "1.41"
  std::string storage_driver;  ///< the engine's storage driver ("overlay2"); empty without one
  std::string data_root;       ///< where the engine keeps images and layers; empty without one
  bool images = false;         ///< runs images (false for process://)
  /// Each command runs in a container of its own, with its own cgroup, and takes mounts: a
  /// container's cgroup can be sampled (the "container" source) and a probe mounted into it.
  bool containers = false;
  bool gpu_runtime = false;    ///< Docker DeviceRequests with driver "nvidia" work
  bool cdi = false;            ///< CDI device names are accepted
  bool exec = false;           ///< Container::Exec works
  bool copy = false;           ///< Container::CopyIn/CopyOut work
  bool stats = false;          ///< Container::Stats works
  bool health_checks = false;  ///< ContainerSpec::health_check is run
  bool events = false;         ///< ContainerRunner::Events delivers lifecycle events
  bool reap = false;           ///< ContainerRunner::Reap finds what dead runs left behind
};

/// How far a registry pull or push has got, summed over the image's layers as the engine
/// reports them: bytes sent or received of the bytes of the layers it has sized so far, so the
/// total can grow as layers start. A layer already in place (already on the machine, already
/// in the registry) counts as done, with no bytes.
struct ImageTransferProgress {
  std::int64_t done_bytes = 0;
  std::int64_t total_bytes = 0;
  int layers = 0;       ///< layers the engine has named
  int layers_done = 0;  ///< of those, moved or already in place
};
/// Called as a pull or push goes on (on the calling thread, at the pace the engine reports).
using ImageProgressCallback = std::function<void(const ImageTransferProgress&)>;

enum class LogStream : int { kStdout = 1, kStderr = 2 };

/// Receives output one line at a time, without the trailing newline. A line longer than the
/// runner's line limit arrives in pieces.
using LogCallback = std::function<void(LogStream stream, std::string_view line)>;

/// One line of output, kept.
struct LogLine {
  LogStream stream = LogStream::kStdout;
  std::string text;
};

/// Receives resource readings while a Stats() subscription lasts (on a runner thread).
using StatsCallback = std::function<void(const ContainerStats& stats)>;

/// What Reap removed (or, for a dry run, would remove).
struct ReapReport {
  std::vector<std::string> containers;  ///< "id name (why)"
  std::vector<std::string> images;
  std::vector<std::string> errors;  ///< objects that could not be removed, with the reason
};

/// How ImportImage makes an image from a root filesystem.
struct ImportSpec {
  /// A tar archive of the root filesystem, or a directory that is archived on the fly.
  std::filesystem::path rootfs;
  std::string tag;                   ///< "bench/busybox:1"
  std::vector<std::string> changes;  ///< Dockerfile instructions: "ENV PATH=/bin", CMD ["sh"]
  Labels labels;
};

/// How BuildImage builds an image from a context directory with a Dockerfile.
struct BuildSpec {
  std::filesystem::path context_dir;
  std::string dockerfile = "Dockerfile";  ///< relative to the context
  std::string tag;
  std::map<std::string, std::string> build_args;
  Labels labels;
  /// Extra files put into the context: name in the context -> file on this host (e.g. a static
  /// benchmark program built elsewhere).
  std::map<std::string, std::filesystem::path> extra_files;
};

/// Credentials for a registry (Docker's X-Registry-Auth); never logged.
struct RegistryAuth {
  std::string server;  ///< "registry.example:5000"; empty = the image's registry
  std::string username;
  std::string password;
  std::string identity_token;
};

/// Receives an image archive piece by piece as the engine writes it (SaveImage); returning
/// false stops the transfer.
using ArchiveSink = std::function<bool(std::string_view bytes)>;
/// Supplies an image archive piece by piece as the engine reads it (LoadImage): fills up to
/// `max` bytes of `buffer` and returns how many, 0 at the end; an error aborts the load. May
/// block until it has bytes, so that an archive can be piped from one engine into another.
using ArchiveSource = std::function<Result<std::size_t>(char* buffer, std::size_t max)>;

/// A container (or process) made by ContainerRunner::Create. Destroying the handle kills what
/// still runs and removes it, unless Keep() was called.
///
/// Concurrency: Wait() may run on one thread while Stop()/Kill() are called from another;
/// other calls are not to be made concurrently on one handle.
class BITFUSION_EXPORT Container {
 public:
  virtual ~Container();

  virtual const std::string& id() const = 0;

  /// Starts it. Subscribe to Logs() before Start() to see every line.
  virtual Status Start() = 0;

  /// Blocks until it exits (its exit status) or `deadline` passes (DeadlineExceeded; it keeps
  /// running). May be called again after a DeadlineExceeded.
  virtual Result<ExitStatus> Wait(Deadline deadline) = 0;

  /// SIGTERM, then SIGKILL once `grace` has passed. Succeeds if it is not running.
  virtual Status Stop(std::chrono::nanoseconds grace) = 0;

  /// Sends `signal` (e.g. SIGKILL). Succeeds if it is not running.
  virtual Status Kill(int signal) = 0;

  /// Delivers output lines to `callback` (on a runner thread) until the subscription ends.
  virtual Subscription Logs(LogCallback callback) = 0;

  /// Leaves the container in place when the handle is destroyed, and past its creator: Reap
  /// then removes it only by its run id or once it expires. (docker:// renames it to NAME-kept
  /// for that, since labels cannot change; process:// marks its ledger entry.)
  virtual void Keep() = 0;

  /// Runs `spec.command` inside the running container and waits for it, collecting what it
  /// prints. At the deadline it returns DeadlineExceeded naming the command, and stops it where
  /// the runner can (process://, and docker:// on an engine on this host); the message says when
  /// it may still be running.
  virtual Result<ExecResult> Exec(const ExecSpec& spec, Deadline deadline);

  /// Copies `host_path` (a file or a directory, recursively) into directory `container_dir`.
  virtual Status CopyIn(const std::filesystem::path& host_path, const std::string& container_dir);

  /// Copies `container_path` (a file or a directory, recursively) into directory `host_dir`.
  virtual Status CopyOut(const std::string& container_path, const std::filesystem::path& host_dir);

  /// Whether `path` exists inside the container.
  virtual Result<bool> PathExists(const std::string& path);

  /// The engine's view of the container now.
  virtual Result<ContainerInfo> Inspect();

  /// Streams resource readings to `callback` about once per `interval` (engines may be slower:
  /// Docker 20.10 answers about once a second) until the subscription ends or it exits. When
  /// the engine ends the stream itself (the container was removed, the engine went away), the
  /// callback gets one last reading with `running` false.
  virtual Result<Subscription> Stats(StatsCallback callback,
                                     std::chrono::nanoseconds interval = std::chrono::seconds(1));

  /// Blocks until `strategy` holds (OK), fails (FailedPrecondition saying which condition and
  /// why, e.g. the container exited first), or `deadline` passes (DeadlineExceeded). Start()
  /// first.
  Status WaitFor(const WaitStrategy& strategy, Deadline deadline);
};

/// Backends: process:// (plain child processes), null://, docker://, docker+tls:// and
/// docker+ssh:// (a Docker Engine API, local, over mutual TLS, or another host's socket over
/// SSH; Podman's compatible API too), slurm:// (batch jobs through slurmrestd).
///
/// Methods past Create() have defaults that answer Unimplemented; backends override what they
/// can do and say what to use instead for the rest.
///
/// Concurrency: Create() and the other runner methods may be called from several threads.
class BITFUSION_EXPORT ContainerRunner {
 public:
  virtual ~ContainerRunner();

  virtual Result<RunnerCapabilities> Capabilities() = 0;

  /// Makes sure `image` is present (pull, build or import as the backend can). For runners
  /// without images, an empty ref succeeds and any other is InvalidArgument.
  virtual Status EnsureImage(const std::string& image, Deadline deadline) = 0;

  /// Creates (does not start) what `spec` describes. Invalid specs are rejected before
  /// anything is made.
  virtual Result<std::unique_ptr<Container>> Create(const ContainerSpec& spec) = 0;

  /// Makes image `spec.tag` from a root filesystem.
  virtual Result<ImageInfo> ImportImage(const ImportSpec& spec, Deadline deadline);
  /// Builds image `spec.tag` from a context directory.
  virtual Result<ImageInfo> BuildImage(const BuildSpec& spec, Deadline deadline);
  /// Pulls `image` from its registry; `progress`, when given, is told how far it has got.
  virtual Result<ImageInfo> PullImage(const std::string& image, const RegistryAuth& auth,
                                      Deadline deadline,
                                      const ImageProgressCallback& progress = nullptr);
  /// An image by reference or id; NotFound names it when absent.
  virtual Result<ImageInfo> InspectImage(const std::string& image);
  /// Images carrying every label in `labels` (all images when empty).
  virtual Result<std::vector<ImageInfo>> ListImages(const Labels& labels);
  /// Removes an image; NotFound when absent.
  virtual Status RemoveImage(const std::string& image, bool force);
  /// Gives image `image` (a reference or an id) the further reference `target`
  /// ("registry:5000/bench/busybox:1"); NotFound when `image` is absent.
  virtual Status TagImage(const std::string& image, const std::string& target);
  /// Pushes `image` to the registry its reference names. A refusal (the registry is
  /// read-only, denies the credentials, cannot be reached) is an error naming the image and
  /// the registry, with the registry's own words. `progress`, when given, is told how far it
  /// has got.
  virtual Status PushImage(const std::string& image, const RegistryAuth& auth, Deadline deadline,
                           const ImageProgressCallback& progress = nullptr);
  /// Writes `image` as an image archive (the `docker save` tar) to `sink` as the engine
  /// produces it: nothing is held here beyond one piece.
  virtual Status SaveImage(const std::string& image, const ArchiveSink& sink, Deadline deadline);
  /// Loads the images of an archive (as SaveImage writes it) read from `source` as it is sent;
  /// returns what the engine says it loaded ("Loaded image: bench/busybox:1").
  virtual Result<std::vector<std::string>> LoadImage(const ArchiveSource& source,
                                                     Deadline deadline);

  /// Containers carrying every label in `labels`, running or not.
  virtual Result<std::vector<ContainerInfo>> ListContainers(const Labels& labels);
  /// A handle on an existing container (id, unique id prefix or name), whoever made it: Inspect,
  /// Stats, Exec, the copies, Kill, Stop, Wait and Logs work; Start is FailedPrecondition, and
  /// destroying the handle leaves the container as it is (Keep() is implied). NotFound when the
  /// engine has no such container.
  virtual Result<std::unique_ptr<Container>> OpenContainer(const std::string& id);
  /// The engine's view of one container, by id, unique id prefix or name, whoever made it;
  /// NotFound when the engine has none such.
  virtual Result<ContainerInfo> InspectContainer(const std::string& id);
  /// The last `lines` lines a container printed (stdout and stderr, in order where the engine
  /// keeps it), while the container still exists.
  virtual Result<std::vector<LogLine>> TailLogs(const std::string& container_id, std::size_t lines);

  /// Streams the engine's lifecycle events (containers created, started, died, destroyed,
  /// killed by the OOM killer) to `callback` until the subscription ends, reconnecting after
  /// the engine restarts without losing or repeating events.
  virtual Result<Subscription> Events(EventCallback callback);

  /// Removes what runs left behind, as `policy` says (see the kLabel* labels).
  virtual Result<ReapReport> Reap(const ReapPolicy& policy);
};

/// "process://", "null://", ... An unknown scheme lists the known ones.
BITFUSION_EXPORT Result<std::shared_ptr<ContainerRunner>> ContainerRunnerFromUri(
    std::string_view uri, const BackendContext& context = {});

}  // namespace bitfusion
