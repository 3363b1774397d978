#include "provisioners/slurm_provisioner.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <optional>
#include <string_view>
#include <vector>

#include "bitfusion/registry.h"
#include "core/percent_encode.h"

namespace bitfusion {

namespace {

using internal::SlurmNodeView;

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// "idle", "down+NOT_RESPONDING", "idle+DRAIN (maintenance)" for messages.
std::string StateOf(const SlurmNodeView& n) {
  std::string s = n.state.empty() ? "unknown" : Lower(n.state);
  for (const auto& f : n.state_flags) s += "+" + f;
  if (!n.reason.empty()) s += " (" + n.reason + ")";
  return s;
}

MachineType TypeOfNode(const SlurmNodeView& n, const std::string& partition) {
  MachineType t;
  t.name = partition;
  t.vcpus = static_cast<int>(std::clamp<std::int64_t>(n.cpus, 0, 1 << 20));
  t.memory_bytes = n.real_memory_mb > 0 ? static_cast<std::uint64_t>(n.real_memory_mb) << 20 : 0;
  t.cpu_architecture = n.architecture;
  if (n.gpus > 0) {
    AcceleratorInfo gpu;
    gpu.kind = "gpu";
    gpu.model = n.gpu_model;  // GRES names a type, never a vendor
    gpu.count = n.gpus;
    t.accelerators.push_back(gpu);
  }
  return t;
}

bool InPartition(const SlurmNodeView& n, const std::string& partition) {
  return std::find(n.partitions.begin(), n.partitions.end(), partition) != n.partitions.end();
}

}  // namespace

Result<SlurmProvisionerOptions> SlurmProvisionerOptions::FromUri(const Uri& uri) {
  SlurmProvisionerOptions o;
  // The SSH keys are the provisioner's (and the plan's, which logs in the same way); the rest
  // is what slurm:// reads as a runner.
  Uri rest = uri;
  std::erase_if(rest.query, [](const auto& kv) {
    return std::ranges::find(kMachineLoginKeys, kv.first) != kMachineLoginKeys.end();
  });
  BITFUSION_ASSIGN_OR_RETURN(o.rest, SlurmRunnerOptions::FromUri(rest));
  o.ssh_user = uri.Query("ssh_user").value_or("");
  o.ssh_key = uri.Query("ssh_key").value_or("");
  BITFUSION_ASSIGN_OR_RETURN(const std::int64_t port, uri.QueryInt("ssh_port", 22));
  if (port < 1 || port > 65535) {
    return InvalidArgumentError("slurm://: ssh_port must be a port from 1 to 65535, not " +
                                std::to_string(port));
  }
  o.ssh_port = static_cast<int>(port);
  BITFUSION_ASSIGN_OR_RETURN(const std::int64_t timeout, uri.QueryInt("connect_timeout", 10));
  if (timeout < 1) return InvalidArgumentError("slurm://: connect_timeout must be at least 1 (s)");
  if (!o.ssh_key.empty() && o.ssh_key.front() != '/') {
    return InvalidArgumentError("slurm://: ssh_key must be an absolute path, not \"" + o.ssh_key +
                                "\"");
  }
  if (o.ssh_user.empty()) {
    for (const auto key : kMachineLoginKeys) {
      if (key != "ssh_user" && uri.Query(key)) {
        return InvalidArgumentError(
            "slurm://: " + std::string(key) +
            " is for logging in to the nodes, which only ssh_user=USER turns on; add it or drop " +
            std::string(key));
      }
    }
  }
  if (!o.rest.nodelist.empty()) {
    return InvalidArgumentError(
        "slurm:// as a provisioner picks its nodes itself; drop ?nodelist= from " + uri.ToString() +
        " (a group's count and type say how many of which partition)");
  }
  return o;
}

Result<std::shared_ptr<SlurmProvisioner>> SlurmProvisioner::Make(
    const SlurmProvisionerOptions& options) {
  std::shared_ptr<SlurmProvisioner> p(new SlurmProvisioner(options));
  BITFUSION_ASSIGN_OR_RETURN(p->rest_, internal::SlurmRest::Make(options.rest));
  return p;
}

Result<std::vector<SlurmNodeView>> SlurmProvisioner::Nodes() {
  BITFUSION_ASSIGN_OR_RETURN(auto r, rest_->Call("GET", "/nodes"));
  BITFUSION_ASSIGN_OR_RETURN(auto answer, rest_->Json(r, "listing the nodes"));
  return internal::SlurmNodesOf(answer);
}

Result<std::vector<internal::SlurmPartitionView>> SlurmProvisioner::Partitions() {
  BITFUSION_ASSIGN_OR_RETURN(auto r, rest_->Call("GET", "/partitions"));
  BITFUSION_ASSIGN_OR_RETURN(auto answer, rest_->Json(r, "listing the partitions"));
  return internal::SlurmPartitionsOf(answer);
}

MachineInfo SlurmProvisioner::Describe(const SlurmNodeView& n, const std::string& partition) const {
  MachineInfo m;
  m.id = n.name;
  m.provider = "slurm";
  m.hostname = n.hostname.empty() ? n.name : n.hostname;
  m.address = n.address;
  m.type = partition;
  m.state = internal::SlurmNodeUsable(n) ? "running" : Lower(n.state.empty() ? "unknown" : n.state);
  const MachineType t = TypeOfNode(n, partition);
  m.cpu.architecture = n.architecture;
  m.cpu.threads = t.vcpus;
  m.memory_bytes = t.memory_bytes;
  m.accelerators = t.accelerators;
  m.os = n.operating_system;
  m.labels["slurm.partitions"] = [&] {
    std::string all;
    for (const auto& p : n.partitions) all += (all.empty() ? "" : ",") + p;
    return all;
  }();
  m.labels["slurm.state"] = StateOf(n);
  if (!n.gres.empty()) m.labels["slurm.gres"] = n.gres;
  m.zone = rest_->where();
  if (!options_.ssh_user.empty()) {
    m.ssh.host = n.address.empty() ? m.hostname : n.address;
    m.ssh.port = options_.ssh_port;
    m.ssh.user = options_.ssh_user;
    m.ssh.key_name = options_.ssh_key;
  }
  return m;
}

Result<std::vector<MachineInfo>> SlurmProvisioner::Create(const MachineRequest& request) {
  if (request.count < 1) {
    return InvalidArgumentError("slurm://: a request needs a count of at least 1, not " +
                                std::to_string(request.count));
  }
  BITFUSION_ASSIGN_OR_RETURN(auto partitions, Partitions());
  std::string partition = request.type.empty() ? options_.rest.partition : request.type;
  std::string names;
  for (const auto& p : partitions) {
    names += (names.empty() ? "" : ", ") + p.name;
    if (partition.empty() && p.is_default) partition = p.name;
  }
  if (partition.empty()) {
    return FailedPreconditionError("Slurm at " + rest_->where() +
                                   " has no default partition; name one (?partition= or the "
                                   "group's \"type\"): it has " +
                                   (names.empty() ? "none" : names));
  }
  if (std::none_of(partitions.begin(), partitions.end(),
                   [&](const auto& p) { return p.name == partition; })) {
    return InvalidArgumentError("Slurm at " + rest_->where() + " has no partition \"" + partition +
                                "\"; it has: " + (names.empty() ? "none" : names) + " (see sinfo)");
  }
  BITFUSION_ASSIGN_OR_RETURN(auto nodes, Nodes());

  std::lock_guard lock(mu_);
  std::vector<const SlurmNodeView*> picked;
  std::vector<std::string> passed;  // "node: why", for the error when too few are left
  for (const auto& n : nodes) {
    if (!InPartition(n, partition)) continue;
    if (handed_out_.count(n.name)) {
      passed.push_back(n.name + ": already one of this plan's machines");
    } else if (!internal::SlurmNodeUsable(n)) {
      passed.push_back(n.name + ": " + StateOf(n));
    } else if (std::string why = UnmetRequirement(TypeOfNode(n, partition), request.requirements);
               !why.empty()) {
      passed.push_back(n.name + ": " + why);
    } else {
      picked.push_back(&n);
    }
  }
  // Idle nodes first: a benchmark on a node shared with other jobs measures them too.
  std::stable_sort(picked.begin(), picked.end(), [](const auto* a, const auto* b) {
    return Lower(a->state) == "idle" && Lower(b->state) != "idle";
  });
  if (picked.size() < static_cast<std::size_t>(request.count)) {
    std::string others;
    for (const auto& p : passed) others += (others.empty() ? "" : "; ") + p;
    return ResourceExhaustedError(
        "Slurm partition \"" + partition + "\" at " + rest_->where() + " has " +
        std::to_string(picked.size()) + " usable node(s)" +
        (request.requirements.empty() ? "" : " meeting " + request.requirements.ToString()) + ", " +
        std::to_string(request.count) + " asked for" +
        (others.empty() ? "" : "; the others: " + others));
  }
  std::vector<MachineInfo> out;
  const std::int64_t now = WallNowNs();
  for (int i = 0; i < request.count; ++i) {
    MachineInfo m = Describe(*picked[static_cast<std::size_t>(i)], partition);
    for (const auto& [key, value] : request.labels) m.labels[key] = value;
    m.created_ns = now;
    m.running_ns = now;  // it already runs
    handed_out_[m.id] = partition;
    out.push_back(std::move(m));
  }
  return out;
}

Result<MachineInfo> SlurmProvisioner::WaitReady(const std::string& id, Deadline) {
  BITFUSION_ASSIGN_OR_RETURN(auto r, rest_->Call("GET", "/node/" + internal::PercentEncode(id)));
  BITFUSION_ASSIGN_OR_RETURN(auto answer, rest_->Json(r, "reading node " + id));
  const auto nodes = internal::SlurmNodesOf(answer);
  if (nodes.empty()) {
    return NotFoundError("Slurm at " + rest_->where() + " has no node \"" + id + "\"");
  }
  if (!internal::SlurmNodeUsable(nodes.front())) {
    return UnavailableError("Slurm node " + id + " is " + StateOf(nodes.front()) +
                            ": Slurm places no jobs on it");
  }
  std::string partition;
  {
    std::lock_guard lock(mu_);
    if (auto it = handed_out_.find(id); it != handed_out_.end()) partition = it->second;
  }
  if (partition.empty()) {
    partition = options_.rest.partition.empty() && !nodes.front().partitions.empty()
                    ? nodes.front().partitions.front()
                    : options_.rest.partition;
  }
  MachineInfo m = Describe(nodes.front(), partition);
  m.ready_ns = WallNowNs();
  return m;
}

Result<std::vector<MachineInfo>> SlurmProvisioner::List() {
  BITFUSION_ASSIGN_OR_RETURN(auto nodes, Nodes());
  std::vector<MachineInfo> out;
  for (const auto& n : nodes) {
    const std::string& wanted = options_.rest.partition;
    if (!wanted.empty() && !InPartition(n, wanted)) continue;
    out.push_back(
        Describe(n, !wanted.empty() || n.partitions.empty() ? wanted : n.partitions.front()));
  }
  return out;
}

Status SlurmProvisioner::Destroy(const std::vector<std::string>& ids) {
  std::lock_guard lock(mu_);
  for (const auto& id : ids) handed_out_.erase(id);
  return Status::OK();
}

Result<std::vector<MachineType>> SlurmProvisioner::Types() {
  BITFUSION_ASSIGN_OR_RETURN(auto partitions, Partitions());
  BITFUSION_ASSIGN_OR_RETURN(auto nodes, Nodes());
  std::vector<MachineType> out;
  for (const auto& p : partitions) {
    std::optional<MachineType> least;
    for (const auto& n : nodes) {
      if (!InPartition(n, p.name)) continue;
      const MachineType t = TypeOfNode(n, p.name);
      if (!least) {
        least = t;
        continue;
      }
      // 0 is "not reported" (a node that is down says little): it lowers nothing.
      auto least_known = [](auto a, auto b) { return a == 0 ? b : b == 0 ? a : std::min(a, b); };
      least->vcpus = least_known(least->vcpus, t.vcpus);
      least->memory_bytes = least_known(least->memory_bytes, t.memory_bytes);
      if (t.accelerators.empty() || least->accelerators.empty()) {
        least->accelerators.clear();
      } else {
        auto& gpu = least->accelerators.front();
        gpu.count = std::min(gpu.count, t.accelerators.front().count);
        if (gpu.model != t.accelerators.front().model) gpu.model.clear();
      }
      if (least->cpu_architecture != t.cpu_architecture) least->cpu_architecture.clear();
    }
    MachineType t = least.value_or(MachineType{});
    t.name = p.name;
    out.push_back(std::move(t));
  }
  return out;
}

BITFUSION_REGISTER(Provisioner, "slurm", SlurmProvisionerOptions, SlurmProvisioner);

}  // namespace bitfusion
