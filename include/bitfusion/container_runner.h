// ContainerRunner: runs things in containers (or, for process://, as plain child processes).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "bitfusion/clock.h"
#include "bitfusion/container.h"
#include "bitfusion/export.h"
#include "bitfusion/status.h"
#include "bitfusion/subscription.h"

namespace bitfusion {

/// What an engine can do; lets a DeviceAllocator pick how to pass devices in.
struct RunnerCapabilities {
  std::string engine;        ///< "process", "docker", "podman", "null"
  std::string version;       ///< engine version
  std::string api_version;   ///< negotiated API version, e.g. "1.41"
  bool images = false;       ///< runs images (false for process://)
  bool gpu_runtime = false;  ///< Docker DeviceRequests with driver "nvidia" work
  bool cdi = false;          ///< CDI device names are accepted
};

enum class LogStream : int { kStdout = 1, kStderr = 2 };

/// Receives output one line at a time, without the trailing newline. A line longer than the
/// runner's line limit arrives in pieces.
using LogCallback = std::function<void(LogStream stream, std::string_view line)>;

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

  /// Leaves the container in place when the handle is destroyed.
  virtual void Keep() = 0;
};

/// Backends: process:// (plain child processes), null://, docker:// in its own issue.
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
};

/// "process://", "null://", ... An unknown scheme lists the known ones.
BITFUSION_EXPORT Result<std::shared_ptr<ContainerRunner>> ContainerRunnerFromUri(
    std::string_view uri);

}  // namespace bitfusion
