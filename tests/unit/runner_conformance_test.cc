// The runner conformance suite (tests/conformance/runner_conformance.h) for process://.
#include "conformance/runner_conformance.h"

namespace bitfusion {
namespace {

INSTANTIATE_TEST_SUITE_P(Runners, RunnerConformanceTest,
                         ::testing::Values(RunnerCase{"process", "process://", ""}),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace bitfusion
