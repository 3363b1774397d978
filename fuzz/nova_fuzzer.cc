// Nova's (OpenStack compute's) JSON answers as openstack:// and rackspace:// read them
// (provisioners/openstack_compute_internal.h): the error body (NovaErrorMessage, NovaStatus for
// a status the first byte picks), POST /servers' answer, then by the first byte a server list
// (GET /servers/detail, each server through NovaServer) or a flavour list (GET
// /flavors/detail, each through ParseNovaFlavor with its extra_specs, or an os-extra_specs
// answer's extra_specs).
#include <boost/json.hpp>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "provisioners/openstack_compute_internal.h"

namespace json = boost::json;
using namespace bitfusion;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  volatile std::size_t sink = 0;
  static const long kStatuses[] = {400, 401, 403, 404, 406, 409, 413, 429, 500, 503};
  sink = sink + internal::NovaErrorMessage(body).size();
  sink =
      sink +
      internal::NovaStatus("GET /servers", kStatuses[(data[0] >> 2) % 10], body).message().size();
  sink = sink + internal::NovaCreatedServerId(body).size();
  boost::system::error_code ec;
  const json::value v = json::parse(body, ec);
  if (ec || !v.is_object()) return 0;
  const json::object& o = v.as_object();
  switch (data[0] % 3) {
    case 0:
      if (const auto* list = o.if_contains("servers"); list && list->is_array()) {
        for (const auto& s : list->as_array()) {
          if (!s.is_object()) continue;
          const MachineInfo m = internal::NovaServer(s.as_object());
          sink = sink + m.id.size() + m.address.size() + m.labels.size() +
                 internal::NovaServerFlavorId(s.as_object()).size();
        }
      }
      break;
    case 1:
      if (const auto* list = o.if_contains("flavors"); list && list->is_array()) {
        for (const auto& f : list->as_array()) {
          const json::value* specs =
              f.is_object() ? f.as_object().if_contains("extra_specs") : nullptr;
          const auto flavor = internal::ParseNovaFlavor(
              f, specs != nullptr && specs->is_object() ? &specs->as_object() : nullptr);
          sink = sink + flavor.id.size() + flavor.type.accelerators.size();
        }
      }
      break;
    default:
      if (const auto* specs = o.if_contains("extra_specs"); specs && specs->is_object()) {
        sink = sink + internal::NovaAccelerators(&specs->as_object()).size();
      }
      break;
  }
  return 0;
}
