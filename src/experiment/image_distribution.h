// Getting a plan's images to the remote docker machines that run them, before their first run:
// a machine whose engine already has the image's id gets nothing; otherwise the image goes
// through the plan's registry (tagged and pushed once from this host's engine, pulled by each
// machine) or, without one, this host's engine's archive is streamed into the machine's engine
// over its SSH forward (`docker save | ssh docker load`, through a bounded buffer). Only the
// ContainerRunner interface is used.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "bitfusion/clock.h"
#include "bitfusion/container_runner.h"
#include "bitfusion/experiment.h"
#include "bitfusion/status.h"

namespace bitfusion::internal {

/// One remote machine and the images its benchmarks run.
struct ImageTarget {
  std::string machine;                ///< "office-1", for records and messages
  ContainerRunner* runner = nullptr;  ///< its engine (docker+ssh://)
  std::vector<std::string> images;    ///< distinct references
};

struct ImageDistributionOptions {
  std::string registry;  ///< PlanSpec::registry; empty = stream over SSH
  /// For the registry; empty = anonymous. Never logged.
  RegistryAuth auth;
  /// Each push, pull or streamed archive gets this long.
  std::chrono::nanoseconds timeout = std::chrono::minutes(30);
  /// A streamed archive, a registry push and a registry pull log how far they have got this
  /// often (info level), so that a terminal shows a long transfer moving.
  std::chrono::nanoseconds progress_interval = std::chrono::seconds(5);
};

/// Credentials for `registry` from BITFUSION_REGISTRY_USERNAME / BITFUSION_REGISTRY_PASSWORD
/// (empty = anonymous).
RegistryAuth RegistryAuthFromEnvironment(const std::string& registry);

/// `image` under `registry`: "bench/x:1" -> "REGISTRY/bench/x:1"; a registry the reference
/// already names is replaced ("old.lan:5000/bench/x:1" -> "REGISTRY/bench/x:1"). An image
/// pinned by digest is InvalidArgument (a push needs a tag).
Result<std::string> RegistryReference(const std::string& registry, const std::string& image);

/// Gets every target's images from `local` onto its engine, machines in parallel, each image
/// once per machine. One ImageDelivery per (machine, image). The first failure is the result,
/// naming the machine, the image and (for a refused push) the registry.
Result<std::vector<ImageDelivery>> DistributeImages(ContainerRunner& local,
                                                    const std::vector<ImageTarget>& targets,
                                                    const ImageDistributionOptions& options);

/// A bounded buffer between a producer thread (an engine's archive, Write) and a consumer (the
/// other engine's load, Read): at most `capacity` bytes are held, so an image of any size is
/// piped in constant memory. Concurrency: one writer thread and one reader thread.
class ArchivePipe {
 public:
  explicit ArchivePipe(std::size_t capacity) : capacity_(capacity) {}

  /// Blocks while the buffer is full; false once the reader has given up (Abort).
  bool Write(std::string_view bytes);
  /// The writer is done: `status` OK = the archive is complete, else why it is not.
  void Close(const Status& status);
  /// Blocks until there are bytes (how many were copied), the end (0), or the writer failed
  /// (its status).
  Result<std::size_t> Read(char* buffer, std::size_t max);
  /// The reader gives up: the writer's Write returns false from now on.
  void Abort();
  /// Bytes read so far.
  std::int64_t bytes_read() const;

 private:
  const std::size_t capacity_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> chunks_;
  std::size_t offset_ = 0;    // into chunks_.front()
  std::size_t buffered_ = 0;  // bytes in chunks_ past offset_
  std::int64_t read_ = 0;
  bool closed_ = false, aborted_ = false;
  Status close_status_;
};

}  // namespace bitfusion::internal
