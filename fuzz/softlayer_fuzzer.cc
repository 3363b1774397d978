// SoftLayer's JSON answers as softlayer:// reads them (provisioners/softlayer_internal.h): the
// error body, then by the first byte: a guest or bare-metal listing (each entry through
// SoftLayerMachine, public or private address), or the guests' or bare metal's create options
// (each flavour or preset through ParseSoftLayerFlavor / ParseSoftLayerPreset).
#include <boost/json.hpp>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "provisioners/softlayer_internal.h"

namespace json = boost::json;
using namespace bitfusion;

namespace {

std::size_t Touch(const MachineType& t) {
  return t.name.size() + t.accelerators.size() + static_cast<std::size_t>(t.memory_bytes & 1);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  volatile std::size_t sink = 0;
  if (auto e = internal::ParseSoftLayerError(body)) sink = sink + e->code.size();
  boost::system::error_code ec;
  const json::value v = json::parse(body, ec);
  if (ec) return 0;
  const int kind = data[0] % 4;
  if (kind < 2) {
    // getVirtualGuests / getHardware: a list of objects.
    if (!v.is_array()) return 0;
    for (const auto& e : v.as_array()) {
      if (!e.is_object()) continue;
      const MachineInfo m = internal::SoftLayerMachine(kind == 1, e.as_object(), data[0] & 4);
      sink = sink + m.id.size() + m.labels.size() + m.address.size();
    }
    return 0;
  }
  // getCreateObjectOptions: {"flavors": [{"flavor": {...}}]} or
  // {"fixedConfigurationPresets": [{"preset": {...}}]}.
  if (!v.is_object()) return 0;
  const char* list = kind == 2 ? "flavors" : "fixedConfigurationPresets";
  const char* entry = kind == 2 ? "flavor" : "preset";
  const auto* items = v.as_object().if_contains(list);
  if (items == nullptr || !items->is_array()) return 0;
  for (const auto& e : items->as_array()) {
    const json::value* inner = e.is_object() ? e.as_object().if_contains(entry) : nullptr;
    const json::object* o = inner != nullptr && inner->is_object() ? &inner->as_object() : nullptr;
    sink = sink +
           Touch(kind == 2 ? internal::ParseSoftLayerFlavor(o) : internal::ParseSoftLayerPreset(o));
  }
  return 0;
}
