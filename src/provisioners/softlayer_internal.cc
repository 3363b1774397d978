#include "provisioners/softlayer_internal.h"

#include <algorithm>
#include <boost/json.hpp>
#include <charconv>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <optional>

#include <re2/re2.h>

#include "bitfusion/ownership.h"
#include "core/json_fields.h"
#include "core/rfc3339.h"

namespace bitfusion::internal {
namespace {

namespace json = boost::json;

// A run of digits as a number no larger than `max`; nullopt when it is larger (std::stoi and
// std::stoull threw std::out_of_range there, out of the public API).
std::optional<std::uint64_t> Digits(const std::string& digits, std::uint64_t max) {
  std::uint64_t n = 0;
  const char* end = digits.data() + digits.size();
  const auto [at, ec] = std::from_chars(digits.data(), end, n);
  if (ec != std::errc() || at != end || n > max) return std::nullopt;
  return n;
}

Labels TagsToLabels(const json::object* guest) {
  Labels out;
  const json::value* refs = guest == nullptr ? nullptr : guest->if_contains("tagReferences");
  if (refs == nullptr || !refs->is_array()) return out;
  for (const auto& r : refs->as_array()) {
    const std::string tag = JsonStringAt(JsonObjectAt(JsonObject(&r), "tag"), "name");
    const auto colon = tag.find(':');
    if (colon == std::string::npos) {
      out[tag] = "";
    } else {
      out[tag.substr(0, colon)] = tag.substr(colon + 1);
    }
  }
  return out;
}

}  // namespace

// A body that is not SoftLayer's error JSON means the request may or may not have been carried
// out.
std::optional<SoftLayerError> ParseSoftLayerError(std::string_view body) {
  boost::system::error_code ec;
  const json::value v = json::parse(body, ec);
  if (ec || !v.is_object()) return std::nullopt;
  const auto* code = v.as_object().if_contains("code");
  const auto* error = v.as_object().if_contains("error");
  if (code == nullptr || !code->is_string()) return std::nullopt;
  return SoftLayerError{std::string(code->as_string()), error != nullptr && error->is_string()
                                                            ? std::string(error->as_string())
                                                            : ""};
}

MachineType ParseSoftLayerFlavor(const json::object* f) {
  MachineType t;
  t.name = JsonStringAt(f, "keyName");
  t.cpu_architecture = "x86_64";
  // Key names read FAMILY_{cores}X{ram GB}X{disk GB}: B1_2X4X100, AC1_8X60X25.
  static const RE2 kKey("[A-Z0-9]+_([0-9]+)X([0-9]+)X[0-9]+.*");
  std::string cores_text, gb_text;
  if (RE2::FullMatch(t.name, kKey, &cores_text, &gb_text)) {
    if (const auto cores = Digits(cores_text, INT_MAX)) t.vcpus = static_cast<int>(*cores);
    if (const auto gb = Digits(gb_text, UINT64_MAX >> 30)) t.memory_bytes = *gb << 30;
  }
  const std::string fee = JsonStringAt(f, "totalMinimumHourlyFee");
  if (!fee.empty()) t.hourly_price_usd = std::strtod(fee.c_str(), nullptr);
  const json::value* prices = f == nullptr ? nullptr : f->if_contains("prices");
  if (prices != nullptr && prices->is_array()) {
    for (const auto& p : prices->as_array()) {
      const json::object* item = JsonObjectAt(JsonObject(&p), "item");
      const std::string category = JsonStringAt(JsonObjectAt(item, "itemCategory"), "categoryCode");
      if (category.rfind("guest_pcie_device", 0) != 0) continue;
      // "1 x P100 GPU"; SoftLayer's classic GPUs are all NVIDIA's. (Read without sscanf's "%d",
      // whose behaviour for a number no int holds is undefined.)
      const std::string description = JsonStringAt(item, "description");
      std::size_t at = description.find_first_not_of(' ');
      const std::size_t digits_end = description.find_first_not_of("0123456789", at);
      const auto count = at == std::string::npos
                             ? std::nullopt
                             : Digits(description.substr(at, digits_end - at), INT_MAX);
      at = digits_end == std::string::npos ? digits_end
                                           : description.find_first_not_of(' ', digits_end);
      if (count && *count > 0 && at != std::string::npos && description[at] == 'x') {
        const std::size_t model_at = description.find_first_not_of(' ', at + 1);
        const std::size_t model_end = description.find(' ', model_at);
        if (model_at != std::string::npos) {
          AcceleratorInfo a;
          a.kind = "gpu";
          a.vendor = "NVIDIA";
          a.model = description.substr(model_at, std::min<std::size_t>(model_end - model_at, 63));
          a.count = static_cast<int>(*count);
          t.accelerators.push_back(a);
        }
      }
    }
  }
  return t;
}

// A bare-metal preset: "S1270_8GB_2X1TBSATA_NORAID", described "Single Xeon 1270, 8GB Ram,
// ...". Memory from the key's "<n>GB"; GPUs from the description's "<n> x <model> GPU".
MachineType ParseSoftLayerPreset(const json::object* p) {
  MachineType t;
  t.name = JsonStringAt(p, "keyName");
  t.cpu_architecture = "x86_64";
  const std::string description = JsonStringAt(p, "description");
  static const RE2 kMemory("_([0-9]+)GB_");
  std::string gb_text;
  if (RE2::PartialMatch(t.name, kMemory, &gb_text)) {
    if (const auto gb = Digits(gb_text, UINT64_MAX >> 30)) t.memory_bytes = *gb << 30;
  }
  if (description.find("Xeon") != std::string::npos) t.cpu_vendor = "Intel";
  if (description.find("EPYC") != std::string::npos) t.cpu_vendor = "AMD";
  static const RE2 kGpu("(?i)([0-9]+) ?x ?(?:NVIDIA )?(?:Tesla )?([A-Za-z]*[0-9]+[A-Za-z]*) GPU");
  std::string count_text, model;
  const auto count = RE2::PartialMatch(description, kGpu, &count_text, &model)
                         ? Digits(count_text, INT_MAX)
                         : std::nullopt;
  if (count) {
    AcceleratorInfo a;
    a.kind = "gpu";
    a.vendor = "NVIDIA";  // SoftLayer's bare-metal GPUs are NVIDIA's (K80, M60, P100, V100, T4)
    a.model = model;
    a.count = static_cast<int>(*count);
    t.accelerators.push_back(a);
  }
  const std::string fee = JsonStringAt(p, "totalMinimumHourlyFee");
  if (!fee.empty()) t.hourly_price_usd = std::strtod(fee.c_str(), nullptr);
  return t;
}

MachineInfo SoftLayerMachine(bool hardware, const json::object& object, bool private_only) {
  const json::object* o = &object;
  MachineInfo m;
  // The id field of KindInfo in softlayer_provisioner.cc.
  m.id = JsonStringAt(o, hardware ? "globalIdentifier" : "id");
  m.provider = "softlayer";
  m.type = JsonStringAt(
      JsonObjectAt(JsonObjectAt(JsonObjectAt(o, "billingItem"), "orderItem"), "preset"), "keyName");
  const bool busy = o->contains("activeTransaction") || JsonStringAt(o, "provisionDate").empty();
  if (hardware) {
    // A cancelled server keeps its record, without a billing item, until it is reclaimed.
    m.state = !o->contains("billingItem") ? "shutting-down" : busy ? "pending" : "running";
    m.cpu.threads = static_cast<int>(JsonIntAt(o, "processorPhysicalCoreAmount"));
    m.memory_bytes = static_cast<std::uint64_t>(JsonIntAt(o, "memoryCapacity")) << 30;
  } else {
    const std::string power = JsonStringAt(JsonObjectAt(o, "powerState"), "keyName");
    m.state = busy                 ? "pending"
              : power == "RUNNING" ? "running"
              : power.empty()      ? "unknown"
                                   : "stopped";
    m.cpu.threads = static_cast<int>(JsonIntAt(o, "startCpus"));
    m.memory_bytes = static_cast<std::uint64_t>(JsonIntAt(o, "maxMemory")) << 20;
  }
  m.hostname = JsonStringAt(o, "fullyQualifiedDomainName");
  m.address = private_only || JsonStringAt(o, "primaryIpAddress").empty()
                  ? JsonStringAt(o, "primaryBackendIpAddress")
                  : JsonStringAt(o, "primaryIpAddress");
  m.zone = JsonStringAt(JsonObjectAt(o, "datacenter"), "name");
  m.ssh.host = m.address;
  m.labels = TagsToLabels(o);
  m.created_ns = internal::ParseRfc3339(JsonStringAt(o, "createDate")).value_or(0);
  m.cpu.architecture = "x86_64";
  if (m.labels.count(kLabelCreator) == 0) {
    // The tag window: named by bitfusion, never tagged (its creator died in between).
    m.labels[kLabelCreator] = "bitfusion";
    m.labels[kLabelExpires] =
        std::to_string(m.created_ns / 1'000'000'000 + kSoftLayerUntaggedGraceS);
    m.labels["bitfusion.untagged"] = "true";
  }
  return m;
}

}  // namespace bitfusion::internal
