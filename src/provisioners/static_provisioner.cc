#include "provisioners/static_provisioner.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <cctype>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "bitfusion/ownership.h"
#include "bitfusion/registry.h"
#include "devices/device_lease.h"
#include "net/remote_tree.h"
#include "net/ssh_uri.h"
#include "provisioners/host_fingerprint.h"

namespace bitfusion {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

constexpr const char* kScheme = "static";
// The directory of the host lease records and the setting that moves it, named in errors.
constexpr LockDirKind kHostLeaseDir = {"host lease directory",
                                       "?lease_dir=DIR in the static:// URI"};

// Prints the files the fingerprint is read from, framed by marker lines, with only sh, cat,
// uname and readlink: nothing is installed on the host. PCI functions are read from sysfs, so
// lspci need not be there either.
constexpr const char* kFingerprintScript = R"sh(
f() { [ -r "$1" ] && [ -f "$1" ] && { printf '\n@@BF-FILE %s\n' "$1"; cat "$1" 2>/dev/null; }; }
printf '\n@@BF-UNAME %s %s %s\n' "$(uname -n)" "$(uname -r)" "$(uname -m)"
f /proc/cpuinfo; f /proc/meminfo; f /etc/os-release; f /sys/devices/system/cpu/online
for c in /sys/devices/system/cpu/cpu[0-9]*; do
  f $c/topology/physical_package_id; f $c/topology/core_id; f $c/cpufreq/cpuinfo_max_freq
  for i in $c/cache/index[0-9]*; do
    for x in level type size shared_cpu_list coherency_line_size; do f $i/$x; done
  done
done
for n in /sys/devices/system/node/node[0-9]*; do [ -d "$n" ] && printf '\n@@BF-DIR %s\n' "$n"; done
for d in /sys/bus/pci/devices/*; do
  for x in vendor device class subsystem_vendor subsystem_device numa_node; do f $d/$x; done
  [ -L $d/driver ] && printf '\n@@BF-LINK %s %s\n' "$d/driver" "$(readlink $d/driver)"
done
printf '\n@@BF-END\n'
)sh";

// ----------------------------------------------------------------------------- inventory

std::string Position(std::string_view text, std::size_t offset) {
  std::size_t line = 1, column = 1;
  for (std::size_t i = 0; i < offset && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
  }
  return "line " + std::to_string(line) + ", column " + std::to_string(column);
}

fs::path ExpandPath(const std::string& raw, const fs::path& file, const std::string& home) {
  if (raw == "~" || raw.rfind("~/", 0) == 0)
    return fs::path(home) / raw.substr(raw.size() > 1 ? 2 : 1);
  fs::path p(raw);
  if (p.is_absolute()) return p;
  return fs::absolute(file).parent_path() / p;
}

bool ValidName(const std::string& s) {
  if (s.empty() || s[0] == '-') return false;
  for (char c : s) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') {
      return false;
    }
  }
  return true;
}

// ----------------------------------------------------------------------------- leases

struct Lease {
  std::string host;  // inventory name
  std::string inventory;
  std::int64_t created_ns = 0;
  Labels labels;
};

std::string LeaseKey(const StaticHost& h) {
  std::string key = "host-";
  for (char c : h.address) {
    key += (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-') ? c : '_';
  }
  return key + "-" + std::to_string(h.port);
}

// The devices' flock on <dir>/<key>.lock serialises edits of one host's lease record; it is
// held only while the record is read and written.
Result<std::unique_ptr<DeviceLock>> LockLease(const fs::path& dir, const std::string& key) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (true) {
    auto lock = DeviceLock::TryAcquire(dir, key, CurrentHolder("", true), kHostLeaseDir);
    if (lock.ok() || lock.error().code() != StatusCode::kResourceExhausted ||
        std::chrono::steady_clock::now() > until) {
      return lock;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

std::optional<Lease> ReadLease(const fs::path& dir, const std::string& key) {
  const fs::path path = dir / (key + ".lease");
  const int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::string text;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) text.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  boost::system::error_code ec;
  const json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) return std::nullopt;  // torn or foreign: treated as free
  Lease lease;
  const auto& o = v.get_object();
  if (const auto* s = o.if_contains("host"); s && s->is_string()) lease.host = s->as_string();
  if (const auto* s = o.if_contains("inventory"); s && s->is_string()) {
    lease.inventory = s->as_string();
  }
  if (const auto* s = o.if_contains("created_ns"); s && s->is_int64()) {
    lease.created_ns = s->as_int64();
  }
  if (const auto* l = o.if_contains("labels"); l && l->is_object()) {
    for (const auto& kv : l->get_object()) {
      if (kv.value().is_string()) lease.labels[std::string(kv.key())] = kv.value().as_string();
    }
  }
  return lease;
}

Status WriteLease(const fs::path& dir, const std::string& key, const Lease& lease) {
  json::object labels;
  for (const auto& [k, v] : lease.labels) labels[k] = v;
  const std::string text = json::serialize(json::object{{"host", lease.host},
                                                        {"inventory", lease.inventory},
                                                        {"created_ns", lease.created_ns},
                                                        {"labels", labels}}) +
                           "\n";
  const fs::path tmp = dir / (key + ".lease.tmp");
  ::unlink(tmp.c_str());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError(errno, "writing lease " + tmp.string());
  const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), (dir / (key + ".lease")).c_str()) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    return ErrnoError(e, "writing lease " + (dir / (key + ".lease")).string());
  }
  return Status::OK();
}

// Empty when `lease` still binds its host; else why it no longer does.
std::string LapseReason(const Lease& lease) {
  ReapPolicy policy;  // dead creators and expiry on this host
  return ReapReason(lease.labels, policy, WallNowNs() / 1'000'000'000);
}

std::string OwnerText(const Lease& lease) {
  auto get = [&](const char* k) {
    auto it = lease.labels.find(k);
    return it == lease.labels.end() ? std::string() : it->second;
  };
  std::string s = get(kLabelPid).empty() ? "run " + get(kLabelRunId)
                                         : "process " + get(kLabelPid) + " on " + get(kLabelHost);
  if (!get(kLabelPid).empty() && !get(kLabelRunId).empty()) s += " (run " + get(kLabelRunId) + ")";
  return s;
}

std::string Join(const std::vector<std::string>& parts, const std::string& sep) {
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : sep) + p;
  return out;
}

}  // namespace

// ----------------------------------------------------------------------------- parsing

Result<std::vector<StaticHost>> ParseInventory(std::string_view text, const fs::path& file,
                                               const std::string& home) {
  const std::string source = file.string();
  json::stream_parser parser;
  boost::system::error_code ec;
  const std::size_t consumed = parser.write_some(text.data(), text.size(), ec);
  if (!ec && consumed < text.size() &&
      text.substr(consumed).find_first_not_of(" \t\r\n") != std::string_view::npos) {
    return InvalidArgumentError("inventory " + source + ": " + Position(text, consumed) +
                                ": unexpected text after the inventory object; fix the JSON");
  }
  if (!ec) parser.finish(ec);
  if (ec) {
    return InvalidArgumentError("inventory " + source + ": " + Position(text, consumed) + ": " +
                                ec.message() + "; fix the JSON syntax there");
  }
  const json::value root = parser.release();
  auto error = [&](const std::string& field, const std::string& what) {
    return InvalidArgumentError("inventory " + source + ": " + field + ": " + what);
  };
  if (!root.is_object()) return error("(top level)", "expected an object {\"hosts\": [...]}");
  for (const auto& kv : root.get_object()) {
    if (kv.key() != "hosts") {
      return error(std::string(kv.key()), "unknown key; the top level has only \"hosts\"");
    }
  }
  const auto* hosts = root.get_object().if_contains("hosts");
  if (hosts == nullptr || !hosts->is_array()) {
    return error("hosts", "missing or not an array; list the machines as \"hosts\": [{...}]");
  }
  std::vector<StaticHost> out;
  std::set<std::string> names;
  for (std::size_t i = 0; i < hosts->get_array().size(); ++i) {
    const json::value& entry = hosts->get_array()[i];
    std::string where = "hosts[" + std::to_string(i) + "]";
    if (!entry.is_object()) return error(where, "expected an object");
    const auto& o = entry.get_object();
    if (const auto* n = o.if_contains("name"); n && n->is_string()) {
      where += " (\"" + std::string(n->as_string()) + "\")";
    }
    StaticHost h;
    for (const auto& kv : o) {
      const std::string key(kv.key());
      const json::value& v = kv.value();
      auto string = [&](std::string& into) -> Status {
        if (!v.is_string()) return error(where + "." + key, "expected a string");
        into = v.as_string();
        return Status::OK();
      };
      if (key == "name") {
        BITFUSION_RETURN_IF_ERROR(string(h.name));
      } else if (key == "address") {
        BITFUSION_RETURN_IF_ERROR(string(h.address));
      } else if (key == "user") {
        BITFUSION_RETURN_IF_ERROR(string(h.user));
      } else if (key == "key") {
        std::string raw;
        BITFUSION_RETURN_IF_ERROR(string(raw));
        if (!raw.empty()) h.key = ExpandPath(raw, file, home);
      } else if (key == "port") {
        if (!v.is_int64() || v.as_int64() < 1 || v.as_int64() > 65535) {
          return error(where + ".port", "expected a number from 1 to 65535");
        }
        h.port = static_cast<int>(v.as_int64());
      } else if (key == "labels") {
        if (!v.is_object()) return error(where + ".labels", "expected an object of strings");
        for (const auto& l : v.get_object()) {
          if (!l.value().is_string()) {
            return error(where + ".labels." + std::string(l.key()), "expected a string");
          }
          h.labels[std::string(l.key())] = l.value().as_string();
        }
      } else {
        return error(where + "." + key,
                     "unknown key; a host has name, address, port, user, key and labels");
      }
    }
    if (h.name.empty()) return error(where + ".name", "missing; give each host a unique name");
    if (!ValidName(h.name)) {
      return error(where + ".name", "use letters, digits, '.', '-' and '_' only");
    }
    if (h.address.empty()) {
      return error(where + ".address", "missing; give the host's IP address or DNS name");
    }
    if (h.address[0] == '-' || h.address.find_first_of(" \t\n'\"") != std::string::npos) {
      return error(where + ".address", "\"" + h.address + "\" is not a host name or address");
    }
    if (!names.insert(h.name).second) {
      return error(where + ".name", "\"" + h.name + "\" is listed twice; names must be unique");
    }
    out.push_back(std::move(h));
  }
  if (out.empty()) return error("hosts", "empty; list at least one machine");
  return out;
}

Result<std::vector<StaticHost>> ReadInventory(const fs::path& file) {
  std::ifstream in(file);
  if (!in) {
    return NotFoundError("cannot read inventory " + file.string() +
                         "; write static://PATH with the path of a JSON file of {\"hosts\": "
                         "[...]}");
  }
  std::stringstream text;
  text << in.rdbuf();
  const char* home = std::getenv("HOME");
  return ParseInventory(text.str(), file, home != nullptr ? home : "/");
}

const char* RemoteFingerprintScript() { return kFingerprintScript; }

Result<MachineInfo> ParseRemoteFingerprint(const std::string& output) {
  // The files go into a private tree, read like a local one.
  std::vector<std::vector<std::string>> headers;
  BITFUSION_ASSIGN_OR_RETURN(
      auto tree,
      internal::RemoteTree::Copy(output, {"/proc/", "/sys/", "/etc/os-release"}, headers));
  FingerprintRoots roots;
  roots.proc = (tree->root() / "proc").string();
  roots.sys = (tree->root() / "sys").string();
  roots.os_release = (tree->root() / "etc/os-release").string();
  bool ended = false;
  for (const auto& h : headers) {
    if (h[0] == "UNAME" && h.size() >= 4) {
      roots.hostname = h[1];
      roots.kernel = h[2];
      roots.architecture = h[3];
    } else if (h[0] == "END") {
      ended = true;
    }
  }
  if (!ended || roots.kernel.empty()) {
    return InternalError(
        "the host's fingerprint script did not finish (its output was cut short); check that "
        "the login shell is a POSIX sh and that nothing prints from the shell's startup files");
  }
  return ReadHostFingerprint(roots);
}

// ----------------------------------------------------------------------------- options

Result<StaticProvisionerOptions> StaticProvisionerOptions::FromUri(const Uri& uri) {
  BITFUSION_RETURN_IF_ERROR(uri.CheckQueryKeys(
      {"lease_dir", "ssh_config", "ssh_option", "connect_timeout", "runtime_dir"}));
  StaticProvisionerOptions o;
  o.inventory = uri.FilePath();
  if (o.inventory.empty()) {
    return InvalidArgumentError(
        "static:// needs the inventory file: static://hosts.json or static:///abs/hosts.json");
  }
  o.lease_dir = uri.Query("lease_dir").value_or("");
  o.ssh_config = uri.Query("ssh_config").value_or("");
  BITFUSION_ASSIGN_OR_RETURN(o.runtime_dir, internal::RuntimeDirFromUri(uri, "static"));
  BITFUSION_ASSIGN_OR_RETURN(o.ssh_options, internal::SshOptionsFromUri(uri, "static"));
  BITFUSION_ASSIGN_OR_RETURN(std::int64_t timeout, uri.QueryInt("connect_timeout", 10));
  if (timeout < 1) return InvalidArgumentError("connect_timeout must be at least 1 (seconds)");
  o.connect_timeout = std::chrono::seconds(timeout);
  return o;
}

// ----------------------------------------------------------------------------- provisioner

Result<std::shared_ptr<StaticProvisioner>> StaticProvisioner::Make(
    const StaticProvisionerOptions& options) {
  BITFUSION_ASSIGN_OR_RETURN(auto hosts, ReadInventory(options.inventory));
  StaticProvisionerOptions o = options;
  o.inventory = fs::absolute(o.inventory);
  if (o.lease_dir.empty()) o.lease_dir = DefaultLockDir().parent_path() / "hosts";
  BITFUSION_RETURN_IF_ERROR(EnsureLockDir(o.lease_dir, kHostLeaseDir));
  return std::shared_ptr<StaticProvisioner>(new StaticProvisioner(o, std::move(hosts)));
}

StaticProvisioner::~StaticProvisioner() = default;

const StaticHost* StaticProvisioner::Find(const std::string& id) const {
  for (const auto& h : hosts_) {
    if (h.name == id) return &h;
  }
  return nullptr;
}

Result<std::shared_ptr<SshSession>> StaticProvisioner::Session(const std::string& id) {
  const StaticHost* h = Find(id);
  if (h == nullptr) {
    return NotFoundError("no host \"" + id + "\" in inventory " + options_.inventory.string());
  }
  std::lock_guard lock(mu_);
  auto& s = sessions_[id];
  if (s == nullptr) {
    SshSessionOptions so;
    so.config_file = options_.ssh_config;
    so.options = options_.ssh_options;
    so.connect_timeout = options_.connect_timeout;
    so.runtime_dir = options_.runtime_dir;
    s = SshSession::Shared(SshTarget{h->address, h->port, h->user, h->key}, so);
  }
  return s;
}

MachineInfo StaticProvisioner::Describe(const StaticHost& host) const {
  MachineInfo m;
  {
    std::lock_guard lock(mu_);
    if (auto it = fingerprints_.find(host.name); it != fingerprints_.end()) m = it->second;
  }
  m.id = host.name;
  m.provider = kScheme;
  if (m.hostname.empty()) m.hostname = host.name;
  m.address = host.address;
  m.type = host.name;
  m.state = "running";
  m.labels = host.labels;
  m.ssh.host = host.address;
  m.ssh.port = host.port;
  m.ssh.user = host.user;
  m.ssh.key_name = host.key.string();
  return m;
}

MachineType StaticProvisioner::TypeOf(const StaticHost& host) const {
  MachineType t;
  t.name = host.name;
  std::lock_guard lock(mu_);
  if (auto it = fingerprints_.find(host.name); it != fingerprints_.end()) {
    t.vcpus = it->second.cpu.threads;
    t.memory_bytes = it->second.memory_bytes;
    t.cpu_architecture = it->second.cpu.architecture;
    t.cpu_vendor = it->second.cpu.vendor;
    t.accelerators = it->second.accelerators;
  }
  // Labels name what the PCI scan cannot (a card's model) or what is not yet known.
  for (const char* kind : {"gpu", "fpga", "accelerator"}) {
    auto l = host.labels.find(kind);
    if (l == host.labels.end()) continue;
    bool seen = false;
    for (auto& a : t.accelerators) {
      if (a.kind == kind) {
        if (a.model.empty()) a.model = l->second;
        seen = true;
      }
    }
    if (!seen) {
      AcceleratorInfo a;
      a.kind = kind;
      a.model = l->second;
      t.accelerators.push_back(a);
    }
  }
  return t;
}

Result<MachineInfo> StaticProvisioner::Fingerprint(const StaticHost& host) {
  {
    std::lock_guard lock(mu_);
    if (auto it = fingerprints_.find(host.name); it != fingerprints_.end()) return it->second;
  }
  BITFUSION_ASSIGN_OR_RETURN(auto session, Session(host.name));
  if (Status s = session->Connect(); !s.ok()) {
    return s.WithContext("host \"" + host.name + "\" of " + options_.inventory.string());
  }
  BITFUSION_ASSIGN_OR_RETURN(SshResult r,
                             session->RunScript(kFingerprintScript, std::chrono::seconds(60)));
  if (r.exit_status != 0 && r.out.find("@@BF-END") == std::string::npos) {
    return UnavailableError("reading the fingerprint of host \"" + host.name + "\" (" +
                            session->target().ToString() + ") over SSH failed with status " +
                            std::to_string(r.exit_status) + ": " + r.err +
                            "; check that a POSIX shell runs commands there");
  }
  BITFUSION_ASSIGN_OR_RETURN(MachineInfo m, ParseRemoteFingerprint(r.out));
  std::lock_guard lock(mu_);
  fingerprints_[host.name] = m;
  return m;
}

Result<std::vector<MachineInfo>> StaticProvisioner::Create(const MachineRequest& request) {
  if (request.count < 1) {
    return InvalidArgumentError("ask for at least one machine, not " +
                                std::to_string(request.count));
  }
  // Which hosts may serve the request.
  std::vector<const StaticHost*> candidates;
  std::vector<std::string> skipped;  // why hosts that might have served it do not
  for (const auto& h : hosts_) {
    if (!request.type.empty()) {
      const auto eq = request.type.find('=');
      const bool match = request.type == h.name ||
                         (eq != std::string::npos && h.labels.count(request.type.substr(0, eq)) &&
                          h.labels.at(request.type.substr(0, eq)) == request.type.substr(eq + 1));
      if (match) candidates.push_back(&h);
      continue;
    }
    if (request.requirements.empty()) {
      candidates.push_back(&h);
      continue;
    }
    // Judge on what labels say first; read the fingerprint only when they do not decide it.
    std::string unmet = UnmetRequirement(TypeOf(h), request.requirements);
    if (!unmet.empty()) {
      auto fp = Fingerprint(h);
      if (!fp.ok()) {
        skipped.push_back(fp.error().message());  // names the host
        continue;
      }
      unmet = UnmetRequirement(TypeOf(h), request.requirements);
    }
    if (unmet.empty()) {
      candidates.push_back(&h);
    } else {
      skipped.push_back(h.name + ": " + unmet);
    }
  }
  if (candidates.empty()) {
    if (!request.type.empty()) {
      std::vector<std::string> names;
      for (const auto& h : hosts_) names.push_back(h.name);
      return NotFoundError("no host in " + options_.inventory.string() + " is named \"" +
                           request.type + "\" or carries label " + request.type +
                           "; its hosts are " + Join(names, ", "));
    }
    return NotFoundError("no host in " + options_.inventory.string() + " satisfies " +
                         request.requirements.ToString() + ": " + Join(skipped, "; ") +
                         "; add a matching host to the inventory or ask for less");
  }

  // Lease free ones, all or nothing.
  const Labels owner = OwnerLabels(request.run_id, request.ttl_s);
  std::vector<MachineInfo> made;
  std::vector<std::string> busy;
  auto release_all = [&] {
    std::vector<std::string> ids;
    for (const auto& m : made) ids.push_back(m.id);
    (void)Destroy(ids);
  };
  for (const StaticHost* h : candidates) {
    if (static_cast<int>(made.size()) == request.count) break;
    const std::string key = LeaseKey(*h);
    auto lock = LockLease(options_.lease_dir, key);
    if (!lock.ok()) {
      release_all();
      return lock.error().WithContext("leasing host \"" + h->name + "\"");
    }
    if (auto held = ReadLease(options_.lease_dir, key); held && LapseReason(*held).empty()) {
      busy.push_back(h->name + " (leased by " + OwnerText(*held) + ")");
      continue;
    }
    Lease lease;
    lease.host = h->name;
    lease.inventory = options_.inventory.string();
    lease.created_ns = WallNowNs();
    lease.labels = request.labels;
    for (const auto& [k, v] : owner) lease.labels[k] = v;
    if (Status s = WriteLease(options_.lease_dir, key, lease); !s.ok()) {
      release_all();
      return s;
    }
    MachineInfo m = Describe(*h);
    for (const auto& [k, v] : lease.labels) m.labels[k] = v;
    m.created_ns = lease.created_ns;
    m.running_ns = lease.created_ns;  // it already runs
    made.push_back(std::move(m));
  }
  if (static_cast<int>(made.size()) < request.count) {
    release_all();
    return ResourceExhaustedError("asked for " + std::to_string(request.count) + " host(s) of " +
                                  options_.inventory.string() + " but only " +
                                  std::to_string(made.size()) + " matching host(s) are free" +
                                  (busy.empty() ? "" : "; busy: " + Join(busy, ", ")) +
                                  "; wait for a lease to end, `bitfusion machines down "
                                  "--provisioner URI ID` one, or add hosts");
  }
  // Reachable? Checked now, so a dead host is an error before the caller builds on it; all
  // at once, so that N hosts take one login's time, not N.
  std::vector<Status> reached(made.size());
  std::vector<std::thread> logins;
  for (std::size_t i = 0; i < made.size(); ++i) {
    logins.emplace_back([&, i] {
      auto session = Session(made[i].id);
      reached[i] = session.ok() ? (*session)->Connect() : session.error();
      made[i].ssh_ready_ns = WallNowNs();
    });
  }
  for (auto& t : logins) t.join();
  for (std::size_t i = 0; i < made.size(); ++i) {
    if (!reached[i].ok()) {
      release_all();
      return reached[i].WithContext("host \"" + made[i].id + "\" of " +
                                    options_.inventory.string() + " (nothing was leased)");
    }
  }
  return made;
}

Result<MachineInfo> StaticProvisioner::WaitReady(const std::string& id, Deadline deadline) {
  const StaticHost* h = Find(id);
  if (h == nullptr) {
    return NotFoundError("no host \"" + id + "\" in inventory " + options_.inventory.string());
  }
  auto lease = ReadLease(options_.lease_dir, LeaseKey(*h));
  Status last;
  while (true) {
    BITFUSION_ASSIGN_OR_RETURN(auto session, Session(id));
    last = session->Connect();
    if (last.ok()) break;
    if (std::chrono::steady_clock::now() + std::chrono::seconds(1) >= deadline) {
      return DeadlineExceededError("host \"" + id +
                                   "\" did not become reachable: " + last.message());
    }
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  const std::int64_t ssh_ready = WallNowNs();
  BITFUSION_ASSIGN_OR_RETURN(MachineInfo fp, Fingerprint(*h));
  (void)fp;
  MachineInfo m = Describe(*h);
  if (lease) {
    for (const auto& [k, v] : lease->labels) m.labels[k] = v;
    m.created_ns = lease->created_ns;
  }
  if (m.created_ns == 0) m.created_ns = ssh_ready;
  m.running_ns = m.created_ns;
  m.ssh_ready_ns = ssh_ready;
  m.ready_ns = WallNowNs();
  return m;
}

Result<std::vector<MachineInfo>> StaticProvisioner::List() {
  std::vector<MachineInfo> out;
  for (const auto& h : hosts_) {
    auto lease = ReadLease(options_.lease_dir, LeaseKey(h));
    // Two names for one address and port share its lease; it is listed under the one leased.
    if (!lease || lease->host != h.name) continue;
    MachineInfo m = Describe(h);
    for (const auto& [k, v] : lease->labels) m.labels[k] = v;
    m.created_ns = lease->created_ns;
    m.running_ns = lease->created_ns;
    out.push_back(std::move(m));
  }
  return out;
}

Status StaticProvisioner::Destroy(const std::vector<std::string>& ids) {
  for (const auto& id : ids) {
    if (Find(id) == nullptr) {
      return NotFoundError("no host \"" + id + "\" in inventory " + options_.inventory.string());
    }
  }
  for (const auto& id : ids) {
    const StaticHost* h = Find(id);
    const std::string key = LeaseKey(*h);
    BITFUSION_ASSIGN_OR_RETURN(auto lock, LockLease(options_.lease_dir, key));
    const fs::path path = options_.lease_dir / (key + ".lease");
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      return ErrnoError(errno,
                        "returning the lease of host \"" + id + "\" (" + path.string() + ")");
    }
    std::shared_ptr<SshSession> session;
    {
      std::lock_guard guard(mu_);
      if (auto it = sessions_.find(id); it != sessions_.end()) {
        session = it->second;
        sessions_.erase(it);
      }
    }
    session.reset();  // shared with the machine's runners: the master ends with the last
  }
  return Status::OK();
}

Status StaticProvisioner::Keep(const std::vector<std::string>& ids) {
  for (const auto& id : ids) {
    const StaticHost* h = Find(id);
    if (h == nullptr) {
      return NotFoundError("no host \"" + id + "\" in inventory " + options_.inventory.string());
    }
    const std::string key = LeaseKey(*h);
    BITFUSION_ASSIGN_OR_RETURN(auto lock, LockLease(options_.lease_dir, key));
    auto lease = ReadLease(options_.lease_dir, key);
    if (!lease) {
      return NotFoundError("host \"" + id + "\" is not leased; lease it with Create first");
    }
    for (const char* k : kCreatorProcessLabels) lease->labels.erase(k);
    BITFUSION_RETURN_IF_ERROR(WriteLease(options_.lease_dir, key, *lease));
  }
  return Status::OK();
}

Result<std::vector<MachineType>> StaticProvisioner::Types() {
  std::vector<MachineType> out;
  for (const auto& h : hosts_) out.push_back(TypeOf(h));
  return out;
}

BITFUSION_REGISTER(Provisioner, "static", StaticProvisionerOptions, StaticProvisioner);

}  // namespace bitfusion
