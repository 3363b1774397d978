// The machines a plan with groups runs on ("machines" in a plan): every group's hardware checked
// against its provisioner's catalogue before anything is made, then each group's machines
// acquired through a Pool of its own (all or nothing, failover and cleanup as Pool does), and
// all of them released together at the end. A plan without groups runs on the first machine its
// provisioner lists, as before.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "bitfusion/experiment.h"
#include "bitfusion/machine.h"
#include "bitfusion/pool.h"

namespace bitfusion::internal {

/// One machine of a plan and how its runs reach it.
struct PlanMachine {
  std::string name;   ///< "office-1" (group and 1-based index); empty without groups
  std::string group;  ///< empty without groups
  MachineInfo info;
  bool local = true;       ///< this host: the plan's runner as it is
  std::string runner_uri;  ///< the plan's runner, or its SSH form for a remote machine
  /// A remote machine's `host` source: "host+ssh://…" with the runner's login; empty here.
  std::string host_source_uri;
};

/// The plan's runner for machine `m` of `group`: the runner itself on this host; on a remote
/// machine its SSH form, "process://" -> "process+ssh://USER@HOST:PORT" and "docker://" ->
/// "docker+ssh://USER@HOST:PORT", with the group provisioner's `ssh_config` and the machine's
/// key file (`identity`, when its key is a path) passed on: the same way in as the
/// provisioner's own SSH. A Slurm node (slurm:// group) runs "process://" benchmarks as jobs:
/// the group's slurm:// URI with ?partition=TYPE&nodelist=NODE. InvalidArgument for a runner
/// that cannot reach another machine, FailedPrecondition for a machine without an SSH address.
Result<std::string> RunnerUriFor(const std::string& plan_runner, const MachineGroupSpec& group,
                                 const MachineInfo& m);

/// The `host` metric source of remote machine `m` (named `name` in the plan): the same login as
/// RunnerUriFor's, "host+ssh://USER@HOST:PORT?ssh_config=…&identity=…&machine=NAME"
/// (src/metrics/ssh_probe_source.h). FailedPrecondition for a machine without an SSH address.
Result<std::string> HostSourceUriFor(const MachineGroupSpec& group, const MachineInfo& m,
                                     const std::string& name);

/// The device allocator of remote machine `m` for a plan whose own is `plan_allocator`: with the
/// same login as RunnerUriFor's, local:// becomes "sysfs+ssh://USER@HOST:PORT?…" (that machine's
/// devices, src/devices/ssh_allocator.h), sysfs:///ROOT the same with root=ROOT there, null://
/// stays. Another allocator reads this host only: InvalidArgument naming it.
Result<std::string> DeviceAllocatorUriFor(const std::string& plan_allocator,
                                          const MachineGroupSpec& group, const MachineInfo& m);

/// Whether the containers of runs through `runner_uri` are sampled through their engine's stats
/// stream (the "container" source on an engine reached over SSH, whose cgroups this host cannot
/// read) rather than through their cgroups here.
bool ContainersSampledByEngine(std::string_view runner_uri);

class PlanMachines {
 public:
  /// Checks every group, then acquires them in plan order; what was acquired is released when
  /// a later group fails. `run_id` tags the machines (with each group's ttl as their expiry).
  /// Setting `cancel` (Ctrl-C) while machines are being made closes the group's pool, which
  /// destroys what it made and ends the wait for them: Cancelled.
  static Result<std::unique_ptr<PlanMachines>> Acquire(const PlanSpec& plan,
                                                       const std::string& run_id,
                                                       const std::atomic<bool>* cancel = nullptr);
  ~PlanMachines();  ///< Release()

  const std::vector<PlanMachine>& machines() const { return machines_; }
  /// Machines Replace took out of the plan, in the order it did.
  const std::vector<PlanMachine>& replaced() const { return replaced_; }

  /// Another machine of `name`'s group in its place (one that failed its setup or preflight),
  /// named GROUP-N with the next number the group has not used. The failed machine stays
  /// leased until Release, so no later acquisition is handed it again. The pool's error when
  /// the provisioner has none to give (a static inventory without a free host says so at once),
  /// FailedPrecondition when it gives one the plan already has (local://'s one machine).
  Result<PlanMachine> Replace(const PlanSpec& plan, const std::string& name);

  /// Hands every machine back and destroys what the groups made. Idempotent; the errors name
  /// the machines left (their expiry and `bitfusion reap --provisioner URI` end them).
  Status Release();

 private:
  PlanMachines() = default;
  // The machine of a group's `index`-th (0-based) lease, named and with its ways in.
  static Result<PlanMachine> Make(const PlanSpec& plan, const MachineGroupSpec& g,
                                  const MachineInfo& info, int index);

  std::vector<PlanMachine> machines_;
  std::vector<PoolMachine> leased_;  // leased_[i] is machines_[i]
  std::vector<PlanMachine> replaced_;
  std::vector<PoolMachine> replaced_leases_;
  std::vector<std::unique_ptr<Pool>> pools_;  // pools_[g] serves plan.machines[g]
  std::vector<MachineRequest> requests_;      // what pools_[g] was asked for
  std::vector<int> made_;                     // machines pools_[g] has handed out
};

}  // namespace bitfusion::internal
