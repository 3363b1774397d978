// The data model as JSON (through the Boost.JSON conversions in core/json_codec) and as
// cereal's portable binary, the format of spool segments: that one must not change, so the
// cereal code below is exactly what wrote the segments already on disk.
#include "bitfusion/serialize.h"

#include <boost/json.hpp>
#include <cereal/archives/portable_binary.hpp>
#include <cereal/types/map.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/vector.hpp>

#include <sstream>

#include "core/json_codec.h"
#include "core/json_writer.h"

namespace bitfusion {
namespace {

// A Labels map; in the binary archive a wrapper adds nothing, so this is the map itself. (It
// was a JSON object in cereal's JSON archive when that wrote ToJson.)
struct LabelsObject {
  Labels& labels;
};

template <class Archive>
void save(Archive& ar, const LabelsObject& wrapper) {
  ar(wrapper.labels);
}

template <class Archive>
void load(Archive& ar, LabelsObject& wrapper) {
  wrapper.labels.clear();
  ar(wrapper.labels);
}

#define NVP(field) cereal::make_nvp(#field, v.field)
#define LABELS(field) cereal::make_nvp(#field, LabelsObject{v.field})

}  // namespace

// Found by cereal through ADL, so they live in namespace bitfusion.
template <class A>
void serialize(A& ar, Sample& v) {
  ar(NVP(metric), NVP(value), NVP(unit), LABELS(metadata), NVP(timestamp_ns), NVP(monotonic_ns));
}
template <class A>
void serialize(A& ar, Series& v) {
  ar(NVP(metric), NVP(unit), LABELS(labels));
}
template <class A>
void serialize(A& ar, SampleBatch& v) {
  ar(LABELS(labels), NVP(series), NVP(series_index), NVP(timestamp_ns), NVP(monotonic_ns),
     NVP(value));
}
template <class A>
void serialize(A& ar, CacheInfo& v) {
  ar(NVP(level), NVP(type), NVP(size_bytes), NVP(line_bytes), NVP(instances));
}
template <class A>
void serialize(A& ar, CpuInfo& v) {
  ar(NVP(vendor), NVP(model_name), NVP(architecture), NVP(sockets), NVP(cores), NVP(threads),
     NVP(numa_nodes), NVP(max_mhz), NVP(caches), NVP(flags));
}
template <class A>
void serialize(A& ar, AcceleratorInfo& v) {
  ar(NVP(kind), NVP(vendor), NVP(vendor_id), NVP(device_id), NVP(class_code), NVP(pci_address),
     NVP(driver), NVP(model), NVP(numa_node), NVP(count));
}
template <class A>
void serialize(A& ar, SshEndpoint& v) {
  ar(NVP(host), NVP(port), NVP(user), NVP(key_name));
}
template <class A>
void serialize(A& ar, MachineInfo& v) {
  ar(NVP(id), NVP(provider), NVP(hostname), NVP(address), NVP(type), NVP(state), NVP(cpu),
     NVP(memory_bytes), NVP(kernel), NVP(os), NVP(accelerators), LABELS(labels), NVP(zone),
     NVP(spot), NVP(ssh), NVP(created_ns), NVP(running_ns), NVP(ssh_ready_ns), NVP(ready_ns));
}
template <class A>
void serialize(A& ar, Mount& v) {
  ar(NVP(type), NVP(source), NVP(target), NVP(read_only), NVP(tmpfs_bytes));
}
template <class A>
void serialize(A& ar, DeviceMapping& v) {
  ar(NVP(path_on_host), NVP(path_in_container), NVP(permissions));
}
template <class A>
void serialize(A& ar, DeviceRequestEntry& v) {
  ar(NVP(driver), NVP(count), NVP(device_ids), NVP(capabilities), NVP(options));
}
template <class A>
void serialize(A& ar, HealthCheck& v) {
  ar(NVP(command), NVP(interval_ns), NVP(timeout_ns), NVP(start_period_ns), NVP(retries));
}
template <class A>
void serialize(A& ar, ContainerSpec& v) {
  ar(NVP(name), NVP(image), NVP(entrypoint), NVP(command), NVP(env), NVP(working_dir), NVP(user),
     NVP(mounts), NVP(devices), NVP(device_requests), NVP(cdi_devices), NVP(device_cgroup_rules),
     NVP(cpuset), NVP(cpus), NVP(memory_bytes), NVP(shm_bytes), NVP(network_mode), LABELS(labels),
     NVP(timeout_ns), NVP(health_check));
}
template <class A>
void serialize(A& ar, ResourceUsage& v) {
  ar(NVP(user_cpu_ns), NVP(system_cpu_ns), NVP(max_rss_bytes), NVP(minor_faults), NVP(major_faults),
     NVP(voluntary_switches), NVP(involuntary_switches), NVP(read_bytes), NVP(write_bytes));
}
template <class A>
void serialize(A& ar, ExitStatus& v) {
  ar(NVP(exit_code), NVP(signal), NVP(timed_out), NVP(oom_killed), NVP(start_ns), NVP(end_ns),
     NVP(wall_time_ns), NVP(usage));
}
template <class A>
void serialize(A& ar, ObserverOverhead& v) {
  ar(NVP(cpu_ns), NVP(samples), NVP(samples_dropped), NVP(interval_ns));
}
template <class A>
void serialize(A& ar, RunRecord& v) {
  ar(NVP(run_id), NVP(plan), NVP(plan_run_id), NVP(benchmark), NVP(repetition), NVP(warmup),
     NVP(runner), NVP(command), NVP(image), NVP(image_digest), NVP(machine), NVP(status),
     NVP(error), NVP(exit), NVP(results), NVP(overhead), LABELS(labels));
}
template <class A>
void serialize(A& ar, Device& v) {
  ar(NVP(id), NVP(kind), NVP(vendor), NVP(vendor_id), NVP(device_id), NVP(model), NVP(pci_address),
     NVP(numa_node), NVP(index), NVP(memory_bytes), NVP(driver), NVP(device_nodes),
     LABELS(properties));
}
template <class A>
void serialize(A& ar, Event& v) {
  ar(NVP(type), NVP(source), NVP(subject), NVP(action), LABELS(attributes), NVP(time_ns));
}

#undef NVP
#undef LABELS

namespace {

template <class T>
std::string JsonOf(const T& value, bool pretty) {
  return internal::IndentedJson(boost::json::value_from(value), pretty ? 4 : 0);
}

template <class T>
Status ParseJson(std::string_view json, T& out) {
  BITFUSION_ASSIGN_OR_RETURN(const boost::json::value tree, internal::ParseJsonExactly(json));
  return internal::FromJsonValue(tree, out);
}

template <class T>
std::string BinaryOf(const T& value) {
  std::ostringstream out;
  {
    cereal::PortableBinaryOutputArchive archive(out);
    archive(const_cast<T&>(value));
  }
  return out.str();
}

template <class T>
Status ParseBinary(std::string_view bytes, T& out) {
  try {
    std::istringstream in{std::string(bytes)};
    cereal::PortableBinaryInputArchive archive(in);
    archive(out);
    return Status::OK();
  } catch (const std::exception& e) {
    return InvalidArgumentError(std::string("malformed binary record: ") + e.what());
  }
}

}  // namespace

#define BITFUSION_DEFINE_SERIALIZABLE(T)                                            \
  std::string ToJson(const T& value, bool pretty) { return JsonOf(value, pretty); } \
  Status FromJson(std::string_view json, T& out) { return ParseJson(json, out); }   \
  std::string ToBinary(const T& value) { return BinaryOf(value); }                  \
  Status FromBinary(std::string_view bytes, T& out) { return ParseBinary(bytes, out); }

BITFUSION_DEFINE_SERIALIZABLE(Sample)
BITFUSION_DEFINE_SERIALIZABLE(SampleBatch)
BITFUSION_DEFINE_SERIALIZABLE(RunRecord)
BITFUSION_DEFINE_SERIALIZABLE(MachineInfo)
BITFUSION_DEFINE_SERIALIZABLE(ContainerSpec)
BITFUSION_DEFINE_SERIALIZABLE(Device)
BITFUSION_DEFINE_SERIALIZABLE(Event)

}  // namespace bitfusion
