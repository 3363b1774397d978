// null:// — hands out placeholder machines kept in memory: no hardware, nothing to reach. For
// tests and dry runs of code written against Provisioner.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "bitfusion/provisioner.h"
#include "bitfusion/uri.h"

namespace bitfusion {

struct NullProvisionerOptions {
  static Result<NullProvisionerOptions> FromUri(const Uri& uri);
};

class NullProvisioner final : public Provisioner {
 public:
  static Result<std::shared_ptr<NullProvisioner>> Make(const NullProvisionerOptions& options);

  Result<std::vector<MachineInfo>> Create(const MachineRequest& request) override;
  Result<MachineInfo> WaitReady(const std::string& id, Deadline deadline) override;
  Result<std::vector<MachineInfo>> List() override;
  Status Destroy(const std::vector<std::string>& ids) override;
  Status Keep(const std::vector<std::string>& ids) override;
  Result<std::vector<MachineType>> Types() override;

 private:
  std::mutex mu_;
  int next_id_ = 0;
  std::map<std::string, MachineInfo> machines_;
  std::set<std::string> gone_;  // destroyed ids
};

}  // namespace bitfusion
