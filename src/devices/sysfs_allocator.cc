#include "devices/sysfs_allocator.h"

#include <algorithm>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "bitfusion/clock.h"
#include "bitfusion/log.h"
#include "bitfusion/registry.h"
#include "devices/cdi_spec.h"
#include "devices/device_lease.h"
#include "devices/device_request.h"
#include "devices/nvml_enricher.h"
#include "devices/pci_discovery.h"
#include "devices/rocm_smi_enricher.h"
#include "devices/xrt_enricher.h"

namespace bitfusion {
namespace {

namespace fs = std::filesystem;

constexpr const char* kDefaultRocmSmi = "librocm_smi64.so.1";
constexpr const char* kDefaultXrt = "libxrt_core.so.2";

std::string Join(const std::vector<std::string>& items, const std::string& sep = ",") {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : sep) + item;
  return out;
}

std::vector<std::string> Split(const std::string& list) {
  std::vector<std::string> out;
  std::istringstream in(list);
  for (std::string item; std::getline(in, item, ',');) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

std::string Property(const Device& d, const char* key) {
  auto it = d.properties.find(key);
  return it == d.properties.end() ? std::string() : it->second;
}

std::string Gib(std::uint64_t bytes) {
  std::ostringstream out;
  out.precision(3);
  out << static_cast<double>(bytes) / (1ull << 30) << " GiB";
  return out.str();
}

std::string Summary(const Device& d) {
  std::string out = d.id + " " + d.vendor + " " + d.model;
  std::vector<std::string> facts;
  if (d.memory_bytes > 0) facts.push_back(Gib(d.memory_bytes));
  if (d.numa_node >= 0) facts.push_back("NUMA " + std::to_string(d.numa_node));
  if (!Property(d, "pcie_switch").empty()) facts.push_back("switch " + Property(d, "pcie_switch"));
  if (!facts.empty()) out += " (" + Join(facts, ", ") + ")";
  return out;
}

// "8 NVIDIA gpu (NVIDIA A100-SXM4-40GB), 1 Xilinx fpga (10ee:5005)"
std::string InventorySummary(const std::vector<Device>& devices) {
  if (devices.empty()) return "no accelerators";
  std::map<std::string, int> groups;
  for (const auto& d : devices) {
    groups[d.vendor + " " + DeviceKindName(d.kind) + " (" + d.model + ")"]++;
  }
  std::vector<std::string> parts;
  for (const auto& [what, n] : groups) parts.push_back(std::to_string(n) + " " + what);
  return Join(parts, ", ");
}

// NVLink (NVIDIA) or xGMI (AMD) peers: the other ends of a device's active links.
std::set<std::string> LinkPeers(const Device& d) {
  std::set<std::string> out;
  for (const char* key : {"nvlink_peers", "xgmi_peers"}) {
    for (auto& p : Split(Property(d, key))) out.insert(p);
  }
  return out;
}

// Linked directly, or through a common far end that is not itself a leasable device — an
// NVSwitch, as on DGX/HGX boards where every GPU link goes to a switch.
bool Linked(const Device& a, const Device& b, const std::set<std::string>& device_addresses) {
  const auto pa = LinkPeers(a);
  const auto pb = LinkPeers(b);
  if (pa.count(b.pci_address) || pb.count(a.pci_address)) return true;
  for (const auto& p : pa) {
    if (pb.count(p) && !device_addresses.count(p)) return true;
  }
  return false;
}

bool Compatible(const std::vector<const Device*>& chosen, const Device& next,
                const DeviceRequest& r, const std::set<std::string>& device_addresses) {
  if (r.same_pcie_switch && r.count > 1 && Property(next, "pcie_switch").empty()) return false;
  for (const Device* c : chosen) {
    if (r.same_numa_node && c->numa_node != next.numa_node) return false;
    if (r.same_pcie_switch && Property(*c, "pcie_switch") != Property(next, "pcie_switch")) {
      return false;
    }
    if (r.nvlink_connected && !Linked(*c, next, device_addresses)) return false;
  }
  return true;
}

// Depth-first over candidates in order: `take` tries to get one (false = busy), `drop` gives
// it back when the branch fails. Devices are few (<= 16 on the largest boards) and the
// constraints prune early, so the search stays small.
bool Pick(const std::vector<const Device*>& candidates, const DeviceRequest& r,
          const std::set<std::string>& device_addresses, std::size_t start,
          std::vector<const Device*>& chosen, const std::function<bool(std::size_t)>& take,
          const std::function<void()>& drop) {
  if (static_cast<int>(chosen.size()) == r.count) return true;
  for (std::size_t i = start; i < candidates.size(); ++i) {
    if (candidates.size() - i < static_cast<std::size_t>(r.count) - chosen.size()) break;
    if (!Compatible(chosen, *candidates[i], r, device_addresses)) continue;
    if (!take(i)) continue;
    chosen.push_back(candidates[i]);
    if (Pick(candidates, r, device_addresses, i + 1, chosen, take, drop)) return true;
    chosen.pop_back();
    drop();
  }
  return false;
}

std::uint64_t Fnv1a(const std::string& s) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

class SysfsLease final : public DeviceLease {
 public:
  SysfsLease(std::vector<Device> devices, std::vector<std::unique_ptr<DeviceLock>> locks,
             std::function<void(const Event&)> on_event, std::string source, LeaseHolder holder)
      : devices_(std::move(devices)),
        locks_(std::move(locks)),
        on_event_(std::move(on_event)),
        source_(std::move(source)),
        holder_(std::move(holder)) {
    Emit(EventType::kDeviceLeased, "leased");
  }
  ~SysfsLease() override {
    locks_.clear();  // releases the flocks
    Emit(EventType::kDeviceReleased, "released");
  }
  const std::vector<Device>& devices() const override { return devices_; }

 private:
  void Emit(EventType type, const char* action) {
    if (!on_event_) return;
    for (const auto& d : devices_) {
      Event e;
      e.type = type;
      e.source = source_;
      e.subject = d.id;
      e.action = action;
      e.time_ns = WallNowNs();
      e.attributes = {{"vendor", d.vendor},
                      {"model", d.model},
                      {"pid", std::to_string(holder_.pid)},
                      {"host", holder_.host},
                      {"mode", holder_.exclusive ? "exclusive" : "shared"}};
      if (!holder_.run_id.empty()) e.attributes["run_id"] = holder_.run_id;
      try {
        on_event_(e);
      } catch (const std::exception& ex) {
        LogAt(LogLevel::kWarning, "device event handler threw: ", ex.what());
      }
    }
  }

  std::vector<Device> devices_;
  std::vector<std::unique_ptr<DeviceLock>> locks_;
  std::function<void(const Event&)> on_event_;
  std::string source_;
  LeaseHolder holder_;
};

// The CDI device that stands for exactly `d`: it carries all of d's own nodes and none of
// another device's (which rules out "all"). Index-named entries are preferred, as
// nvidia-ctk's default naming has them.
const CdiDevice* CdiFor(const Device& d, const std::vector<Device>& inventory,
                        const std::vector<CdiDevice>& cdi) {
  std::vector<std::string> own;
  for (const auto& n : d.device_nodes) {
    if (!IsSharedDeviceNode(n) && n.rfind("/dev/nvidia-caps/", 0) != 0) own.push_back(n);
  }
  if (own.empty()) return nullptr;
  std::set<std::string> others;
  for (const auto& e : inventory) {
    if (e.id == d.id) continue;
    for (const auto& n : e.device_nodes) {
      if (!IsSharedDeviceNode(n)) others.insert(n);
    }
  }
  const CdiDevice* best = nullptr;
  auto rank = [&](const CdiDevice& c) {
    if (c.name == std::to_string(d.index)) return 0;
    if (!Property(d, "uuid").empty() && c.name == Property(d, "uuid")) return 1;
    return 2;
  };
  for (const auto& c : cdi) {
    const std::set<std::string> nodes(c.device_nodes.begin(), c.device_nodes.end());
    const bool covers = std::all_of(own.begin(), own.end(),
                                    [&](const std::string& n) { return nodes.count(n) > 0; });
    const bool foreign = std::any_of(nodes.begin(), nodes.end(),
                                     [&](const std::string& n) { return others.count(n) > 0; });
    if (!covers || foreign) continue;
    if (best == nullptr || rank(c) < rank(*best)) best = &c;
  }
  return best;
}

}  // namespace

Result<SysfsAllocatorOptions> SysfsAllocatorOptions::FromUri(const Uri& uri,
                                                             const BackendContext& context) {
  BITFUSION_RETURN_IF_ERROR(uri.CheckQueryKeys(
      {"lock_dir", "run_id", "enrich", "nvml", "rocm_smi", "xrt", "poll_interval"}));
  SysfsAllocatorOptions o;
  if (uri.scheme == "local") {
    if (!uri.host.empty() || (!uri.path.empty() && uri.path != "/")) {
      return InvalidArgumentError("local:// is this host and takes no host or path (got " +
                                  uri.ToString() + "); use sysfs:///ROOT for a recorded tree");
    }
    o.root = "/";
  } else {
    o.root = uri.FilePath();
    if (o.root.empty()) {
      return InvalidArgumentError(
          "sysfs:// needs the root of a tree holding sys/ and dev/, "
          "e.g. sysfs:///srv/trees/dgx-a100 (got " +
          uri.ToString() + ")");
    }
    // A recorded tree is not this host: only vendor libraries named in the URI (fakes, in
    // tests) describe it, never the ones installed here.
    if (fs::path(o.root).lexically_normal() != fs::path("/")) {
      o.nvml_library.clear();
      o.rocm_smi_library.clear();
      o.xrt_library.clear();
    }
  }
  if (auto v = uri.Query("lock_dir")) o.lock_dir = *v;
  o.run_id = context.run_id;
  o.on_event = context.on_event;
  if (auto v = uri.Query("run_id")) o.run_id = *v;
  if (auto v = uri.Query("nvml")) o.nvml_library = *v;
  if (auto v = uri.Query("rocm_smi")) o.rocm_smi_library = *v;
  if (auto v = uri.Query("xrt")) o.xrt_library = *v;
  BITFUSION_ASSIGN_OR_RETURN(o.enrich, uri.QueryBool("enrich", true));
  BITFUSION_ASSIGN_OR_RETURN(auto poll, uri.QueryDuration("poll_interval", o.poll_interval));
  if (poll <= std::chrono::nanoseconds(0)) {
    return InvalidArgumentError("poll_interval must be positive in " + uri.ToString());
  }
  o.poll_interval = std::chrono::duration_cast<std::chrono::milliseconds>(poll);
  if (o.poll_interval.count() == 0) o.poll_interval = std::chrono::milliseconds(1);
  return o;
}

SysfsAllocator::SysfsAllocator(SysfsAllocatorOptions options, fs::path lock_dir)
    : options_(std::move(options)), root_(options_.root), lock_dir_(std::move(lock_dir)) {
  source_ = root_ == fs::path("/") ? "local://" : "sysfs://" + root_.string();
}

Result<std::shared_ptr<SysfsAllocator>> SysfsAllocator::Make(const SysfsAllocatorOptions& options) {
  std::error_code ec;
  if (!fs::is_directory(options.root, ec)) {
    return NotFoundError("device tree root " + options.root +
                         " is not a directory; give the root of a tree holding sys/ and dev/");
  }
  SysfsAllocatorOptions o = options;
  o.root = fs::canonical(options.root, ec).string();
  if (ec) o.root = options.root;
  fs::path lock_dir = o.lock_dir;
  if (lock_dir.empty()) {
    lock_dir = DefaultLockDir();
    if (o.root != "/") {
      char name[32];
      std::snprintf(name, sizeof name, "sysfs-%016llx",
                    static_cast<unsigned long long>(Fnv1a(o.root)));
      lock_dir /= name;
    }
  }
  BITFUSION_RETURN_IF_ERROR(EnsureLockDir(lock_dir));
  return std::shared_ptr<SysfsAllocator>(new SysfsAllocator(std::move(o), lock_dir));
}

std::vector<Device> SysfsAllocator::Scan() {
  std::vector<Device> devices = DiscoverDevices(root_);
  if (options_.enrich) {
    auto report = [&](const char* what, const Status& s) {
      if (s.ok()) return;
      // An absent library is the normal case on hosts without that vendor's stack.
      LogAt(s.code() == StatusCode::kUnavailable ? LogLevel::kDebug : LogLevel::kWarning, what,
            " enrichment skipped: ", s.message());
    };
    if (!options_.nvml_library.empty()) {
      report("NVML", EnrichWithNvml(NvmlEnricherOptions{options_.nvml_library}, devices));
    }
    if (!options_.rocm_smi_library.empty()) {
      RocmSmiEnricherOptions rocm;
      if (options_.rocm_smi_library != kDefaultRocmSmi)
        rocm.libraries = {options_.rocm_smi_library};
      report("ROCm SMI", EnrichWithRocmSmi(rocm, devices));
    }
    if (!options_.xrt_library.empty()) {
      XrtEnricherOptions xrt;
      if (options_.xrt_library != kDefaultXrt) xrt.libraries = {options_.xrt_library};
      report("XRT", EnrichWithXrt(xrt, devices));
    }
  }
  ResolveDeviceNodes(root_, devices);
  return devices;
}

Result<std::vector<Device>> SysfsAllocator::Inventory() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!inventory_) inventory_ = Scan();
  return *inventory_;
}

Result<std::vector<Device>> SysfsAllocator::Discover() {
  std::vector<Device> devices;
  {
    std::lock_guard<std::mutex> lock(mu_);
    inventory_ = Scan();
    devices = *inventory_;
  }
  for (auto& d : devices) {
    std::vector<std::string> who;
    for (const auto& h : ReadHolders(lock_dir_, d.id)) who.push_back(h.ToString());
    if (!who.empty()) d.properties["holders"] = Join(who, "; ");
  }
  return devices;
}

Result<std::unique_ptr<DeviceLease>> SysfsAllocator::Acquire(const DeviceRequest& request,
                                                             Deadline deadline) {
  if (request.count < 0) {
    return InvalidArgumentError("device request count must not be negative (asked " +
                                DescribeDeviceRequest(request) + ")");
  }
  const LeaseHolder me = CurrentHolder(options_.run_id, request.exclusive);
  if (request.count == 0) {
    return std::unique_ptr<DeviceLease>(new SysfsLease({}, {}, options_.on_event, source_, me));
  }
  BITFUSION_ASSIGN_OR_RETURN(auto inventory, Inventory());
  std::vector<const Device*> candidates;
  std::set<std::string> addresses;
  for (const auto& d : inventory) {
    addresses.insert(d.pci_address);
    if (DeviceMatches(d, request)) candidates.push_back(&d);
  }
  const std::string asked = "cannot lease " + DescribeDeviceRequest(request) + " from " + source_;
  if (candidates.size() < static_cast<std::size_t>(request.count)) {
    std::string why = asked + ": " + std::to_string(candidates.size()) +
                      " device(s) here match, and this host has " + InventorySummary(inventory);
    if (request.min_memory_bytes > 0) {
      why += " (memory sizes come from NVML, ROCm SMI or XRT; without them only AMD's is known)";
    }
    return ResourceExhaustedError(why);
  }
  {
    std::vector<const Device*> chosen;
    if (!Pick(
            candidates, request, addresses, 0, chosen, [](std::size_t) { return true; }, [] {})) {
      std::vector<std::string> listed;
      for (const Device* d : candidates) listed.push_back(Summary(*d));
      return ResourceExhaustedError(asked + ": no " + std::to_string(request.count) +
                                    " of the matching devices satisfy the topology, even with "
                                    "all of them free; matching: " +
                                    Join(listed, "; "));
    }
  }

  while (true) {
    std::vector<std::unique_ptr<DeviceLock>> locks;
    std::set<std::size_t> busy;
    Status failure;
    std::vector<const Device*> chosen;
    const bool got = Pick(
        candidates, request, addresses, 0, chosen,
        [&](std::size_t i) {
          if (busy.count(i) || !failure.ok()) return false;
          auto lock = DeviceLock::TryAcquire(lock_dir_, candidates[i]->id, me);
          if (lock) {
            locks.push_back(std::move(*lock));
            return true;
          }
          if (lock.error().code() == StatusCode::kResourceExhausted) {
            busy.insert(i);
          } else {
            failure = lock.error();
          }
          return false;
        },
        [&] { locks.pop_back(); });
    if (!failure.ok()) return failure;
    if (got) {
      std::vector<Device> leased;
      for (const Device* d : chosen) leased.push_back(*d);
      return std::unique_ptr<DeviceLease>(
          new SysfsLease(std::move(leased), std::move(locks), options_.on_event, source_, me));
    }
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      // Say who holds what: probe every matching device once more.
      std::vector<std::string> free, held;
      for (const Device* d : candidates) {
        auto probe = DeviceLock::TryAcquire(lock_dir_, d->id, me);
        if (probe) {
          free.push_back(d->id);
          continue;
        }
        std::vector<std::string> who;
        for (const auto& h : ReadHolders(lock_dir_, d->id)) who.push_back(h.ToString());
        held.push_back(d->id + " by " + (who.empty() ? "another process" : Join(who, ", ")));
      }
      std::string why = asked + ": " + std::to_string(candidates.size()) + " device(s) match, " +
                        std::to_string(free.size()) + " free" +
                        (free.empty() ? "" : " (" + Join(free, ", ") + ")");
      if (!held.empty()) why += "; held: " + Join(held, "; ");
      if (static_cast<int>(free.size()) >= request.count) {
        why += "; the free ones do not satisfy the topology together";
      }
      why += ". Wait longer (a later deadline), ask for fewer, or end those leases";
      return ResourceExhaustedError(why);
    }
    const auto wait =
        std::min<std::chrono::steady_clock::duration>(options_.poll_interval, deadline - now);
    std::this_thread::sleep_for(wait);
  }
}

Result<ContainerEdits> SysfsAllocator::EditsFor(const DeviceLease& lease,
                                                const RunnerCapabilities& caps) {
  ContainerEdits edits;
  const auto& leased = lease.devices();
  if (leased.empty()) return edits;
  std::vector<std::string> ids;
  std::map<std::string, std::vector<const Device*>> by_vendor;
  for (const auto& d : leased) {
    ids.push_back(d.id);
    by_vendor[d.vendor].push_back(&d);
  }
  edits.env["BITFUSION_DEVICES"] = Join(ids);
  for (auto& [vendor, devices] : by_vendor) {
    std::sort(devices.begin(), devices.end(),
              [](const Device* a, const Device* b) { return a->index < b->index; });
  }
  auto indices = [](const std::vector<const Device*>& ds) {
    std::vector<std::string> out;
    for (const Device* d : ds) out.push_back(std::to_string(d->index));
    return out;
  };
  // CUDA and the NVIDIA toolkit accept UUIDs, which name a GPU whatever the enumeration order.
  auto nvidia_ids = [&](const std::vector<const Device*>& ds) {
    std::vector<std::string> out;
    for (const Device* d : ds) {
      if (Property(*d, "uuid").empty()) return indices(ds);
      out.push_back(Property(*d, "uuid"));
    }
    return out;
  };
  auto uses_uuids = [&](const std::vector<const Device*>& ds) {
    return std::all_of(ds.begin(), ds.end(),
                       [](const Device* d) { return !Property(*d, "uuid").empty(); });
  };

  if (!caps.images) {
    // Plain processes see every device node; the runtimes' visibility variables narrow it.
    for (const auto& [vendor, ds] : by_vendor) {
      if (vendor == "NVIDIA") {
        edits.env["CUDA_VISIBLE_DEVICES"] = Join(nvidia_ids(ds));
        // Without UUIDs, CUDA must count GPUs in bus order as NVML and nvidia-smi do.
        if (!uses_uuids(ds)) edits.env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID";
      } else if (vendor == "AMD") {
        edits.env["ROCR_VISIBLE_DEVICES"] = Join(indices(ds));
        // HIP numbers what ROCr left visible from 0, so its list indexes into that one.
        std::vector<std::string> hip;
        for (std::size_t i = 0; i < ds.size(); ++i) hip.push_back(std::to_string(i));
        edits.env["HIP_VISIBLE_DEVICES"] = Join(hip);
      } else if (vendor == "Xilinx") {
        edits.env["XILINX_VISIBLE_DEVICES"] = Join(indices(ds));
      }
    }
    return edits;
  }

  std::vector<CdiDevice> cdi;
  std::vector<Device> inventory;
  if (caps.cdi) {
    cdi = ReadCdiSpecs({root_ / "etc/cdi", root_ / "var/run/cdi"});
    if (!cdi.empty()) {
      BITFUSION_ASSIGN_OR_RETURN(inventory, Inventory());
    }
  }
  std::set<std::string> mapped;  // host paths already added
  auto map_nodes = [&](const Device& d) -> Status {
    const bool has_own = std::any_of(d.device_nodes.begin(), d.device_nodes.end(),
                                     [](const std::string& n) { return !IsSharedDeviceNode(n); });
    if (!has_own) {
      return FailedPreconditionError("device " + d.id + " (" + d.vendor + " " + d.model +
                                     ") has no device node under " + (root_ / "dev").string() +
                                     " to pass into the container; load its driver (or run "
                                     "nvidia-modprobe) and try again");
    }
    for (const auto& node : d.device_nodes) {
      const std::string host =
          root_ == fs::path("/") ? node : (root_ / fs::path(node).relative_path()).string();
      if (!mapped.insert(host).second) continue;
      DeviceMapping m;
      m.path_on_host = host;
      m.path_in_container = node;
      m.permissions = "rwm";
      edits.devices.push_back(m);
    }
    return Status::OK();
  };

  for (const auto& [vendor, ds] : by_vendor) {
    if (vendor == "NVIDIA" && caps.gpu_runtime) {
      DeviceRequestEntry request;
      request.driver = "nvidia";
      request.device_ids = nvidia_ids(ds);
      request.capabilities = {{"gpu"}};
      edits.device_requests.push_back(request);
      continue;
    }
    if (!cdi.empty()) {
      std::vector<std::string> names;
      for (const Device* d : ds) {
        const CdiDevice* c = CdiFor(*d, inventory, cdi);
        if (c == nullptr) break;
        names.push_back(c->QualifiedName());
      }
      if (names.size() == ds.size()) {
        edits.cdi_devices.insert(edits.cdi_devices.end(), names.begin(), names.end());
        continue;
      }
    }
    for (const Device* d : ds) BITFUSION_RETURN_IF_ERROR(map_nodes(*d));
    if (vendor == "NVIDIA") {
      // Images from NVIDIA set NVIDIA_VISIBLE_DEVICES=all; on an engine whose default runtime
      // is nvidia that would hand every GPU in. Naming the leased ones keeps the lease.
      edits.env["NVIDIA_VISIBLE_DEVICES"] = Join(nvidia_ids(ds));
    } else if (vendor == "Xilinx") {
      edits.env["XILINX_VISIBLE_DEVICES"] = Join(indices(ds));
    }
  }
  return edits;
}

BITFUSION_REGISTER(DeviceAllocator, "local", SysfsAllocatorOptions, SysfsAllocator);
BITFUSION_REGISTER(DeviceAllocator, "sysfs", SysfsAllocatorOptions, SysfsAllocator);

}  // namespace bitfusion
