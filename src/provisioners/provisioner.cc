#include "bitfusion/provisioner.h"

#include "bitfusion/registry.h"

namespace bitfusion {

Provisioner::~Provisioner() = default;

Result<std::shared_ptr<Provisioner>> ProvisionerFromUri(std::string_view uri,
                                                        const BackendContext& context) {
  return Registry<Provisioner>::Instance().Make(uri, context);
}

}  // namespace bitfusion
