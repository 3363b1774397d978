// The "gpu" metric source through the fake NVML and ROCm SMI libraries built beside the tests
// (tests/fakes), loaded with dlopen exactly as the real ones are: exact values and units, labels,
// a second sample that differs, one warning per unsupported metric and for a missing library.
#include "metrics/gpu_source.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "bitfusion/log.h"
#include "bitfusion/metric_stream.h"
#include "scratch_dir.h"

namespace bitfusion {
namespace {

using ::testing::HasSubstr;

class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    ::setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() { ::unsetenv(name_); }

 private:
  const char* name_;
};

// Collects warning lines while alive.
class LogCapture {
 public:
  LogCapture() {
    SetLogHandler([this](LogLevel level, std::string_view m) {
      if (level >= LogLevel::kWarning) lines_.emplace_back(m);
    });
  }
  ~LogCapture() { SetLogHandler(nullptr); }
  int Count(const std::string& needle) const {
    int n = 0;
    for (const auto& l : lines_) n += l.find(needle) != std::string::npos ? 1 : 0;
    return n;
  }
  const std::vector<std::string>& lines() const { return lines_; }

 private:
  std::vector<std::string> lines_;
};

std::string WriteConfig(const std::string& name, const std::string& json) {
  const std::string path = testing::ScratchPath(name);
  std::ofstream(path) << json;
  return path;
}

// The value of the only sample of `metric` on GPU `gpu`, checking its unit.
std::optional<double> ValueOf(const SampleBatch& batch, const std::string& metric,
                              const std::string& gpu, const std::string& unit) {
  std::optional<double> found;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const Series& s = batch.series[batch.series_index[i]];
    if (s.metric != metric || s.labels.at("gpu") != gpu) continue;
    EXPECT_EQ(s.unit, unit) << metric;
    EXPECT_FALSE(s.counter) << metric;
    EXPECT_FALSE(found.has_value()) << "two samples of " << metric << " on GPU " << gpu;
    found = batch.value[i];
  }
  return found;
}

// Two L4s; the second has no power sensor. Every telemetry list has two entries, so the second
// sample differs from the first.
constexpr const char* kNvmlConfig = R"({"devices": [
  {"bus_id": "00000000:17:00.0", "name": "NVIDIA L4", "uuid": "GPU-aaaa",
   "memory_total": 24152899584,
   "telemetry": {"utilization_gpu": [40, 95], "utilization_memory": [10, 30],
                 "memory_used": [1073741824, 2147483648], "power_mw": [72500, 70250],
                 "temperature_c": [51, 63], "clock_graphics_mhz": [2040, 1980],
                 "clock_sm_mhz": [2040, 1995], "clock_mem_mhz": [6251, 6250]}},
  {"bus_id": "00000000:CA:00.0", "name": "NVIDIA L4", "uuid": "GPU-bbbb",
   "memory_total": 24152899584,
   "telemetry": {"utilization_gpu": [0, 1], "utilization_memory": [0, 2],
                 "memory_used": [0, 4096], "temperature_c": [30, 31],
                 "clock_graphics_mhz": [210, 215], "clock_sm_mhz": [210, 215],
                 "clock_mem_mhz": [405, 6251]}}]})";

TEST(GpuSourceTest, NvmlValuesUnitsLabelsAndASecondSampleThatDiffers) {
  ScopedEnv env("BITFUSION_FAKE_NVML_CONFIG", WriteConfig("bf-gpu-nvml.json", kNvmlConfig));
  LogCapture log;
  GpuSourceOptions options;
  options.vendor = "nvml";
  options.library = BITFUSION_FAKE_NVML;
  auto made = GpuSource::Make(options);
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  auto source = *made;
  EXPECT_TRUE(source->enabled());
  EXPECT_EQ(source->vendor(), "nvml");
  EXPECT_EQ(source->device_count(), 2u);
  // The probe in Make asked every query once: each list is now at its second entry, which
  // makes the first Collect see the second values.
  ASSERT_EQ(log.Count("nvmlDeviceGetPowerUsage"), 1) << ::testing::PrintToString(log.lines());
  EXPECT_EQ(log.Count("GPU 1 (0000:ca:00.0)"), 1);
  EXPECT_EQ(log.Count("gpu.power"), 1);
  EXPECT_EQ(log.Count("Not Supported"), 1);
  EXPECT_EQ(log.lines().size(), 1u);

  SampleBatch batch;
  ASSERT_TRUE(source->Collect(Timestamp{111, 222}, batch).ok());
  EXPECT_EQ(batch.series.size(), 9u + 8u) << "GPU 1 has no gpu.power series";
  EXPECT_EQ(batch.size(), batch.series.size());
  EXPECT_EQ(ValueOf(batch, "gpu.utilization.gpu", "0", "%"), 95);
  EXPECT_EQ(ValueOf(batch, "gpu.utilization.memory", "0", "%"), 30);
  EXPECT_EQ(ValueOf(batch, "gpu.memory.used", "0", "bytes"), 2147483648.0);
  EXPECT_EQ(ValueOf(batch, "gpu.memory.total", "0", "bytes"), 24152899584.0);
  EXPECT_EQ(ValueOf(batch, "gpu.power", "0", "W"), 70.25) << "mW -> W";
  EXPECT_EQ(ValueOf(batch, "gpu.temperature", "0", "Cel"), 63);
  EXPECT_EQ(ValueOf(batch, "gpu.clock.graphics", "0", "Hz"), 1980e6) << "MHz -> Hz";
  EXPECT_EQ(ValueOf(batch, "gpu.clock.sm", "0", "Hz"), 1995e6);
  EXPECT_EQ(ValueOf(batch, "gpu.clock.memory", "0", "Hz"), 6250e6);
  EXPECT_EQ(ValueOf(batch, "gpu.power", "1", "W"), std::nullopt);
  EXPECT_EQ(ValueOf(batch, "gpu.clock.memory", "1", "Hz"), 6251e6);
  for (std::size_t i = 0; i < batch.size(); ++i) {
    EXPECT_EQ(batch.timestamp_ns[i], 111);
    EXPECT_EQ(batch.monotonic_ns[i], 222);
  }
  const Series& first = batch.series[0];
  EXPECT_EQ(first.labels.at("gpu"), "0");
  EXPECT_EQ(first.labels.at("uuid"), "GPU-aaaa");
  EXPECT_EQ(first.labels.at("pci_bus_id"), "0000:17:00.0");
  EXPECT_EQ(batch.series.back().labels.at("uuid"), "GPU-bbbb");

  // The next tick reuses the series and sees the lists' first entries again.
  batch.ClearSamples();
  ASSERT_TRUE(source->Collect(Timestamp{333, 444}, batch).ok());
  EXPECT_EQ(batch.series.size(), 17u);
  EXPECT_EQ(ValueOf(batch, "gpu.utilization.gpu", "0", "%"), 40);
  EXPECT_EQ(ValueOf(batch, "gpu.memory.used", "0", "bytes"), 1073741824.0);
  EXPECT_EQ(ValueOf(batch, "gpu.power", "0", "W"), 72.5);
  EXPECT_EQ(ValueOf(batch, "gpu.temperature", "0", "Cel"), 51);
  EXPECT_EQ(ValueOf(batch, "gpu.clock.memory", "1", "Hz"), 405e6);
  EXPECT_EQ(log.lines().size(), 1u) << "the unsupported sensor is warned about once";
}

TEST(GpuSourceTest, AQueryThatStopsBeingSupportedIsDroppedWithOneWarning) {
  // The temperature sensor answers the probe in Make, then says NOT_SUPPORTED.
  ScopedEnv env("BITFUSION_FAKE_NVML_CONFIG", WriteConfig("bf-gpu-nvml-late.json", R"({"devices": [
    {"bus_id": "00000000:17:00.0", "name": "L4", "uuid": "GPU-cccc", "memory_total": 1024,
     "telemetry": {"temperature_c": [40, null, 42], "power_mw": [1000, 2000]}}]})"));
  LogCapture log;
  auto source = MetricSourceFromUri(std::string("gpu?vendor=nvml&library=") + BITFUSION_FAKE_NVML);
  ASSERT_TRUE(source.ok()) << source.status().ToString();
  const int at_make = static_cast<int>(log.lines().size());  // utilisation and clocks: absent
  EXPECT_EQ(log.Count("nvmlDeviceGetTemperature"), 0);
  SampleBatch batch;
  ASSERT_TRUE((*source)->Collect(Timestamp{1, 1}, batch).ok());
  EXPECT_EQ(ValueOf(batch, "gpu.temperature", "0", "Cel"), std::nullopt);
  EXPECT_EQ(ValueOf(batch, "gpu.power", "0", "W"), 2);
  EXPECT_EQ(log.Count("nvmlDeviceGetTemperature"), 1);
  EXPECT_EQ(static_cast<int>(log.lines().size()), at_make + 1);
  batch.ClearSamples();
  ASSERT_TRUE((*source)->Collect(Timestamp{2, 2}, batch).ok());
  EXPECT_EQ(ValueOf(batch, "gpu.temperature", "0", "Cel"), std::nullopt)
      << "not asked again, though the sensor would answer now";
  EXPECT_EQ(ValueOf(batch, "gpu.power", "0", "W"), 1);
  EXPECT_EQ(static_cast<int>(log.lines().size()), at_make + 1);
}

TEST(GpuSourceTest, DeviceFilterPicksGpus) {
  ScopedEnv env("BITFUSION_FAKE_NVML_CONFIG", WriteConfig("bf-gpu-nvml.json", kNvmlConfig));
  auto source =
      MetricSourceFromUri(std::string("gpu?vendor=nvml&devices=1&library=") + BITFUSION_FAKE_NVML);
  ASSERT_TRUE(source.ok()) << source.status().ToString();
  SampleBatch batch;
  ASSERT_TRUE((*source)->Collect(Timestamp{1, 1}, batch).ok());
  ASSERT_EQ(batch.series.size(), 8u);
  for (const auto& s : batch.series) EXPECT_EQ(s.labels.at("gpu"), "1");
  EXPECT_EQ((*source)->uri(),
            std::string("gpu?vendor=nvml&library=") + BITFUSION_FAKE_NVML + "&devices=1");

  auto missing = MetricSourceFromUri(std::string("gpu?vendor=nvml&devices=0,7&library=") +
                                     BITFUSION_FAKE_NVML);
  EXPECT_EQ(missing.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(missing.status().message(), HasSubstr("no GPU 7"));
  EXPECT_THAT(missing.status().message(), HasSubstr("reports 2"));
}

// Two MI210s; the second does not report memory activity. Power in µW, temperature in m°C, the
// clocks as a table of levels with the current one stepping through it.
constexpr const char* kRocmConfig = R"({"devices": [
  {"address": "0000:03:00.0", "name": "MI210", "vram_total": 68702699520,
   "unique_id": 3039283747,
   "telemetry": {"busy_percent": [12, 99], "memory_busy_percent": [3, 47],
                 "vram_used": [536870912, 34359738368], "power_uw": [41000000, 298500000],
                 "temp_edge_mc": [35000, 71500], "sclk_hz": [500000000, 1700000000],
                 "mclk_hz": [400000000, 1600000000]}},
  {"address": "0000:43:00.0", "name": "MI210", "vram_total": 68702699520,
   "telemetry": {"busy_percent": [0, 0], "vram_used": [0, 0], "power_uw": [40000000],
                 "temp_edge_mc": [30000], "sclk_hz": [500000000], "mclk_hz": [400000000]}}]})";

TEST(GpuSourceTest, RocmSmiValuesConvertedToBaseUnits) {
  ScopedEnv env("BITFUSION_FAKE_ROCM_SMI_CONFIG", WriteConfig("bf-gpu-rocm.json", kRocmConfig));
  LogCapture log;
  auto made =
      MetricSourceFromUri(std::string("gpu?vendor=rocm&library=") + BITFUSION_FAKE_ROCM_SMI);
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  auto source = *made;
  EXPECT_EQ(log.Count("rsmi_dev_memory_busy_percent_get"), 1)
      << ::testing::PrintToString(log.lines());
  EXPECT_EQ(log.Count("RSMI_STATUS_NOT_SUPPORTED"), 1);
  EXPECT_EQ(log.lines().size(), 1u);

  SampleBatch batch;
  ASSERT_TRUE(source->Collect(Timestamp{5, 6}, batch).ok());
  EXPECT_EQ(batch.series.size(), 8u + 7u) << "no SM clock in ROCm SMI; GPU 1 lacks memory busy";
  EXPECT_EQ(ValueOf(batch, "gpu.utilization.gpu", "0", "%"), 99);
  EXPECT_EQ(ValueOf(batch, "gpu.utilization.memory", "0", "%"), 47);
  EXPECT_EQ(ValueOf(batch, "gpu.memory.used", "0", "bytes"), 34359738368.0);
  EXPECT_EQ(ValueOf(batch, "gpu.memory.total", "0", "bytes"), 68702699520.0);
  EXPECT_EQ(ValueOf(batch, "gpu.power", "0", "W"), 298.5) << "µW -> W";
  EXPECT_EQ(ValueOf(batch, "gpu.temperature", "0", "Cel"), 71.5) << "m°C -> °C";
  EXPECT_EQ(ValueOf(batch, "gpu.clock.graphics", "0", "Hz"), 1.7e9) << "current level of sclk";
  EXPECT_EQ(ValueOf(batch, "gpu.clock.memory", "0", "Hz"), 1.6e9);
  EXPECT_EQ(ValueOf(batch, "gpu.clock.sm", "0", "Hz"), std::nullopt);
  EXPECT_EQ(ValueOf(batch, "gpu.utilization.memory", "1", "%"), std::nullopt);
  EXPECT_EQ(ValueOf(batch, "gpu.power", "1", "W"), 40);
  EXPECT_EQ(batch.series[0].labels.at("pci_bus_id"), "0000:03:00.0");
  EXPECT_EQ(batch.series[0].labels.at("uuid"), "0xb527ca23");
  EXPECT_EQ(batch.series.back().labels.count("uuid"), 0u) << "no unique id on GPU 1";

  batch.ClearSamples();
  ASSERT_TRUE(source->Collect(Timestamp{7, 8}, batch).ok());
  EXPECT_EQ(ValueOf(batch, "gpu.power", "0", "W"), 41);
  EXPECT_EQ(ValueOf(batch, "gpu.clock.graphics", "0", "Hz"), 5e8);
  EXPECT_EQ(ValueOf(batch, "gpu.temperature", "0", "Cel"), 35);
  EXPECT_EQ(log.lines().size(), 1u);
}

TEST(GpuSourceTest, RocmSmiClockTablesOfNewerReleasesReadTheSame) {
  // Releases with has_deep_sleep in front of rsmi_frequencies_t shift the table by 8 bytes.
  std::string config = kRocmConfig;
  config.insert(1, R"("frequency_layout": "deep_sleep", )");
  ScopedEnv env("BITFUSION_FAKE_ROCM_SMI_CONFIG", WriteConfig("bf-gpu-rocm-ds.json", config));
  GpuSourceOptions options;
  options.vendor = "rocm";
  options.library = BITFUSION_FAKE_ROCM_SMI;
  auto source = GpuSource::Make(options);
  ASSERT_TRUE(source.ok()) << source.status().ToString();
  SampleBatch batch;
  ASSERT_TRUE((*source)->Collect(Timestamp{1, 1}, batch).ok());
  EXPECT_EQ(ValueOf(batch, "gpu.clock.graphics", "0", "Hz"), 1.7e9);
  EXPECT_EQ(ValueOf(batch, "gpu.clock.memory", "0", "Hz"), 1.6e9);
  EXPECT_EQ(ValueOf(batch, "gpu.clock.graphics", "1", "Hz"), 5e8);
  batch.ClearSamples();
  ASSERT_TRUE((*source)->Collect(Timestamp{2, 2}, batch).ok());
  EXPECT_EQ(ValueOf(batch, "gpu.clock.graphics", "0", "Hz"), 5e8);
  EXPECT_EQ(ValueOf(batch, "gpu.clock.memory", "0", "Hz"), 4e8);
}

TEST(GpuSourceTest, MissingLibraryDisablesTheSourceWithOneWarning) {
  LogCapture log;
  auto made = MetricSourceFromUri("gpu?vendor=nvml&library=/nonexistent/libnvidia-ml.so.1");
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  auto* gpu = dynamic_cast<GpuSource*>(made->get());
  ASSERT_NE(gpu, nullptr);
  EXPECT_FALSE(gpu->enabled());
  ASSERT_EQ(log.lines().size(), 1u);
  EXPECT_THAT(log.lines()[0], HasSubstr("gpu source disabled"));
  EXPECT_THAT(log.lines()[0], HasSubstr("/nonexistent/libnvidia-ml.so.1"));
  SampleBatch batch;
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(gpu->Collect(Timestamp{1, 1}, batch).ok());
  EXPECT_TRUE(batch.empty());
  EXPECT_TRUE(batch.series.empty());
  EXPECT_EQ(log.lines().size(), 1u) << "not a warning per tick";
}

TEST(GpuSourceTest, NoDriverOrNoGpuDisablesTheSourceWithOneWarning) {
  LogCapture log;
  ::unsetenv("BITFUSION_FAKE_NVML_CONFIG");  // the fake acts as a host without the driver
  ::unsetenv("BITFUSION_FAKE_ROCM_SMI_CONFIG");
  GpuSourceOptions options;
  options.vendor = "nvml";
  options.library = BITFUSION_FAKE_NVML;
  auto no_driver = GpuSource::Make(options);
  ASSERT_TRUE(no_driver.ok());
  EXPECT_FALSE((*no_driver)->enabled());
  ASSERT_EQ(log.lines().size(), 1u);
  EXPECT_THAT(log.lines()[0], HasSubstr("nvmlInit_v2 failed: Driver Not Loaded (NVML error 9)"));

  ScopedEnv env("BITFUSION_FAKE_ROCM_SMI_CONFIG",
                WriteConfig("bf-gpu-rocm-none.json", R"({"devices": []})"));
  options.vendor = "rocm";
  options.library = BITFUSION_FAKE_ROCM_SMI;
  auto no_gpu = GpuSource::Make(options);
  ASSERT_TRUE(no_gpu.ok());
  EXPECT_FALSE((*no_gpu)->enabled());
  ASSERT_EQ(log.lines().size(), 2u);
  EXPECT_THAT(log.lines()[1], HasSubstr("reports no GPU"));
  SampleBatch batch;
  EXPECT_TRUE((*no_gpu)->Collect(Timestamp{1, 1}, batch).ok());
  EXPECT_TRUE(batch.empty());
}

TEST(GpuSourceTest, BadOptionsAreRefused) {
  for (const char* uri : {"gpu?vendor=intel", "gpu?library=/x.so", "gpu?devices=0,,1",
                          "gpu?devices=a", "gpu?devices=", "gpu?sensor=1", "gpu:0"}) {
    auto made = MetricSourceFromUri(uri);
    EXPECT_EQ(made.status().code(), StatusCode::kInvalidArgument) << uri;
  }
  auto bad = MetricSourceFromUri("gpu?vendor=intel");
  EXPECT_THAT(bad.status().message(), HasSubstr("nvml (NVIDIA), rocm (AMD) or auto"));
}

}  // namespace
}  // namespace bitfusion
