#include "experiment/plan_machines.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <thread>

#include "bitfusion/log.h"
#include "bitfusion/provisioner.h"
#include "bitfusion/uri.h"
#include "core/percent_encode.h"

namespace bitfusion::internal {
namespace {

using namespace std::chrono_literals;

// How long a group's machines may take to be made and become ready.
constexpr auto kAcquireTimeout = 30min;
constexpr auto kCancelPoll = 50ms;  // how often an acquisition looks at Ctrl-C

std::string GroupField(const PlanSpec& plan, const MachineGroupSpec& g) {
  return (plan.source_file.empty() ? "plan " + plan.name : plan.source_file) + ": machines." +
         g.name;
}

// The type a group asks for, checked against its provisioner's catalogue before anything is
// made: the named type, or the cheapest that meets the requirements. Empty when the provider
// lists no catalogue and the group names no requirements (its default).
Result<std::string> CheckGroup(const PlanSpec& plan, const MachineGroupSpec& g,
                               Provisioner& provisioner) {
  const std::string field = GroupField(plan, g);
  auto types = provisioner.Types();
  if (!types) return types.error().WithContext(field + ": listing the machine types");
  if (!g.type.empty()) {
    if (types->empty()) return g.type;
    const bool known = std::any_of(types->begin(), types->end(),
                                   [&](const MachineType& t) { return t.name == g.type; });
    if (known) return g.type;
    std::string names;
    for (const auto& t : *types) names += (names.empty() ? "" : ", ") + t.name;
    return InvalidArgumentError(field + ".type: " + Redact(g.provisioner) + " offers no type \"" +
                                g.type + "\"; it offers: " + names);
  }
  if (g.requirements.empty()) return std::string();
  auto resolved = ResolveMachineType(*types, g.requirements);
  if (!resolved) {
    return InvalidArgumentError(field + ": no machine type of " + Redact(g.provisioner) +
                                " meets " + g.requirements.ToString() + ": " +
                                resolved.error().message());
  }
  return resolved->type.name;
}

}  // namespace

namespace {

// "USER@HOST:PORT?ssh_config=…&identity=…": how the plan logs in to remote machine `m`, the way
// the group's provisioner does.
Result<std::string> SshLoginPart(const MachineGroupSpec& group, const MachineInfo& m) {
  if (m.ssh.host.empty()) {
    return FailedPreconditionError("machine " + m.id + " of group " + group.name + " (" +
                                   m.provider + ") has no SSH address; the plan cannot reach it");
  }
  std::string uri;
  if (!m.ssh.user.empty()) uri += PercentEncode(m.ssh.user) + "@";
  uri += m.ssh.host.find(':') != std::string::npos ? "[" + m.ssh.host + "]" : m.ssh.host;
  if (m.ssh.port != 0 && m.ssh.port != 22) uri += ":" + std::to_string(m.ssh.port);
  std::vector<std::string> query;
  BITFUSION_ASSIGN_OR_RETURN(const Uri provisioner, Uri::Parse(group.provisioner));
  if (auto config = provisioner.Query("ssh_config"); config && !config->empty()) {
    query.push_back("ssh_config=" + PercentEncode(*config));
  }
  // The same way in as the provisioner's own SSH, so that all of them share its one master
  // connection (SshSession::Shared keys on every option).
  for (const auto& [key, value] : provisioner.query) {
    if ((key == "connect_timeout" || key == "runtime_dir" || key == "ssh_option") &&
        !value.empty()) {
      query.push_back(key + "=" + PercentEncode(value));
    }
  }
  // A key given as a path (static:// inventories name one per host); a cloud's key pair name
  // is not a file, and its key comes from the ssh config or agent.
  if (!m.ssh.key_name.empty() && m.ssh.key_name.front() == '/') {
    query.push_back("identity=" + PercentEncode(m.ssh.key_name));
  }
  for (std::size_t i = 0; i < query.size(); ++i) uri += (i == 0 ? "?" : "&") + query[i];
  return uri;
}

}  // namespace

bool ContainersSampledByEngine(std::string_view runner_uri) {
  return runner_uri.starts_with("docker+ssh://");
}

Result<std::string> RunnerUriFor(const std::string& plan_runner, const MachineGroupSpec& group,
                                 const MachineInfo& m) {
  if (m.provider == "local") return plan_runner;
  BITFUSION_ASSIGN_OR_RETURN(const Uri runner, Uri::Parse(plan_runner));
  if (m.provider == "slurm") {
    // Slurm runs host commands as jobs: the group's own slurm:// URI, pinned to the node.
    if (runner.scheme != "process") {
      return InvalidArgumentError("runner " + Redact(plan_runner) + " cannot run on Slurm node " +
                                  m.id + " of group " + group.name +
                                  ": Slurm runs host commands (slurm://), not containers; give "
                                  "the plan \"runner\": \"process://\" or put this group in a "
                                  "plan of its own");
    }
    BITFUSION_ASSIGN_OR_RETURN(Uri slurm, Uri::Parse(group.provisioner));
    // The provisioner's keys for logging in to its nodes are not the runner's.
    std::erase_if(slurm.query, [](const auto& kv) {
      return kv.first == "partition" || kv.first == "nodelist" ||
             std::ranges::find(kMachineLoginKeys, kv.first) != kMachineLoginKeys.end();
    });
    if (!m.type.empty()) slurm.query.emplace_back("partition", m.type);
    slurm.query.emplace_back("nodelist", m.id);
    // The GPUs the group asked its nodes for are asked of each job too (GRES), unless the URI
    // names its own: Slurm gives a job only the GPUs it asked for.
    const MachineRequirements& r = group.requirements;
    if (r.accelerator_kind == "gpu" && !slurm.Query("gres")) {
      slurm.query.emplace_back(
          "gres", "gpu:" + (r.accelerator_model.empty() ? "" : r.accelerator_model + ":") +
                      std::to_string(std::max(1, r.accelerator_count)));
    }
    return slurm.ToString();
  }
  if (runner.scheme != "process" && runner.scheme != "docker") {
    return InvalidArgumentError("runner " + Redact(plan_runner) +
                                " reaches only its own engine; machine groups on other hosts "
                                "need \"process://\" or \"docker://\", which the plan reaches "
                                "over SSH (process+ssh://, docker+ssh://)");
  }
  BITFUSION_ASSIGN_OR_RETURN(const std::string login, SshLoginPart(group, m));
  return runner.scheme + "+ssh://" + login;
}

Result<std::string> HostSourceUriFor(const MachineGroupSpec& group, const MachineInfo& m,
                                     const std::string& name) {
  BITFUSION_ASSIGN_OR_RETURN(const std::string login, SshLoginPart(group, m));
  return "host+ssh://" + login + (login.find('?') == std::string::npos ? "?" : "&") +
         "machine=" + PercentEncode(name);
}

Result<std::string> DeviceAllocatorUriFor(const std::string& plan_allocator,
                                          const MachineGroupSpec& group, const MachineInfo& m) {
  BITFUSION_ASSIGN_OR_RETURN(const Uri allocator, Uri::Parse(plan_allocator));
  if (allocator.scheme == "null") return plan_allocator;
  if (allocator.scheme != "local" && allocator.scheme != "sysfs") {
    return InvalidArgumentError("device_allocator " + Redact(plan_allocator) +
                                " reads this host only; machine " + m.id + " of group " +
                                group.name +
                                " is another, whose devices local:// (or sysfs:///ROOT, a tree "
                                "there) reads over SSH");
  }
  BITFUSION_ASSIGN_OR_RETURN(const std::string login, SshLoginPart(group, m));
  std::string uri = "sysfs+ssh://" + login;
  if (allocator.scheme == "sysfs") {
    uri += std::string(login.find('?') == std::string::npos ? "?" : "&") +
           "root=" + PercentEncode(allocator.FilePath());
  }
  return uri;
}

Result<std::unique_ptr<PlanMachines>> PlanMachines::Acquire(const PlanSpec& plan,
                                                            const std::string& run_id,
                                                            const std::atomic<bool>* cancel) {
  // Nothing is made before every group is known to be satisfiable. Groups with one
  // provisioner URI share its object: what one group was handed is not handed to another
  // (slurm:// knows which of its nodes it gave out only per object).
  std::vector<std::shared_ptr<Provisioner>> provisioners;
  std::map<std::string, std::shared_ptr<Provisioner>> by_uri;
  std::vector<std::string> types;
  for (const auto& g : plan.machines) {
    std::shared_ptr<Provisioner>& shared = by_uri[g.provisioner];
    if (!shared) {
      auto made = ProvisionerFromUri(g.provisioner);
      if (!made) return made.error().WithContext(GroupField(plan, g) + ".provisioner");
      shared = std::move(*made);
    }
    BITFUSION_ASSIGN_OR_RETURN(auto type, CheckGroup(plan, g, *shared));
    provisioners.push_back(shared);
    types.push_back(std::move(type));
  }

  std::unique_ptr<PlanMachines> out(new PlanMachines());
  for (std::size_t i = 0; i < plan.machines.size(); ++i) {
    const MachineGroupSpec& g = plan.machines[i];
    PoolOptions options;
    options.candidates.push_back(PoolCandidate{provisioners[i], Redact(g.provisioner), g.zone, ""});
    options.idle_timeout = std::chrono::nanoseconds(0);
    options.ttl_s = g.ttl.count();
    options.run_id = run_id;
    auto pool = Pool::Create(std::move(options));
    if (!pool) return pool.error().WithContext(GroupField(plan, g));
    MachineRequest request;
    request.type = types[i];
    request.requirements = g.requirements;
    request.count = g.count;
    request.image = g.image;
    request.zone = g.zone;
    request.ttl_s = g.ttl.count();
    request.run_id = run_id;
    request.labels["bitfusion.plan"] = plan.name;
    request.labels["bitfusion.group"] = g.name;
    LogAt(LogLevel::kInfo, "machines.", g.name, ": acquiring ", g.count, " machine(s) from ",
          Redact(g.provisioner));
    // Ctrl-C while this group's machines are made: closing the pool destroys what it made, and
    // the Acquire waiting for them ends.
    std::atomic<bool> acquired{false};
    std::thread watcher;
    if (cancel != nullptr) {
      watcher = std::thread([&acquired, cancel, p = pool->get()] {
        while (!acquired.load()) {
          if (cancel->load()) {
            (void)p->Close();
            return;
          }
          std::this_thread::sleep_for(kCancelPoll);
        }
      });
    }
    auto leased = (*pool)->Acquire(request, DeadlineAfter(kAcquireTimeout));
    acquired = true;
    if (watcher.joinable()) watcher.join();
    if (cancel != nullptr && cancel->load()) {
      (void)(*pool)->Close();
      return CancelledError(GroupField(plan, g) +
                            ": interrupted while its machines were being made; what it made is "
                            "destroyed (a machine a failed destroy left expires, and `bitfusion "
                            "reap --provisioner URI` ends it)");
    }
    if (!leased) {
      // The pools of earlier groups are released by `out`'s destructor.
      return leased.error().WithContext(GroupField(plan, g) + ": acquiring " +
                                        std::to_string(g.count) + " machine(s)");
    }
    for (std::size_t k = 0; k < leased->size(); ++k) {
      for (const auto& other : out->machines_) {
        if (other.info.provider == (*leased)[k].info().provider &&
            other.info.id == (*leased)[k].info().id) {
          return InvalidArgumentError(GroupField(plan, g) + ": its machine " + other.info.id +
                                      " is also machine " + other.name +
                                      " of another group; a machine runs one benchmark at a "
                                      "time, so give it to one group");
        }
      }
      BITFUSION_ASSIGN_OR_RETURN(PlanMachine m,
                                 Make(plan, g, (*leased)[k].info(), static_cast<int>(k)));
      out->machines_.push_back(std::move(m));
      out->leased_.push_back(std::move((*leased)[k]));
    }
    out->pools_.push_back(std::move(*pool));
    out->requests_.push_back(std::move(request));
    out->made_.push_back(static_cast<int>(leased->size()));
  }
  return out;
}

Result<PlanMachine> PlanMachines::Make(const PlanSpec& plan, const MachineGroupSpec& g,
                                       const MachineInfo& info, int index) {
  PlanMachine m;
  m.name = g.name + "-" + std::to_string(index + 1);
  m.group = g.name;
  m.info = info;
  m.local = m.info.provider == "local";
  auto runner = RunnerUriFor(plan.runner, g, m.info);
  if (!runner) return runner.error().WithContext(GroupField(plan, g));
  m.runner_uri = std::move(*runner);
  // A Slurm node is logged in to only when its provisioner says how (?ssh_user=).
  if (!m.local && !(m.info.provider == "slurm" && m.info.ssh.host.empty())) {
    auto host = HostSourceUriFor(g, m.info, m.name);
    if (!host) return host.error().WithContext(GroupField(plan, g));
    m.host_source_uri = std::move(*host);
  }
  return m;
}

Result<PlanMachine> PlanMachines::Replace(const PlanSpec& plan, const std::string& name) {
  const auto at = std::find_if(machines_.begin(), machines_.end(),
                               [&](const PlanMachine& m) { return m.name == name; });
  if (at == machines_.end()) return NotFoundError("the plan has no machine " + name);
  const std::size_t i = static_cast<std::size_t>(at - machines_.begin());
  const auto group = std::find_if(plan.machines.begin(), plan.machines.end(),
                                  [&](const MachineGroupSpec& g) { return g.name == at->group; });
  const std::size_t g = static_cast<std::size_t>(group - plan.machines.begin());
  if (group == plan.machines.end() || g >= pools_.size()) {
    return NotFoundError("machine " + name + " has no group in this plan");
  }
  MachineRequest request = requests_[g];
  request.count = 1;
  LogAt(LogLevel::kInfo, "machines.", group->name, ": acquiring a machine to replace ", name);
  auto leased = pools_[g]->Acquire(request, DeadlineAfter(kAcquireTimeout));
  if (!leased) {
    return leased.error().WithContext(GroupField(plan, *group) + ": replacing machine " + name);
  }
  // A provisioner of one machine (local://) hands out the same one again: that replaces nothing.
  const MachineInfo& got = leased->front().info();
  auto same = [&](const PlanMachine& m) {
    return m.info.provider == got.provider && m.info.id == got.id;
  };
  if (std::any_of(machines_.begin(), machines_.end(), same) ||
      std::any_of(replaced_.begin(), replaced_.end(), same)) {
    leased->front().Release();
    return FailedPreconditionError(GroupField(plan, *group) + ": replacing machine " + name +
                                   ": its provisioner has no other machine to give");
  }
  BITFUSION_ASSIGN_OR_RETURN(PlanMachine fresh, Make(plan, *group, got, made_[g]++));
  replaced_.push_back(std::move(machines_[i]));
  replaced_leases_.push_back(std::move(leased_[i]));
  machines_[i] = fresh;
  leased_[i] = std::move(leased->front());
  return fresh;
}

PlanMachines::~PlanMachines() {
  if (Status s = Release(); !s.ok()) LogAt(LogLevel::kError, s.ToString());
}

Status PlanMachines::Release() {
  for (auto& m : leased_) m.Release();
  leased_.clear();
  for (auto& m : replaced_leases_) m.Release();
  replaced_leases_.clear();
  std::vector<std::string> errors;
  for (auto& pool : pools_) {
    if (Status s = pool->Close(); !s.ok()) errors.push_back(s.message());
  }
  pools_.clear();
  if (errors.empty()) return Status::OK();
  std::string all;
  for (const auto& e : errors) all += (all.empty() ? "" : "; ") + e;
  return UnavailableError("releasing the plan's machines: " + all);
}

}  // namespace bitfusion::internal
