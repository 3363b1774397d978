#include "devices/null_allocator.h"

#include "bitfusion/registry.h"

namespace bitfusion {
namespace {
class EmptyLease final : public DeviceLease {
 public:
  const std::vector<Device>& devices() const override { return devices_; }

 private:
  std::vector<Device> devices_;
};
}  // namespace

Result<NullAllocatorOptions> NullAllocatorOptions::FromUri(const Uri& uri) {
  BITFUSION_RETURN_IF_ERROR(uri.CheckQueryKeys({}));
  return NullAllocatorOptions{};
}

Result<std::shared_ptr<NullAllocator>> NullAllocator::Make(const NullAllocatorOptions&) {
  return std::make_shared<NullAllocator>();
}

Result<std::vector<Device>> NullAllocator::Discover() { return std::vector<Device>{}; }

Result<std::unique_ptr<DeviceLease>> NullAllocator::Acquire(const DeviceRequest& request,
                                                            Deadline) {
  if (request.count < 0) return InvalidArgumentError("device request count must not be negative");
  if (request.count > 0) {
    return ResourceExhaustedError("asked for " + std::to_string(request.count) +
                                  " device(s) from null://, which has none; use local:// to "
                                  "lease this host's accelerators");
  }
  return std::unique_ptr<DeviceLease>(new EmptyLease());
}

Result<ContainerEdits> NullAllocator::EditsFor(const DeviceLease&, const RunnerCapabilities&) {
  return ContainerEdits{};
}

BITFUSION_REGISTER(DeviceAllocator, "null", NullAllocatorOptions, NullAllocator);

}  // namespace bitfusion
