#include "provisioners/local_provisioner.h"

#include "bitfusion/registry.h"

namespace bitfusion {

Result<LocalProvisionerOptions> LocalProvisionerOptions::FromUri(const Uri& uri) {
  BITFUSION_RETURN_IF_ERROR(uri.CheckQueryKeys({"proc_root", "sys_root", "os_release"}));
  if (!uri.host.empty() || !uri.path.empty()) {
    return InvalidArgumentError("local:// takes no host or path, got \"" + uri.ToString() +
                                "\"; write local://");
  }
  LocalProvisionerOptions o;
  o.roots.proc = uri.Query("proc_root").value_or(o.roots.proc);
  o.roots.sys = uri.Query("sys_root").value_or(o.roots.sys);
  o.roots.os_release = uri.Query("os_release").value_or(o.roots.os_release);
  return o;
}

Result<std::shared_ptr<LocalProvisioner>> LocalProvisioner::Make(
    const LocalProvisionerOptions& options) {
  return std::shared_ptr<LocalProvisioner>(new LocalProvisioner(options));
}

Result<MachineInfo> LocalProvisioner::Fingerprint() {
  std::lock_guard lock(mu_);
  if (!cached_) {
    BITFUSION_ASSIGN_OR_RETURN(MachineInfo m, ReadHostFingerprint(options_.roots));
    m.id = kMachineId;
    m.provider = "local";
    m.type = "local";
    m.state = "running";
    cached_ = std::move(m);
  }
  return *cached_;
}

Result<std::vector<MachineInfo>> LocalProvisioner::Create(const MachineRequest& request) {
  if (request.count != 1) {
    return InvalidArgumentError("local:// is this one host; ask for count 1, not " +
                                std::to_string(request.count));
  }
  if (request.type.empty() && !request.requirements.empty()) {
    BITFUSION_ASSIGN_OR_RETURN(auto types, Types());
    BITFUSION_RETURN_IF_ERROR(ResolveMachineType(types, request.requirements).status());
  }
  if (!request.type.empty() && request.type != "local") {
    return InvalidArgumentError("local:// offers only machine type \"local\", not \"" +
                                request.type + "\"");
  }
  BITFUSION_ASSIGN_OR_RETURN(MachineInfo m, Fingerprint());
  m.created_ns = WallNowNs();
  m.running_ns = m.created_ns;  // it already runs
  for (const auto& [key, value] : request.labels) m.labels[key] = value;
  return std::vector<MachineInfo>{m};
}

Result<MachineInfo> LocalProvisioner::WaitReady(const std::string& id, Deadline) {
  if (id != kMachineId)
    return NotFoundError("local:// has one machine, \"local\", not \"" + id + "\"");
  BITFUSION_ASSIGN_OR_RETURN(MachineInfo m, Fingerprint());
  m.ready_ns = WallNowNs();
  m.running_ns = m.ready_ns;
  return m;
}

Result<std::vector<MachineInfo>> LocalProvisioner::List() {
  BITFUSION_ASSIGN_OR_RETURN(MachineInfo m, Fingerprint());
  return std::vector<MachineInfo>{m};
}

Status LocalProvisioner::Destroy(const std::vector<std::string>& ids) {
  for (const auto& id : ids) {
    if (id != kMachineId) return NotFoundError("local:// has no machine \"" + id + "\"");
  }
  return Status::OK();
}

Status LocalProvisioner::Keep(const std::vector<std::string>& ids) {
  return Destroy(ids);  // this host carries no tags: nothing to hand over, only ids to check
}

Result<std::vector<MachineType>> LocalProvisioner::Types() {
  BITFUSION_ASSIGN_OR_RETURN(MachineInfo m, Fingerprint());
  MachineType type;
  type.name = "local";
  type.vcpus = m.cpu.threads;
  type.memory_bytes = m.memory_bytes;
  type.accelerators = m.accelerators;
  return std::vector<MachineType>{type};
}

BITFUSION_REGISTER(Provisioner, "local", LocalProvisionerOptions, LocalProvisioner);

}  // namespace bitfusion
