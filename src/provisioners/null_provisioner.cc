#include "provisioners/null_provisioner.h"

#include "bitfusion/registry.h"

namespace bitfusion {

Result<NullProvisionerOptions> NullProvisionerOptions::FromUri(const Uri& uri) {
  BITFUSION_RETURN_IF_ERROR(uri.CheckQueryKeys({}));
  return NullProvisionerOptions{};
}

Result<std::shared_ptr<NullProvisioner>> NullProvisioner::Make(const NullProvisionerOptions&) {
  return std::make_shared<NullProvisioner>();
}

Result<std::vector<MachineInfo>> NullProvisioner::Create(const MachineRequest& request) {
  if (request.count < 1) {
    return InvalidArgumentError("machine request count must be at least 1, got " +
                                std::to_string(request.count));
  }
  if (request.type.empty() && !request.requirements.empty()) {
    BITFUSION_ASSIGN_OR_RETURN(auto types, Types());
    BITFUSION_RETURN_IF_ERROR(ResolveMachineType(types, request.requirements).status());
  }
  if (!request.type.empty() && request.type != "null") {
    return InvalidArgumentError("null:// offers only machine type \"null\", not \"" + request.type +
                                "\"");
  }
  std::lock_guard lock(mu_);
  std::vector<MachineInfo> out;
  for (int i = 0; i < request.count; ++i) {
    MachineInfo m;
    m.id = "null-" + std::to_string(next_id_++);
    m.provider = "null";
    m.type = "null";
    m.state = "running";
    m.labels = request.labels;
    for (auto& [key, value] : OwnerLabels(request.run_id, request.ttl_s)) m.labels[key] = value;
    m.created_ns = WallNowNs();
    m.running_ns = m.created_ns;
    machines_[m.id] = m;
    out.push_back(m);
  }
  return out;
}

Result<MachineInfo> NullProvisioner::WaitReady(const std::string& id, Deadline) {
  std::lock_guard lock(mu_);
  auto it = machines_.find(id);
  if (gone_.count(id) > 0) {
    return FailedPreconditionError("null:// machine \"" + id +
                                   "\" was destroyed; it will not become ready");
  }
  if (it == machines_.end()) return NotFoundError("null:// has no machine \"" + id + "\"");
  if (it->second.ready_ns == 0) it->second.ready_ns = WallNowNs();
  return it->second;
}

Result<std::vector<MachineInfo>> NullProvisioner::List() {
  std::lock_guard lock(mu_);
  std::vector<MachineInfo> out;
  for (const auto& [id, m] : machines_) out.push_back(m);
  return out;
}

Status NullProvisioner::Destroy(const std::vector<std::string>& ids) {
  std::lock_guard lock(mu_);
  for (const auto& id : ids) {
    if (machines_.count(id) == 0 && gone_.count(id) == 0) {
      return NotFoundError("null:// has no machine \"" + id + "\"");
    }
  }
  // Ended machines are remembered, so that destroying one again succeeds.
  for (const auto& id : ids) {
    if (machines_.erase(id) > 0) gone_.insert(id);
  }
  return Status::OK();
}

Status NullProvisioner::Keep(const std::vector<std::string>& ids) {
  std::lock_guard lock(mu_);
  for (const auto& id : ids) {
    auto it = machines_.find(id);
    if (it == machines_.end()) return NotFoundError("null:// has no machine \"" + id + "\"");
    for (const char* key : kCreatorProcessLabels) it->second.labels.erase(key);
  }
  return Status::OK();
}

Result<std::vector<MachineType>> NullProvisioner::Types() {
  MachineType type;
  type.name = "null";
  return std::vector<MachineType>{type};
}

BITFUSION_REGISTER(Provisioner, "null", NullProvisionerOptions, NullProvisioner);

}  // namespace bitfusion
