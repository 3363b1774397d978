#include "runners/container_spec_checks.h"

#include <algorithm>

#include "bitfusion/ownership.h"

namespace bitfusion::internal {

Status CheckEnvironmentNames(const std::map<std::string, std::string>& env) {
  for (const auto& [key, value] : env) {
    if (key.empty() || key.find('=') != std::string::npos || key.find('\0') != std::string::npos) {
      return InvalidArgumentError("environment variable name \"" + key + "\" is invalid");
    }
  }
  return Status::OK();
}

Result<std::vector<std::string>> HostCommandArgv(const ContainerSpec& spec,
                                                 const std::string& scheme) {
  if (!spec.image.empty()) {
    return InvalidArgumentError(scheme + " runs host commands and has no images (asked for \"" +
                                spec.image + "\"); use a docker:// runner for images");
  }
  std::vector<std::string> unsupported;
  if (!spec.mounts.empty()) unsupported.push_back("mounts");
  if (!spec.device_requests.empty()) unsupported.push_back("device_requests");
  if (!spec.cdi_devices.empty()) unsupported.push_back("cdi_devices");
  if (!spec.device_cgroup_rules.empty()) unsupported.push_back("device_cgroup_rules");
  if (!spec.user.empty()) unsupported.push_back("user");
  if (spec.cpus != 0) unsupported.push_back("cpus");
  if (spec.memory_bytes != 0) unsupported.push_back("memory_bytes");
  if (spec.shm_bytes != 0) unsupported.push_back("shm_bytes");
  if (!spec.health_check.command.empty()) unsupported.push_back("health_check");
  if (!spec.network_mode.empty() && spec.network_mode != "host") {
    unsupported.push_back("network_mode");
  }
  if (!unsupported.empty()) {
    std::string list;
    for (const auto& f : unsupported) list += (list.empty() ? "" : ", ") + f;
    return InvalidArgumentError(scheme + " cannot honour " + list +
                                " (they need a container engine); drop them or use docker://");
  }
  // A host process already sees host devices; only identity mappings make sense.
  for (const auto& d : spec.devices) {
    if (!d.path_in_container.empty() && d.path_in_container != d.path_on_host) {
      return InvalidArgumentError(scheme + " cannot remap device " + d.path_on_host + " to " +
                                  d.path_in_container);
    }
  }
  std::vector<std::string> argv = spec.entrypoint;
  argv.insert(argv.end(), spec.command.begin(), spec.command.end());
  if (argv.empty() || argv[0].empty()) {
    return InvalidArgumentError("container spec has no command; set command (argv) to run");
  }
  return argv;
}

Status CheckTimeout(std::int64_t timeout_ns) {
  if (timeout_ns < 0) return InvalidArgumentError("timeout must not be negative");
  return Status::OK();
}

Labels SpecOwnerLabels(const ContainerSpec& spec, const std::string& default_run_id,
                       std::chrono::nanoseconds ttl) {
  using namespace std::chrono_literals;
  if (spec.timeout_ns > 0)
    ttl = std::max<std::chrono::nanoseconds>(ttl, spec.timeout_ns * 1ns + 10min);
  const auto run = spec.labels.find("run_id");
  Labels labels = spec.labels;
  for (auto& [k, v] :
       OwnerLabels(run != spec.labels.end() ? run->second : default_run_id,
                   std::max<std::int64_t>(
                       1, std::chrono::duration_cast<std::chrono::seconds>(ttl).count()))) {
    labels[k] = std::move(v);
  }
  return labels;
}

}  // namespace bitfusion::internal
