// DeviceAllocator from Python: discover accelerators, lease them (a lease is a context manager
// that releases on exit), and turn a lease into container settings.
#include "py_common.h"
#include "py_handles.h"

namespace bitfusion::python {
namespace {

class PyDeviceLease {
 public:
  explicit PyDeviceLease(std::unique_ptr<DeviceLease> lease) : lease_(std::move(lease)) {
    devices_ = lease_->devices();
  }
  ~PyDeviceLease() { Release(); }
  const std::vector<Device>& devices() const { return devices_; }
  bool held() const { return lease_ != nullptr; }
  const DeviceLease& get() const {
    if (!lease_) Raise(FailedPreconditionError("the device lease was released"));
    return *lease_;
  }
  void Release() {
    std::unique_ptr<DeviceLease> gone = std::move(lease_);
    py::gil_scoped_release release;
    gone.reset();
  }

 private:
  std::unique_ptr<DeviceLease> lease_;
  std::vector<Device> devices_;
};

}  // namespace

void RegisterDevices(py::module_& m) {
  py::class_<PyDeviceLease, std::shared_ptr<PyDeviceLease>>(
      m, "DeviceLease",
      "Devices held by this process (exclusive across processes on this host). release(), or "
      "leaving a `with` block, gives them back; so does the process ending, even by kill -9.")
      .def_property_readonly("devices", &PyDeviceLease::devices)
      .def_property_readonly("held", &PyDeviceLease::held)
      .def("release", &PyDeviceLease::Release, "Gives the devices back. Idempotent.")
      .def("__enter__", [](std::shared_ptr<PyDeviceLease> l) { return l; })
      .def("__exit__", [](PyDeviceLease& l, const py::args&) { l.Release(); })
      .def("__repr__", [](const PyDeviceLease& l) {
        std::string ids;
        for (const auto& d : l.devices()) ids += (ids.empty() ? "" : ", ") + d.id;
        return "DeviceLease([" + ids + "]" + (l.held() ? "" : ", released") + ")";
      });

  py::class_<DeviceAllocator, std::shared_ptr<DeviceAllocator>>(
      m, "DeviceAllocator",
      "Finds accelerators and leases them: local://, sysfs:///ROOT (a recorded tree), null://.")
      .def(
          "discover",
          [](DeviceAllocator& a) {
            py::gil_scoped_release release;
            return Unwrap(a.Discover());
          },
          "The accelerators this allocator sees (GPUs, FPGAs), as a list of Devices.")
      .def(
          "acquire",
          [](DeviceAllocator& a, const DeviceRequest& request, std::optional<double> timeout) {
            const Deadline deadline = DeadlineIn(timeout);
            std::unique_ptr<DeviceLease> lease;
            {
              py::gil_scoped_release release;
              lease = Unwrap(a.Acquire(request, deadline));
            }
            return std::make_shared<PyDeviceLease>(std::move(lease));
          },
          py::arg("request") = DeviceRequest{}, py::arg("timeout") = 0.0,
          "Leases devices matching `request` (a DeviceRequest or dict), waiting up to `timeout` "
          "seconds for busy ones (None: as long as it takes). Returns a DeviceLease.")
      .def(
          "edits_for",
          [](DeviceAllocator& a, const PyDeviceLease& lease, const RunnerCapabilities& caps) {
            py::gil_scoped_release release;
            return Unwrap(a.EditsFor(lease.get(), caps));
          },
          py::arg("lease"), py::arg("capabilities"),
          "What a container needs to use the leased devices, for a runner with these "
          "capabilities (runner.capabilities()): a ContainerEdits; edits.apply_to(spec).");

  m.def(
      "device_allocator_from_uri",
      [](const std::string& uri, const std::string& run_id, const Labels& labels,
         std::optional<py::function> on_event) {
        auto context = ContextFrom(run_id, labels, on_event);
        py::gil_scoped_release release;
        return Unwrap(DeviceAllocatorFromUri(uri, context));
      },
      py::arg("uri") = "local://", py::arg("run_id") = "", py::arg("labels") = Labels{},
      py::arg("on_event") = py::none(),
      "A DeviceAllocator: \"local://\" (this host), \"sysfs:///ROOT\", \"null://\".");
  m.def(
      "parse_device_requests",
      [](const std::string& json) { return Unwrap(ParseDeviceRequests(json)); }, py::arg("json"),
      "Device requests from a plan's \"devices\" JSON.");
}

}  // namespace bitfusion::python
