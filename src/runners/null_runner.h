// null:// — runs nothing: Start succeeds, Wait reports exit 0 at once, there is no output. For
// dry runs of plans and tests of code written against ContainerRunner.
#pragma once

#include <memory>

#include "bitfusion/container_runner.h"
#include "bitfusion/uri.h"

namespace bitfusion {

struct NullRunnerOptions {
  static Result<NullRunnerOptions> FromUri(const Uri& uri);
};

class NullRunner final : public ContainerRunner {
 public:
  static Result<std::shared_ptr<NullRunner>> Make(const NullRunnerOptions& options);
  Result<RunnerCapabilities> Capabilities() override;
  Status EnsureImage(const std::string& image, Deadline deadline) override;
  Result<std::unique_ptr<Container>> Create(const ContainerSpec& spec) override;
};

}  // namespace bitfusion
