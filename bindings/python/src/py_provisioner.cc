// Provisioner from Python: machine types, create / wait / list / destroy, and `up()`, a context
// manager that brings machines up and always tears them down.
#include "py_common.h"
#include "py_handles.h"

namespace bitfusion::python {
namespace {

template <class T>
T Released(const std::function<Result<T>()>& f) {
  Result<T> result = [&] {
    py::gil_scoped_release release;
    return f();
  }();
  return Unwrap(std::move(result));
}

/// Machines brought up by Provisioner.up(): destroyed when the block ends (also by an exception
/// or Ctrl-C) unless keep() hands them to their run id.
class PyMachines {
 public:
  PyMachines(std::shared_ptr<Provisioner> provisioner, std::vector<MachineInfo> machines)
      : provisioner_(std::move(provisioner)), machines_(std::move(machines)) {}
  ~PyMachines() {
    try {
      Down();
    } catch (const std::exception& e) {
      Log(LogLevel::kError, std::string("bitfusion machines: ") + e.what());
    }
  }
  const std::vector<MachineInfo>& machines() const { return machines_; }
  void Update(std::vector<MachineInfo> machines) { machines_ = std::move(machines); }
  void Keep() {
    Check(Ids().empty() ? Status::OK() : [&] {
      py::gil_scoped_release release;
      return provisioner_->Keep(Ids());
    }());
    kept_ = true;
  }
  void Down() {
    if (kept_ || done_) return;
    done_ = true;
    const auto ids = Ids();
    if (ids.empty()) return;
    Status status;
    {
      py::gil_scoped_release release;
      status = provisioner_->Destroy(ids);
    }
    Check(status);
  }

 private:
  std::vector<std::string> Ids() const {
    std::vector<std::string> ids;
    for (const auto& m : machines_) ids.push_back(m.id);
    return ids;
  }
  std::shared_ptr<Provisioner> provisioner_;
  std::vector<MachineInfo> machines_;
  bool kept_ = false;
  bool done_ = false;
};

}  // namespace

void RegisterProvisioners(py::module_& m) {
  py::class_<PyMachines, std::shared_ptr<PyMachines>>(
      m, "Machines",
      "Machines from Provisioner.up(): a list of MachineInfo as `machines`; leaving the `with` "
      "block (also by an exception or Ctrl-C) destroys them, unless keep() was called.")
      .def_property_readonly("machines", &PyMachines::machines)
      .def("keep", &PyMachines::Keep,
           "Hands the machines to their run id: only expiry or a destroy ends them now.")
      .def("down", &PyMachines::Down, "Destroys them now. Idempotent.")
      .def("__enter__", [](std::shared_ptr<PyMachines> s) { return s; })
      .def("__exit__", [](PyMachines& s, const py::args&) { s.Down(); })
      .def("__len__", [](const PyMachines& s) { return s.machines().size(); })
      .def("__getitem__", [](const PyMachines& s, std::size_t i) {
        if (i >= s.machines().size()) throw py::index_error("machine index out of range");
        return s.machines()[i];
      });

  py::class_<Provisioner, std::shared_ptr<Provisioner>>(
      m, "Provisioner",
      "Brings machines up and down: local://, null://, aws://REGION, ... Every machine is "
      "tagged with its creator and an expiry, so reap() finds what a crash left.")
      .def(
          "create",
          [](Provisioner& p, const MachineRequest& request) {
            return Released<std::vector<MachineInfo>>([&] { return p.Create(request); });
          },
          py::arg("request"),
          "Asks for machines (a MachineRequest or dict); returns them, perhaps still pending. "
          "All or nothing.")
      .def(
          "wait_ready",
          [](Provisioner& p, const std::string& id, std::optional<double> timeout) {
            const Deadline deadline = DeadlineIn(timeout);
            return Released<MachineInfo>([&] { return p.WaitReady(id, deadline); });
          },
          py::arg("id"), py::arg("timeout") = 900.0,
          "Blocks until machine `id` is ready (running and reachable) and returns its "
          "MachineInfo with the boot timestamps; DeadlineExceededError after `timeout` s.")
      .def(
          "list",
          [](Provisioner& p) {
            return Released<std::vector<MachineInfo>>([&] { return p.List(); });
          },
          "The machines this provisioner tagged as bitfusion's, with owner and expiry.")
      .def(
          "destroy",
          [](Provisioner& p, const std::vector<std::string>& ids) {
            Status status;
            {
              py::gil_scoped_release release;
              status = p.Destroy(ids);
            }
            Check(status);
          },
          py::arg("ids"),
          "Tears machines down; ids already gone are not an error. Returns when the provider "
          "reports them terminating.")
      .def(
          "types",
          [](Provisioner& p) {
            return Released<std::vector<MachineType>>([&] { return p.Types(); });
          },
          "The catalogue: MachineTypes with vCPUs, memory, accelerators and hourly price.")
      .def(
          "keep",
          [](Provisioner& p, const std::vector<std::string>& ids) {
            Status status;
            {
              py::gil_scoped_release release;
              status = p.Keep(ids);
            }
            Check(status);
          },
          py::arg("ids"),
          "Leaves these machines up when their handle closes (reap still sees "
          "their expiry).")
      .def(
          "reap",
          [](Provisioner& p, const ReapPolicy& policy) {
            return Released<MachineReapReport>([&] { return p.Reap(policy); });
          },
          py::arg("policy") = ReapPolicy{},
          "Destroys tagged machines past their expiry or whose creating process is gone, as "
          "`policy` says; returns what it found and did.")
      .def(
          "up",
          [](std::shared_ptr<Provisioner> p, const MachineRequest& request,
             std::optional<double> timeout) {
            const Deadline deadline = DeadlineIn(timeout);
            auto created = Released<std::vector<MachineInfo>>([&] { return p->Create(request); });
            // From here on the handle owns them: an error below destroys them.
            auto machines = std::make_shared<PyMachines>(p, created);
            std::vector<MachineInfo> ready;
            for (const auto& machine : created) {
              ready.push_back(
                  Released<MachineInfo>([&] { return p->WaitReady(machine.id, deadline); }));
            }
            machines->Update(std::move(ready));
            return machines;
          },
          py::arg("request"), py::arg("timeout") = 900.0,
          "Creates machines and waits until they are ready; returns Machines, a context "
          "manager that destroys them. A failure on the way destroys what was made.");

  m.def(
      "provisioner_from_uri",
      [](const std::string& uri, const std::string& run_id, const Labels& labels,
         std::optional<py::function> on_event) {
        auto context = ContextFrom(run_id, labels, on_event);
        py::gil_scoped_release release;
        return Unwrap(ProvisionerFromUri(uri, context));
      },
      py::arg("uri"), py::arg("run_id") = "", py::arg("labels") = Labels{},
      py::arg("on_event") = py::none(),
      "A Provisioner: \"local://\", \"null://\", \"aws://REGION\" (credentials as the AWS CLI "
      "finds them; ?endpoint= or AWS_ENDPOINT_URL for another endpoint).");
  m.def(
      "resolve_machine_type",
      [](const std::vector<MachineType>& catalogue, const MachineRequirements& requirements) {
        return Unwrap(ResolveMachineType(catalogue, requirements));
      },
      py::arg("catalogue"), py::arg("requirements"),
      "The cheapest type that satisfies `requirements`, with an explanation per type.");
}

}  // namespace bitfusion::python
