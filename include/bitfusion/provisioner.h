// Provisioner: brings machines up and down and describes their hardware.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "bitfusion/clock.h"
#include "bitfusion/export.h"
#include "bitfusion/machine.h"
#include "bitfusion/registry.h"
#include "bitfusion/status.h"

namespace bitfusion {

/// Backends: local:// (this host), null://; clouds and bare metal in their own files.
///
/// Concurrency: every method may be called from several threads at once.
/// Ownership: machines belong to the provider; Destroy() is the only call that ends one.
class BITFUSION_EXPORT Provisioner {
 public:
  virtual ~Provisioner();

  /// Asks for request.count machines. Returns as soon as the provider accepted the request;
  /// machines may still be "pending" (see WaitReady). created_ns is set on each.
  virtual Result<std::vector<MachineInfo>> Create(const MachineRequest& request) = 0;

  /// Blocks until machine `id` is usable or `deadline` passes (DeadlineExceeded). Returns it
  /// with its fingerprint and ready_ns filled in.
  virtual Result<MachineInfo> WaitReady(const std::string& id, Deadline deadline) = 0;

  /// Machines this provisioner currently knows (made by it or carrying its labels).
  virtual Result<std::vector<MachineInfo>> List() = 0;

  /// Ends the machines. Unknown ids are NotFound; already-gone ones succeed.
  virtual Status Destroy(const std::vector<std::string>& ids) = 0;

  /// The catalogue: machine types with their CPUs, memory and accelerators.
  virtual Result<std::vector<MachineType>> Types() = 0;
};

/// "local://", "null://", ... An unknown scheme lists the known ones.
BITFUSION_EXPORT Result<std::shared_ptr<Provisioner>> ProvisionerFromUri(
    std::string_view uri, const BackendContext& context = {});

}  // namespace bitfusion
