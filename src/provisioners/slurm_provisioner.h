// slurm:// as a provisioner: the nodes of a Slurm cluster, read through slurmrestd (OpenAPI
// v0.0.38: GET /nodes, /node/{name}, /partitions), as machines, and its partitions as machine
// types. It takes the URI slurm:// takes as a runner (runners/slurm_runner.h), so one URI names
// both:
//
//   slurm:///run/slurmrestd.sock?partition=gpu        (unix socket, rest_auth/local)
//   slurm://USER@HOST:6820?partition=gpu               (TCP, JWT from $SLURM_JWT)
//
// Nothing is created or stopped: the nodes exist, and Slurm's scheduler shares them between
// its users. Create picks request.count usable nodes (SlurmNodeUsable: idle, mixed, allocated;
// not drained, failing or down) of the partition named by request.type (else the URI's
// partition, else the cluster's default), that meet request.requirements (CPUs, memory, GPUs
// from the node's GRES), preferring idle nodes, and not already handed out by this provisioner
// (so one plan does not put two of its machines on one node); Destroy hands them back. A node
// is the machine's id and the partition its type; a plan runs its benchmarks there through
// slurm:// with the same URI and ?partition=TYPE&nodelist=NODE (experiment/plan_machines.h), so
// every job of that machine lands on that node. Nothing here needs
// a reaper: a plan's jobs carry bitfusion's ownership labels and a time limit (slurm://).
//
// Errors name the partition and what its nodes offer: a partition the cluster does not have,
// fewer usable nodes than asked for (with the states of the others), a GPU count no node has.
//
// Logging in to the nodes: Slurm runs the jobs, so nothing here needs SSH, but a plan's "host"
// source samples a machine through a probe started over SSH. With ?ssh_user=USER each node is
// an SSH endpoint (its NodeAddr, else its host name; ?ssh_port=22, ?ssh_key=/ABS/PATH), logged in
// to with the URI's ssh_config, ssh_option, connect_timeout and runtime_dir as static:// does.
// The login must be allowed before the job starts: pam_slurm_adopt refuses users without a job
// on the node, so use an account it exempts.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "bitfusion/provisioner.h"
#include "bitfusion/uri.h"
#include "net/slurm_rest.h"
#include "runners/slurm_runner.h"

namespace bitfusion {

struct SlurmProvisionerOptions {
  SlurmRunnerOptions rest;  ///< the endpoint, auth and partition, read as slurm:// reads them
  /// ?ssh_user=: the nodes' login (empty = the nodes are not logged in to), ?ssh_port=,
  /// ?ssh_key= (an absolute path).
  std::string ssh_user;
  int ssh_port = 22;
  std::string ssh_key;

  static Result<SlurmProvisionerOptions> FromUri(const Uri& uri);
};

class SlurmProvisioner final : public Provisioner {
 public:
  static Result<std::shared_ptr<SlurmProvisioner>> Make(const SlurmProvisionerOptions& options);

  Result<std::vector<MachineInfo>> Create(const MachineRequest& request) override;
  /// The node as it is now; Unavailable when Slurm no longer places jobs on it.
  Result<MachineInfo> WaitReady(const std::string& id, Deadline deadline) override;
  /// Every node of the cluster (of the URI's partition when it names one), handed out or not.
  Result<std::vector<MachineInfo>> List() override;
  /// Hands the nodes back; a node not handed out succeeds.
  Status Destroy(const std::vector<std::string>& ids) override;
  /// One type per partition: the least its nodes have (CPUs, memory, GPUs; a figure a node does
  /// not report is left out), so that any node of it meets what the type says.
  Result<std::vector<MachineType>> Types() override;

 private:
  explicit SlurmProvisioner(SlurmProvisionerOptions options) : options_(std::move(options)) {}

  Result<std::vector<internal::SlurmNodeView>> Nodes();
  Result<std::vector<internal::SlurmPartitionView>> Partitions();
  MachineInfo Describe(const internal::SlurmNodeView& node, const std::string& partition) const;

  const SlurmProvisionerOptions options_;
  std::shared_ptr<internal::SlurmRest> rest_;
  std::mutex mu_;
  std::map<std::string, std::string> handed_out_;  // node -> partition; guarded by mu_
};

}  // namespace bitfusion
