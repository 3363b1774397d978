// The readers of Nova's (OpenStack compute's) JSON answers for openstack:// and rackspace://,
// kept apart from the calls so that they can be tested and fuzzed without a cloud: error bodies,
// flavours with their extra specs (GET /flavors/detail, os-extra_specs), servers (GET
// /servers/detail, GET /servers/{id}) and the answer to POST /servers. Pure functions: no I/O.
#pragma once

#include <boost/json/fwd.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "bitfusion/machine.h"
#include "bitfusion/status.h"

namespace bitfusion::internal {

/// Nova's {"<name>": {"code": N, "message": "..."}} or Keystone's {"error": {"message": ...}}
/// as "<name>: <message>"; empty when the body is neither.
std::string NovaErrorMessage(std::string_view body);
/// What a failed call `what` that got HTTP `status` and `body` means for the caller.
Status NovaStatus(const std::string& what, long status, std::string_view body);

/// Nova's times; "launched_at" has no zone ("2013-09-23T13:53:12.000000") and is UTC. 0 when
/// empty or unreadable.
std::int64_t ParseNovaTime(const std::string& text);

/// The accelerators a flavour's extra specs ask for (PCI aliases, vGPUs, custom resource
/// classes, Cyborg device profiles); `extra_specs` may be null.
std::vector<AcceleratorInfo> NovaAccelerators(const boost::json::object* extra_specs);

/// One flavour: its id and its type (name, vCPUs, RAM, and from `extra_specs`, which may be
/// null, its accelerators and CPU architecture).
struct NovaFlavor {
  std::string id;
  MachineType type;
};
NovaFlavor ParseNovaFlavor(const boost::json::value& flavor,
                           const boost::json::object* extra_specs);

/// One server as Nova describes it: id, name, state, address, zone, key, metadata, times, and
/// as `type` its flavour's original_name (or id). What the provisioner adds (provider, SSH
/// user, the flavour's hardware, the times it saw) is not set.
MachineInfo NovaServer(const boost::json::object& server);
/// The flavour id a server names; empty when none.
std::string NovaServerFlavorId(const boost::json::object& server);

/// The new server's id in POST /servers' answer; empty when there is none.
std::string NovaCreatedServerId(std::string_view body);

}  // namespace bitfusion::internal
