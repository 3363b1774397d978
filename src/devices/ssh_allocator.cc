#include "devices/ssh_allocator.h"

#include <algorithm>
#include <cctype>

#include "bitfusion/registry.h"
#include "core/shell_quote.h"
#include "devices/device_lease.h"
#include "net/ssh_session.h"

namespace bitfusion {

namespace {

using namespace std::chrono_literals;

// Prints what PCI discovery reads of the machine under R (its root): each function's
// attributes and driver link, the class devices below it (DRM, accel, FPGA management) with
// their uevent and dev files, /proc/driver/nvidia, and the names of the accelerator device
// nodes. Paths are printed as the machine's own ("/sys/..."), read under R.
std::string DeviceScript(const std::string& root) {
  std::string r = root;
  while (r.size() > 1 && r.back() == '/') r.pop_back();
  if (r == "/") r.clear();
  return "R=" + ShellQuote(r) + R"sh(
f() { [ -r "$R$1" ] && [ -f "$R$1" ] && { printf '\n@@BF-FILE %s\n' "$1"; cat "$R$1" 2>/dev/null; }; }
for d in "$R"/sys/bus/pci/devices/*; do
  [ -e "$d" ] || continue
  p=/sys/bus/pci/devices/${d##*/}
  printf '\n@@BF-DIR %s\n' "$p"
  for x in vendor device class subsystem_vendor subsystem_device numa_node current_link_speed \
      current_link_width iommu_group mem_info_vram_total product_name unique_id; do f "$p/$x"; done
  [ -L "$d/driver" ] && printf '\n@@BF-LINK %s %s\n' "$p/driver" "$(readlink "$d/driver")"
  for c in "$d"/drm/* "$d"/accel/* "$d"/*/xclmgmt* "$d"/fpga_region/*/dfl-*; do
    [ -e "$c/dev" ] || continue
    q=${c#"$R"}
    f "$q/dev"; f "$q/uevent"
  done
  f "$p/instance"
done
f /proc/driver/nvidia/version
for g in "$R"/proc/driver/nvidia/gpus/*; do [ -e "$g" ] && f "/proc/driver/nvidia/gpus/${g##*/}/information"; done
for n in "$R"/dev/nvidia* "$R"/dev/nvidia-caps/* "$R"/dev/kfd "$R"/dev/dri/* "$R"/dev/accel/* \
    "$R"/dev/xclmgmt* "$R"/dev/dfl-* "$R"/dev/intel-fpga-*; do
  [ -e "$n" ] && [ ! -d "$n" ] && printf '\n@@BF-FILE %s\n' "${n#"$R"}"
done
printf '\n@@BF-END\n'
)sh";
}

// One directory per machine (and per recorded tree there, whose PCI addresses are not the
// machine's own devices).
std::string LockDirName(const SshTarget& t, const std::string& root) {
  std::string name = "ssh-" + t.host + "-" + std::to_string(t.port == 0 ? 22 : t.port);
  if (root != "/") name += root;
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.') c = '_';
  }
  return name;
}

}  // namespace

Result<SshAllocatorOptions> SshAllocatorOptions::FromUri(const Uri& uri,
                                                         const BackendContext& context) {
  std::vector<std::string_view> keys = internal::kSshUriKeys;
  for (const char* k : {"root", "lock_dir", "run_id", "poll_interval"}) keys.push_back(k);
  BITFUSION_RETURN_IF_ERROR(uri.CheckQueryKeys(keys));
  SshAllocatorOptions o;
  BITFUSION_ASSIGN_OR_RETURN(o.login, internal::SshLoginFromUri(uri, "sysfs+ssh"));
  o.remote_root = uri.Query("root").value_or("/");
  if (o.remote_root.empty() || o.remote_root.front() != '/') {
    return InvalidArgumentError(
        "sysfs+ssh://: root must be an absolute path on the machine, not \"" + o.remote_root +
        "\"");
  }
  // What the local reader takes from the URI: sysfs:/// with the same keys, minus the SSH ones.
  Uri local;
  local.scheme = "sysfs";
  local.path = "/";
  for (const char* k : {"lock_dir", "run_id", "poll_interval"}) {
    if (auto v = uri.Query(k)) local.query.emplace_back(k, *v);
  }
  BITFUSION_ASSIGN_OR_RETURN(o.leases, SysfsAllocatorOptions::FromUri(local, context));
  return o;
}

Result<std::shared_ptr<SshAllocator>> SshAllocator::Make(const SshAllocatorOptions& options) {
  const std::string where = "machine " + options.login.target.ToString();
  auto session = SshSession::Shared(options.login.target, options.login.session);
  if (Status s = session->Connect(); !s.ok()) {
    return s.WithContext("reading the devices of " + where);
  }
  BITFUSION_ASSIGN_OR_RETURN(SshResult r,
                             session->RunScript(DeviceScript(options.remote_root), 60s));
  std::vector<std::vector<std::string>> headers;
  BITFUSION_ASSIGN_OR_RETURN(
      auto tree, internal::RemoteTree::Copy(r.out, {"/sys/", "/proc/driver/", "/dev/"}, headers));
  const bool ended =
      std::any_of(headers.begin(), headers.end(), [](const auto& h) { return h[0] == "END"; });
  if (!ended) {
    return UnavailableError("reading the devices of " + where +
                            " over SSH did not finish (status " + std::to_string(r.exit_status) +
                            (r.err.empty() ? "" : ": " + r.err) +
                            "); check that a POSIX shell runs commands there");
  }
  SysfsAllocatorOptions local = options.leases;
  local.root = tree->root().string();
  local.enrich = false;  // this host's vendor libraries do not describe that machine
  local.nvml_library.clear();
  local.rocm_smi_library.clear();
  local.xrt_library.clear();
  if (local.lock_dir.empty()) {
    local.lock_dir =
        (DefaultLockDir() / LockDirName(options.login.target, options.remote_root)).string();
  }
  BITFUSION_ASSIGN_OR_RETURN(auto allocator, SysfsAllocator::Make(local));
  return std::shared_ptr<SshAllocator>(
      new SshAllocator(std::move(tree), std::move(allocator), where, options.remote_root));
}

Result<std::vector<Device>> SshAllocator::Discover() { return local_->Discover(); }

Result<std::unique_ptr<DeviceLease>> SshAllocator::Acquire(const DeviceRequest& request,
                                                           Deadline deadline) {
  auto lease = local_->Acquire(request, deadline);
  if (!lease) return lease.error().WithContext(where_);
  return lease;
}

Result<ContainerEdits> SshAllocator::EditsFor(const DeviceLease& lease,
                                              const RunnerCapabilities& capabilities) {
  if (!capabilities.containers) return local_->EditsFor(lease, capabilities);
  for (const Device& d : lease.devices()) {
    if (d.vendor != "NVIDIA" || capabilities.gpu_runtime) continue;
    // Its device nodes alone would not do: the runtime also brings the driver's libraries.
    return FailedPreconditionError(
        "device " + d.id + " (" + d.vendor + " " + d.model + ") of " + where_ +
        " goes into a container there through the NVIDIA runtime, and that engine has "
        "none (docker info: Runtimes); install the NVIDIA Container Toolkit there "
        "(nvidia-ctk runtime configure --runtime=docker) and restart dockerd");
  }
  // The machine's CDI specs are not in the copy: its devices go in by their nodes.
  RunnerCapabilities caps = capabilities;
  caps.cdi = false;
  BITFUSION_ASSIGN_OR_RETURN(ContainerEdits edits, local_->EditsFor(lease, caps));
  // The nodes were found in the copy here; the machine's engine opens them at its own paths.
  const std::string copy = tree_->root().string();
  std::string root = remote_root_;
  while (!root.empty() && root.back() == '/') root.pop_back();
  for (DeviceMapping& m : edits.devices) {
    if (m.path_on_host.rfind(copy + "/", 0) != 0) {
      return InternalError("sysfs+ssh: device node " + m.path_on_host + " of " + where_ +
                           " is not in the copy of its tree");
    }
    m.path_on_host = root + m.path_on_host.substr(copy.size());
  }
  return edits;
}

BITFUSION_REGISTER(DeviceAllocator, "sysfs+ssh", SshAllocatorOptions, SshAllocator);

}  // namespace bitfusion
