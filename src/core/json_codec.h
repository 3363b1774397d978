// The data model to and from Boost.JSON trees: the one definition of its JSON shape, used by
// ToJson/FromJson (serialize.h) and by the sinks that store records as JSON. Conversions are
// Boost.JSON's tag_invoke customisation points, so boost::json::value_from(record) and
// boost::json::value_to<RunRecord>(tree) work anywhere inside the library.
//
// The shape (fixed: stored records and tools depend on it): an object per struct with its
// fields as members, in declaration order; labels (Labels) are objects {"cpu": "0"}; other
// string maps (ContainerSpec::env, DeviceRequestEntry::options) are arrays of
// {"key": ..., "value": ...}; enums are their numbers.
//
// NaN and ±infinity are not JSON numbers. A non-finite double is written as null; a sample's
// value (Sample, and so RunRecord::results) adds "value_text" right after it, "NaN",
// "Infinity" or "-Infinity", as every JSON sink writes it (docs/sinks.md). A SampleBatch, whose
// values are a column, adds a "value_text" column beside "value" when any value is not finite
// (null where the value is). Reading turns null back into the value_text's value, or NaN.
//
// Reading is strict about what is there and lenient about what is not: a member of the wrong
// type, or one the type does not have, is an error naming its path ("results[2].value:
// expected a number, got a string"); a missing member keeps its default, so records written
// before a field existed still read.
#pragma once

#include <boost/json/fwd.hpp>
#include <boost/json/value.hpp>

#include <exception>
#include <string>
#include <string_view>
#include <utility>

#include "bitfusion/container.h"
#include "bitfusion/device.h"
#include "bitfusion/event.h"
#include "bitfusion/export.h"
#include "bitfusion/machine.h"
#include "bitfusion/run_record.h"
#include "bitfusion/sample.h"
#include "bitfusion/status.h"
#include "core/json_writer.h"

namespace bitfusion {

// Found by Boost.JSON through argument-dependent lookup, so they live beside the types.
#define BITFUSION_JSON_CONVERTIBLE(T)                                                       \
  void tag_invoke(const boost::json::value_from_tag&, boost::json::value& out, const T& v); \
  T tag_invoke(const boost::json::value_to_tag<T>&, const boost::json::value& in);

BITFUSION_JSON_CONVERTIBLE(Sample)
BITFUSION_JSON_CONVERTIBLE(Series)
BITFUSION_JSON_CONVERTIBLE(SampleBatch)
BITFUSION_JSON_CONVERTIBLE(CacheInfo)
BITFUSION_JSON_CONVERTIBLE(CpuInfo)
BITFUSION_JSON_CONVERTIBLE(AcceleratorInfo)
BITFUSION_JSON_CONVERTIBLE(SshEndpoint)
BITFUSION_JSON_CONVERTIBLE(MachineInfo)
BITFUSION_JSON_CONVERTIBLE(Mount)
BITFUSION_JSON_CONVERTIBLE(DeviceMapping)
BITFUSION_JSON_CONVERTIBLE(DeviceRequestEntry)
BITFUSION_JSON_CONVERTIBLE(HealthCheck)
BITFUSION_JSON_CONVERTIBLE(ContainerSpec)
BITFUSION_JSON_CONVERTIBLE(ResourceUsage)
BITFUSION_JSON_CONVERTIBLE(ExitStatus)
BITFUSION_JSON_CONVERTIBLE(ObserverOverhead)
BITFUSION_JSON_CONVERTIBLE(RunRecord)
BITFUSION_JSON_CONVERTIBLE(Device)
BITFUSION_JSON_CONVERTIBLE(Event)

#undef BITFUSION_JSON_CONVERTIBLE

namespace internal {

/// What value_to throws for input that does not fit the type; `path` names where
/// ("results[2].value"), `what()` says what was wrong there.
class JsonShapeError : public std::exception {
 public:
  JsonShapeError(std::string path, std::string problem)
      : path_(std::move(path)), problem_(std::move(problem)) {}
  const char* what() const noexcept override { return problem_.c_str(); }
  const std::string& path() const { return path_; }
  const std::string& problem() const { return problem_; }
  /// This error one level further out: `field` ("machine", "[2]") goes in front of the path.
  JsonShapeError Within(std::string_view field) const;

 private:
  std::string path_;
  std::string problem_;
};

/// Parses JSON text into a tree, numbers read exactly (Boost 1.81's parser rounds some doubles
/// to a neighbour; this reads each number's own digits with std::from_chars). Errors are
/// InvalidArgument with the parser's reason.
BITFUSION_EXPORT Result<boost::json::value> ParseJsonExactly(std::string_view text);

/// value_to<T>(tree) with the errors as a Status: InvalidArgument "malformed JSON record:
/// PATH: PROBLEM".
#define BITFUSION_JSON_DECODABLE(T) \
  BITFUSION_EXPORT Status FromJsonValue(const boost::json::value& tree, T& out);
BITFUSION_JSON_DECODABLE(Sample)
BITFUSION_JSON_DECODABLE(SampleBatch)
BITFUSION_JSON_DECODABLE(RunRecord)
BITFUSION_JSON_DECODABLE(MachineInfo)
BITFUSION_JSON_DECODABLE(ContainerSpec)
BITFUSION_JSON_DECODABLE(Device)
BITFUSION_JSON_DECODABLE(Event)
#undef BITFUSION_JSON_DECODABLE

}  // namespace internal
}  // namespace bitfusion
