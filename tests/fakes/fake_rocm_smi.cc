// A fake librocm_smi64.so.1 with the entry points bitfusion's ROCm SMI enricher calls, written
// from rocm_smi/rocm_smi.h (ROCm SMI 5.2, Debian librocm-smi-dev 5.2.3): status codes, the BDFID
// layout of rsmi_dev_pci_id_get, RSMI_STATUS_INSUFFICIENT_SIZE for short buffers (the prefix is
// still written), RSMI_STATUS_INVALID_ARGS for bad indices and null pointers.
//
// Configured by the JSON file named by BITFUSION_FAKE_ROCM_SMI_CONFIG:
//   {"driver_version": "6.2.4", "devices": [{"address": "0000:03:00.0", "name": "...",
//     "vram_total": 68702699520, "unique_id": 3039283747, "xgmi": [1, 2, 3]}]}
// "xgmi" lists the indices this device reaches over one xGMI hop; other pairs are PCIe.
// A device may carry "telemetry": {"busy_percent": [..], "memory_busy_percent": [..],
//   "vram_used": [..], "power_uw": [..], "temp_edge_mc": [..], "sclk_hz": [..], "mclk_hz": [..]}:
// each query answers the next value of its list on every call (wrapping); for the clocks the
// list is the frequency table and "current" steps through it. A query without a list answers
// RSMI_STATUS_NOT_SUPPORTED. rsmi_version_get reports 5.2.3 and the clock tables are written in
// that release's rsmi_frequencies_t; with "frequency_layout": "deep_sleep" at the top level they
// are written as newer releases do (a bool has_deep_sleep first, 33 entries) and the version is
// 7.5.0.
#include <boost/json.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "fakes/fake_vendor_config.h"

namespace {

typedef enum {
  RSMI_STATUS_SUCCESS = 0x0,
  RSMI_STATUS_INVALID_ARGS,
  RSMI_STATUS_NOT_SUPPORTED,
  RSMI_STATUS_FILE_ERROR,
  RSMI_STATUS_PERMISSION,
  RSMI_STATUS_OUT_OF_RESOURCES,
  RSMI_STATUS_INTERNAL_EXCEPTION,
  RSMI_STATUS_INPUT_OUT_OF_BOUNDS,
  RSMI_STATUS_INIT_ERROR,
  RSMI_STATUS_NOT_YET_IMPLEMENTED,
  RSMI_STATUS_NOT_FOUND,
  RSMI_STATUS_INSUFFICIENT_SIZE,
} rsmi_status_t;

typedef enum {
  RSMI_MEM_TYPE_VRAM = 0,
  RSMI_MEM_TYPE_VIS_VRAM,
  RSMI_MEM_TYPE_GTT
} rsmi_memory_type_t;
typedef enum { RSMI_SW_COMP_DRIVER = 0 } rsmi_sw_component_t;
typedef enum _RSMI_IO_LINK_TYPE {
  RSMI_IOLINK_TYPE_UNDEFINED = 0,
  RSMI_IOLINK_TYPE_PCIEXPRESS = 1,
  RSMI_IOLINK_TYPE_XGMI = 2,
  RSMI_IOLINK_TYPE_SIZE = 0xFFFFFFFF
} RSMI_IO_LINK_TYPE;

#define RSMI_MAX_NUM_FREQUENCIES 32
typedef struct {
  std::uint32_t num_supported;
  std::uint32_t current;
  std::uint64_t frequency[RSMI_MAX_NUM_FREQUENCIES];
} rsmi_frequencies_t;
typedef enum { RSMI_CLK_TYPE_SYS = 0x0, RSMI_CLK_TYPE_MEM = 0x4 } rsmi_clk_type_t;
typedef enum { RSMI_TEMP_CURRENT = 0x0 } rsmi_temperature_metric_t;
typedef struct {
  std::uint32_t major;
  std::uint32_t minor;
  std::uint32_t patch;
  const char* build;
} rsmi_version_t;

struct FakeGpu {
  std::uint64_t bdfid = 0;
  std::string name;
  std::uint64_t vram = 0;
  std::uint64_t unique_id = 0;
  std::vector<std::uint32_t> xgmi;
  std::map<std::string, std::vector<std::uint64_t>> telemetry;
  std::map<std::string, std::size_t> calls;
  // The next value of `key`'s list and its position; false when there is no list.
  bool Next(const std::string& key, std::uint64_t& out, std::size_t* at = nullptr) {
    auto it = telemetry.find(key);
    if (it == telemetry.end() || it->second.empty()) return false;
    const std::size_t i = calls[key]++ % it->second.size();
    out = it->second[i];
    if (at != nullptr) *at = i;
    return true;
  }
};

// rsmi_frequencies_t of the releases with has_deep_sleep.
struct DeepSleepFrequencies {
  bool has_deep_sleep;
  std::uint32_t num_supported;
  std::uint32_t current;
  std::uint64_t frequency[33];
};

std::mutex mu;
bool initialised = false;
bool deep_sleep_layout = false;
std::string driver_version;
std::vector<FakeGpu> gpus;

rsmi_status_t CopyString(const std::string& value, char* out, std::size_t length) {
  if (out == nullptr || length == 0) return RSMI_STATUS_INVALID_ARGS;
  const std::size_t n = std::min(value.size(), length - 1);
  std::memcpy(out, value.data(), n);
  out[n] = '\0';
  return n < value.size() ? RSMI_STATUS_INSUFFICIENT_SIZE : RSMI_STATUS_SUCCESS;
}

}  // namespace

BITFUSION_FAKE_API rsmi_status_t rsmi_init(std::uint64_t) {
  std::lock_guard<std::mutex> lock(mu);
  auto config = bitfusion::fakes::LoadFakeConfig("BITFUSION_FAKE_ROCM_SMI_CONFIG");
  if (!config || !config->is_object()) return RSMI_STATUS_INIT_ERROR;
  const auto& root = config->get_object();
  gpus.clear();
  deep_sleep_layout =
      root.contains("frequency_layout") && root.at("frequency_layout").as_string() == "deep_sleep";
  driver_version = root.contains("driver_version")
                       ? std::string(root.at("driver_version").as_string())
                       : std::string("6.2.4");
  for (const auto& v : root.at("devices").as_array()) {
    const auto& o = v.as_object();
    FakeGpu g;
    unsigned domain, bus, dev, fn;
    if (std::sscanf(std::string(o.at("address").as_string()).c_str(), "%x:%x:%x.%x", &domain, &bus,
                    &dev, &fn) != 4) {
      return RSMI_STATUS_INIT_ERROR;
    }
    g.bdfid = (static_cast<std::uint64_t>(domain) << 32) | (bus << 8) | (dev << 3) | fn;
    g.name = std::string(o.at("name").as_string());
    g.vram = o.at("vram_total").to_number<std::uint64_t>();
    g.unique_id = o.contains("unique_id") ? o.at("unique_id").to_number<std::uint64_t>() : 0;
    if (const auto* x = o.if_contains("xgmi")) {
      for (const auto& peer : x->as_array()) g.xgmi.push_back(peer.to_number<std::uint32_t>());
    }
    if (const auto* t = o.if_contains("telemetry")) {
      for (const auto& kv : t->as_object()) {
        auto& list = g.telemetry[std::string(kv.key())];
        for (const auto& x : kv.value().as_array()) list.push_back(x.to_number<std::uint64_t>());
      }
    }
    gpus.push_back(std::move(g));
  }
  initialised = true;
  return RSMI_STATUS_SUCCESS;
}

BITFUSION_FAKE_API rsmi_status_t rsmi_shut_down() {
  std::lock_guard<std::mutex> lock(mu);
  initialised = false;
  return RSMI_STATUS_SUCCESS;
}

#define FAKE_CHECK(index, out)                     \
  std::lock_guard<std::mutex> lock(mu);            \
  if (!initialised) return RSMI_STATUS_INIT_ERROR; \
  if ((index) >= gpus.size() || (out) == nullptr) return RSMI_STATUS_INVALID_ARGS

BITFUSION_FAKE_API rsmi_status_t rsmi_num_monitor_devices(std::uint32_t* num_devices) {
  std::lock_guard<std::mutex> lock(mu);
  if (!initialised) return RSMI_STATUS_INIT_ERROR;
  if (num_devices == nullptr) return RSMI_STATUS_INVALID_ARGS;
  *num_devices = static_cast<std::uint32_t>(gpus.size());
  return RSMI_STATUS_SUCCESS;
}

BITFUSION_FAKE_API rsmi_status_t rsmi_dev_pci_id_get(std::uint32_t dv_ind, std::uint64_t* bdfid) {
  FAKE_CHECK(dv_ind, bdfid);
  *bdfid = gpus[dv_ind].bdfid;
  return RSMI_STATUS_SUCCESS;
}

BITFUSION_FAKE_API rsmi_status_t rsmi_dev_name_get(std::uint32_t dv_ind, char* name,
                                                   std::size_t len) {
  FAKE_CHECK(dv_ind, name);
  return CopyString(gpus[dv_ind].name, name, len);
}

BITFUSION_FAKE_API rsmi_status_t rsmi_dev_memory_total_get(std::uint32_t dv_ind,
                                                           rsmi_memory_type_t type,
                                                           std::uint64_t* total) {
  FAKE_CHECK(dv_ind, total);
  if (type != RSMI_MEM_TYPE_VRAM) return RSMI_STATUS_NOT_SUPPORTED;
  *total = gpus[dv_ind].vram;
  return RSMI_STATUS_SUCCESS;
}

BITFUSION_FAKE_API rsmi_status_t rsmi_dev_unique_id_get(std::uint32_t dv_ind, std::uint64_t* id) {
  FAKE_CHECK(dv_ind, id);
  if (gpus[dv_ind].unique_id == 0) return RSMI_STATUS_NOT_SUPPORTED;
  *id = gpus[dv_ind].unique_id;
  return RSMI_STATUS_SUCCESS;
}

BITFUSION_FAKE_API rsmi_status_t rsmi_version_str_get(rsmi_sw_component_t component, char* ver_str,
                                                      std::uint32_t len) {
  std::lock_guard<std::mutex> lock(mu);
  if (!initialised) return RSMI_STATUS_INIT_ERROR;
  if (component != RSMI_SW_COMP_DRIVER) return RSMI_STATUS_INVALID_ARGS;
  return CopyString(driver_version, ver_str, len);
}

BITFUSION_FAKE_API rsmi_status_t rsmi_topo_get_link_type(std::uint32_t src, std::uint32_t dst,
                                                         std::uint64_t* hops,
                                                         RSMI_IO_LINK_TYPE* type) {
  FAKE_CHECK(src, hops);
  if (dst >= gpus.size() || type == nullptr) return RSMI_STATUS_INVALID_ARGS;
  const auto& peers = gpus[src].xgmi;
  const bool xgmi = std::find(peers.begin(), peers.end(), dst) != peers.end();
  *hops = xgmi ? 1 : 2;
  *type = xgmi ? RSMI_IOLINK_TYPE_XGMI : RSMI_IOLINK_TYPE_PCIEXPRESS;
  return RSMI_STATUS_SUCCESS;
}

BITFUSION_FAKE_API rsmi_status_t rsmi_status_string(rsmi_status_t status,
                                                    const char** status_string) {
  if (status_string == nullptr) return RSMI_STATUS_INVALID_ARGS;
  switch (status) {
    case RSMI_STATUS_SUCCESS:
      *status_string = "RSMI_STATUS_SUCCESS: The function has been executed successfully.";
      break;
    case RSMI_STATUS_INVALID_ARGS:
      *status_string =
          "RSMI_STATUS_INVALID_ARGS: The provided arguments do not meet the preconditions required "
          "for input by the called function.";
      break;
    case RSMI_STATUS_NOT_SUPPORTED:
      *status_string =
          "RSMI_STATUS_NOT_SUPPORTED: This function is not supported in the current environment.";
      break;
    case RSMI_STATUS_INIT_ERROR:
      *status_string =
          "RSMI_STATUS_INIT_ERROR: An error occurred during initialization, during monitor "
          "discovery or when when initializing internal data structures";
      break;
    default: *status_string = "An unknown error occurred"; break;
  }
  return RSMI_STATUS_SUCCESS;
}

BITFUSION_FAKE_API rsmi_status_t rsmi_version_get(rsmi_version_t* version) {
  if (version == nullptr) return RSMI_STATUS_INVALID_ARGS;
  std::lock_guard<std::mutex> lock(mu);
  *version = deep_sleep_layout ? rsmi_version_t{7, 5, 0, "fake"} : rsmi_version_t{5, 2, 3, "fake"};
  return RSMI_STATUS_SUCCESS;
}

namespace {
rsmi_status_t Percent(std::uint32_t dv_ind, std::uint32_t* out, const char* key) {
  FAKE_CHECK(dv_ind, out);
  std::uint64_t v = 0;
  if (!gpus[dv_ind].Next(key, v)) return RSMI_STATUS_NOT_SUPPORTED;
  *out = static_cast<std::uint32_t>(v);
  return RSMI_STATUS_SUCCESS;
}
}  // namespace

BITFUSION_FAKE_API rsmi_status_t rsmi_dev_busy_percent_get(std::uint32_t dv_ind,
                                                           std::uint32_t* busy_percent) {
  return Percent(dv_ind, busy_percent, "busy_percent");
}

BITFUSION_FAKE_API rsmi_status_t rsmi_dev_memory_busy_percent_get(std::uint32_t dv_ind,
                                                                  std::uint32_t* busy_percent) {
  return Percent(dv_ind, busy_percent, "memory_busy_percent");
}

BITFUSION_FAKE_API rsmi_status_t rsmi_dev_memory_usage_get(std::uint32_t dv_ind,
                                                           rsmi_memory_type_t type,
                                                           std::uint64_t* used) {
  FAKE_CHECK(dv_ind, used);
  if (type != RSMI_MEM_TYPE_VRAM) return RSMI_STATUS_NOT_SUPPORTED;
  if (!gpus[dv_ind].Next("vram_used", *used)) return RSMI_STATUS_NOT_SUPPORTED;
  return RSMI_STATUS_SUCCESS;
}

BITFUSION_FAKE_API rsmi_status_t rsmi_dev_power_ave_get(std::uint32_t dv_ind,
                                                        std::uint32_t sensor_ind,
                                                        std::uint64_t* power) {
  FAKE_CHECK(dv_ind, power);
  if (sensor_ind != 0) return RSMI_STATUS_INVALID_ARGS;
  if (!gpus[dv_ind].Next("power_uw", *power)) return RSMI_STATUS_NOT_SUPPORTED;
  return RSMI_STATUS_SUCCESS;
}

BITFUSION_FAKE_API rsmi_status_t rsmi_dev_temp_metric_get(std::uint32_t dv_ind,
                                                          std::uint32_t sensor_type,
                                                          rsmi_temperature_metric_t metric,
                                                          std::int64_t* temperature) {
  FAKE_CHECK(dv_ind, temperature);
  if (sensor_type != 0 || metric != RSMI_TEMP_CURRENT) return RSMI_STATUS_NOT_SUPPORTED;
  std::uint64_t v = 0;
  if (!gpus[dv_ind].Next("temp_edge_mc", v)) return RSMI_STATUS_NOT_SUPPORTED;
  *temperature = static_cast<std::int64_t>(v);
  return RSMI_STATUS_SUCCESS;
}

BITFUSION_FAKE_API rsmi_status_t rsmi_dev_gpu_clk_freq_get(std::uint32_t dv_ind,
                                                           rsmi_clk_type_t clk_type,
                                                           rsmi_frequencies_t* f) {
  FAKE_CHECK(dv_ind, f);
  const char* key = clk_type == RSMI_CLK_TYPE_SYS   ? "sclk_hz"
                    : clk_type == RSMI_CLK_TYPE_MEM ? "mclk_hz"
                                                    : nullptr;
  if (key == nullptr) return RSMI_STATUS_NOT_SUPPORTED;
  std::uint64_t v = 0;
  std::size_t at = 0;
  FakeGpu& g = gpus[dv_ind];
  if (!g.Next(key, v, &at)) return RSMI_STATUS_NOT_SUPPORTED;
  const auto& table = g.telemetry.at(key);
  if (deep_sleep_layout) {
    DeepSleepFrequencies d{};
    d.has_deep_sleep = true;
    d.num_supported = static_cast<std::uint32_t>(std::min<std::size_t>(table.size(), 33));
    for (std::uint32_t i = 0; i < d.num_supported; ++i) d.frequency[i] = table[i];
    d.current = static_cast<std::uint32_t>(at);
    std::memcpy(static_cast<void*>(f), &d, sizeof d);
    return RSMI_STATUS_SUCCESS;
  }
  std::memset(f, 0, sizeof *f);
  f->num_supported =
      static_cast<std::uint32_t>(std::min<std::size_t>(table.size(), RSMI_MAX_NUM_FREQUENCIES));
  for (std::uint32_t i = 0; i < f->num_supported; ++i) f->frequency[i] = table[i];
  f->current = static_cast<std::uint32_t>(at);
  return RSMI_STATUS_SUCCESS;
}
