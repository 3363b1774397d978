// Where a plan's programs and images come from: bundled benchmark programs next to the CLI or
// in PATH, paths relative to the plan, images built from the plan's own recipes when the engine
// lacks them (or holds an older build), and the bitfusion-probe binary.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "bitfusion/container_runner.h"
#include "bitfusion/experiment.h"

namespace bitfusion::internal {

/// A bundled program ("bf-stream") next to the CLI first, then in PATH; or a path (relative to
/// the plan). `field` names where it was asked for, for the error.
Result<std::string> LocateProgram(const PlanSpec& plan, const std::string& program,
                                  const std::string& field, const ExperimentOptions& options);

/// The argv of benchmark `index`: its `command`, or its `program` located (inside the image
/// for container runners) followed by its `args`.
Result<std::vector<std::string>> ResolveCommand(const PlanSpec& plan, const BenchmarkSpec& b,
                                                std::size_t index,
                                                const ExperimentOptions& options);

/// Builds the plan's recipe for image `ref` when the engine lacks it or holds a build of other
/// files (a label on the image holds the SHA-256 of its context).
Status BuildPlanImage(ContainerRunner& runner, const PlanSpec& plan, const std::string& ref,
                      const ImageRecipe& recipe, const ExperimentOptions& options);

/// bitfusion-probe: bundled next to the CLI, else where FindProbe() finds it.
Result<std::string> LocateProbe(const PlanSpec& plan, const ExperimentOptions& options);

}  // namespace bitfusion::internal
