// null:// — an allocator with no devices. Requests for zero devices succeed with an empty
// lease; anything more is ResourceExhausted, saying so.
#pragma once

#include <memory>

#include "bitfusion/device_allocator.h"
#include "bitfusion/uri.h"

namespace bitfusion {

struct NullAllocatorOptions {
  static Result<NullAllocatorOptions> FromUri(const Uri& uri);
};

class NullAllocator final : public DeviceAllocator {
 public:
  static Result<std::shared_ptr<NullAllocator>> Make(const NullAllocatorOptions& options);
  Result<std::vector<Device>> Discover() override;
  Result<std::unique_ptr<DeviceLease>> Acquire(const DeviceRequest& request,
                                               Deadline deadline) override;
  Result<ContainerEdits> EditsFor(const DeviceLease& lease,
                                  const RunnerCapabilities& capabilities) override;
};

}  // namespace bitfusion
