#include "bitfusion/provisioner.h"

#include "bitfusion/registry.h"

namespace bitfusion {

Provisioner::~Provisioner() = default;

Result<std::shared_ptr<Provisioner>> ProvisionerFromUri(std::string_view uri) {
  return Registry<Provisioner>::Instance().Make(uri);
}

}  // namespace bitfusion
