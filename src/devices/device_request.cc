#include "devices/device_request.h"

#include <boost/json.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>
#include <set>
#include <sstream>

#include "core/ascii.h"

namespace bitfusion {
namespace {

namespace json = boost::json;

Status FieldError(const std::string& path, const std::string& field, const std::string& what) {
  const std::string where = path.empty() ? field : path + "." + field;
  return InvalidArgumentError(where + ": " + what);
}

std::string GiB(std::uint64_t bytes) {
  std::ostringstream out;
  const double gib = static_cast<double>(bytes) / (1ull << 30);
  if (bytes % (1ull << 30) == 0) {
    out << bytes / (1ull << 30) << " GiB";
  } else if (gib >= 1) {
    out.precision(3);
    out << gib << " GiB";
  } else {
    out << bytes << " bytes";
  }
  return out.str();
}

}  // namespace

const char* DeviceKindName(DeviceKind kind) {
  switch (kind) {
    case DeviceKind::kAny: return "any";
    case DeviceKind::kGpu: return "gpu";
    case DeviceKind::kFpga: return "fpga";
    case DeviceKind::kAccelerator: return "accelerator";
  }
  return "any";
}

std::string DescribeDeviceRequest(const DeviceRequest& r) {
  std::string out = std::to_string(r.count) + " ";
  if (!r.vendor.empty()) out += r.vendor + " ";
  out += r.kind == DeviceKind::kAny ? std::string("device") : DeviceKindName(r.kind);
  out += "(s)";
  if (!r.model.empty()) out += " matching \"" + r.model + "\"";
  if (r.min_memory_bytes > 0) out += " with >= " + GiB(r.min_memory_bytes);
  if (r.same_numa_node) out += ", on one NUMA node";
  if (r.same_pcie_switch) out += ", behind one PCIe switch";
  if (r.nvlink_connected) out += ", NVLink-connected";
  out += r.exclusive ? ", exclusive" : ", shared";
  return out;
}

Result<std::uint64_t> ParseByteSize(std::string_view text) {
  std::string s(text);
  s.erase(std::remove_if(s.begin(), s.end(), [](unsigned char c) { return std::isspace(c); }),
          s.end());
  std::size_t digits = 0;
  while (digits < s.size() &&
         (std::isdigit(static_cast<unsigned char>(s[digits])) || s[digits] == '.')) {
    ++digits;
  }
  const std::string number = s.substr(0, digits);
  const std::string unit = internal::AsciiLower(s.substr(digits));
  double value = 0;
  try {
    std::size_t used = 0;
    value = number.empty() ? -1 : std::stod(number, &used);
    if (used != number.size()) value = -1;
  } catch (const std::exception&) {
    value = -1;
  }
  static const std::map<std::string, double> kUnits = {{"", 1},
                                                       {"b", 1},
                                                       {"kb", 1e3},
                                                       {"mb", 1e6},
                                                       {"gb", 1e9},
                                                       {"tb", 1e12},
                                                       {"kib", 1024.0},
                                                       {"mib", 1048576.0},
                                                       {"gib", 1073741824.0},
                                                       {"tib", 1099511627776.0}};
  auto it = kUnits.find(unit);
  if (value < 0 || it == kUnits.end() || !std::isfinite(value * it->second) ||
      value * it->second > 1.8e19) {
    // Appended, not "\"" + std::string&&: GCC 12 at -O3 reports a bogus -Wrestrict overlap for
    // a one-character literal plus a temporary string (GCC bug 105329).
    std::string message(1, '"');
    message.append(text).append(
        "\" is not a size; write bytes or a number with B, KB, MB, GB, TB, KiB, MiB, GiB or TiB, "
        "e.g. \"40GiB\"");
    return InvalidArgumentError(message);
  }
  return static_cast<std::uint64_t>(std::llround(value * it->second));
}

Result<DeviceRequest> ParseDeviceRequest(const json::value& value, const std::string& path) {
  if (!value.is_object()) {
    return InvalidArgumentError((path.empty() ? std::string("device request") : path) +
                                ": expected an object such as {\"kind\": \"gpu\", \"count\": 1}");
  }
  static const std::set<std::string> kKnown = {"kind",       "vendor",   "model",    "count",
                                               "min_memory", "topology", "exclusive"};
  DeviceRequest r;
  for (const auto& kv : value.get_object()) {
    const std::string key(kv.key());
    const json::value& v = kv.value();
    if (!kKnown.count(key)) {
      std::string list;
      for (const auto& k : kKnown) list += (list.empty() ? "" : ", ") + k;
      return FieldError(path, key, "unknown field; known fields: " + list);
    }
    if (key == "kind") {
      if (!v.is_string()) return FieldError(path, key, "expected a string");
      const std::string kind = internal::AsciiLower(v.get_string());
      if (kind == "gpu") {
        r.kind = DeviceKind::kGpu;
      } else if (kind == "fpga") {
        r.kind = DeviceKind::kFpga;
      } else if (kind == "accelerator") {
        r.kind = DeviceKind::kAccelerator;
      } else if (kind == "any") {
        r.kind = DeviceKind::kAny;
      } else {
        return FieldError(path, key,
                          "\"" + kind + "\" is not a kind; use gpu, fpga, accelerator or any");
      }
    } else if (key == "vendor" || key == "model") {
      if (!v.is_string()) return FieldError(path, key, "expected a string");
      (key == "vendor" ? r.vendor : r.model) = std::string(v.get_string());
    } else if (key == "count") {
      if (!v.is_int64() && !v.is_uint64()) {
        return FieldError(path, key, "expected an integer >= 0");
      }
      const std::int64_t n =
          v.is_int64() ? v.get_int64() : static_cast<std::int64_t>(v.get_uint64());
      if (n < 0 || n > 4096) {
        return FieldError(path, key, "expected an integer >= 0, got " + std::to_string(n));
      }
      r.count = static_cast<int>(n);
    } else if (key == "min_memory") {
      if (v.is_int64() || v.is_uint64()) {
        if (v.is_int64() && v.get_int64() < 0) {
          return FieldError(path, key, "must not be negative");
        }
        r.min_memory_bytes =
            v.is_int64() ? static_cast<std::uint64_t>(v.get_int64()) : v.get_uint64();
      } else if (v.is_string()) {
        auto bytes = ParseByteSize(v.get_string());
        if (!bytes) return FieldError(path, key, bytes.error().message());
        r.min_memory_bytes = *bytes;
      } else {
        return FieldError(path, key, "expected bytes or a size such as \"40GiB\"");
      }
    } else if (key == "topology") {
      std::vector<const json::value*> items;
      if (v.is_array()) {
        for (const auto& item : v.get_array()) items.push_back(&item);
      } else {
        items.push_back(&v);
      }
      for (const auto* item : items) {
        if (!item->is_string()) return FieldError(path, key, "expected a string or strings");
        const std::string t = internal::AsciiLower(item->get_string());
        if (t == "same_numa_node" || t == "numa") {
          r.same_numa_node = true;
        } else if (t == "same_pcie_switch" || t == "pcie_switch") {
          r.same_pcie_switch = true;
        } else if (t == "nvlink") {
          r.nvlink_connected = true;
        } else if (t != "any") {
          return FieldError(path, key,
                            "\"" + t +
                                "\" is not a topology; use same_numa_node, same_pcie_switch, "
                                "nvlink or any");
        }
      }
    } else if (key == "exclusive") {
      if (!v.is_bool()) return FieldError(path, key, "expected true or false");
      r.exclusive = v.get_bool();
    }
  }
  return r;
}

Result<std::vector<DeviceRequest>> ParseDeviceRequestList(const json::value& value,
                                                          const std::string& path) {
  std::vector<DeviceRequest> out;
  if (value.is_array()) {
    const auto& array = value.get_array();
    for (std::size_t i = 0; i < array.size(); ++i) {
      BITFUSION_ASSIGN_OR_RETURN(
          auto r, ParseDeviceRequest(array[i], path + "[" + std::to_string(i) + "]"));
      out.push_back(std::move(r));
    }
    return out;
  }
  BITFUSION_ASSIGN_OR_RETURN(auto r, ParseDeviceRequest(value, path));
  out.push_back(std::move(r));
  return out;
}

Result<std::vector<DeviceRequest>> ParseDeviceRequests(std::string_view text) {
  boost::system::error_code ec;
  const json::value value = json::parse(text, ec);
  if (ec) {
    return InvalidArgumentError("device requests are not valid JSON: " + ec.message());
  }
  return ParseDeviceRequestList(value, "");
}

bool DeviceMatches(const Device& d, const DeviceRequest& r) {
  if (r.kind != DeviceKind::kAny && d.kind != r.kind) return false;
  if (!r.vendor.empty()) {
    const std::string want = internal::AsciiLower(r.vendor);
    const std::string vendor = internal::AsciiLower(d.vendor);
    // "Intel/Altera" matches "intel" and "altera".
    const bool by_name = vendor == want || vendor.find(want + "/") == 0 ||
                         (vendor.size() > want.size() &&
                          vendor.compare(vendor.size() - want.size(), want.size(), want) == 0 &&
                          vendor[vendor.size() - want.size() - 1] == '/');
    if (!by_name && internal::AsciiLower(d.vendor_id) != want) return false;
  }
  if (!r.model.empty() &&
      internal::AsciiLower(d.model).find(internal::AsciiLower(r.model)) == std::string::npos)
    return false;
  if (r.min_memory_bytes > 0 && d.memory_bytes < r.min_memory_bytes) return false;
  return true;
}

}  // namespace bitfusion
