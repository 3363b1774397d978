#include "sinks/machine_identity.h"

#include "core/sha256.h"
#include "sinks/record_json.h"

namespace bitfusion::internal {

MachineIdentity IdentifyMachine(const MachineInfo& machine) {
  MachineInfo fingerprint = machine;
  fingerprint.address.clear();
  fingerprint.state.clear();
  fingerprint.labels.clear();
  fingerprint.ssh = SshEndpoint{};
  fingerprint.created_ns = 0;
  fingerprint.running_ns = 0;
  fingerprint.ssh_ready_ns = 0;
  fingerprint.ready_ns = 0;
  MachineIdentity out;
  out.fingerprint_json = MachineInfoJson(fingerprint);
  static const std::string no_machine_json = MachineInfoJson(MachineInfo{});
  if (out.fingerprint_json != no_machine_json) {
    const std::string& name = !machine.id.empty()         ? machine.id
                              : !machine.hostname.empty() ? machine.hostname
                                                          : std::string("machine");
    out.machine_id = name + "-" + Sha256Hex(out.fingerprint_json).substr(0, 16);
  }
  return out;
}

}  // namespace bitfusion::internal
