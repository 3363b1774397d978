#include "provisioners/openstack_identity_internal.h"

#include <boost/json.hpp>

#include <set>
#include <string_view>

#include "core/rfc3339.h"

namespace bitfusion::internal {
namespace json = boost::json;

namespace {

std::string TrimSlash(std::string url) {
  while (!url.empty() && url.back() == '/') url.pop_back();
  return url;
}

std::string Join(const std::set<std::string>& names) {
  std::string out;
  for (const auto& name : names) out += (out.empty() ? "" : ", ") + name;
  return out.empty() ? "(none)" : out;
}

const json::value* Find(const json::value& v, std::string_view key) {
  const auto* object = v.if_object();
  return object ? object->if_contains(key) : nullptr;
}

std::string String(const json::value* v) {
  return v && v->is_string() ? std::string(v->as_string()) : std::string();
}

}  // namespace

std::string KeystonePasswordBody(const KeystonePassword& c) {
  json::object user{{"name", c.username},
                    {"domain", json::object{{"name", c.user_domain}}},
                    {"password", c.password}};
  json::object auth{{"identity", json::object{{"methods", json::array{"password"}},
                                              {"password", json::object{{"user", user}}}}}};
  auth["scope"] =
      json::object{{"project", json::object{{"name", c.project_name},
                                            {"domain", json::object{{"name", c.project_domain}}}}}};
  return json::serialize(json::object{{"auth", auth}});
}

std::string KeystoneApplicationCredentialBody(const KeystoneApplicationCredential& c) {
  // An application credential carries its own project scope; Keystone refuses another one.
  json::object identity{
      {"methods", json::array{"application_credential"}},
      {"application_credential", json::object{{"id", c.id}, {"secret", c.secret}}}};
  return json::serialize(json::object{{"auth", json::object{{"identity", identity}}}});
}

std::string RackspaceApiKeyBody(const RackspaceApiKey& c) {
  return json::serialize(json::object{
      {"auth", json::object{{"RAX-KSKEY:apiKeyCredentials",
                             json::object{{"username", c.username}, {"apiKey", c.api_key}}}}}});
}

Result<std::chrono::system_clock::time_point> ParseOpenStackTime(const std::string& text) {
  const auto ns = ParseRfc3339(text);
  if (!ns) {
    return InvalidArgumentError("OpenStack time '" + text +
                                "' is not ISO 8601 (YYYY-MM-DDTHH:MM:SS[.frac][Z|+hh:mm]); the "
                                "identity service answered something unexpected");
  }
  return std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(
          std::chrono::nanoseconds(*ns)));
}

Result<ComputeAccess> ParseKeystoneV3Token(const std::string& body,
                                           const std::string& subject_token,
                                           const std::string& region,
                                           const std::string& interface) {
  if (subject_token.empty()) {
    return UnavailableError(
        "Keystone answered without an X-Subject-Token header; check that the URI points at "
        "the identity service (.../v3)");
  }
  boost::system::error_code ec;
  const json::value doc = json::parse(body, ec);
  const json::value* token = ec ? nullptr : Find(doc, "token");
  if (!token) {
    return UnavailableError("Keystone's token answer is not JSON with a 'token' object");
  }
  ComputeAccess access;
  access.token = subject_token;
  auto expires = ParseOpenStackTime(String(Find(*token, "expires_at")));
  if (!expires) return expires.error();
  access.expires = *expires;
  const json::value* catalog = Find(*token, "catalog");
  if (!catalog || !catalog->is_array()) {
    return FailedPreconditionError(
        "Keystone returned a token without a service catalogue (unscoped); give a project "
        "(?project= or OS_PROJECT_NAME) or use an application credential");
  }
  std::set<std::string> regions;
  for (const auto& service : catalog->as_array()) {
    if (String(Find(service, "type")) != "compute") continue;
    const json::value* endpoints = Find(service, "endpoints");
    if (!endpoints || !endpoints->is_array()) continue;
    for (const auto& endpoint : endpoints->as_array()) {
      std::string endpoint_region = String(Find(endpoint, "region_id"));
      if (endpoint_region.empty()) endpoint_region = String(Find(endpoint, "region"));
      if (String(Find(endpoint, "interface")) != interface) continue;
      regions.insert(endpoint_region);
      if (endpoint_region == region) {
        access.compute_url = TrimSlash(String(Find(endpoint, "url")));
        return access;
      }
    }
  }
  return NotFoundError("the Keystone catalogue has no compute endpoint for region '" + region +
                       "' with interface '" + interface + "'; regions it has: " + Join(regions) +
                       " (set region= in the URI or OS_REGION_NAME)");
}

Result<ComputeAccess> ParseRackspaceV2Token(const std::string& body, const std::string& region) {
  boost::system::error_code ec;
  const json::value doc = json::parse(body, ec);
  const json::value* access_json = ec ? nullptr : Find(doc, "access");
  const json::value* token = access_json ? Find(*access_json, "token") : nullptr;
  if (!token) {
    return UnavailableError("Rackspace identity's answer is not JSON with 'access.token'");
  }
  ComputeAccess access;
  access.token = String(Find(*token, "id"));
  if (access.token.empty()) {
    return UnavailableError("Rackspace identity's answer has no access.token.id");
  }
  auto expires = ParseOpenStackTime(String(Find(*token, "expires")));
  if (!expires) return expires.error();
  access.expires = *expires;
  std::set<std::string> regions;
  const json::value* catalog = Find(*access_json, "serviceCatalog");
  if (catalog && catalog->is_array()) {
    for (const auto& service : catalog->as_array()) {
      if (String(Find(service, "type")) != "compute" ||
          String(Find(service, "name")) != "cloudServersOpenStack") {
        continue;
      }
      const json::value* endpoints = Find(service, "endpoints");
      if (!endpoints || !endpoints->is_array()) continue;
      for (const auto& endpoint : endpoints->as_array()) {
        const std::string endpoint_region = String(Find(endpoint, "region"));
        regions.insert(endpoint_region);
        if (endpoint_region == region) {
          access.compute_url = TrimSlash(String(Find(endpoint, "publicURL")));
          return access;
        }
      }
    }
  }
  return NotFoundError("Rackspace region '" + region +
                       "' has no cloudServersOpenStack endpoint for this account; regions it "
                       "has: " +
                       Join(regions) + " (use rackspace://REGION with one of them)");
}

}  // namespace bitfusion::internal
