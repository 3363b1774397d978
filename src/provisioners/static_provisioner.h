// static://INVENTORY.json — machines that already exist (bare metal, office machines), listed
// in a JSON file:
//
//   {"hosts": [{"name": "fpga1", "address": "10.0.0.5", "port": 22, "user": "bench",
//               "key": "~/.ssh/id_ed25519", "labels": {"fpga": "xilinx-u250"}}]}
//
// Create leases free hosts from the inventory and Destroy hands them back; nothing is started
// or stopped. A lease is a record in <lease_dir>/host-<address>-<port>.lease carrying the
// ownership labels (ownership.h), written under the devices' flock (devices/device_lease.h), so
// leases hold across processes: a lease whose creating process is gone (kill -9 included) or
// whose expiry has passed is free again for the next Create, and Reap removes it. Keep hands a
// lease over to its run id, so `bitfusion machines up` can exit and `down` end it later.
//
// WaitReady logs in with the system ssh (net/ssh_session.h: BatchMode, ~/.ssh/config and
// known_hosts, one multiplexed master per host) and reads the host's fingerprint from its
// /proc, /sys and /etc/os-release with nothing installed there (the same fields as
// `bitfusion inventory`).
#pragma once

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "bitfusion/provisioner.h"
#include "bitfusion/uri.h"
#include "net/ssh_session.h"

namespace bitfusion {

/// One inventory entry.
struct StaticHost {
  std::string name;     ///< unique in the file; the machine id and its type
  std::string address;  ///< IP or DNS name (required)
  int port = 22;
  std::string user;           ///< empty = ssh's choice (~/.ssh/config, then the local user)
  std::filesystem::path key;  ///< absolute; empty = ssh's choice
  Labels labels;
};

/// Parses an inventory. `file` resolves relative key paths (against its directory) and names
/// the source in errors; `home` expands "~". Syntax errors give line and column; unknown keys,
/// missing or mistyped fields and duplicate names give the host's index and field.
Result<std::vector<StaticHost>> ParseInventory(std::string_view text,
                                               const std::filesystem::path& file,
                                               const std::string& home);

/// ParseInventory on the file's contents ($HOME for "~").
Result<std::vector<StaticHost>> ReadInventory(const std::filesystem::path& file);

/// The sh script WaitReady runs on a host to read its fingerprint (sh, cat, uname, readlink).
const char* RemoteFingerprintScript();

/// Fills a MachineInfo's fingerprint fields from the text the remote fingerprint script prints
/// (RemoteFingerprintScript()), through the same parsers as `bitfusion inventory`.
Result<MachineInfo> ParseRemoteFingerprint(const std::string& script_output);

struct StaticProvisionerOptions {
  std::filesystem::path inventory;  ///< the JSON file (static://PATH or static:///ABS/PATH)
  /// Lease records; empty = DefaultLockDir()'s sibling "hosts" (/run/bitfusion/hosts).
  std::filesystem::path lease_dir;
  std::filesystem::path ssh_config;      ///< ssh -F; empty = ~/.ssh/config
  std::vector<std::string> ssh_options;  ///< extra ssh -o KEY=VALUE, in order
  std::chrono::seconds connect_timeout{10};
  /// Where the SSH control sockets' private directories go; empty = $XDG_RUNTIME_DIR or /tmp.
  std::filesystem::path runtime_dir;

  /// static://inventory.json?lease_dir=DIR&ssh_config=FILE&ssh_option=K=V&connect_timeout=10
  /// &runtime_dir=DIR
  static Result<StaticProvisionerOptions> FromUri(const Uri& uri);
};

class StaticProvisioner final : public Provisioner {
 public:
  /// Reads and checks the inventory: a bad file is an error here, before anything is leased.
  static Result<std::shared_ptr<StaticProvisioner>> Make(const StaticProvisionerOptions& options);
  ~StaticProvisioner() override;

  /// Leases request.count free hosts whose name is request.type, or which carry the label
  /// request.type ("KEY=VALUE"), or (type empty) which satisfy request.requirements (judged on
  /// their fingerprints, read over SSH when not yet known). Each is checked reachable over
  /// SSH before Create returns; all or nothing.
  Result<std::vector<MachineInfo>> Create(const MachineRequest& request) override;
  Result<MachineInfo> WaitReady(const std::string& id, Deadline deadline) override;
  /// Leased hosts, with their lease's labels (owner, run id, expiry).
  Result<std::vector<MachineInfo>> List() override;
  /// Returns the hosts' leases; a host of the inventory that is not leased succeeds.
  Status Destroy(const std::vector<std::string>& ids) override;
  Status Keep(const std::vector<std::string>& ids) override;
  /// One type per host, named after it: its fingerprint once known, else its labels' facts.
  Result<std::vector<MachineType>> Types() override;

  /// The host's SSH session (its multiplexed master), made on first use. NotFound for a name
  /// that is not in the inventory.
  Result<std::shared_ptr<SshSession>> Session(const std::string& id);

 private:
  StaticProvisioner(StaticProvisionerOptions options, std::vector<StaticHost> hosts)
      : options_(std::move(options)), hosts_(std::move(hosts)) {}

  const StaticHost* Find(const std::string& id) const;
  MachineInfo Describe(const StaticHost& host) const;
  MachineType TypeOf(const StaticHost& host) const;
  Result<MachineInfo> Fingerprint(const StaticHost& host);

  const StaticProvisionerOptions options_;
  const std::vector<StaticHost> hosts_;
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<SshSession>> sessions_;  // by host name; guarded
  std::map<std::string, MachineInfo> fingerprints_;              // by host name; guarded
};

}  // namespace bitfusion
