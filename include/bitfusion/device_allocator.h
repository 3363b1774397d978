// DeviceAllocator: finds accelerators, leases them, and turns a lease into container settings.
#pragma once

#include <memory>
#include <string_view>
#include <vector>

#include "bitfusion/clock.h"
#include "bitfusion/container_runner.h"
#include "bitfusion/device.h"
#include "bitfusion/export.h"
#include "bitfusion/registry.h"
#include "bitfusion/status.h"

namespace bitfusion {

/// Devices held by one holder. Destroying the lease releases them.
class BITFUSION_EXPORT DeviceLease {
 public:
  virtual ~DeviceLease();
  virtual const std::vector<Device>& devices() const = 0;
};

/// Backends: local:// (this host's PCI accelerators, from sysfs and /dev, enriched by NVML,
/// ROCm SMI and XRT when those libraries are installed), sysfs:///ROOT (the same read from a
/// recorded tree), sysfs+ssh://USER@HOST (another machine's, read over SSH), null:// (no
/// devices).
///
/// Concurrency: all methods may be called from several threads; leases are exclusive across
/// processes on one host as well.
class BITFUSION_EXPORT DeviceAllocator {
 public:
  virtual ~DeviceAllocator();

  /// Every device this allocator can lease, held or not.
  virtual Result<std::vector<Device>> Discover() = 0;

  /// Leases devices matching `request`, waiting until `deadline` for busy ones. A request that
  /// cannot be met says what was asked, what is free and who holds the rest.
  virtual Result<std::unique_ptr<DeviceLease>> Acquire(const DeviceRequest& request,
                                                       Deadline deadline) = 0;

  /// What a container (or process) needs to use the leased devices, in the form the runner
  /// with `capabilities` accepts.
  virtual Result<ContainerEdits> EditsFor(const DeviceLease& lease,
                                          const RunnerCapabilities& capabilities) = 0;
};

/// "local://", "sysfs:///ROOT", "sysfs+ssh://USER@HOST" (another machine's), "null://". The
/// context's run id is recorded as the holder of every lease, and leases and releases are published
/// to its on_event.
BITFUSION_EXPORT Result<std::shared_ptr<DeviceAllocator>> DeviceAllocatorFromUri(
    std::string_view uri, const BackendContext& context = {});

}  // namespace bitfusion
