// SampleColumn: one column of a SampleBatch through the buffer protocol.
#pragma once

#include <memory>

#include "py_common.h"

namespace bitfusion::python {

/// Keeps its batch alive for as long as a memoryview or numpy array looks at it.
class SampleColumn {
 public:
  enum class Which { kValue, kTimestamp, kMonotonic, kSeriesIndex };
  SampleColumn(std::shared_ptr<const SampleBatch> batch, Which which);
  std::size_t size() const;
  py::buffer_info Buffer() const;

 private:
  std::shared_ptr<const SampleBatch> batch_;
  Which which_;
};

}  // namespace bitfusion::python
