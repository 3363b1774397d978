// Provisioner: brings machines up and down and describes their hardware.
#pragma once

#include <array>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "bitfusion/clock.h"
#include "bitfusion/export.h"
#include "bitfusion/machine.h"
#include "bitfusion/ownership.h"
#include "bitfusion/registry.h"
#include "bitfusion/status.h"

namespace bitfusion {

/// The query keys with which a provisioner URI says how to log in to its machines over SSH
/// (static:// reads the last four, slurm:// all of them; a plan logs in to their machines the
/// same way, over the same master connection). None of them is a runner's: a runner URI made
/// from a provisioner's leaves them out.
inline constexpr std::array<std::string_view, 7> kMachineLoginKeys = {
    "ssh_user",   "ssh_port",        "ssh_key",    "ssh_config",
    "ssh_option", "connect_timeout", "runtime_dir"};

/// What Provisioner::Reap destroyed (or, for a dry run, would destroy).
struct MachineReapReport {
  std::vector<std::string> machines;  ///< "i-0abc g5.xlarge (its creator, process 42, is gone)"
  std::vector<std::string> errors;    ///< machines that could not be destroyed, with the reason
};

/// Backends: local:// (this host), null://, aws://REGION, softlayer://DATACENTER (IBM Cloud
/// classic), openstack://KEYSTONE and rackspace://REGION (Nova), static://INVENTORY.json
/// (machines listed in a file, leased over SSH); each in its own files.
///
/// Every machine a provisioner creates carries the ownership tags (ownership.h: creator, run
/// id, host, pid and its start time, boot id, expiry = creation + request.ttl_s) from the
/// moment it exists, so a reaper can find it whatever happens to the creating process.
///
/// Concurrency: every method may be called from several threads at once.
/// Ownership: machines belong to the provider; Destroy() is the only call that ends one.
class BITFUSION_EXPORT Provisioner {
 public:
  virtual ~Provisioner();

  /// Asks for request.count machines of request.type (or, when empty, the cheapest type that
  /// satisfies request.requirements). Returns as soon as the provider accepted the request;
  /// machines may still be "pending" (see WaitReady). created_ns is set on each. All or
  /// nothing: when it fails, whatever it made is destroyed before it returns.
  virtual Result<std::vector<MachineInfo>> Create(const MachineRequest& request) = 0;

  /// Blocks until machine `id` is usable or `deadline` passes (DeadlineExceeded). Returns it
  /// with its fingerprint and ready_ns filled in.
  virtual Result<MachineInfo> WaitReady(const std::string& id, Deadline deadline) = 0;

  /// Machines this provisioner currently knows (made by it or carrying its labels), including
  /// ones still shown as "shutting-down" or "terminated".
  virtual Result<std::vector<MachineInfo>> List() = 0;

  /// Ends the machines. Unknown ids are NotFound; already-gone ones succeed. Returns once the
  /// provider reports each one terminating.
  virtual Status Destroy(const std::vector<std::string>& ids) = 0;

  /// The catalogue: machine types with their CPUs, memory and accelerators.
  virtual Result<std::vector<MachineType>> Types() = 0;

  /// Hands machines over from this process to their run id: removes the creator-process tags
  /// (pid, its start time, boot id), so that Reap takes them once they expire or by run id, no
  /// longer when this process ends. Until then a machine dies with its creator. Unknown ids are
  /// NotFound where the provider says so (EC2's DeleteTags need not). The default is
  /// Unimplemented.
  virtual Status Keep(const std::vector<std::string>& ids);

  /// Destroys, among machines with bitfusion's ownership tags only, those `policy` says were
  /// left behind (ReapReason). The default lists, decides and destroys one by one.
  virtual Result<MachineReapReport> Reap(const ReapPolicy& policy);
};

/// "local://", "null://", ... An unknown scheme lists the known ones.
BITFUSION_EXPORT Result<std::shared_ptr<Provisioner>> ProvisionerFromUri(
    std::string_view uri, const BackendContext& context = {});

}  // namespace bitfusion
