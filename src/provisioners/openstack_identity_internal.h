// OpenStack identity for the openstack:// and rackspace:// provisioners, kept apart from Nova:
// the request bodies for Keystone v3 (password, application credential) and Rackspace identity
// v2.0 (API key), and the parsing of their answers into a token and the compute endpoint picked
// from the service catalogue by region and interface. Pure functions: no I/O. Secrets go into
// request bodies only and never into a Status message.
//
// References: Keystone v3 api-ref "authenticate-v3" (POST /v3/auth/tokens, X-Subject-Token,
// token.catalog[].endpoints[]{interface,region,url}); Rackspace Cloud Identity v2.0
// (access.token.id, access.serviceCatalog[]{type,name,endpoints[]{region,publicURL}}).
#pragma once

#include <chrono>
#include <string>

#include "bitfusion/status.h"

namespace bitfusion::internal {

struct KeystonePassword {
  std::string username;
  std::string password;
  std::string user_domain = "Default";
  std::string project_name;
  std::string project_domain = "Default";
};

struct KeystoneApplicationCredential {
  std::string id;
  std::string secret;
};

struct RackspaceApiKey {
  std::string username;
  std::string api_key;
};

/// The JSON bodies of POST /v3/auth/tokens and POST /v2.0/tokens.
std::string KeystonePasswordBody(const KeystonePassword& credentials);
std::string KeystoneApplicationCredentialBody(const KeystoneApplicationCredential& credentials);
std::string RackspaceApiKeyBody(const RackspaceApiKey& credentials);

/// A token and the compute endpoint it is for.
struct ComputeAccess {
  std::string token;
  std::chrono::system_clock::time_point expires;
  std::string compute_url;  ///< without a trailing '/'
};

/// Parses a Keystone v3 answer (201; token in the X-Subject-Token header) and picks the
/// "compute" endpoint of `region` with `interface` (public, internal or admin). An unknown
/// region is kNotFound naming the regions the catalogue has.
Result<ComputeAccess> ParseKeystoneV3Token(const std::string& body,
                                           const std::string& subject_token,
                                           const std::string& region, const std::string& interface);

/// Parses a Rackspace identity v2.0 answer and picks the "cloudServersOpenStack" compute
/// endpoint of `region` (DFW, ORD, IAD, LON, SYD, HKG), never the legacy regionless one.
Result<ComputeAccess> ParseRackspaceV2Token(const std::string& body, const std::string& region);

/// "2026-12-04T01:02:03.000000Z" or "2012-06-05T11:26:53.000-05:00" as a time point.
Result<std::chrono::system_clock::time_point> ParseOpenStackTime(const std::string& text);

}  // namespace bitfusion::internal
