// Pool: machines from one or more provisioners, leased out and handed back, with failover.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "bitfusion/clock.h"
#include "bitfusion/export.h"
#include "bitfusion/machine.h"
#include "bitfusion/provisioner.h"
#include "bitfusion/status.h"

namespace bitfusion {

/// One place a pool may make machines: a provisioner and, optionally, a zone in it.
struct PoolCandidate {
  std::shared_ptr<Provisioner> provisioner;
  std::string name;  ///< how logs and errors call it: "aws://us-east-1"; empty = "candidate N"
  std::string zone;  ///< availability zone for its requests; empty = the provider's choice
  /// When `provisioner` is null, Pool::Create makes it with ProvisionerFromUri(uri) (and uses
  /// the URI as the name when that is empty): "aws://us-east-1", "null://".
  std::string uri;
};

struct PoolOptions {
  /// Tried in this order when a create fails for lack of capacity or quota
  /// (StatusCode::kResourceExhausted); any other error fails at once. List the zones of a region
  /// first, then other regions (each its own provisioner, aws://REGION), then other providers,
  /// as SkyPilot does.
  std::vector<PoolCandidate> candidates;
  /// An idle machine the pool made is destroyed after this long unless a target keeps it;
  /// zero or negative = idle machines stay until Close.
  std::chrono::nanoseconds idle_timeout = std::chrono::minutes(10);
  std::int64_t ttl_s = 4 * 3600;  ///< expiry tag on machines the pool makes (MachineRequest::ttl_s)
  std::string run_id;             ///< run id tag on machines the pool makes
};

/// One create the pool tried.
struct PoolAttempt {
  std::string candidate;  ///< PoolCandidate::name
  std::string zone;       ///< empty = the provider's choice
  int count = 0;          ///< machines asked for
  Status status;          ///< OK, or why it failed
  std::string ToString()
      const;  ///< "aws://us-east-1 zone us-east-1a, 2 machines: resource_exhausted: ..."
};

class PoolState;

/// A leased machine. Hands it back to its pool (Pool::Release) when destroyed or released;
/// movable, not copyable. Safe to outlive its Pool (then releasing does nothing: Close already
/// destroyed the machine).
class BITFUSION_EXPORT PoolMachine {
 public:
  PoolMachine() = default;
  PoolMachine(std::shared_ptr<PoolState> pool, MachineInfo info);
  PoolMachine(PoolMachine&& other) noexcept;
  PoolMachine& operator=(PoolMachine&& other) noexcept;
  PoolMachine(const PoolMachine&) = delete;
  PoolMachine& operator=(const PoolMachine&) = delete;
  ~PoolMachine();

  const MachineInfo& info() const { return info_; }
  const std::string& id() const { return info_.id; }
  bool valid() const { return pool_ != nullptr; }
  /// Hands the machine back now; the handle becomes empty.
  void Release() noexcept;

 private:
  std::shared_ptr<PoolState> pool_;
  MachineInfo info_;
};

/// Machines by type, kept warm to targets, leased with Acquire and handed back with Release.
///
/// No leaks by construction: every machine the pool makes is recorded before Create's result is
/// used; Close (and the destructor, also during stack unwinding) destroys them all, leased or
/// not. Machines given with Add and no owner are never destroyed by the pool.
///
/// Concurrency: every method may be called from several threads at once.
class BITFUSION_EXPORT Pool {
 public:
  /// InvalidArgument without candidates or with a candidate without a provisioner or URI; the
  /// error of ProvisionerFromUri, naming the candidate, for a URI it refuses.
  static Result<std::unique_ptr<Pool>> Create(PoolOptions options);
  ~Pool();
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  /// request.count machines of request.type (or, when empty, of request.requirements), all or
  /// nothing: idle machines of the same kind first, the rest made through the candidates in
  /// order (failover on capacity / quota errors only) and waited for until `deadline`. When it
  /// fails, machines it made are destroyed and idle ones it took are idle again. `attempts`
  /// (when not null) receives every create tried; the error message names them too.
  Result<std::vector<PoolMachine>> Acquire(const MachineRequest& request, Deadline deadline,
                                           std::vector<PoolAttempt>* attempts = nullptr);
  /// `count` machines of `type`.
  Result<std::vector<PoolMachine>> Acquire(const std::string& type, int count, Deadline deadline,
                                           std::vector<PoolAttempt>* attempts = nullptr);

  /// Hands a leased machine back (as destroying its PoolMachine does).
  void Release(PoolMachine machine) noexcept;

  /// Keeps at least n machines of `type` in the pool (leased or idle): makes the missing ones
  /// now (with failover) and exempts that many from idle teardown. n = 0 removes the target.
  Status SetTarget(const std::string& type, int n, Deadline deadline = kNoDeadline,
                   std::vector<PoolAttempt>* attempts = nullptr);

  /// Puts an existing machine into the pool, idle. With `owner`, the pool destroys it through
  /// owner like its own machines; without, it only lends it out and never destroys it.
  /// AlreadyExists when its id is in the pool.
  Status Add(const MachineInfo& machine, std::shared_ptr<Provisioner> owner = nullptr);
  /// Takes an idle machine out of the pool without destroying it. NotFound / FailedPrecondition
  /// (leased).
  Status Remove(const std::string& id);

  struct Counts {
    int idle = 0;
    int leased = 0;
  };
  /// Machines in the pool by type.
  std::map<std::string, Counts> Snapshot() const;

  /// Destroys every machine the pool made (leased ones too) and stops idle teardown. Later
  /// Acquire calls fail with FailedPrecondition. Idempotent; the errors of destroys that failed,
  /// naming the machines left to clean up (`bitfusion reap --provisioner URI --run-id ID` finds
  /// them).
  Status Close() noexcept;

 private:
  explicit Pool(std::shared_ptr<PoolState> state);
  std::shared_ptr<PoolState> state_;
};

}  // namespace bitfusion
