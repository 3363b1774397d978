#include "runners/docker_spec.h"

#include <sys/stat.h>

#include <cmath>
#include <filesystem>
#include <set>

#include <re2/re2.h>

#include "core/cpu_list.h"
#include "core/percent_encode.h"
#include "runners/container_spec_checks.h"
#include "runners/docker_api.h"

namespace bitfusion::internal {

namespace json = boost::json;
namespace fs = std::filesystem;

namespace {

bool IsCleanAbsolute(const std::string& p) {
  if (p.empty() || p[0] != '/') return false;
  for (const auto& part : fs::path(p)) {
    if (part == "..") return false;
  }
  return true;
}

}  // namespace

Status ValidateImageRef(const std::string& image) {
  static const RE2 kRef(
      R"(^(?:(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?|(?:sha256:)?[0-9a-f]{12,64})$)");
  if (image.empty()) {
    return InvalidArgumentError(
        "no image given; docker:// runs images (name one, e.g. "
        "\"busybox:1.36\")");
  }
  if (image.size() > 255 || !RE2::FullMatch(image, kRef)) {
    return InvalidArgumentError("\"" + image +
                                "\" is not a valid image reference (lower-case "
                                "[registry/]name[:tag][@sha256:digest])");
  }
  return Status::OK();
}

std::pair<std::string, std::string> SplitRef(const std::string& ref) {
  const auto at = ref.find('@');
  if (at != std::string::npos) return {ref.substr(0, at), ref.substr(at + 1)};
  const auto colon = ref.rfind(':');
  const auto slash = ref.rfind('/');
  if (colon != std::string::npos && (slash == std::string::npos || colon > slash)) {
    return {ref.substr(0, colon), ref.substr(colon + 1)};
  }
  return {ref, "latest"};
}

Status ValidateSpec(const ContainerSpec& spec, bool local_engine, int api_minor) {
  static const RE2 kName(R"(^[a-zA-Z0-9][a-zA-Z0-9_.-]*$)");
  static const RE2 kCgroupRule(R"(^[abc] (?:\*|[0-9]+):(?:\*|[0-9]+) [rwm]{1,3}$)");
  static const RE2 kNetwork(
      R"(^(?:none|host|bridge|default|container:[a-zA-Z0-9][a-zA-Z0-9_.-]*|[a-zA-Z0-9][a-zA-Z0-9_.-]*)$)");
  BITFUSION_RETURN_IF_ERROR(ValidateImageRef(spec.image));
  if (!spec.name.empty() && !RE2::FullMatch(spec.name, kName)) {
    return InvalidArgumentError("container name \"" + spec.name +
                                "\" is invalid: use letters, digits, '_', '.' and '-', starting "
                                "with a letter or digit");
  }
  BITFUSION_RETURN_IF_ERROR(CheckEnvironmentNames(spec.env));
  if (!spec.working_dir.empty() && spec.working_dir[0] != '/') {
    return InvalidArgumentError("working directory \"" + spec.working_dir +
                                "\" must be an absolute path inside the container");
  }
  if (spec.user.find_first_of(" \t\n") != std::string::npos) {
    return InvalidArgumentError("user \"" + spec.user + "\" is invalid (\"uid[:gid]\" or a name)");
  }
  std::set<std::string> targets;
  for (const auto& m : spec.mounts) {
    if (m.type != "bind" && m.type != "tmpfs") {
      return InvalidArgumentError("mount type \"" + m.type + "\" for " + m.target +
                                  " is not supported; use \"bind\" or \"tmpfs\"");
    }
    if (!IsCleanAbsolute(m.target) || m.target == "/") {
      return InvalidArgumentError("mount target \"" + m.target +
                                  "\" must be an absolute path without \"..\" (and not /)");
    }
    if (!targets.insert(m.target).second) {
      return InvalidArgumentError("two mounts share the target " + m.target);
    }
    if (m.type == "bind") {
      if (!IsCleanAbsolute(m.source)) {
        return InvalidArgumentError("bind mount source \"" + m.source + "\" for " + m.target +
                                    " must be an absolute host path without \"..\"");
      }
      std::error_code ec;
      if (local_engine && !fs::exists(m.source, ec)) {
        return NotFoundError("bind mount source " + m.source +
                             " does not exist on this host; create it first");
      }
    } else {
      if (!m.source.empty()) {
        return InvalidArgumentError("tmpfs mount " + m.target + " takes no source (got \"" +
                                    m.source + "\")");
      }
      if (m.tmpfs_bytes < 0) return InvalidArgumentError("tmpfs size must not be negative");
    }
  }
  for (const auto& d : spec.devices) {
    if (!IsCleanAbsolute(d.path_on_host)) {
      return InvalidArgumentError("device path \"" + d.path_on_host +
                                  "\" must be an absolute host path without \"..\"");
    }
    if (!d.path_in_container.empty() && !IsCleanAbsolute(d.path_in_container)) {
      return InvalidArgumentError("device path in the container \"" + d.path_in_container +
                                  "\" must be absolute without \"..\"");
    }
    if (d.permissions.empty() || d.permissions.size() > 3 ||
        d.permissions.find_first_not_of("rwm") != std::string::npos ||
        std::set<char>(d.permissions.begin(), d.permissions.end()).size() != d.permissions.size()) {
      return InvalidArgumentError("device permissions \"" + d.permissions + "\" for " +
                                  d.path_on_host + " must be some of r, w, m");
    }
    if (local_engine) {
      struct stat st {};
      if (::stat(d.path_on_host.c_str(), &st) != 0) {
        return NotFoundError("device " + d.path_on_host + " does not exist on this host");
      }
      if (!S_ISCHR(st.st_mode) && !S_ISBLK(st.st_mode) && !S_ISDIR(st.st_mode)) {
        return InvalidArgumentError(d.path_on_host +
                                    " is not a device node (or a directory of "
                                    "them)");
      }
    }
  }
  for (const auto& r : spec.device_requests) {
    if (r.count < -1) {
      return InvalidArgumentError("device request count " + std::to_string(r.count) +
                                  " is invalid (-1 = all, or >= 0)");
    }
    if (r.driver.empty() && r.capabilities.empty()) {
      return InvalidArgumentError(
          "a device request needs a driver (\"nvidia\") or capabilities "
          "({{\"gpu\"}})");
    }
  }
  if (!spec.cdi_devices.empty() && api_minor >= 0 && api_minor < kDockerCdiApiMinor) {
    return InvalidArgumentError(
        "this engine (API 1." + std::to_string(api_minor) +
        ") does not take CDI device names (needs API 1.44, Docker 25); pass the devices' nodes "
        "instead (ContainerSpec::devices, which a DeviceAllocator's EditsFor produces)");
  }
  for (const auto& name : spec.cdi_devices) {
    if (name.find('=') == std::string::npos || name.find('/') == std::string::npos) {
      return InvalidArgumentError("CDI device \"" + name +
                                  "\" is not a fully qualified name like nvidia.com/gpu=0");
    }
  }
  for (const auto& rule : spec.device_cgroup_rules) {
    if (!RE2::FullMatch(rule, kCgroupRule)) {
      return InvalidArgumentError("device cgroup rule \"" + rule +
                                  "\" is invalid; write \"TYPE MAJOR:MINOR PERMS\" like "
                                  "\"c 195:* rwm\"");
    }
  }
  if (!spec.cpuset.empty()) {
    BITFUSION_RETURN_IF_ERROR(ParseCpuList(spec.cpuset).status());
  }
  if (spec.cpus < 0 || !std::isfinite(spec.cpus)) {
    return InvalidArgumentError("cpus must be a non-negative number");
  }
  if (spec.memory_bytes < 0 || spec.shm_bytes < 0) {
    return InvalidArgumentError("memory and shm sizes must not be negative");
  }
  if (!spec.network_mode.empty() && !RE2::FullMatch(spec.network_mode, kNetwork)) {
    return InvalidArgumentError("network mode \"" + spec.network_mode + "\" is invalid");
  }
  for (const auto& [key, value] : spec.labels) {
    if (key.empty()) return InvalidArgumentError("label keys must not be empty");
    if (key.rfind("bitfusion.", 0) == 0) {
      return InvalidArgumentError("label \"" + key +
                                  "\" uses the reserved prefix \"bitfusion.\" (the runner sets "
                                  "those itself)");
    }
  }
  BITFUSION_RETURN_IF_ERROR(CheckTimeout(spec.timeout_ns));
  const auto& h = spec.health_check;
  if (!h.command.empty()) {
    auto small = [](std::int64_t ns) { return ns != 0 && ns < 1'000'000; };
    if (small(h.interval_ns) || small(h.timeout_ns) || small(h.start_period_ns) ||
        h.interval_ns < 0 || h.timeout_ns < 0 || h.start_period_ns < 0 || h.retries < 0) {
      return InvalidArgumentError("health check durations must be 0 or at least 1ms, retries >= 0");
    }
  }
  return Status::OK();
}

json::object CreateBody(const ContainerSpec& spec, const Labels& labels, bool init) {
  json::object body;
  body["Image"] = spec.image;
  if (!spec.command.empty()) body["Cmd"] = JsonStrings(spec.command);
  if (!spec.entrypoint.empty()) body["Entrypoint"] = JsonStrings(spec.entrypoint);
  if (!spec.env.empty()) {
    json::array env;
    for (const auto& [k, v] : spec.env) env.emplace_back(k + "=" + v);
    body["Env"] = std::move(env);
  }
  if (!spec.working_dir.empty()) body["WorkingDir"] = spec.working_dir;
  if (!spec.user.empty()) body["User"] = spec.user;
  body["Labels"] = LabelsJson(labels);
  body["AttachStdout"] = false;
  body["AttachStderr"] = false;
  body["Tty"] = false;
  if (const auto& h = spec.health_check; !h.command.empty()) {
    json::array test;
    test.emplace_back("CMD");
    for (const auto& a : h.command) test.emplace_back(a);
    json::object hc;
    hc["Test"] = std::move(test);
    hc["Interval"] = h.interval_ns;
    hc["Timeout"] = h.timeout_ns;
    hc["StartPeriod"] = h.start_period_ns;
    hc["Retries"] = h.retries;
    body["Healthcheck"] = std::move(hc);
  }
  json::object host;
  host["Init"] = init;
  if (!spec.mounts.empty()) {
    json::array mounts;
    for (const auto& m : spec.mounts) {
      json::object o;
      o["Type"] = m.type;
      o["Target"] = m.target;
      o["ReadOnly"] = m.read_only;
      if (m.type == "bind") {
        o["Source"] = m.source;
      } else if (m.tmpfs_bytes > 0) {
        o["TmpfsOptions"] = json::object{{"SizeBytes", m.tmpfs_bytes}};
      }
      mounts.push_back(std::move(o));
    }
    host["Mounts"] = std::move(mounts);
  }
  if (!spec.devices.empty()) {
    json::array devices;
    for (const auto& d : spec.devices) {
      devices.push_back(json::object{
          {"PathOnHost", d.path_on_host},
          {"PathInContainer", d.path_in_container.empty() ? d.path_on_host : d.path_in_container},
          {"CgroupPermissions", d.permissions}});
    }
    host["Devices"] = std::move(devices);
  }
  json::array requests;
  for (const auto& r : spec.device_requests) {
    json::object o;
    o["Driver"] = r.driver;
    o["Count"] = r.count;
    o["DeviceIDs"] = JsonStrings(r.device_ids);
    json::array caps;
    for (const auto& andlist : r.capabilities) caps.push_back(JsonStrings(andlist));
    o["Capabilities"] = std::move(caps);
    json::object opts;
    for (const auto& [k, v] : r.options) opts[k] = v;
    o["Options"] = std::move(opts);
    requests.push_back(std::move(o));
  }
  if (!spec.cdi_devices.empty()) {
    requests.push_back(
        json::object{{"Driver", "cdi"}, {"DeviceIDs", JsonStrings(spec.cdi_devices)}});
  }
  if (!requests.empty()) host["DeviceRequests"] = std::move(requests);
  if (!spec.device_cgroup_rules.empty()) {
    host["DeviceCgroupRules"] = JsonStrings(spec.device_cgroup_rules);
  }
  if (!spec.cpuset.empty()) host["CpusetCpus"] = spec.cpuset;
  if (spec.cpus > 0) host["NanoCpus"] = static_cast<std::int64_t>(spec.cpus * 1e9);
  if (spec.memory_bytes > 0) host["Memory"] = spec.memory_bytes;
  if (spec.shm_bytes > 0) host["ShmSize"] = spec.shm_bytes;
  if (!spec.network_mode.empty()) host["NetworkMode"] = spec.network_mode;
  body["HostConfig"] = std::move(host);
  return body;
}

std::string LabelFilter(const Labels& labels) {
  json::array list;
  for (const auto& [k, v] : labels) list.emplace_back(v.empty() ? k : k + "=" + v);
  json::object filters;
  if (!list.empty()) filters["label"] = std::move(list);
  return PercentEncode(json::serialize(filters));
}

}  // namespace bitfusion::internal
