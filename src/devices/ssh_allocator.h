// sysfs+ssh:// — the PCI accelerators of another machine, found and leased as local:// finds
// and leases this host's, for the runs a plan makes there.
//
//   sysfs+ssh://USER@HOST[:PORT]?identity=KEY&ssh_config=FILE      that machine's /sys, /dev
//   sysfs+ssh://USER@HOST?root=/srv/trees/dgx-a100                  a recorded tree there
//
// At Make one script run over SSH (the machine's shared master connection, net/ssh_uri.h for
// the login keys) prints the PCI functions' attributes and driver links, /proc/driver/nvidia
// and the accelerator device nodes' names; they are copied into a private tree here
// (net/remote_tree.h) and scanned by the same discovery as sysfs:///ROOT, with no vendor
// library (this host's would describe this host). Nothing is installed or left on the machine.
//
// Leases are the same per-device lock files, in a directory of their own for that machine
// (DefaultLockDir()/ssh-HOST-PORT, or ?lock_dir=): they exclude the holders that share this
// host's lock directory. The machine itself is a plan's through its provisioner's lease, which
// keeps other plans off it.
//
// What a lease gives a runner on that machine (EditsFor): environment for commands run there
// (process+ssh: CUDA_VISIBLE_DEVICES and the rest, as local:// gives process://), and for its
// containers an NVIDIA device request (Docker's --gpus) when its engine has the NVIDIA runtime,
// and the other devices' nodes (AMD's /dev/kfd and render node, an FPGA's, as local:// maps
// them) at their paths on the machine, which that machine's engine opens. An NVIDIA GPU for an
// engine without the NVIDIA runtime is FailedPrecondition saying what to install (its nodes alone
// would lack the driver's libraries); the machine's CDI specs are not read (nodes instead).
//
// Options: the SSH keys (identity, ssh_config, ssh_option, connect_timeout, runtime_dir), root
// (on the machine, default /), lock_dir, run_id, poll_interval.
#pragma once

#include <memory>
#include <string>

#include "bitfusion/device_allocator.h"
#include "bitfusion/uri.h"
#include "devices/sysfs_allocator.h"
#include "net/remote_tree.h"
#include "net/ssh_uri.h"

namespace bitfusion {

struct SshAllocatorOptions {
  internal::SshLogin login;
  std::string remote_root = "/";  ///< ?root=: where the machine's sys/, dev/ and proc/ are
  /// lock_dir (empty = DefaultLockDir()/ssh-HOST-PORT), run_id, poll_interval, on_event; the
  /// root and the vendor libraries are set by Make.
  SysfsAllocatorOptions leases;

  static Result<SshAllocatorOptions> FromUri(const Uri& uri, const BackendContext& context = {});
};

/// Concurrency: as SysfsAllocator.
class SshAllocator final : public DeviceAllocator {
 public:
  /// Logs in and reads the machine's devices; Unavailable naming the machine when it cannot.
  static Result<std::shared_ptr<SshAllocator>> Make(const SshAllocatorOptions& options);

  /// The devices as they were read at Make, with who holds them now.
  Result<std::vector<Device>> Discover() override;
  Result<std::unique_ptr<DeviceLease>> Acquire(const DeviceRequest& request,
                                               Deadline deadline) override;
  Result<ContainerEdits> EditsFor(const DeviceLease& lease,
                                  const RunnerCapabilities& capabilities) override;

 private:
  SshAllocator(std::unique_ptr<internal::RemoteTree> tree, std::shared_ptr<SysfsAllocator> local,
               std::string where, std::string remote_root)
      : tree_(std::move(tree)),
        local_(std::move(local)),
        where_(std::move(where)),
        remote_root_(std::move(remote_root)) {}

  std::unique_ptr<internal::RemoteTree> tree_;  // the copy the local allocator reads
  std::shared_ptr<SysfsAllocator> local_;
  std::string where_;        // "machine root@10.0.0.5", for messages
  std::string remote_root_;  // ?root= on the machine
};

}  // namespace bitfusion
