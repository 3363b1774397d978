#include "bitfusion/device_allocator.h"

#include "bitfusion/registry.h"

namespace bitfusion {

DeviceLease::~DeviceLease() = default;
DeviceAllocator::~DeviceAllocator() = default;

Result<std::shared_ptr<DeviceAllocator>> DeviceAllocatorFromUri(std::string_view uri,
                                                                const BackendContext& context) {
  return Registry<DeviceAllocator>::Instance().Make(uri, context);
}

void ContainerEdits::ApplyTo(ContainerSpec& spec) const {
  spec.devices.insert(spec.devices.end(), devices.begin(), devices.end());
  spec.device_requests.insert(spec.device_requests.end(), device_requests.begin(),
                              device_requests.end());
  spec.cdi_devices.insert(spec.cdi_devices.end(), cdi_devices.begin(), cdi_devices.end());
  spec.device_cgroup_rules.insert(spec.device_cgroup_rules.end(), device_cgroup_rules.begin(),
                                  device_cgroup_rules.end());
  spec.mounts.insert(spec.mounts.end(), mounts.begin(), mounts.end());
  for (const auto& [key, value] : env) spec.env[key] = value;
}

}  // namespace bitfusion
