// What every part of the Python module shares: status codes raised as exceptions, the GIL
// rules for callbacks, and records (plain C++ structs) bound as Python classes with keyword
// constructors, readable reprs, equality, to_dict(), and dicts accepted wherever one is expected.
#pragma once

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <bitfusion/bitfusion.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace bitfusion::python {

namespace py = pybind11;

/// Raises the Python exception class of `status`'s code (bitfusion.NotFoundError, ...).
[[noreturn]] inline void Raise(const Status& status) { throw StatusError(status); }

inline void Check(const Status& status) {
  if (!status.ok()) Raise(status);
}

template <class T>
T Unwrap(Result<T> result) {
  if (!result) Raise(result.error());
  return std::move(*result);
}

/// Seconds (a float, as Python's time module counts) to nanoseconds; None = no limit.
std::chrono::nanoseconds Seconds(double s);
/// A deadline `timeout` seconds from now, or kNoDeadline for None.
Deadline DeadlineIn(const std::optional<double>& timeout);

/// The status a Python exception stands for (call with the GIL held): a bitfusion.Error
/// subclass keeps its code; any other exception is Unavailable, with its type and message.
Status StatusFromPython(py::error_already_set& e, std::string_view where);

/// A Python callable called from a library thread: the GIL is taken for the call, and an
/// exception it raises is reported with its traceback (sys.unraisablehook) instead of ending
/// the thread that called it. The callable itself is released with the GIL held, whichever
/// thread drops the last reference.
class Callback {
 public:
  Callback(py::function fn, std::string where);
  template <class... Args>
  void operator()(Args&&... args) const {
    py::gil_scoped_acquire gil;
    try {
      (*fn_)(std::forward<Args>(args)...);
    } catch (py::error_already_set& e) {
      e.discard_as_unraisable(where_.c_str());
    }
  }

 private:
  std::shared_ptr<py::function> fn_;
  std::string where_;
};

/// A record class: the struct's fields as attributes, `T(**fields)`, `T(dict)`, repr showing
/// the fields that differ from their defaults, ==, to_dict(); a dict converts to T implicitly
/// wherever a T is expected (also inside lists and other records).
template <class T>
class Record : public py::class_<T> {
 public:
  Record(py::handle scope, const char* name, const char* doc) : py::class_<T>(scope, name, doc) {
    fields_ = std::make_shared<std::vector<std::string>>();
  }

  template <class F>
  Record& field(const char* name, F T::*member, const char* doc = "") {
    this->def_readwrite(name, member, doc);
    fields_->push_back(name);
    return *this;
  }

  /// Call once all fields are declared; returns the class for further methods.
  py::class_<T>& finish();

 private:
  std::shared_ptr<std::vector<std::string>> fields_;
};

namespace internal {
/// Sets attribute `key` of `self` for each item, refusing names that are not fields.
void AssignFields(py::object self, const std::vector<std::string>& fields, py::dict values);
std::string ReprFields(py::object self, py::object defaults,
                       const std::vector<std::string>& fields);
py::dict FieldsToDict(py::object self, const std::vector<std::string>& fields);
}  // namespace internal

template <class T>
py::class_<T>& Record<T>::finish() {
  auto fields = fields_;
  this->attr("_fields") = py::tuple(py::cast(*fields));
  this->def(py::init([fields](py::kwargs kwargs) {
              auto value = std::make_unique<T>();
              py::object self = py::cast(value.get(), py::return_value_policy::reference);
              internal::AssignFields(self, *fields, kwargs);
              return value;
            }),
            "Keyword arguments name fields; the others keep their defaults.");
  this->def(py::init([fields](py::dict values) {
              auto value = std::make_unique<T>();
              py::object self = py::cast(value.get(), py::return_value_policy::reference);
              internal::AssignFields(self, *fields, values);
              return value;
            }),
            py::arg("fields"), "From a dict of fields.");
  this->def("__repr__", [fields](py::object self) {
    return internal::ReprFields(self, py::cast(T{}), *fields);
  });
  this->def("__eq__", [fields](py::object self, py::object other) {
    if (!py::isinstance<T>(other)) return false;
    return internal::FieldsToDict(self, *fields).equal(internal::FieldsToDict(other, *fields));
  });
  this->def(
      "to_dict", [fields](py::object self) { return internal::FieldsToDict(self, *fields); },
      "The fields as a dict (records inside become dicts too).");
  this->def(
      "__getitem__",
      [fields](py::object self, const std::string& key) {
        if (std::find(fields->begin(), fields->end(), key) == fields->end()) {
          throw py::key_error(key);
        }
        return self.attr(key.c_str());
      },
      "A field by name, as a dict would give it.");
  this->def(
      "keys", [fields](py::object) { return *fields; }, "The field names.");
  this->def(
      "__copy__", [](const T& self) { return T(self); }, "A copy.");
  this->attr("__hash__") = py::none();
  py::implicitly_convertible<py::dict, T>();
  return *this;
}

// Each part of the module adds its classes and functions.
void RegisterErrors(py::module_& m);
void RegisterData(py::module_& m);
void RegisterEvents(py::module_& m);
void RegisterRunners(py::module_& m);
void RegisterDevices(py::module_& m);
void RegisterProvisioners(py::module_& m);
void RegisterSinks(py::module_& m);
void RegisterMetrics(py::module_& m);
void RegisterExperiment(py::module_& m);

}  // namespace bitfusion::python
