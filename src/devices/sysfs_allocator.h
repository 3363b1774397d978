// local:// and sysfs:///ROOT — accelerators found on the PCI bus (devices/pci_discovery.h),
// enriched by NVML, ROCm SMI and XRT when they are installed, leased with flock(2) on per-device
// lock files (devices/device_lease.h), and turned into the container settings each runner
// accepts.
//
//   local://                          this host (root "/")
//   local://?lock_dir=/var/lock/bf   locks elsewhere
//   sysfs:///srv/trees/dgx-a100       a recorded tree: ROOT/sys, ROOT/dev, ROOT/proc, ROOT/etc/cdi
//
// Options (query keys): lock_dir, run_id, enrich (true), nvml, rocm_smi, xrt (library
// sonames or paths), poll_interval ("100ms").
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "bitfusion/device_allocator.h"
#include "bitfusion/event.h"
#include "bitfusion/uri.h"

namespace bitfusion {

struct SysfsAllocatorOptions {
  /// Filesystem root holding sys/, dev/, proc/ and etc/cdi, var/run/cdi: "/" for this host.
  std::string root = "/";
  /// Where per-device lock files live; empty = DefaultLockDir() for "/", and a subdirectory
  /// of it named after the root for recorded trees (so they never collide with this host's).
  std::string lock_dir;
  /// Written into lock records, so refusals can name the run that holds a device.
  std::string run_id;
  /// Load the vendor libraries below when present; false = sysfs facts only.
  bool enrich = true;
  /// Soname or path of each vendor library; empty = not used. sysfs:// trees other than "/"
  /// start with all three empty (a recorded tree is not described by this host's libraries).
  std::string nvml_library = "libnvidia-ml.so.1";
  std::string rocm_smi_library = "librocm_smi64.so.1";  ///< also tried under /opt/rocm/lib
  std::string xrt_library = "libxrt_core.so.2";         ///< also tried under /opt/xilinx/xrt/lib
  /// How often a waiting Acquire looks again for freed devices.
  std::chrono::milliseconds poll_interval{100};
  /// Receives device.leased and device.released events, one per device, on the thread that
  /// acquires or releases; EventBus::Publisher() puts them on a bus. Empty = none.
  std::function<void(const Event&)> on_event;

  /// local://[?options] (root "/") or sysfs:///ABS/ROOT[?options]; unknown options are
  /// rejected with the list of known ones.
  /// The query keys above; the context's run id (when the URI names none) and event callback.
  static Result<SysfsAllocatorOptions> FromUri(const Uri& uri, const BackendContext& context = {});
};

/// See the top of this file. Concurrency: all methods may be called from several threads;
/// leases exclude each other across threads and processes (flock per open file description).
class SysfsAllocator final : public DeviceAllocator {
 public:
  /// NotFound when `root` does not exist; FailedPrecondition when no lock directory can be
  /// made.
  static Result<std::shared_ptr<SysfsAllocator>> Make(const SysfsAllocatorOptions& options);

  /// Scans again (sysfs, then the vendor libraries). Each device's properties["holders"] says
  /// who holds it now, if anyone.
  Result<std::vector<Device>> Discover() override;

  /// Leases `request.count` devices that match and satisfy the topology, taking free ones in
  /// PCI address order; waits until `deadline` for held ones. A request this host can never
  /// meet fails at once. Failures are ResourceExhausted and say what was asked, which devices
  /// match, which are free and who holds the rest.
  Result<std::unique_ptr<DeviceLease>> Acquire(const DeviceRequest& request,
                                               Deadline deadline) override;

  /// Per vendor, for the runner at hand:
  ///  - process:// and other runners without images: environment only —
  ///    CUDA_VISIBLE_DEVICES (UUIDs, else indices with CUDA_DEVICE_ORDER=PCI_BUS_ID),
  ///    ROCR_VISIBLE_DEVICES (rocm-smi indices) with HIP_VISIBLE_DEVICES (indices among those),
  ///    XILINX_VISIBLE_DEVICES;
  ///  - NVIDIA with a GPU runtime: a DeviceRequests entry (driver "nvidia", UUIDs or indices,
  ///    capabilities [["gpu"]]);
  ///  - CDI-capable engines, when the host's CDI specs name every leased device of a vendor:
  ///    those CDI names ("nvidia.com/gpu=0");
  ///  - otherwise explicit device mappings: the devices' own nodes plus the vendor's shared ones
  ///    (/dev/nvidiactl, /dev/nvidia-uvm*, /dev/kfd), with NVIDIA_VISIBLE_DEVICES or
  ///    XILINX_VISIBLE_DEVICES naming the leased devices.
  /// Every flavour sets BITFUSION_DEVICES to the leased ids. FailedPrecondition when a device
  /// would need a node that is missing.
  Result<ContainerEdits> EditsFor(const DeviceLease& lease,
                                  const RunnerCapabilities& capabilities) override;

  const std::filesystem::path& lock_dir() const { return lock_dir_; }
  const std::filesystem::path& root() const { return root_; }

 private:
  SysfsAllocator(SysfsAllocatorOptions options, std::filesystem::path lock_dir);
  Result<std::vector<Device>> Inventory();
  std::vector<Device> Scan();

  SysfsAllocatorOptions options_;
  std::filesystem::path root_;
  std::filesystem::path lock_dir_;
  std::string source_;  ///< URI-like name for events and messages
  std::mutex mu_;
  std::optional<std::vector<Device>> inventory_;  ///< guarded by mu_
};

}  // namespace bitfusion
