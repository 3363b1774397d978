// Handles shared by several parts of the module.
#pragma once

#include "py_common.h"

namespace bitfusion::python {

/// A bitfusion::Subscription for Python: cancel() (or leaving a `with` block, or the handle
/// being collected) stops delivery; it waits for a running callback without holding the GIL.
class PySubscription {
 public:
  explicit PySubscription(Subscription sub) : sub_(std::move(sub)) {}
  ~PySubscription() { Cancel(); }
  void Cancel() {
    py::gil_scoped_release release;
    sub_.Cancel();
  }
  bool active() const { return sub_.active(); }

 private:
  Subscription sub_;
};

/// The BackendContext of a *_from_uri call: run id, labels and an on_event callable.
BackendContext ContextFrom(const std::string& run_id, const Labels& labels,
                           const std::optional<py::function>& on_event);

/// Container::Wait in slices, checking for Ctrl-C between them.
ExitStatus WaitInterruptibly(Container& container, Deadline deadline);

}  // namespace bitfusion::python

namespace bitfusion::python {

/// Deletes with the GIL released: for objects whose destructor waits for a thread that may be
/// waiting for the GIL in a Python callback. Only for objects Python owns (the GIL is held
/// when it runs).
template <class T>
struct ReleaseGilDelete {
  void operator()(T* p) const {
    py::gil_scoped_release release;
    delete p;
  }
};

}  // namespace bitfusion::python
