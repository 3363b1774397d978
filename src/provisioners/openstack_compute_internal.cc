#include "provisioners/openstack_compute_internal.h"

#include <algorithm>
#include <boost/json.hpp>
#include <cstdlib>
#include <sstream>

#include "bitfusion/log.h"
#include "core/ascii.h"
#include "core/json_fields.h"
#include "core/rfc3339.h"

namespace bitfusion::internal {
namespace {

namespace json = boost::json;

AcceleratorInfo Accelerator(const std::string& name, int count) {
  const std::string n = AsciiLower(name);
  auto has = [&](std::initializer_list<const char*> words) {
    return std::any_of(words.begin(), words.end(),
                       [&](const char* w) { return n.find(w) != std::string::npos; });
  };
  AcceleratorInfo a;
  a.count = count;
  a.model = name;
  a.kind = has({"fpga", "u200", "u250", "u280", "u55", "alveo", "agilex", "stratix", "arria"})
               ? "fpga"
               : "gpu";
  if (has({"nvidia", "tesla", "a100", "h100", "h200", "v100", "p100", "t4", "l4", "l40", "a10",
           "a30", "a40", "k80", "rtx", "vgpu"})) {
    a.vendor = "NVIDIA";
  } else if (has({"amd", "radeon", "instinct", "mi1", "mi2", "mi3"})) {
    a.vendor = "AMD";
  } else if (has({"xilinx", "alveo", "u200", "u250", "u280", "u55"})) {
    a.vendor = "Xilinx";
  } else if (has({"intel", "agilex", "stratix", "arria", "flex"})) {
    a.vendor = "Intel";
  }
  return a;
}

// The address to reach a server at: a floating IP, else a v4 address on a network called
// "public" (Rackspace), else accessIPv4, else the first v4 address.
std::string Address(const json::object* server) {
  const json::object* networks = JsonObjectAt(server, "addresses");
  std::string floating, public_v4, first_v4;
  if (networks != nullptr) {
    for (const auto& [name, list] : *networks) {
      if (!list.is_array()) continue;
      for (const auto& a : list.as_array()) {
        const json::object* o = JsonObject(&a);
        if (JsonIntAt(o, "version") != 4) continue;
        const std::string addr = JsonStringAt(o, "addr");
        if (JsonStringAt(o, "OS-EXT-IPS:type") == "floating" && floating.empty()) floating = addr;
        if (name == "public" && public_v4.empty()) public_v4 = addr;
        if (first_v4.empty()) first_v4 = addr;
      }
    }
  }
  if (!floating.empty()) return floating;
  if (!public_v4.empty()) return public_v4;
  if (!JsonStringAt(server, "accessIPv4").empty()) return JsonStringAt(server, "accessIPv4");
  return first_v4;
}

std::string State(const json::object* server) {
  const std::string status = JsonStringAt(server, "status");
  const std::string task = JsonStringAt(server, "OS-EXT-STS:task_state");
  if (task == "deleting" || status == "DELETED" || status == "SOFT_DELETED") {
    return status == "DELETED" ? "terminated" : "shutting-down";
  }
  if (status == "ACTIVE") return "running";
  if (status == "BUILD") return "pending";
  if (status == "ERROR") return "error";
  if (status == "SHUTOFF" || status == "SUSPENDED" || status == "PAUSED" ||
      status.starts_with("SHELVED")) {
    return "stopped";
  }
  return status.empty() ? "unknown" : AsciiLower(status);
}

}  // namespace

std::string NovaErrorMessage(std::string_view body) {
  boost::system::error_code ec;
  const json::value v = json::parse(body, ec);
  if (ec || !v.is_object() || v.as_object().empty()) return "";
  const json::object* inner = JsonObject(&v.as_object().begin()->value());
  const std::string name(v.as_object().begin()->key());
  const std::string message = JsonStringAt(inner, "message");
  return message.empty() ? "" : name + ": " + message;
}

Status NovaStatus(const std::string& what, long status, std::string_view body) {
  std::string message = Redact(NovaErrorMessage(body));
  if (message.empty()) message = "HTTP " + std::to_string(status);
  const std::string head = what + " failed (" + std::to_string(status) + " " + message + "); ";
  switch (status) {
    case 400: return InvalidArgumentError(head + "correct the request");
    case 401:
      return PermissionDeniedError(head +
                                   "the token was refused after renewing it; check the "
                                   "credentials and the project's roles");
    case 403:
      if (message.find("Quota exceeded") != std::string::npos ||
          message.find("quota") != std::string::npos) {
        return ResourceExhaustedError(head +
                                      "ask for fewer machines, free some quota or try another "
                                      "region");
      }
      return PermissionDeniedError(head + "the project's roles do not allow it");
    case 404:
      return NotFoundError(head +
                           "list the machines with `bitfusion machines list --provisioner URI`");
    case 406:
      return UnimplementedError(head + "this compute service does not speak that API version");
    case 409:
      return FailedPreconditionError(head + "the server is locked or busy; unlock it or wait");
    case 413:
    case 429:
      return UnavailableError(head + "the cloud is throttling this account; try again later");
    default: return UnavailableError(head + "the compute service is failing; try again later");
  }
}

std::int64_t ParseNovaTime(const std::string& text) {
  if (text.empty()) return 0;
  if (auto ns = ParseRfc3339(text)) return *ns;
  return ParseRfc3339(text + "Z").value_or(0);
}

std::vector<AcceleratorInfo> NovaAccelerators(const json::object* specs) {
  std::vector<AcceleratorInfo> out;
  if (specs == nullptr) return out;
  for (const auto& [key, value] : *specs) {
    if (!value.is_string()) continue;
    const std::string v(value.as_string());
    if (key == "pci_passthrough:alias") {
      std::stringstream s(v);
      std::string item;
      while (std::getline(s, item, ',')) {
        const auto colon = item.find(':');
        const int count = colon == std::string::npos ? 1 : std::atoi(item.c_str() + colon + 1);
        if (count > 0) out.push_back(Accelerator(item.substr(0, colon), count));
      }
    } else if (key == "resources:VGPU" && std::atoi(v.c_str()) > 0) {
      AcceleratorInfo a = Accelerator("vGPU", std::atoi(v.c_str()));
      a.vendor.clear();  // vGPUs come from NVIDIA's or Intel's drivers; Nova does not say
      out.push_back(a);
    } else if (key.starts_with("resources:CUSTOM_") && std::atoi(v.c_str()) > 0) {
      const std::string resource(key.substr(std::string_view("resources:CUSTOM_").size()));
      const std::string lower = AsciiLower(resource);
      if (lower.find("fpga") != std::string::npos || lower.find("gpu") != std::string::npos) {
        out.push_back(Accelerator(resource, std::atoi(v.c_str())));
      }
    } else if (key == "accel:device_profile") {
      AcceleratorInfo a = Accelerator(v, 1);
      if (AsciiLower(v).find("fpga") == std::string::npos &&
          AsciiLower(v).find("gpu") == std::string::npos) {
        a.kind = "accelerator";
      }
      out.push_back(a);
    }
  }
  return out;
}

NovaFlavor ParseNovaFlavor(const json::value& f, const json::object* specs) {
  const json::object* o = JsonObject(&f);
  NovaFlavor flavor;
  flavor.id = JsonStringAt(o, "id");
  flavor.type.name = JsonStringAt(o, "name");
  flavor.type.vcpus = static_cast<int>(JsonIntAt(o, "vcpus"));
  flavor.type.memory_bytes = static_cast<std::uint64_t>(JsonIntAt(o, "ram")) << 20;
  flavor.type.accelerators = NovaAccelerators(specs);
  const std::string arch = JsonStringAt(specs, "capabilities:cpu_info:arch");
  if (!arch.empty()) flavor.type.cpu_architecture = arch;
  return flavor;
}

MachineInfo NovaServer(const json::object& server) {
  MachineInfo m;
  m.id = JsonStringAt(&server, "id");
  m.hostname = JsonStringAt(&server, "name");
  m.state = State(&server);
  m.address = Address(&server);
  m.zone = JsonStringAt(&server, "OS-EXT-AZ:availability_zone");
  m.ssh.host = m.address;
  m.ssh.key_name = JsonStringAt(&server, "key_name");
  if (const json::object* metadata = JsonObjectAt(&server, "metadata")) {
    for (const auto& [k, v] : *metadata) {
      if (v.is_string()) m.labels[std::string(k)] = std::string(v.as_string());
    }
  }
  m.created_ns = ParseNovaTime(JsonStringAt(&server, "created"));
  m.running_ns = ParseNovaTime(JsonStringAt(&server, "OS-SRV-USG:launched_at"));
  const json::object* flavor = JsonObjectAt(&server, "flavor");
  m.type = !JsonStringAt(flavor, "original_name").empty() ? JsonStringAt(flavor, "original_name")
                                                          : JsonStringAt(flavor, "id");
  return m;
}

std::string NovaServerFlavorId(const json::object& server) {
  return JsonStringAt(JsonObjectAt(&server, "flavor"), "id");
}

std::string NovaCreatedServerId(std::string_view body) {
  boost::system::error_code ec;
  const json::value v = json::parse(body, ec);
  return ec ? "" : JsonStringAt(JsonObjectAt(JsonObject(&v), "server"), "id");
}

}  // namespace bitfusion::internal
