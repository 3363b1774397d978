// The data model as Python classes: samples and columnar batches (their columns through the
// buffer protocol, so numpy.asarray(batch.values) copies nothing), containers, machines,
// devices, events and run records.
#include <pybind11/functional.h>

#include "py_common.h"
#include "py_data.h"

namespace bitfusion::python {

SampleColumn::SampleColumn(std::shared_ptr<const SampleBatch> batch, Which which)
    : batch_(std::move(batch)), which_(which) {}

std::size_t SampleColumn::size() const { return batch_->size(); }

py::buffer_info SampleColumn::Buffer() const {
  const SampleBatch& b = *batch_;
  const auto n = static_cast<py::ssize_t>(b.size());
  switch (which_) {
    case Which::kValue:
      return py::buffer_info(const_cast<double*>(b.value.data()), sizeof(double),
                             py::format_descriptor<double>::format(), 1, {n}, {sizeof(double)},
                             true);
    case Which::kTimestamp:
      return py::buffer_info(const_cast<std::int64_t*>(b.timestamp_ns.data()), sizeof(std::int64_t),
                             py::format_descriptor<std::int64_t>::format(), 1, {n},
                             {sizeof(std::int64_t)}, true);
    case Which::kMonotonic:
      return py::buffer_info(const_cast<std::int64_t*>(b.monotonic_ns.data()), sizeof(std::int64_t),
                             py::format_descriptor<std::int64_t>::format(), 1, {n},
                             {sizeof(std::int64_t)}, true);
    case Which::kSeriesIndex: break;
  }
  return py::buffer_info(const_cast<std::uint32_t*>(b.series_index.data()), sizeof(std::uint32_t),
                         py::format_descriptor<std::uint32_t>::format(), 1, {n},
                         {sizeof(std::uint32_t)}, true);
}

namespace {

py::object ColumnList(const SampleColumn& column) {
  return py::memoryview(py::cast(column)).attr("tolist")();
}

constexpr std::pair<EventType, const char*> kTypes[] = {
    {EventType::kOther, "other"},
    {EventType::kContainerCreated, "container_created"},
    {EventType::kContainerStarted, "container_started"},
    {EventType::kContainerDied, "container_died"},
    {EventType::kContainerDestroyed, "container_destroyed"},
    {EventType::kContainerOom, "container_oom"},
    {EventType::kMachineUp, "machine_up"},
    {EventType::kMachineDown, "machine_down"},
    {EventType::kDeviceLeased, "device_leased"},
    {EventType::kDeviceReleased, "device_released"},
    {EventType::kSinkDegraded, "sink_degraded"},
    {EventType::kSinkRecovered, "sink_recovered"},
    {EventType::kRunStarted, "run_started"},
    {EventType::kRunFinished, "run_finished"},
    {EventType::kMetricSourceEnded, "metric_source_ended"},
};

void RegisterEnums(py::module_& m) {
  py::enum_<DeviceKind> device_kind(m, "DeviceKind", "What kind of device a request asks for.");
  device_kind.value("any", DeviceKind::kAny)
      .value("gpu", DeviceKind::kGpu)
      .value("fpga", DeviceKind::kFpga)
      .value("accelerator", DeviceKind::kAccelerator)
      .def(py::init([](const std::string& name) -> DeviceKind {
             for (DeviceKind k : {DeviceKind::kAny, DeviceKind::kGpu, DeviceKind::kFpga,
                                  DeviceKind::kAccelerator}) {
               if (name == DeviceKindName(k)) return k;
             }
             throw py::value_error(
                 "device kind must be \"any\", \"gpu\", \"fpga\" or "
                 "\"accelerator\", not \"" +
                 name + "\"");
           }),
           py::arg("name"));
  device_kind.attr("__str__") =
      py::cpp_function([](DeviceKind k) { return DeviceKindName(k); }, py::is_method(device_kind));
  py::implicitly_convertible<py::str, DeviceKind>();

  py::enum_<EventType> event_type(m, "EventType",
                                  "What happened: container_died, sink_degraded, ... "
                                  "str() gives the wire name (\"container.died\").");
  for (const auto& [type, name] : kTypes) event_type.value(name, type);
  event_type.def(
      py::init([](const std::string& name) -> EventType {
        for (const auto& [type, n] : kTypes) {
          if (name == n || name == EventTypeName(type)) return type;
        }
        throw py::value_error("unknown event type \"" + name + "\"; see list(bitfusion.EventType)");
      }),
      py::arg("name"));
  event_type.attr("__str__") =
      py::cpp_function([](EventType t) { return EventTypeName(t); }, py::is_method(event_type));
  py::implicitly_convertible<py::str, EventType>();

  py::enum_<LogStream>(m, "LogStream")
      .value("stdout", LogStream::kStdout)
      .value("stderr", LogStream::kStderr);
}

void RegisterSamples(py::module_& m) {
  Record<Sample>(m, "Sample", "One measurement: metric, value, unit, labels, timestamps.")
      .field("metric", &Sample::metric)
      .field("value", &Sample::value)
      .field("unit", &Sample::unit)
      .field("metadata", &Sample::metadata, "labels (the batch's merged with the series')")
      .field("timestamp_ns", &Sample::timestamp_ns, "wall clock, ns since the Unix epoch")
      .field("monotonic_ns", &Sample::monotonic_ns)
      .finish();
  Record<Series>(m, "Series", "What one column of a SampleBatch means.")
      .field("metric", &Series::metric)
      .field("unit", &Series::unit)
      .field("labels", &Series::labels)
      .field("counter", &Series::counter, "a cumulative counter (rates can be derived)")
      .finish();

  py::class_<SampleColumn>(m, "SampleColumn", py::buffer_protocol(),
                           "One column of a SampleBatch, read-only, through the buffer "
                           "protocol: memoryview(col) and numpy.asarray(col) copy nothing and "
                           "keep the batch alive.")
      .def_buffer(&SampleColumn::Buffer)
      .def("__len__", &SampleColumn::size)
      .def("tolist", &ColumnList, "The column as a list of Python numbers (a copy).")
      .def("__repr__", [](const SampleColumn& c) {
        return "SampleColumn(" + std::string(py::repr(ColumnList(c))) + ")";
      });

  py::class_<SampleBatch, std::shared_ptr<SampleBatch>>(
      m, "SampleBatch",
      "Columnar samples: shared labels, a series table, and one entry per sample in the "
      "columns values, timestamps, monotonic and series_index (float64, int64, int64, uint32; "
      "zero-copy through the buffer protocol).")
      .def(py::init([](const Labels& labels) {
             auto b = std::make_shared<SampleBatch>();
             b->labels = labels;
             return b;
           }),
           py::arg("labels") = Labels{})
      .def_readwrite("labels", &SampleBatch::labels)
      .def_property_readonly("series", [](const SampleBatch& b) { return b.series; })
      .def("add_series", &SampleBatch::AddSeries, py::arg("series"),
           "Adds a Series (or a dict of its fields) and returns its index.")
      .def("append", &SampleBatch::Append, py::arg("series"), py::arg("timestamp_ns"),
           py::arg("monotonic_ns"), py::arg("value"), "Appends one sample of series `series`.")
      .def("__len__", &SampleBatch::size)
      .def(
          "__getitem__",
          [](const SampleBatch& b, py::ssize_t i) {
            const auto n = static_cast<py::ssize_t>(b.size());
            if (i < 0) i += n;
            if (i < 0 || i >= n) throw py::index_error("sample index out of range");
            return b.At(static_cast<std::size_t>(i));
          },
          "Sample i, labels merged.")
      .def(
          "samples",
          [](const SampleBatch& b) {
            std::vector<Sample> out;
            out.reserve(b.size());
            for (std::size_t i = 0; i < b.size(); ++i) out.push_back(b.At(i));
            return out;
          },
          "Every sample as a Sample object with the batch's labels merged (copies; the "
          "columns are the fast way).")
      .def_property_readonly("values",
                             [](std::shared_ptr<SampleBatch> b) {
                               return SampleColumn(std::move(b), SampleColumn::Which::kValue);
                             })
      .def_property_readonly("timestamps",
                             [](std::shared_ptr<SampleBatch> b) {
                               return SampleColumn(std::move(b), SampleColumn::Which::kTimestamp);
                             })
      .def_property_readonly("monotonic",
                             [](std::shared_ptr<SampleBatch> b) {
                               return SampleColumn(std::move(b), SampleColumn::Which::kMonotonic);
                             })
      .def_property_readonly("series_index",
                             [](std::shared_ptr<SampleBatch> b) {
                               return SampleColumn(std::move(b), SampleColumn::Which::kSeriesIndex);
                             })
      .def("__repr__", [](const SampleBatch& b) {
        return "SampleBatch(" + std::to_string(b.size()) + " samples, " +
               std::to_string(b.series.size()) +
               " series, labels=" + std::string(py::repr(py::cast(b.labels))) + ")";
      });
}

void RegisterContainerTypes(py::module_& m) {
  Record<Mount>(m, "Mount", "A bind mount or tmpfs in a container.")
      .field("type", &Mount::type, "\"bind\" or \"tmpfs\"")
      .field("source", &Mount::source)
      .field("target", &Mount::target)
      .field("read_only", &Mount::read_only)
      .field("tmpfs_bytes", &Mount::tmpfs_bytes)
      .finish();
  Record<DeviceMapping>(m, "DeviceMapping", "A device node passed into a container.")
      .field("path_on_host", &DeviceMapping::path_on_host)
      .field("path_in_container", &DeviceMapping::path_in_container)
      .field("permissions", &DeviceMapping::permissions)
      .finish();
  Record<DeviceRequestEntry>(m, "DeviceRequestEntry", "Docker's HostConfig.DeviceRequests entry.")
      .field("driver", &DeviceRequestEntry::driver)
      .field("count", &DeviceRequestEntry::count)
      .field("device_ids", &DeviceRequestEntry::device_ids)
      .field("capabilities", &DeviceRequestEntry::capabilities)
      .field("options", &DeviceRequestEntry::options)
      .finish();
  Record<HealthCheck>(m, "HealthCheck", "An engine-run health check.")
      .field("command", &HealthCheck::command)
      .field("interval_ns", &HealthCheck::interval_ns)
      .field("timeout_ns", &HealthCheck::timeout_ns)
      .field("start_period_ns", &HealthCheck::start_period_ns)
      .field("retries", &HealthCheck::retries)
      .finish();
  Record<ContainerSpec>(m, "ContainerSpec",
                        "Everything needed to run one container (or, for process://, one "
                        "child process). Assign lists and dicts whole: spec.command = [...].")
      .field("name", &ContainerSpec::name)
      .field("image", &ContainerSpec::image)
      .field("entrypoint", &ContainerSpec::entrypoint)
      .field("command", &ContainerSpec::command)
      .field("env", &ContainerSpec::env)
      .field("working_dir", &ContainerSpec::working_dir)
      .field("user", &ContainerSpec::user)
      .field("mounts", &ContainerSpec::mounts)
      .field("devices", &ContainerSpec::devices)
      .field("device_requests", &ContainerSpec::device_requests)
      .field("cdi_devices", &ContainerSpec::cdi_devices)
      .field("device_cgroup_rules", &ContainerSpec::device_cgroup_rules)
      .field("cpuset", &ContainerSpec::cpuset)
      .field("cpus", &ContainerSpec::cpus)
      .field("memory_bytes", &ContainerSpec::memory_bytes)
      .field("shm_bytes", &ContainerSpec::shm_bytes)
      .field("network_mode", &ContainerSpec::network_mode)
      .field("labels", &ContainerSpec::labels)
      .field("timeout_ns", &ContainerSpec::timeout_ns)
      .field("health_check", &ContainerSpec::health_check)
      .finish();
  Record<ResourceUsage>(m, "ResourceUsage", "What a run consumed (children included).")
      .field("user_cpu_ns", &ResourceUsage::user_cpu_ns)
      .field("system_cpu_ns", &ResourceUsage::system_cpu_ns)
      .field("max_rss_bytes", &ResourceUsage::max_rss_bytes)
      .field("minor_faults", &ResourceUsage::minor_faults)
      .field("major_faults", &ResourceUsage::major_faults)
      .field("voluntary_switches", &ResourceUsage::voluntary_switches)
      .field("involuntary_switches", &ResourceUsage::involuntary_switches)
      .field("read_bytes", &ResourceUsage::read_bytes)
      .field("write_bytes", &ResourceUsage::write_bytes)
      .finish();
  Record<ExitStatus>(m, "ExitStatus", "How a container or process ended.")
      .field("exit_code", &ExitStatus::exit_code)
      .field("signal", &ExitStatus::signal)
      .field("timed_out", &ExitStatus::timed_out)
      .field("oom_killed", &ExitStatus::oom_killed)
      .field("start_ns", &ExitStatus::start_ns)
      .field("end_ns", &ExitStatus::end_ns)
      .field("wall_time_ns", &ExitStatus::wall_time_ns)
      .field("usage", &ExitStatus::usage)
      .finish()
      .def_property_readonly("success", &ExitStatus::success, "exit code 0, no signal, in time");
  Record<ExecSpec>(m, "ExecSpec", "A command run inside a running container.")
      .field("command", &ExecSpec::command)
      .field("env", &ExecSpec::env)
      .field("working_dir", &ExecSpec::working_dir)
      .field("user", &ExecSpec::user)
      .finish();
  Record<ExecResult>(m, "ExecResult", "How an exec ended, with what it printed.")
      .field("exit_code", &ExecResult::exit_code)
      .field("output", &ExecResult::output)
      .field("errors", &ExecResult::errors)
      .finish();
  Record<ContainerStats>(m, "ContainerStats", "One reading of a container's counters.")
      .field("time_ns", &ContainerStats::time_ns)
      .field("cpu_ns", &ContainerStats::cpu_ns)
      .field("system_cpu_ns", &ContainerStats::system_cpu_ns)
      .field("online_cpus", &ContainerStats::online_cpus)
      .field("memory_bytes", &ContainerStats::memory_bytes)
      .field("memory_limit_bytes", &ContainerStats::memory_limit_bytes)
      .field("pids", &ContainerStats::pids)
      .field("rx_bytes", &ContainerStats::rx_bytes)
      .field("tx_bytes", &ContainerStats::tx_bytes)
      .field("read_bytes", &ContainerStats::read_bytes)
      .field("write_bytes", &ContainerStats::write_bytes)
      .field("running", &ContainerStats::running)
      .finish();
  Record<ContainerInfo>(m, "ContainerInfo", "What an engine knows about a container now.")
      .field("id", &ContainerInfo::id)
      .field("name", &ContainerInfo::name)
      .field("image", &ContainerInfo::image)
      .field("image_id", &ContainerInfo::image_id)
      .field("state", &ContainerInfo::state)
      .field("health", &ContainerInfo::health)
      .field("pid", &ContainerInfo::pid)
      .field("exit_code", &ContainerInfo::exit_code)
      .field("oom_killed", &ContainerInfo::oom_killed)
      .field("created_ns", &ContainerInfo::created_ns)
      .field("started_ns", &ContainerInfo::started_ns)
      .field("finished_ns", &ContainerInfo::finished_ns)
      .field("labels", &ContainerInfo::labels)
      .finish();
  Record<ImageInfo>(m, "ImageInfo", "An image on an engine.")
      .field("id", &ImageInfo::id)
      .field("digest", &ImageInfo::digest)
      .field("tags", &ImageInfo::tags)
      .field("size_bytes", &ImageInfo::size_bytes)
      .field("created_ns", &ImageInfo::created_ns)
      .field("labels", &ImageInfo::labels)
      .field("entrypoint", &ImageInfo::entrypoint)
      .finish();
  Record<RunnerCapabilities>(m, "RunnerCapabilities", "What an engine can do.")
      .field("engine", &RunnerCapabilities::engine)
      .field("version", &RunnerCapabilities::version)
      .field("api_version", &RunnerCapabilities::api_version)
      .field("storage_driver", &RunnerCapabilities::storage_driver)
      .field("data_root", &RunnerCapabilities::data_root)
      .field("images", &RunnerCapabilities::images)
      .field("containers", &RunnerCapabilities::containers)
      .field("gpu_runtime", &RunnerCapabilities::gpu_runtime)
      .field("cdi", &RunnerCapabilities::cdi)
      .field("exec", &RunnerCapabilities::exec)
      .field("copy", &RunnerCapabilities::copy)
      .field("stats", &RunnerCapabilities::stats)
      .field("health_checks", &RunnerCapabilities::health_checks)
      .field("events", &RunnerCapabilities::events)
      .field("reap", &RunnerCapabilities::reap)
      .finish();
  Record<LogLine>(m, "LogLine", "One line of output.")
      .field("stream", &LogLine::stream)
      .field("text", &LogLine::text)
      .finish();
  Record<ReapReport>(m, "ReapReport", "What a reap removed (or, dry, would remove).")
      .field("containers", &ReapReport::containers)
      .field("images", &ReapReport::images)
      .field("errors", &ReapReport::errors)
      .finish();
  Record<ReapPolicy>(m, "ReapPolicy", "What a reap takes.")
      .field("dead_creators", &ReapPolicy::dead_creators)
      .field("expired", &ReapPolicy::expired)
      .field("expired_any_host", &ReapPolicy::expired_any_host)
      .field("run_id", &ReapPolicy::run_id)
      .field("dry_run", &ReapPolicy::dry_run)
      .finish();
}

void RegisterMachineTypes(py::module_& m) {
  Record<CacheInfo>(m, "CacheInfo", "One CPU cache level.")
      .field("level", &CacheInfo::level)
      .field("type", &CacheInfo::type)
      .field("size_bytes", &CacheInfo::size_bytes)
      .field("line_bytes", &CacheInfo::line_bytes)
      .field("instances", &CacheInfo::instances)
      .finish();
  Record<CpuInfo>(m, "CpuInfo", "A machine's CPUs.")
      .field("vendor", &CpuInfo::vendor)
      .field("model_name", &CpuInfo::model_name)
      .field("architecture", &CpuInfo::architecture)
      .field("sockets", &CpuInfo::sockets)
      .field("cores", &CpuInfo::cores)
      .field("threads", &CpuInfo::threads)
      .field("numa_nodes", &CpuInfo::numa_nodes)
      .field("max_mhz", &CpuInfo::max_mhz)
      .field("caches", &CpuInfo::caches)
      .field("flags", &CpuInfo::flags)
      .finish();
  Record<AcceleratorInfo>(m, "AcceleratorInfo", "An accelerator on a machine or in a type.")
      .field("kind", &AcceleratorInfo::kind)
      .field("vendor", &AcceleratorInfo::vendor)
      .field("vendor_id", &AcceleratorInfo::vendor_id)
      .field("device_id", &AcceleratorInfo::device_id)
      .field("class_code", &AcceleratorInfo::class_code)
      .field("pci_address", &AcceleratorInfo::pci_address)
      .field("driver", &AcceleratorInfo::driver)
      .field("model", &AcceleratorInfo::model)
      .field("numa_node", &AcceleratorInfo::numa_node)
      .field("count", &AcceleratorInfo::count)
      .finish();
  Record<SshEndpoint>(m, "SshEndpoint", "How to reach a machine over SSH.")
      .field("host", &SshEndpoint::host)
      .field("port", &SshEndpoint::port)
      .field("user", &SshEndpoint::user)
      .field("key_name", &SshEndpoint::key_name)
      .finish();
  Record<MachineInfo>(m, "MachineInfo", "A machine: where it is, what it has, when it came up.")
      .field("id", &MachineInfo::id)
      .field("provider", &MachineInfo::provider)
      .field("hostname", &MachineInfo::hostname)
      .field("address", &MachineInfo::address)
      .field("type", &MachineInfo::type)
      .field("state", &MachineInfo::state)
      .field("cpu", &MachineInfo::cpu)
      .field("memory_bytes", &MachineInfo::memory_bytes)
      .field("kernel", &MachineInfo::kernel)
      .field("os", &MachineInfo::os)
      .field("accelerators", &MachineInfo::accelerators)
      .field("labels", &MachineInfo::labels)
      .field("zone", &MachineInfo::zone)
      .field("spot", &MachineInfo::spot)
      .field("ssh", &MachineInfo::ssh)
      .field("created_ns", &MachineInfo::created_ns)
      .field("running_ns", &MachineInfo::running_ns)
      .field("ssh_ready_ns", &MachineInfo::ssh_ready_ns)
      .field("ready_ns", &MachineInfo::ready_ns)
      .finish();
  Record<MachineRequirements>(m, "MachineRequirements", "Hardware a request needs.")
      .field("cpu_architecture", &MachineRequirements::cpu_architecture)
      .field("cpu_vendor", &MachineRequirements::cpu_vendor)
      .field("min_vcpus", &MachineRequirements::min_vcpus)
      .field("min_memory_bytes", &MachineRequirements::min_memory_bytes)
      .field("accelerator_kind", &MachineRequirements::accelerator_kind)
      .field("accelerator_vendor", &MachineRequirements::accelerator_vendor)
      .field("accelerator_model", &MachineRequirements::accelerator_model)
      .field("accelerator_count", &MachineRequirements::accelerator_count)
      .finish();
  Record<MachineRequest>(m, "MachineRequest",
                         "What to ask a provisioner for: a type, or requirements.")
      .field("type", &MachineRequest::type)
      .field("requirements", &MachineRequest::requirements)
      .field("count", &MachineRequest::count)
      .field("image", &MachineRequest::image)
      .field("zone", &MachineRequest::zone)
      .field("spot", &MachineRequest::spot)
      .field("ssh_key_name", &MachineRequest::ssh_key_name)
      .field("labels", &MachineRequest::labels)
      .field("run_id", &MachineRequest::run_id)
      .field("ttl_s", &MachineRequest::ttl_s)
      .field("client_token", &MachineRequest::client_token)
      .finish();
  Record<MachineType>(m, "MachineType", "A machine type a provider offers.")
      .field("name", &MachineType::name)
      .field("vcpus", &MachineType::vcpus)
      .field("memory_bytes", &MachineType::memory_bytes)
      .field("cpu_architecture", &MachineType::cpu_architecture)
      .field("cpu_vendor", &MachineType::cpu_vendor)
      .field("accelerators", &MachineType::accelerators)
      .field("hourly_price_usd", &MachineType::hourly_price_usd)
      .finish();
  Record<TypeResolution>(m, "TypeResolution", "The type a request resolves to, and why.")
      .field("type", &TypeResolution::type)
      .field("explanation", &TypeResolution::explanation)
      .field("summary", &TypeResolution::summary)
      .finish();
  Record<MachineReapReport>(m, "MachineReapReport", "What a provisioner's reap destroyed.")
      .field("machines", &MachineReapReport::machines)
      .field("errors", &MachineReapReport::errors)
      .finish();
}

void RegisterDeviceTypes(py::module_& m) {
  Record<Device>(m, "Device", "One leasable accelerator.")
      .field("id", &Device::id)
      .field("kind", &Device::kind)
      .field("vendor", &Device::vendor)
      .field("vendor_id", &Device::vendor_id)
      .field("device_id", &Device::device_id)
      .field("model", &Device::model)
      .field("pci_address", &Device::pci_address)
      .field("numa_node", &Device::numa_node)
      .field("index", &Device::index)
      .field("memory_bytes", &Device::memory_bytes)
      .field("driver", &Device::driver)
      .field("device_nodes", &Device::device_nodes)
      .field("properties", &Device::properties)
      .finish();
  Record<DeviceRequest>(m, "DeviceRequest", "What devices to lease.")
      .field("kind", &DeviceRequest::kind)
      .field("vendor", &DeviceRequest::vendor)
      .field("model", &DeviceRequest::model)
      .field("count", &DeviceRequest::count)
      .field("min_memory_bytes", &DeviceRequest::min_memory_bytes)
      .field("same_numa_node", &DeviceRequest::same_numa_node)
      .field("same_pcie_switch", &DeviceRequest::same_pcie_switch)
      .field("nvlink_connected", &DeviceRequest::nvlink_connected)
      .field("exclusive", &DeviceRequest::exclusive)
      .finish();
  Record<ContainerEdits>(m, "ContainerEdits", "What a device lease adds to a ContainerSpec.")
      .field("devices", &ContainerEdits::devices)
      .field("device_requests", &ContainerEdits::device_requests)
      .field("cdi_devices", &ContainerEdits::cdi_devices)
      .field("device_cgroup_rules", &ContainerEdits::device_cgroup_rules)
      .field("mounts", &ContainerEdits::mounts)
      .field("env", &ContainerEdits::env)
      .finish()
      .def(
          "apply_to",
          [](const ContainerEdits& edits, ContainerSpec spec) {
            edits.ApplyTo(spec);
            return spec;
          },
          py::arg("spec"), "A copy of `spec` with these edits merged in.");
}

void RegisterRecords(py::module_& m) {
  Record<Event>(m, "Event", "Something that happened to a container, machine, device, sink...")
      .field("type", &Event::type)
      .field("source", &Event::source)
      .field("subject", &Event::subject)
      .field("action", &Event::action)
      .field("attributes", &Event::attributes)
      .field("time_ns", &Event::time_ns)
      .finish();
  Record<ObserverOverhead>(m, "ObserverOverhead", "What observing a run cost.")
      .field("cpu_ns", &ObserverOverhead::cpu_ns)
      .field("samples", &ObserverOverhead::samples)
      .field("samples_dropped", &ObserverOverhead::samples_dropped)
      .field("interval_ns", &ObserverOverhead::interval_ns)
      .finish();
  Record<RunRecord>(m, "RunRecord", "One benchmark execution, end to end.")
      .field("run_id", &RunRecord::run_id)
      .field("plan", &RunRecord::plan)
      .field("plan_run_id", &RunRecord::plan_run_id)
      .field("benchmark", &RunRecord::benchmark)
      .field("repetition", &RunRecord::repetition)
      .field("warmup", &RunRecord::warmup)
      .field("runner", &RunRecord::runner)
      .field("command", &RunRecord::command)
      .field("image", &RunRecord::image)
      .field("image_digest", &RunRecord::image_digest)
      .field("machine", &RunRecord::machine)
      .field("status", &RunRecord::status)
      .field("error", &RunRecord::error)
      .field("exit", &RunRecord::exit)
      .field("results", &RunRecord::results)
      .field("overhead", &RunRecord::overhead)
      .field("labels", &RunRecord::labels)
      .finish();
  Record<SinkCounters>(m, "SinkCounters", "What a sink has done.")
      .field("samples_written", &SinkCounters::samples_written)
      .field("samples_pending", &SinkCounters::samples_pending)
      .field("runs_pending", &SinkCounters::runs_pending)
      .field("runs_written", &SinkCounters::runs_written)
      .field("backend_calls", &SinkCounters::backend_calls)
      .field("errors", &SinkCounters::errors)
      .field("retries", &SinkCounters::retries)
      .field("samples_spooled", &SinkCounters::samples_spooled)
      .field("samples_replayed", &SinkCounters::samples_replayed)
      .field("samples_dropped", &SinkCounters::samples_dropped)
      .field("spool_bytes", &SinkCounters::spool_bytes)
      .field("degraded", &SinkCounters::degraded)
      .finish();
  m.def("new_run_id", &NewRunId, "128 random bits as 32 hex digits.");
}

}  // namespace

void RegisterData(py::module_& m) {
  RegisterEnums(m);
  RegisterSamples(m);
  RegisterContainerTypes(m);
  RegisterMachineTypes(m);
  RegisterDeviceTypes(m);
  RegisterRecords(m);
}

}  // namespace bitfusion::python
