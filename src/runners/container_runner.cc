#include "bitfusion/container_runner.h"

#include "bitfusion/registry.h"

namespace bitfusion {

Container::~Container() = default;
ContainerRunner::~ContainerRunner() = default;

Result<std::shared_ptr<ContainerRunner>> ContainerRunnerFromUri(std::string_view uri) {
  return Registry<ContainerRunner>::Instance().Make(uri);
}

}  // namespace bitfusion
