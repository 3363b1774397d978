// Identity answers for openstack:// and rackspace://: ParseKeystoneV3Token (Keystone v3's token
// and service catalogue), ParseRackspaceV2Token (Rackspace identity v2.0) and
// ParseOpenStackTime. The first byte picks the interface asked for.
#include <cstddef>
#include <cstdint>
#include <string>

#include "provisioners/openstack_identity_internal.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  static const char* const kInterfaces[] = {"public", "internal", "admin"};
  const std::string interface = kInterfaces[data[0] % 3];
  const std::string body(reinterpret_cast<const char*>(data) + 1, size - 1);
  (void)bitfusion::internal::ParseKeystoneV3Token(body, "gAAAAAfuzz", "RegionOne", interface);
  (void)bitfusion::internal::ParseRackspaceV2Token(body, "DFW");
  (void)bitfusion::internal::ParseOpenStackTime(body);
  return 0;
}
