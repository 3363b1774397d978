#include "bitfusion/provisioner.h"

#include "bitfusion/registry.h"

namespace bitfusion {

Provisioner::~Provisioner() = default;

Status Provisioner::Keep(const std::vector<std::string>&) {
  return UnimplementedError("this provisioner cannot hand machines over (Keep)");
}

Result<MachineReapReport> Provisioner::Reap(const ReapPolicy& policy) {
  BITFUSION_ASSIGN_OR_RETURN(auto machines, List());
  const std::int64_t now_s = WallNowNs() / 1'000'000'000;
  MachineReapReport report;
  for (const auto& m : machines) {
    if (m.state == "terminated" || m.state == "shutting-down") continue;
    const std::string why = ReapReason(m.labels, policy, now_s);
    if (why.empty()) continue;
    const std::string line = m.id + " " + m.type + " (" + why + ")";
    if (!policy.dry_run) {
      if (Status s = Destroy({m.id}); !s.ok()) {
        report.errors.push_back(line + ": " + s.message());
        continue;
      }
    }
    report.machines.push_back(line);
  }
  return report;
}

Result<std::shared_ptr<Provisioner>> ProvisionerFromUri(std::string_view uri,
                                                        const BackendContext& context) {
  return Registry<Provisioner>::Instance().Make(uri, context);
}

}  // namespace bitfusion
