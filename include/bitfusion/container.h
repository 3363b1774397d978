// What to run and how it ended: the input and output of a ContainerRunner.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "bitfusion/sample.h"

namespace bitfusion {

struct Mount {
  std::string type = "bind";  ///< "bind" or "tmpfs"
  std::string source;         ///< host path for binds; empty for tmpfs
  std::string target;         ///< path inside the container
  bool read_only = false;
  std::int64_t tmpfs_bytes = 0;  ///< size limit for tmpfs; 0 = engine default
};

/// A device node passed into a container.
struct DeviceMapping {
  std::string path_on_host;       ///< "/dev/nvidia0"
  std::string path_in_container;  ///< empty = same as on host
  std::string permissions = "rwm";
};

/// Docker's HostConfig.DeviceRequests entry (used with a GPU runtime such as nvidia).
struct DeviceRequestEntry {
  std::string driver;                                  ///< "nvidia"
  int count = 0;                                       ///< -1 = all
  std::vector<std::string> device_ids;                 ///< "0", "GPU-<uuid>"
  std::vector<std::vector<std::string>> capabilities;  ///< OR of AND-lists: {{"gpu"}}
  std::map<std::string, std::string> options;
};

/// An engine-run health check (Docker's HEALTHCHECK); its state shows in ContainerInfo::health
/// and WaitStrategy::Healthy() waits for it.
struct HealthCheck {
  /// argv run inside the container; exit 0 = healthy. Empty = no health check.
  std::vector<std::string> command;
  std::int64_t interval_ns = 1'000'000'000;  ///< between checks
  std::int64_t timeout_ns = 5'000'000'000;   ///< one check taking longer counts as failed
  std::int64_t start_period_ns = 0;          ///< failures in this first period do not count
  int retries = 3;                           ///< consecutive failures before "unhealthy"
};

/// Everything needed to run one container (or, for process://, one child process).
struct ContainerSpec {
  std::string name;                        ///< empty = generated
  std::string image;                       ///< empty for process://
  std::vector<std::string> entrypoint;     ///< overrides the image's entrypoint when non-empty
  std::vector<std::string> command;        ///< argv; command[0] looked up in PATH for process://
  std::map<std::string, std::string> env;  ///< added to (and overriding) the inherited/image env
  std::string working_dir;                 ///< empty = image default / current directory
  std::string user;                        ///< "uid[:gid]" or a name; empty = default
  std::vector<Mount> mounts;
  std::vector<DeviceMapping> devices;
  std::vector<DeviceRequestEntry> device_requests;
  std::vector<std::string> cdi_devices;          ///< "nvidia.com/gpu=0"
  std::vector<std::string> device_cgroup_rules;  ///< "c 195:* rmw"
  std::string cpuset;                            ///< "0-3"; empty = no pinning
  double cpus = 0.0;                             ///< CPU quota in CPUs; 0 = unlimited
  std::int64_t memory_bytes = 0;                 ///< 0 = unlimited
  std::int64_t shm_bytes = 0;                    ///< 0 = engine default
  std::string network_mode;  ///< "none", "host", "bridge"; empty = engine default
  Labels labels;             ///< keys starting with "bitfusion." are reserved for the runner's own
  std::int64_t timeout_ns = 0;  ///< killed after this long; 0 = no limit
  HealthCheck health_check;     ///< engines only
};

/// getrusage-style accounting of what a run consumed (children included).
struct ResourceUsage {
  std::int64_t user_cpu_ns = 0;
  std::int64_t system_cpu_ns = 0;
  std::int64_t max_rss_bytes = 0;
  std::int64_t minor_faults = 0;
  std::int64_t major_faults = 0;
  std::int64_t voluntary_switches = 0;
  std::int64_t involuntary_switches = 0;
  std::int64_t read_bytes = 0;  ///< block I/O, when the kernel reports it
  std::int64_t write_bytes = 0;
};

/// How a container or process ended.
struct ExitStatus {
  int exit_code = -1;      ///< 0..255 when it exited; -1 when killed by a signal
  int signal = 0;          ///< the signal that killed it, else 0
  bool timed_out = false;  ///< killed because ContainerSpec::timeout_ns passed
  bool oom_killed = false;
  std::int64_t start_ns = 0;      ///< wall clock at start
  std::int64_t end_ns = 0;        ///< wall clock at exit
  std::int64_t wall_time_ns = 0;  ///< monotonic end - start
  ResourceUsage usage;

  bool success() const { return exit_code == 0 && signal == 0 && !timed_out; }
};

/// A command run inside an existing, running container.
struct ExecSpec {
  std::vector<std::string> command;        ///< argv
  std::map<std::string, std::string> env;  ///< added to the container's environment
  std::string working_dir;                 ///< empty = the container's
  std::string user;                        ///< empty = the container's
};

/// How an Exec ended, with everything it printed.
struct ExecResult {
  int exit_code = -1;
  /// stdout; docker:// keeps the first 64 MiB of each stream and ends a cut one with a line
  /// "[bitfusion: N more bytes of output not kept]".
  std::string output;
  std::string errors;  ///< stderr, likewise
};

/// One reading of a container's resource counters (Docker's stats endpoint, or procfs for a
/// process). Counters are cumulative since the container started.
struct ContainerStats {
  std::int64_t time_ns = 0;                 ///< wall clock of the reading
  std::int64_t cpu_ns = 0;                  ///< CPU time used by the container
  std::int64_t system_cpu_ns = 0;           ///< CPU time of the whole host (Docker), for ratios
  int online_cpus = 0;                      ///< CPUs the container may use
  std::int64_t memory_bytes = 0;            ///< current usage
  std::int64_t memory_limit_bytes = 0;      ///< limit, or host memory when unlimited
  std::int64_t pids = 0;                    ///< processes and threads
  std::int64_t rx_bytes = 0, tx_bytes = 0;  ///< network, all interfaces
  std::int64_t read_bytes = 0, write_bytes = 0;  ///< block I/O
  /// False for a reading that carries no values: Docker sends an empty one about once a second
  /// while the container is not running (created, exited) until it is removed, and Stats ends
  /// every stream the engine closes with one (see Container::Stats).
  bool running = true;
};

/// What an engine knows about a container now.
struct ContainerInfo {
  std::string id;
  std::string name;
  std::string image;     ///< as asked for
  std::string image_id;  ///< "sha256:..."
  std::string state;     ///< "created", "running", "paused", "restarting", "exited", "dead"
  std::string health;    ///< "", "starting", "healthy", "unhealthy"
  int pid = 0;           ///< main process on the engine's host; 0 when not running
  int exit_code = 0;     ///< meaningful once exited
  bool oom_killed = false;
  std::int64_t created_ns = 0, started_ns = 0, finished_ns = 0;  ///< wall clock; 0 = not yet
  Labels labels;
};

/// An image on an engine.
struct ImageInfo {
  std::string id;      ///< "sha256:<config digest>"
  std::string digest;  ///< "repo@sha256:..." when pulled from a registry, else the id
  std::vector<std::string> tags;
  std::int64_t size_bytes = 0;
  std::int64_t created_ns = 0;
  Labels labels;
  /// The image's ENTRYPOINT (the engine's Config.Entrypoint); empty when it has none.
  std::vector<std::string> entrypoint;
};

}  // namespace bitfusion
