// The provisioner conformance suite (tests/conformance/provisioner_conformance.h) for null://
// and local:// (this host: only what applies to a machine that already exists).
#include "conformance/provisioner_conformance.h"

namespace bitfusion {
namespace {

INSTANTIATE_TEST_SUITE_P(
    Provisioners, ProvisionerConformanceTest,
    ::testing::Values(
        ProvisionerCase{"null", [] { return std::string("null://"); }, "", true, "null-999999", {}},
        ProvisionerCase{
            "local", [] { return std::string("local://"); }, "", false, "i-0123456789abcdef0", {}}),
    [](const auto& info) { return info.param.name; });

INSTANTIATE_TEST_SUITE_P(
    Provisioners, DisposableProvisionerConformanceTest,
    ::testing::Values(ProvisionerCase{
        "null", [] { return std::string("null://"); }, "", true, "null-999999", {}}),
    [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace bitfusion
