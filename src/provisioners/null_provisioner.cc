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
    m.created_ns = WallNowNs();
    machines_[m.id] = m;
    out.push_back(m);
  }
  return out;
}

Result<MachineInfo> NullProvisioner::WaitReady(const std::string& id, Deadline) {
  std::lock_guard lock(mu_);
  auto it = machines_.find(id);
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
    if (machines_.count(id) == 0) return NotFoundError("null:// has no machine \"" + id + "\"");
  }
  for (const auto& id : ids) machines_.erase(id);
  return Status::OK();
}

Result<std::vector<MachineType>> NullProvisioner::Types() {
  MachineType type;
  type.name = "null";
  return std::vector<MachineType>{type};
}

BITFUSION_REGISTER(Provisioner, "null", NullProvisionerOptions, NullProvisioner);

}  // namespace bitfusion
