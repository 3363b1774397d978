#include "py_common.h"

#include <map>

namespace bitfusion::python {

std::chrono::nanoseconds Seconds(double s) {
  return std::chrono::nanoseconds(static_cast<std::int64_t>(s * 1e9));
}

Deadline DeadlineIn(const std::optional<double>& timeout) {
  if (!timeout) return kNoDeadline;
  if (!(*timeout >= 0)) {
    Raise(InvalidArgumentError("timeout must be a number of seconds >= 0, or None for no limit"));
  }
  return DeadlineAfter(Seconds(*timeout));
}

Callback::Callback(py::function fn, std::string where)
    : fn_(new py::function(std::move(fn)),
          [](py::function* f) {
            py::gil_scoped_acquire gil;
            delete f;
          }),
      where_(std::move(where)) {}

namespace internal {

void AssignFields(py::object self, const std::vector<std::string>& fields, py::dict values) {
  const std::string type = py::str(py::type::of(self).attr("__name__"));
  for (auto [key, value] : values) {
    const std::string name = py::str(key);
    if (std::find(fields.begin(), fields.end(), name) == fields.end()) {
      std::string known;
      for (const auto& f : fields) known += (known.empty() ? "" : ", ") + f;
      throw py::type_error(type + " has no field \"" + name + "\"; its fields are: " + known);
    }
    try {
      self.attr(key) = value;
    } catch (py::error_already_set& e) {
      if (!e.matches(PyExc_TypeError)) throw;
      // An enum field given a string it does not name: let the enum say which names it takes.
      py::object current = self.attr(key);
      if (py::isinstance<py::str>(value) && py::hasattr(py::type::of(current), "__members__")) {
        py::type::of(current)(value);
      }
      throw py::type_error(type + "." + name + ": cannot take " +
                           std::string(py::str(py::repr(value))) + " (" +
                           std::string(py::str(py::type::of(value).attr("__name__"))) +
                           "); see help(bitfusion." + type + ")");
    }
  }
}

namespace {

py::object Plain(py::handle value) {
  if (py::hasattr(value, "to_dict") && py::hasattr(py::type::of(value), "_fields")) {
    return value.attr("to_dict")();
  }
  if (py::hasattr(py::type::of(value), "__members__")) return value.attr("name");
  if (py::isinstance<py::list>(value) || py::isinstance<py::tuple>(value)) {
    py::list out;
    for (auto item : value) out.append(Plain(item));
    return out;
  }
  if (py::isinstance<py::dict>(value)) {
    py::dict out;
    for (auto [k, v] : value.cast<py::dict>()) out[k] = Plain(v);
    return out;
  }
  return py::reinterpret_borrow<py::object>(value);
}

}  // namespace

py::dict FieldsToDict(py::object self, const std::vector<std::string>& fields) {
  py::dict out;
  for (const auto& f : fields) out[py::str(f)] = Plain(self.attr(f.c_str()));
  return out;
}

std::string ReprFields(py::object self, py::object defaults,
                       const std::vector<std::string>& fields) {
  std::string out = py::str(py::type::of(self).attr("__name__"));
  out += "(";
  bool first = true;
  for (const auto& f : fields) {
    py::object value = self.attr(f.c_str());
    if (value.equal(defaults.attr(f.c_str()))) continue;
    out += (first ? "" : ", ") + f + "=" + std::string(py::repr(value));
    first = false;
  }
  return out + ")";
}

}  // namespace internal

namespace {

std::map<StatusCode, py::object>& ExceptionClasses() {
  static auto* classes = new std::map<StatusCode, py::object>();
  return *classes;
}

}  // namespace

void RegisterErrors(py::module_& m) {
  py::object base = py::reinterpret_borrow<py::object>(PyExc_Exception);
  py::object error = py::reinterpret_steal<py::object>(
      PyErr_NewExceptionWithDoc("bitfusion.Error",
                                "Every error bitfusion raises; its subclasses name the status "
                                "code (NotFoundError, UnavailableError, ...).",
                                base.ptr(), nullptr));
  m.attr("Error") = error;
  struct ErrorClass {
    StatusCode code;
    const char* name;
    const char* doc;
  };
  const ErrorClass kCodes[] = {
      {StatusCode::kInvalidArgument, "InvalidArgumentError",
       "Bad input: a URI, spec, plan or argument that cannot be used as given."},
      {StatusCode::kNotFound, "NotFoundError",
       "Something named does not exist: an image, container, machine, program or file."},
      {StatusCode::kAlreadyExists, "AlreadyExistsError", "Something to create exists already."},
      {StatusCode::kPermissionDenied, "PermissionDeniedError",
       "Credentials missing, wrong or not allowed to do this (the provider's code is named)."},
      {StatusCode::kFailedPrecondition, "FailedPreconditionError",
       "The system is not in the state the call needs (e.g. a container not running)."},
      {StatusCode::kResourceExhausted, "ResourceExhaustedError",
       "Out of something: devices to lease, quota, capacity, queue space."},
      {StatusCode::kUnavailable, "UnavailableError",
       "A service (engine, store, cloud API) cannot be reached now; retrying may help."},
      {StatusCode::kDeadlineExceeded, "DeadlineExceededError",
       "The call's timeout passed before it finished."},
      {StatusCode::kCancelled, "CancelledError", "The call was cancelled (e.g. by Ctrl-C)."},
      {StatusCode::kIOError, "IOError", "Reading or writing a file, socket or pipe failed."},
      {StatusCode::kUnimplemented, "UnimplementedError",
       "This backend does not do that (see its capabilities())."},
      {StatusCode::kInternal, "InternalError", "A bug in bitfusion; please report it."},
  };
  for (const auto& [code, name, doc] : kCodes) {
    const std::string qualified = std::string("bitfusion.") + name;
    py::object cls = py::reinterpret_steal<py::object>(
        PyErr_NewExceptionWithDoc(qualified.c_str(), doc, error.ptr(), nullptr));
    m.attr(name) = cls;
    ExceptionClasses()[code] = cls;
  }
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const StatusError& e) {
      auto it = ExceptionClasses().find(e.status().code());
      PyObject* cls = it != ExceptionClasses().end() ? it->second.ptr() : PyExc_RuntimeError;
      PyErr_SetString(cls, e.status().message().c_str());
    }
  });
}

/// The status a Python exception stands for: a bitfusion.Error subclass keeps its code, any other
/// exception is Unavailable (the sink retries it) with the exception's type and message.
Status StatusFromPython(py::error_already_set& e, std::string_view where) {
  StatusCode code = StatusCode::kUnavailable;
  for (const auto& [c, cls] : ExceptionClasses()) {
    if (e.matches(cls)) code = c;
  }
  std::string what = std::string(where) + ": " + e.what();
  return Status(code, std::move(what));
}

}  // namespace bitfusion::python
