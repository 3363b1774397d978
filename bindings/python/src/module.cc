// The extension module bitfusion._bitfusion; the package bitfusion (bitfusion/__init__.py)
// re-exports it. Names mirror the C++ API in snake_case.
#include "py_common.h"

PYBIND11_MODULE(_bitfusion, m) {
  namespace bp = bitfusion::python;
  m.doc() = "bitfusion's C++ core; import bitfusion instead";
  bp::RegisterErrors(m);
  bp::RegisterData(m);
  bp::RegisterEvents(m);
  bp::RegisterRunners(m);
  bp::RegisterDevices(m);
  bp::RegisterProvisioners(m);
  bp::RegisterSinks(m);
  bp::RegisterMetrics(m);
  bp::RegisterExperiment(m);
}
