// Python SDK, first cut: inventory, plans, and the status codes as exception classes. Names
// mirror the C++ API in snake_case; the GIL is released around every blocking call.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <bitfusion/bitfusion.h>

#include <map>

namespace py = pybind11;

namespace {

using bitfusion::Result;
using bitfusion::Status;
using bitfusion::StatusCode;

// One Python exception class per status code, all subclasses of bitfusion.Error.
std::map<StatusCode, py::object>& ExceptionClasses() {
  static auto* classes = new std::map<StatusCode, py::object>();
  return *classes;
}

[[noreturn]] void Raise(const Status& status) { throw bitfusion::StatusError(status); }

template <class T>
T Unwrap(Result<T> result) {
  if (!result) Raise(result.error());
  return std::move(*result);
}

py::object JsonToPython(const std::string& json) {
  return py::module_::import("json").attr("loads")(json);
}

py::object Inventory(const std::string& provisioner_uri) {
  std::vector<bitfusion::MachineInfo> machines;
  {
    py::gil_scoped_release release;
    auto provisioner = Unwrap(bitfusion::ProvisionerFromUri(provisioner_uri));
    machines = Unwrap(provisioner->List());
  }
  py::list out;
  for (const auto& m : machines) out.append(JsonToPython(bitfusion::ToJson(m)));
  return out;
}

py::object RunPlan(const std::string& spec_path, const std::vector<std::string>& sinks,
                   const std::vector<std::string>& program_dirs) {
  std::string summary;
  {
    py::gil_scoped_release release;
    auto plan = Unwrap(bitfusion::LoadPlan(spec_path));
    bitfusion::ExperimentOptions options;
    options.sinks = sinks;
    options.program_dirs = program_dirs;
    summary = bitfusion::FormatSummaryJson(Unwrap(bitfusion::RunPlan(plan, options)));
  }
  return JsonToPython(summary);
}

}  // namespace

PYBIND11_MODULE(bitfusion, m) {
  m.doc() = "bitfusion: heterogeneous hardware and container benchmarking";
  py::object base = py::reinterpret_borrow<py::object>(PyExc_Exception);
  py::object error =
      py::reinterpret_steal<py::object>(PyErr_NewException("bitfusion.Error", base.ptr(), nullptr));
  m.attr("Error") = error;
  const std::pair<StatusCode, const char*> kCodes[] = {
      {StatusCode::kInvalidArgument, "InvalidArgumentError"},
      {StatusCode::kNotFound, "NotFoundError"},
      {StatusCode::kAlreadyExists, "AlreadyExistsError"},
      {StatusCode::kPermissionDenied, "PermissionDeniedError"},
      {StatusCode::kFailedPrecondition, "FailedPreconditionError"},
      {StatusCode::kResourceExhausted, "ResourceExhaustedError"},
      {StatusCode::kUnavailable, "UnavailableError"},
      {StatusCode::kDeadlineExceeded, "DeadlineExceededError"},
      {StatusCode::kCancelled, "CancelledError"},
      {StatusCode::kIOError, "IOError"},
      {StatusCode::kUnimplemented, "UnimplementedError"},
      {StatusCode::kInternal, "InternalError"},
  };
  for (const auto& [code, name] : kCodes) {
    const std::string qualified = std::string("bitfusion.") + name;
    py::object cls = py::reinterpret_steal<py::object>(
        PyErr_NewException(qualified.c_str(), error.ptr(), nullptr));
    m.attr(name) = cls;
    ExceptionClasses()[code] = cls;
  }
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const bitfusion::StatusError& e) {
      auto it = ExceptionClasses().find(e.status().code());
      PyObject* cls = it != ExceptionClasses().end() ? it->second.ptr() : PyExc_RuntimeError;
      PyErr_SetString(cls, e.status().message().c_str());
    }
  });

  m.def("version", &bitfusion::Version, "The library version, e.g. \"0.1.0\".");
  m.def("inventory", &Inventory, py::arg("provisioner") = "local://",
        "Fingerprints of the machines a provisioner knows (local:// is this host), as dicts.");
  m.def("run_plan", &RunPlan, py::arg("spec"), py::arg("sinks") = std::vector<std::string>{},
        py::arg("program_dirs") = std::vector<std::string>{},
        "Runs a plan file; returns the summary, the runs and any sink errors as a dict. `sinks` "
        "replaces the plan's sinks when given.");
}
