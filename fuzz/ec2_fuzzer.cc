// EC2 Query API answers as ec2:// reads them (internal/ec2_internal.h): the error body's code
// and message, then the XML document (boost property_tree's read_xml) and the part of it the
// first byte picks: DescribeInstances, DescribeInstanceTypes, DescribeImages or RunInstances.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "provisioners/ec2_internal.h"

using namespace bitfusion;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  volatile std::size_t sink = 0;
  const internal::Ec2ErrorBody error = internal::ParseEc2Error(body);
  sink = sink + error.code.size() + error.message.size();
  auto xml = internal::ParseEc2Xml(body);
  if (!xml) return 0;
  switch (data[0] % 4) {
    case 0:
      for (const auto& m : internal::Ec2Instances(*xml)) {
        sink = sink + m.id.size() + m.labels.size() + static_cast<std::size_t>(m.created_ns & 1);
      }
      break;
    case 1:
      for (const auto& t : internal::Ec2InstanceTypes(*xml)) {
        sink = sink + t.name.size() + t.accelerators.size() + static_cast<std::size_t>(t.vcpus);
      }
      break;
    case 2: sink = sink + internal::Ec2NewestImageId(*xml).size(); break;
    default:
      for (const auto& m : internal::Ec2LaunchedInstances(*xml)) sink = sink + m.id.size();
      break;
  }
  return 0;
}
