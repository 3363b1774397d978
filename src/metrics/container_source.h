// "container:ID" metric source: the cgroup metrics (see cgroup_source.h) of one container, found
// through a ContainerRunner: the runner inspects the container for its main process, whose
// /proc/PID/cgroup names the group (v1: one per controller; v2: the unified one), and a cgroup
// source samples that. Every series carries labels container="SHORT_ID" (12 characters) and
// container_name="NAME" besides cgroup="PATH".
//
// A container that is created but not started yet has no process: Make then starts one small
// thread that inspects it every 10 ms, backing off to every 250 ms, until it runs (or is gone);
// the sampling thread never waits on the engine, it only checks a flag and, once, opens the
// group's files. Until then Collect appends nothing. The thread's CPU time is reported through
// BackgroundCpuNs. When the container exits its group is removed and Collect answers NotFound
// (the stream ends the source with one kMetricSourceEnded event); a container that is removed
// or exits before it ever ran ends the source the same way. So does a restart (restart policy,
// `docker restart`): the engine makes a new group, and a new source is needed to follow it.
//
// This process must see the engine's host's PID and cgroup namespaces (/proc/PID/cgroup read
// here names paths relative to this process's cgroup namespace); for a remote or rootless
// engine whose cgroups cannot be read, use docker-stats:ID.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "bitfusion/container_runner.h"
#include "bitfusion/metric_stream.h"
#include "bitfusion/uri.h"
#include "metrics/cgroup_source.h"

namespace bitfusion {

struct ContainerSourceOptions {
  std::string id;  ///< container id, unique id prefix or name: "container:ID"
  /// The engine, as a ContainerRunner URI. Query key `runner` (percent-encode it when it has a
  /// query of its own); default "docker://", i.e. DOCKER_HOST when set, else the engine's
  /// default socket /var/run/docker.sock.
  std::string runner = "docker://";
  /// Where the cgroup filesystems are mounted (query key `root`) and procfs (`proc_root`), as
  /// seen from this process: it must run in the engine's host's cgroup and PID namespaces.
  std::string cgroup_root = "/sys/fs/cgroup";
  std::string proc_root = "/proc";
  /// Query key `detail_every`: see CgroupSourceOptions::detail_every.
  int detail_every = 1;

  /// "container:ID", "container:ID?runner=docker:///run/user/1000/docker.sock&detail_every=10".
  /// Unknown query keys and an empty ID are InvalidArgument.
  static Result<ContainerSourceOptions> FromUri(const Uri& uri);
};

/// Concurrency: one sampling thread at a time (see MetricSource); BackgroundCpuNs from any.
class ContainerSource final : public MetricSource {
 public:
  /// Makes the runner from options.runner, then as below.
  static Result<std::shared_ptr<ContainerSource>> Make(const ContainerSourceOptions& options);
  /// Inspects the container once (on the caller's thread): NotFound when the engine has no such
  /// container, FailedPrecondition when it has exited, InvalidArgument when the runner cannot
  /// inspect containers (process://, null://).
  static Result<std::shared_ptr<ContainerSource>> Make(std::shared_ptr<ContainerRunner> runner,
                                                       const ContainerSourceOptions& options);
  ~ContainerSource() override;

  const std::string& uri() const override { return uri_; }
  Status Collect(Timestamp now, SampleBatch& batch) override;
  std::int64_t BackgroundCpuNs() const override { return background_cpu_ns_.load(); }

  /// Says the container has just been started: the waiting thread looks at once (and polls
  /// quickly again) instead of at the end of its backed-off interval, so sampling begins within
  /// about a millisecond of the start. Any thread.
  void TargetStarted() override;

 private:
  ContainerSource() = default;
  void Resolve();  // the waiting thread
  Result<CgroupDirs> DirsOf(int pid) const;
  Status MakeInner(const CgroupDirs& dirs);

  std::string uri_;
  std::string short_id_;
  Labels labels_;
  ContainerSourceOptions options_;
  std::shared_ptr<ContainerRunner> runner_;
  std::shared_ptr<CgroupSource> inner_;

  // Between the waiting thread and Collect.
  enum State : int { kWaiting, kReady, kGone };
  std::atomic<int> state_{kWaiting};
  std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;
  bool started_ = false;  // TargetStarted() was called and not yet seen by the waiting thread
  CgroupDirs dirs_;       // when kReady
  Status gone_;           // when kGone
  std::atomic<std::int64_t> background_cpu_ns_{0};
  std::thread waiter_;
};

}  // namespace bitfusion
