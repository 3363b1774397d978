// The part of ROCm SMI (librocm_smi64.so.1) bitfusion calls, declared as rocm_smi/rocm_smi.h
// publishes it (ROCm SMI 5.x, Debian librocm-smi-dev 5.2.3; enums are plain ints) and loaded at
// run time. Shared by the ROCm SMI device enricher and the "gpu" metric source.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "bitfusion/status.h"
#include "devices/dynamic_library.h"

namespace bitfusion::rocm_smi {

using rsmi_status_t = int;
constexpr rsmi_status_t RSMI_STATUS_SUCCESS = 0;
constexpr rsmi_status_t RSMI_STATUS_NOT_SUPPORTED = 2;
constexpr int RSMI_MEM_TYPE_VRAM = 0;
constexpr int RSMI_SW_COMP_DRIVER = 0;
constexpr int RSMI_IOLINK_TYPE_XGMI = 2;
constexpr std::uint32_t RSMI_TEMP_TYPE_EDGE = 0;
constexpr int RSMI_TEMP_CURRENT = 0;
constexpr int RSMI_CLK_TYPE_SYS = 0;  // the graphics (shader) clock, sclk
constexpr int RSMI_CLK_TYPE_MEM = 4;  // mclk

/// rsmi_frequencies_t of ROCm SMI 5.x. Later releases grew the table to 33 entries and then put
/// a `bool has_deep_sleep` in front (shifting the rest by 4 and the table by 8 bytes): the
/// callers hand the library a FrequencyBuffer with room for any of them, and CurrentFrequency
/// tells the layouts apart by what was written.
constexpr std::size_t RSMI_MAX_NUM_FREQUENCIES = 32;
struct rsmi_frequencies_t {
  std::uint32_t num_supported;
  std::uint32_t current;                              // index into frequency
  std::uint64_t frequency[RSMI_MAX_NUM_FREQUENCIES];  // Hz
};
/// Room for the largest rsmi_frequencies_t any release writes.
struct FrequencyBuffer {
  alignas(8) unsigned char bytes[8 + 8 + 33 * 8 + 64];
};

/// The current level's frequency (Hz) in what rsmi_dev_gpu_clk_freq_get wrote, in either layout:
/// the one whose count, current index and frequency make sense (1..33 levels, the index below
/// the count, a non-zero frequency); no real table fits both. False when neither does.
bool CurrentFrequency(const FrequencyBuffer& buffer, std::uint64_t& hz);

struct rsmi_version_t {
  std::uint32_t major;
  std::uint32_t minor;
  std::uint32_t patch;
  const char* build;
};

/// The ROCm SMI entry points, looked up once. init, shut_down, num_monitor_devices and
/// pci_id are always there (Load fails without them); other pointers are null when the library
/// lacks the symbol.
struct RocmSmiFunctions {
  std::string library;  ///< the candidate that loaded

  rsmi_status_t (*init)(std::uint64_t) = nullptr;
  rsmi_status_t (*shut_down)() = nullptr;
  rsmi_status_t (*num_monitor_devices)(std::uint32_t*) = nullptr;
  rsmi_status_t (*pci_id)(std::uint32_t, std::uint64_t*) = nullptr;  // BDFID
  rsmi_status_t (*status_string)(rsmi_status_t, const char**) = nullptr;
  rsmi_status_t (*version)(rsmi_version_t*) = nullptr;
  rsmi_status_t (*name)(std::uint32_t, char*, std::size_t) = nullptr;
  rsmi_status_t (*memory_total)(std::uint32_t, int, std::uint64_t*) = nullptr;  // bytes
  rsmi_status_t (*memory_usage)(std::uint32_t, int, std::uint64_t*) = nullptr;  // bytes
  rsmi_status_t (*unique_id)(std::uint32_t, std::uint64_t*) = nullptr;
  rsmi_status_t (*version_str)(int, char*, std::uint32_t) = nullptr;
  rsmi_status_t (*link_type)(std::uint32_t, std::uint32_t, std::uint64_t*, int*) = nullptr;
  rsmi_status_t (*busy_percent)(std::uint32_t, std::uint32_t*) = nullptr;              // %
  rsmi_status_t (*memory_busy_percent)(std::uint32_t, std::uint32_t*) = nullptr;       // %
  rsmi_status_t (*power_ave)(std::uint32_t, std::uint32_t, std::uint64_t*) = nullptr;  // µW
  rsmi_status_t (*temp_metric)(std::uint32_t, std::uint32_t, int,
                               std::int64_t*) = nullptr;               // m°C
  rsmi_status_t (*gpu_clk_freq)(std::uint32_t, int, void*) = nullptr;  // rsmi_frequencies_t*

  /// Opens the first of `libraries` that loads and looks the functions up (it does not call
  /// rsmi_init). Unavailable when none loads, NotFound when a required symbol is missing.
  static Result<RocmSmiFunctions> Load(const std::vector<std::string>& libraries);

  /// "RSMI_STATUS_NOT_SUPPORTED: ... (ROCm SMI status 2)": rsmi_status_string's words and the
  /// code.
  std::string Why(rsmi_status_t rc) const;
};

/// BDFID (domain << 32 | bus << 8 | device << 3 | function) -> "0000:c4:00.0".
std::string AddressOf(std::uint64_t bdfid);

/// The text in a fixed-size buffer the library filled, up to its first NUL.
std::string Terminated(const char* buffer, std::size_t size);

}  // namespace bitfusion::rocm_smi
