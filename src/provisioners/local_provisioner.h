// local:// — this host as a machine. Create and WaitReady hand out this host with its
// fingerprint; Destroy releases it without shutting anything down; Types lists one type,
// "local", with this host's CPUs, memory and accelerators.
#pragma once

#include <memory>
#include <mutex>
#include <optional>

#include "bitfusion/provisioner.h"
#include "bitfusion/uri.h"
#include "provisioners/host_fingerprint.h"

namespace bitfusion {

struct LocalProvisionerOptions {
  /// Where to read the fingerprint; recorded trees make tests independent of this machine.
  FingerprintRoots roots;

  /// local://?proc_root=/proc&sys_root=/sys&os_release=/etc/os-release
  static Result<LocalProvisionerOptions> FromUri(const Uri& uri);
};

class LocalProvisioner final : public Provisioner {
 public:
  static constexpr const char* kMachineId = "local";

  static Result<std::shared_ptr<LocalProvisioner>> Make(const LocalProvisionerOptions& options);

  /// Only count 1 and type "" or "local"; returns this host, running.
  Result<std::vector<MachineInfo>> Create(const MachineRequest& request) override;
  Result<MachineInfo> WaitReady(const std::string& id, Deadline deadline) override;
  Result<std::vector<MachineInfo>> List() override;
  /// "local" succeeds and leaves this host running; other ids are NotFound.
  Status Destroy(const std::vector<std::string>& ids) override;
  Status Keep(const std::vector<std::string>& ids) override;
  Result<std::vector<MachineType>> Types() override;

 private:
  explicit LocalProvisioner(const LocalProvisionerOptions& options) : options_(options) {}
  Result<MachineInfo> Fingerprint();

  const LocalProvisionerOptions options_;
  std::mutex mu_;
  std::optional<MachineInfo> cached_;  // hardware does not change while we run
};

}  // namespace bitfusion
