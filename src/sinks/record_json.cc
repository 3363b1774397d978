#include "sinks/record_json.h"

#include <boost/json.hpp>

#include <cmath>

namespace bitfusion::internal {

void AppendJsonSampleValue(std::string& out, double value) {
  if (std::isfinite(value)) {
    AppendDouble(out, value);
  } else {
    out += R"(null,"value_text":")";
    out += NonFiniteText(value);
    out.push_back('"');
  }
}

std::string RunRecordJson(const RunRecord& record, bool with_type) {
  std::string out;
  AppendJsonValue(out, boost::json::value_from(record));
  if (with_type) out.insert(1, R"("type":"run",)");  // a record is never an empty object
  return out;
}

std::string MachineInfoJson(const MachineInfo& machine) {
  std::string out;
  AppendJsonValue(out, boost::json::value_from(machine));
  return out;
}

}  // namespace bitfusion::internal
