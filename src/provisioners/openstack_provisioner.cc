#include "provisioners/openstack_provisioner.h"

#include <algorithm>
#include <boost/json.hpp>
#include <cstdlib>
#include <sstream>
#include <thread>

#include <re2/re2.h>

#include "bitfusion/log.h"
#include "bitfusion/registry.h"
#include "bitfusion/run_record.h"
#include "core/ascii.h"
#include "core/env.h"
#include "core/json_fields.h"
#include "core/percent_encode.h"
#include "core/rfc3339.h"
#include "provisioners/cloud_uri_options.h"
#include "provisioners/openstack_compute_internal.h"
#include "provisioners/wait_ready_internal.h"

namespace bitfusion {
namespace {

namespace json = boost::json;
using internal::JsonArrayAt;
using internal::JsonObject;
using internal::JsonObjectAt;
using internal::JsonStringAt;
using namespace std::chrono_literals;
using internal::GetEnv;

constexpr const char* kRackspaceIdentity = "https://identity.api.rackspacecloud.com/v2.0";
constexpr int kPageSize = 100;
// Flavours with their extra specs in one answer (Nova 2.61); older clouds answer 406 or leave
// them out, and then each flavour's os-extra_specs is read.
constexpr const char* kFlavorMicroversion = "2.61";

std::string FirstEnv(std::initializer_list<const char*> names) {
  for (const char* n : names) {
    if (!GetEnv(n).empty()) return GetEnv(n);
  }
  return "";
}

bool IsUuid(const std::string& text) {
  static const RE2 kUuid(
      "[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}");
  return RE2::FullMatch(text, kUuid);
}

// The metadata Nova accepts: keys [a-zA-Z0-9-_:. /]{1,255}, values up to 255 bytes, at most
// 128 items (the default metadata_items quota).
Status CheckMetadata(const Labels& labels) {
  static const RE2 kKey("[a-zA-Z0-9_:. /-]{1,255}");
  if (labels.size() > 128) {
    return InvalidArgumentError("Nova takes at most 128 metadata items per server, got " +
                                std::to_string(labels.size()) + " labels; use fewer");
  }
  for (const auto& [k, v] : labels) {
    if (!RE2::FullMatch(k, kKey) || v.size() > 255) {
      return InvalidArgumentError("label \"" + k + "\"=\"" + v +
                                  "\" cannot be Nova server metadata: keys are "
                                  "[a-zA-Z0-9-_:. /]{1,255}, values at most 255 bytes");
    }
  }
  return Status::OK();
}

// Accelerators from a flavour's extra specs: PCI passthrough aliases ("a100:2,u250:1"), vGPUs
// (resources:VGPU), custom placement resources (resources:CUSTOM_FPGA_XILINX) and Cyborg
// device profiles (accel:device_profile).
// "bf-" plus the token's letters and digits and the index: a server name of its own.
std::string ServerName(const std::string& token, int index) {
  std::string clean;
  for (char c : token) {
    if (std::isalnum(static_cast<unsigned char>(c))) {
      clean.push_back(internal::AsciiLower(c));
    }
  }
  return "bf-" + clean.substr(0, 40) + "-" + std::to_string(index);
}

}  // namespace

Result<OpenStackProvisionerOptions> OpenStackProvisionerOptions::FromUri(const Uri& uri) {
  OpenStackProvisionerOptions o;
  const bool rackspace = uri.scheme == "rackspace";
  std::vector<std::string_view> keys = {"type",     "image", "network",  "ssh_user",
                                        "wait_ssh", "poll",  "attempts", "backoff"};
  if (rackspace) {
    keys.push_back("identity");
  } else {
    for (const char* k :
         {"region", "interface", "project", "user_domain", "project_domain", "tls"}) {
      keys.push_back(k);
    }
  }
  BITFUSION_RETURN_IF_ERROR(uri.CheckQueryKeys(keys));
  if (!uri.user.empty() || !uri.password.empty()) {
    return InvalidArgumentError(
        uri.scheme + ":// takes no credentials in the URI; set " +
        (rackspace ? "RACKSPACE_USERNAME and RACKSPACE_API_KEY"
                   : "OS_USERNAME and OS_PASSWORD, or OS_APPLICATION_CREDENTIAL_ID and "
                     "OS_APPLICATION_CREDENTIAL_SECRET"));
  }
  if (rackspace) {
    o.identity = Identity::kRackspaceV2;
    if (uri.host.empty() || (!uri.path.empty() && uri.path != "/")) {
      return InvalidArgumentError("rackspace:// takes a region and no path, got \"" +
                                  uri.ToString() +
                                  "\"; write rackspace://DFW (or ORD, IAD, LON, SYD, HKG)");
    }
    o.region = internal::AsciiUpper(uri.host);
    o.identity_url = uri.Query("identity").value_or(kRackspaceIdentity);
  } else {
    o.identity = Identity::kKeystoneV3;
    BITFUSION_ASSIGN_OR_RETURN(const bool tls, uri.QueryBool("tls", true));
    if (uri.host.empty()) {
      o.identity_url = GetEnv("OS_AUTH_URL");
      if (o.identity_url.empty()) {
        return InvalidArgumentError(
            "openstack:// needs the identity service: openstack://keystone.example:5000/v3, "
            "or set OS_AUTH_URL");
      }
    } else {
      o.identity_url = std::string(tls ? "https://" : "http://") + uri.host +
                       (uri.port ? ":" + std::to_string(*uri.port) : "") +
                       (uri.path.empty() || uri.path == "/" ? "/v3" : uri.path);
    }
    o.region = uri.Query("region").value_or(FirstEnv({"OS_REGION_NAME"}));
    if (o.region.empty()) o.region = "RegionOne";
    o.interface = uri.Query("interface").value_or(FirstEnv({"OS_INTERFACE"}));
    if (o.interface.empty()) o.interface = "public";
    if (o.interface != "public" && o.interface != "internal" && o.interface != "admin") {
      return InvalidArgumentError("interface must be public, internal or admin, got \"" +
                                  o.interface + "\"");
    }
    o.project = uri.Query("project").value_or(FirstEnv({"OS_PROJECT_NAME", "OS_TENANT_NAME"}));
    o.user_domain = uri.Query("user_domain").value_or(FirstEnv({"OS_USER_DOMAIN_NAME"}));
    o.project_domain = uri.Query("project_domain").value_or(FirstEnv({"OS_PROJECT_DOMAIN_NAME"}));
    if (o.user_domain.empty()) o.user_domain = "Default";
    if (o.project_domain.empty()) o.project_domain = "Default";
  }
  while (!o.identity_url.empty() && o.identity_url.back() == '/') o.identity_url.pop_back();
  o.default_type = uri.Query("type").value_or("");
  o.image = uri.Query("image").value_or("");
  o.network = uri.Query("network").value_or("");
  if (!o.network.empty() && !IsUuid(o.network)) {
    return InvalidArgumentError(
        "network must be the network's UUID (openstack network list), "
        "got \"" +
        o.network + "\"");
  }
  BITFUSION_RETURN_IF_ERROR(internal::ReadCloudUriOptions(uri, o));
  return o;
}

Result<std::shared_ptr<OpenStackProvisioner>> OpenStackProvisioner::Make(
    const OpenStackProvisionerOptions& options) {
  auto p = std::shared_ptr<OpenStackProvisioner>(new OpenStackProvisioner(options));
  BITFUSION_RETURN_IF_ERROR(p->Init());
  return p;
}

std::string OpenStackProvisioner::Where() const {
  return options_.identity == OpenStackProvisionerOptions::Identity::kRackspaceV2
             ? "rackspace://" + options_.region
             : "openstack://" + options_.region;
}

Status OpenStackProvisioner::Init() {
  if (options_.identity == OpenStackProvisionerOptions::Identity::kRackspaceV2) {
    api_key_.username = FirstEnv({"RACKSPACE_USERNAME", "RS_USERNAME"});
    api_key_.api_key = FirstEnv({"RACKSPACE_API_KEY", "RS_API_KEY"});
    if (api_key_.username.empty() || api_key_.api_key.empty()) {
      return PermissionDeniedError(Where() +
                                   ": no Rackspace credentials found; set RACKSPACE_USERNAME "
                                   "and RACKSPACE_API_KEY (the API key from the Cloud Control "
                                   "Panel, Account Settings)");
    }
  } else {
    app_credential_.id = GetEnv("OS_APPLICATION_CREDENTIAL_ID");
    app_credential_.secret = GetEnv("OS_APPLICATION_CREDENTIAL_SECRET");
    password_.username = GetEnv("OS_USERNAME");
    password_.password = GetEnv("OS_PASSWORD");
    password_.project_name = options_.project;
    password_.user_domain = options_.user_domain;
    password_.project_domain = options_.project_domain;
    const bool app = !app_credential_.id.empty() && !app_credential_.secret.empty();
    if (!app && (password_.username.empty() || password_.password.empty())) {
      return PermissionDeniedError(Where() +
                                   ": no OpenStack credentials found; set OS_USERNAME, "
                                   "OS_PASSWORD and OS_PROJECT_NAME (or ?project=), or "
                                   "OS_APPLICATION_CREDENTIAL_ID and "
                                   "OS_APPLICATION_CREDENTIAL_SECRET (source your openrc)");
    }
    if (!app && password_.project_name.empty()) {
      return InvalidArgumentError(Where() +
                                  ": a password needs a project to scope the token to; set "
                                  "OS_PROJECT_NAME or ?project=");
    }
  }
  net::HttpClientOptions o;
  o.base_url = options_.identity_url;
  o.peer_name = "identity service at " + options_.identity_url;
  o.retry.max_attempts = options_.max_attempts;
  o.retry.initial_backoff = options_.initial_backoff;
  o.retry.max_backoff = 20s;
  o.retry.retry_statuses = {429, 502, 503, 504};
  BITFUSION_ASSIGN_OR_RETURN(identity_, net::HttpClient::Make(o));
  return Status::OK();
}

Status OpenStackProvisioner::Authenticate(bool renew) {
  std::lock_guard auth(auth_mu_);
  {
    std::lock_guard lock(mu_);
    if (!renew && access_ && access_->expires - 5min > std::chrono::system_clock::now()) {
      return Status::OK();
    }
  }
  const bool rackspace = options_.identity == OpenStackProvisionerOptions::Identity::kRackspaceV2;
  net::HttpRequest r;
  r.method = "POST";
  r.target = rackspace ? "/tokens" : "/auth/tokens";
  r.headers = {{"Content-Type", "application/json"}, {"Accept", "application/json"}};
  r.body = rackspace ? internal::RackspaceApiKeyBody(api_key_)
           : !app_credential_.secret.empty()
               ? internal::KeystoneApplicationCredentialBody(app_credential_)
               : internal::KeystonePasswordBody(password_);
  r.deadline = DeadlineAfter(60s);
  r.idempotent = true;  // a token request makes nothing but a token
  auto response = identity_->Send(r);
  const std::string what = Where() + ": authenticating at " + options_.identity_url;
  if (!response) {
    return Status(response.error().code(), what + ": " + Redact(response.error().message()));
  }
  if (response->status == 401) {
    return PermissionDeniedError(
        what + " was refused (401 " + Redact(internal::NovaErrorMessage(response->body)) +
        "); check " +
        (rackspace ? "RACKSPACE_USERNAME and RACKSPACE_API_KEY"
         : !app_credential_.secret.empty()
             ? "OS_APPLICATION_CREDENTIAL_ID and OS_APPLICATION_CREDENTIAL_SECRET"
             : "OS_USERNAME, OS_PASSWORD, the project and the domains"));
  }
  if (response->status >= 300) {
    return internal::NovaStatus(what, response->status, response->body);
  }
  auto access = rackspace ? internal::ParseRackspaceV2Token(response->body, options_.region)
                          : internal::ParseKeystoneV3Token(
                                response->body, response->Header("x-subject-token").value_or(""),
                                options_.region, options_.interface);
  if (!access) return Status(access.error().code(), Where() + ": " + access.error().message());
  std::lock_guard lock(mu_);
  if (compute_ == nullptr || compute_->options().base_url != access->compute_url) {
    net::HttpClientOptions o;
    o.base_url = access->compute_url;
    o.peer_name = "compute service at " + access->compute_url;
    o.retry.max_attempts = options_.max_attempts;
    o.retry.initial_backoff = options_.initial_backoff;
    o.retry.max_backoff = 20s;
    // 413 and 429 are Nova's overLimit (with Retry-After); 409 is not retried here.
    o.retry.retry_statuses = {413, 429, 502, 503, 504};
    BITFUSION_ASSIGN_OR_RETURN(auto client, net::HttpClient::Make(o));
    compute_ = std::move(client);
  }
  access_ = std::move(*access);
  return Status::OK();
}

Result<net::HttpResponse> OpenStackProvisioner::Send(const std::string& method,
                                                     const std::string& target,
                                                     const std::string& body, Deadline deadline,
                                                     std::optional<bool> idempotent,
                                                     const net::Headers& headers) {
  for (int round = 0;; ++round) {
    BITFUSION_RETURN_IF_ERROR(Authenticate(round > 0));
    std::shared_ptr<net::HttpClient> client;
    net::HttpRequest r;
    {
      std::lock_guard lock(mu_);
      client = compute_;
      r.headers = {{"X-Auth-Token", access_->token}, {"Accept", "application/json"}};
    }
    r.headers.insert(r.headers.end(), headers.begin(), headers.end());
    r.method = method;
    r.target = target;
    r.deadline = deadline;
    r.idempotent = idempotent;
    if (!body.empty()) {
      r.body = body;
      r.headers.emplace_back("Content-Type", "application/json");
    }
    auto response = client->Send(r);
    if (!response) {
      return Status(response.error().code(), Where() + " " + method + " " + target + ": " +
                                                 Redact(response.error().message()));
    }
    // A token revoked or expired early: one renewal, then the answer stands.
    if (response->status == 401 && round == 0) continue;
    return response;
  }
}

Result<boost::json::value> OpenStackProvisioner::Compute(const std::string& method,
                                                         const std::string& target,
                                                         const std::string& body, Deadline deadline,
                                                         std::optional<bool> idempotent,
                                                         const net::Headers& headers) {
  BITFUSION_ASSIGN_OR_RETURN(auto response,
                             Send(method, target, body, deadline, idempotent, headers));
  const std::string what = Where() + " " + method + " " + target.substr(0, target.find('?'));
  if (response.status >= 300) return internal::NovaStatus(what, response.status, response.body);
  json::value answer;  // null for an empty body (204)
  if (!response.body.empty()) {
    boost::system::error_code ec;
    answer = json::parse(response.body, ec);
    if (ec) return InternalError(what + " answered JSON that does not parse");
  }
  return answer;
}

Result<std::vector<OpenStackProvisioner::Flavor>> OpenStackProvisioner::Flavors() {
  {
    std::lock_guard lock(mu_);
    if (flavors_) return *flavors_;
  }
  const Deadline deadline = DeadlineAfter(120s);
  auto answer = Compute("GET", "/flavors/detail", "", deadline, std::nullopt,
                        {{"OpenStack-API-Version", std::string("compute ") + kFlavorMicroversion},
                         {"X-OpenStack-Nova-API-Version", kFlavorMicroversion}});
  if (!answer && answer.error().code() == StatusCode::kUnimplemented) {
    answer = Compute("GET", "/flavors/detail", "", deadline);
  }
  if (!answer) return answer.error();
  const json::array* list = JsonArrayAt(JsonObject(&*answer), "flavors");
  if (list == nullptr) return InternalError(Where() + " GET /flavors/detail answered no list");
  std::vector<Flavor> out;
  for (const auto& f : *list) {
    const json::object* o = JsonObject(&f);
    const json::object* specs = JsonObjectAt(o, "extra_specs");
    json::value fetched;
    if (specs == nullptr) {
      BITFUSION_ASSIGN_OR_RETURN(
          auto s,
          Compute("GET",
                  "/flavors/" + internal::PercentEncode(JsonStringAt(o, "id")) + "/os-extra_specs",
                  "", deadline));
      fetched = std::move(s);
      specs = JsonObjectAt(JsonObject(&fetched), "extra_specs");
    }
    internal::NovaFlavor parsed = internal::ParseNovaFlavor(f, specs);
    Flavor flavor{std::move(parsed.id), std::move(parsed.type)};
    if (!flavor.id.empty()) out.push_back(std::move(flavor));
  }
  std::sort(out.begin(), out.end(),
            [](const Flavor& a, const Flavor& b) { return a.type.name < b.type.name; });
  std::lock_guard lock(mu_);
  flavors_ = out;
  return out;
}

Result<std::vector<MachineType>> OpenStackProvisioner::Types() {
  BITFUSION_ASSIGN_OR_RETURN(auto flavors, Flavors());
  std::vector<MachineType> out;
  for (auto& f : flavors) out.push_back(std::move(f.type));
  return out;
}

Result<std::string> OpenStackProvisioner::ResolveImage(const std::string& image) {
  if (IsUuid(image)) return image;  // Nova itself says whether it exists, before making anything
  // The compute API's image proxy (Glance's names), read at microversion 2.1, where it exists.
  BITFUSION_ASSIGN_OR_RETURN(auto answer,
                             Compute("GET", "/images/detail", "", DeadlineAfter(120s)));
  const json::array* list = JsonArrayAt(JsonObject(&answer), "images");
  std::vector<std::string> matches, names;
  for (std::size_t i = 0; list != nullptr && i < list->size(); ++i) {
    const json::object* o = JsonObject(&(*list)[i]);
    if (JsonStringAt(o, "name") == image) matches.push_back(JsonStringAt(o, "id"));
    if (names.size() < 12) names.push_back(JsonStringAt(o, "name"));
  }
  if (matches.size() == 1) return matches.front();
  if (matches.size() > 1) {
    return InvalidArgumentError(Where() + " has " + std::to_string(matches.size()) +
                                " images named \"" + image + "\"; name one by its UUID");
  }
  std::string known;
  for (const auto& n : names) known += (known.empty() ? "" : ", ") + n;
  return InvalidArgumentError(Where() + " has no image \"" + image + "\"; it has " +
                              (known.empty() ? "none" : known) + " (name one, or give its UUID)");
}

MachineInfo OpenStackProvisioner::FromJson(const json::object& server) {
  MachineInfo m = internal::NovaServer(server);
  m.provider = options_.identity == OpenStackProvisionerOptions::Identity::kRackspaceV2
                   ? "rackspace"
                   : "openstack";
  if (m.zone.empty()) m.zone = options_.region;
  m.ssh.user = options_.ssh_user;
  const std::string flavor_id = internal::NovaServerFlavorId(server);
  std::lock_guard lock(mu_);
  if (auto it = created_ns_.find(m.id); it != created_ns_.end()) m.created_ns = it->second;
  if (auto it = running_ns_.find(m.id); it != running_ns_.end()) m.running_ns = it->second;
  for (const auto& f : flavors_ ? *flavors_ : std::vector<Flavor>{}) {
    if (f.id == flavor_id || f.type.name == m.type) {
      m.type = f.type.name;
      m.cpu.threads = f.type.vcpus;
      m.cpu.architecture = f.type.cpu_architecture;
      m.memory_bytes = f.type.memory_bytes;
      m.accelerators = f.type.accelerators;
    }
  }
  return m;
}

Result<std::vector<MachineInfo>> OpenStackProvisioner::Servers(const std::string& query,
                                                               Deadline deadline) {
  // The flavours give each server its type's name and hardware.
  (void)Flavors();
  std::vector<MachineInfo> out;
  std::string marker;
  while (true) {
    std::string target = "/servers/detail?limit=" + std::to_string(kPageSize);
    if (!query.empty()) target += "&" + query;
    if (!marker.empty()) target += "&marker=" + internal::PercentEncode(marker);
    BITFUSION_ASSIGN_OR_RETURN(auto answer, Compute("GET", target, "", deadline));
    const json::object* body = JsonObject(&answer);
    const json::array* list = JsonArrayAt(body, "servers");
    if (list == nullptr) return InternalError(Where() + " GET /servers/detail answered no list");
    for (const auto& s : *list) {
      if (const json::object* o = JsonObject(&s)) out.push_back(FromJson(*o));
    }
    bool next = false;
    if (const json::array* links = JsonArrayAt(body, "servers_links")) {
      for (const auto& l : *links) next = next || JsonStringAt(JsonObject(&l), "rel") == "next";
    }
    if (!next || list->empty()) break;
    marker = JsonStringAt(JsonObject(&list->back()), "id");
  }
  return out;
}

Result<std::string> OpenStackProvisioner::CreateOne(const std::string& body,
                                                    const std::string& name) {
  const Deadline deadline = DeadlineAfter(300s);
  const std::string by_name = "name=" + internal::PercentEncode("^" + name + "$");
  for (int attempt = 1;; ++attempt) {
    // POST /servers is not idempotent: the client sends it once, and this loop decides.
    auto response = Send("POST", "/servers", body, deadline, false);
    if (response && response->status < 300) {
      const std::string id = internal::NovaCreatedServerId(response->body);
      if (id.empty()) return InternalError(Where() + " POST /servers answered no server id");
      return id;
    }
    const Status error = response ? internal::NovaStatus(Where() + " POST /servers (" + name + ")",
                                                         response->status, response->body)
                                  : response.error();
    // A 4xx is Nova refusing the request: nothing was made. No answer or a 5xx may come after
    // the server was made.
    const bool refused = response.ok() && response->status >= 400 && response->status < 500;
    const bool throttled = refused && (response->status == 413 || response->status == 429);
    const bool retryable = !refused || throttled;
    const bool last = !retryable || attempt >= options_.max_attempts;
    if (!last) {
      net::RetryPolicy policy;
      policy.initial_backoff = options_.initial_backoff;
      policy.max_backoff = 20s;
      auto wait = net::JitteredBackoff(policy, attempt);
      if (auto after = response ? response->Header("retry-after") : std::nullopt) {
        wait = std::max<std::chrono::milliseconds>(
            wait, std::min<std::chrono::milliseconds>(
                      std::chrono::seconds(std::atoi(after->c_str())), 60s));
      }
      std::this_thread::sleep_for(wait);
    }
    if (!refused) {
      // The server may exist (even after the last attempt, so it is not left behind): its
      // name is its own.
      auto found = Servers(by_name, deadline);
      if (found.ok() && !found->empty()) return found->front().id;
      if (!found.ok()) return error.WithContext("and looking it up failed");
    }
    if (last) return error;
    LogAt(LogLevel::kInfo, Where(), ": POST /servers for ", name, " failed (", error.message(),
          "); trying again");
  }
}

Result<std::vector<MachineInfo>> OpenStackProvisioner::Create(const MachineRequest& request) {
  if (request.count < 1 || request.count > 100) {
    return InvalidArgumentError("machine count must be 1..100, got " +
                                std::to_string(request.count));
  }
  // Everything that can be judged before Nova makes anything is judged here.
  if (request.spot) {
    return InvalidArgumentError(Where() + " does not make spot (preemptible) machines");
  }
  BITFUSION_ASSIGN_OR_RETURN(auto flavors, Flavors());
  Flavor flavor;
  if (request.type.empty() && !request.requirements.empty()) {
    std::vector<MachineType> catalogue;
    for (const auto& f : flavors) catalogue.push_back(f.type);
    auto chosen = ResolveMachineType(catalogue, request.requirements);
    if (!chosen) return Status(chosen.error().code(), Where() + ": " + chosen.error().message());
    for (const auto& f : flavors) {
      if (f.type.name == chosen->type.name) flavor = f;
    }
  } else {
    const std::string name = request.type.empty() ? options_.default_type : request.type;
    if (name.empty()) {
      return InvalidArgumentError(
          Where() +
          ": name a flavour (--type, or ?type= in the URI) or give "
          "requirements; list them with `bitfusion machines types --provisioner URI`");
    }
    auto it = std::find_if(flavors.begin(), flavors.end(),
                           [&](const Flavor& f) { return f.type.name == name || f.id == name; });
    if (it == flavors.end()) {
      std::string known;
      for (const auto& f : flavors) known += (known.empty() ? "" : ", ") + f.type.name;
      return InvalidArgumentError(Where() + " has no flavour \"" + name + "\"; it has " + known);
    }
    flavor = *it;
  }
  const std::string image_name = request.image.empty() ? options_.image : request.image;
  if (image_name.empty()) {
    return InvalidArgumentError(Where() +
                                ": name an image (--image, or ?image= in the URI): its name "
                                "or UUID (openstack image list)");
  }
  BITFUSION_ASSIGN_OR_RETURN(const std::string image, ResolveImage(image_name));
  Labels tags = request.labels;
  for (auto& [k, v] : OwnerLabels(request.run_id, request.ttl_s)) tags[k] = v;
  BITFUSION_RETURN_IF_ERROR(CheckMetadata(tags));

  json::object server;
  server["flavorRef"] = flavor.id;
  server["imageRef"] = image;
  json::object metadata;
  for (const auto& [k, v] : tags) metadata[k] = v;
  server["metadata"] = std::move(metadata);
  if (!request.ssh_key_name.empty()) server["key_name"] = request.ssh_key_name;
  if (!request.zone.empty()) server["availability_zone"] = request.zone;
  if (!options_.network.empty()) {
    server["networks"] = json::array{json::object{{"uuid", options_.network}}};
  }

  const std::string token = request.client_token.empty() ? NewRunId() : request.client_token;
  const std::int64_t now = WallNowNs();
  std::vector<MachineInfo> out;
  Status failed;
  for (int i = 0; i < request.count; ++i) {
    const std::string name = ServerName(token, i);
    server["name"] = name;
    auto id = CreateOne(json::serialize(json::object{{"server", server}}), name);
    if (!id) {
      failed = id.error();
      break;
    }
    MachineInfo m;
    m.id = *id;
    m.provider = options_.identity == OpenStackProvisionerOptions::Identity::kRackspaceV2
                     ? "rackspace"
                     : "openstack";
    m.type = flavor.type.name;
    m.state = "pending";
    m.hostname = name;
    m.zone = request.zone.empty() ? options_.region : request.zone;
    m.ssh.user = options_.ssh_user;
    m.ssh.key_name = request.ssh_key_name;
    m.labels = tags;
    m.created_ns = now;
    m.cpu.threads = flavor.type.vcpus;
    m.cpu.architecture = flavor.type.cpu_architecture;
    m.memory_bytes = flavor.type.memory_bytes;
    m.accelerators = flavor.type.accelerators;
    {
      std::lock_guard lock(mu_);
      created_ns_.emplace(m.id, now);
    }
    out.push_back(std::move(m));
  }
  if (!failed.ok()) {
    std::vector<std::string> ids;
    for (const auto& m : out) ids.push_back(m.id);
    const Status ended = ids.empty() ? Status::OK() : Destroy(ids);
    return failed.WithContext(ended.ok()
                                  ? "nothing was left behind"
                                  : "and deleting what was made failed too (" + ended.message() +
                                        "); run `bitfusion reap --provisioner URI`");
  }
  return out;
}

Result<MachineInfo> OpenStackProvisioner::WaitReady(const std::string& id, Deadline deadline) {
  if (!IsUuid(id)) {
    return NotFoundError(Where() + " has no server \"" + id + "\" (Nova ids are UUIDs)");
  }
  (void)Flavors();
  internal::ReadyWait wait;
  wait.what = Where() + " server " + id;
  wait.wait_ssh = options_.wait_ssh;
  wait.poll = options_.poll;
  wait.deadline = deadline;
  wait.hint = "wait longer";
  return internal::WaitUntilReady(
      wait,
      [&]() -> Result<std::optional<MachineInfo>> {
        BITFUSION_ASSIGN_OR_RETURN(auto answer, Compute("GET", "/servers/" + id, "", deadline));
        const json::object* server = JsonObjectAt(JsonObject(&answer), "server");
        if (server == nullptr) {
          return InternalError(Where() + " GET /servers/" + id + " answered no server");
        }
        MachineInfo m = FromJson(*server);
        if (m.state != "error") return std::optional<MachineInfo>(std::move(m));
        const json::object* fault = JsonObjectAt(server, "fault");
        const std::string message = JsonStringAt(fault, "message");
        const std::string text =
            Where() + " server " + id +
            " went to ERROR: " + (message.empty() ? "Nova gave no fault" : Redact(message)) +
            (fault != nullptr ? " (fault code " + JsonStringAt(fault, "code") + ")" : "") +
            "; destroy it with `bitfusion machines down --provisioner URI " + id + "`";
        if (message.find("No valid host") != std::string::npos) {
          return ResourceExhaustedError(text + ", and try another flavour or region");
        }
        return InternalError(text);
      },
      [&] {
        std::lock_guard lock(mu_);
        return running_ns_.emplace(id, WallNowNs()).first->second;
      });
}

Result<std::vector<MachineInfo>> OpenStackProvisioner::List() {
  BITFUSION_ASSIGN_OR_RETURN(auto all, Servers("", DeadlineAfter(120s)));
  std::vector<MachineInfo> out;
  for (auto& m : all) {
    auto it = m.labels.find(kLabelCreator);
    if (it != m.labels.end() && it->second == "bitfusion") out.push_back(std::move(m));
  }
  return out;
}

Status OpenStackProvisioner::Destroy(const std::vector<std::string>& ids) {
  for (const auto& id : ids) {
    if (!IsUuid(id)) {
      return NotFoundError(Where() + " has no server \"" + id + "\" (Nova ids are UUIDs)");
    }
    auto deleted = Compute("DELETE", "/servers/" + id, "", DeadlineAfter(120s));
    std::lock_guard lock(mu_);
    if (deleted.ok()) {
      destroyed_.insert(id);
    } else if (deleted.error().code() != StatusCode::kNotFound || destroyed_.count(id) == 0) {
      // A server deleted earlier disappears; any other missing one was never there.
      return deleted.error();
    }
  }
  return Status::OK();
}

Status OpenStackProvisioner::Keep(const std::vector<std::string>& ids) {
  for (const auto& id : ids) {
    if (!IsUuid(id)) {
      return NotFoundError(Where() + " has no server \"" + id + "\" (Nova ids are UUIDs)");
    }
    const std::string target = "/servers/" + id + "/metadata";
    BITFUSION_ASSIGN_OR_RETURN(auto answer, Compute("GET", target, "", DeadlineAfter(120s)));
    json::object metadata;
    if (const json::object* m = JsonObjectAt(JsonObject(&answer), "metadata")) metadata = *m;
    for (const char* key : kCreatorProcessLabels) metadata.erase(key);
    // PUT replaces the whole set, so repeating it is harmless.
    BITFUSION_RETURN_IF_ERROR(Compute("PUT", target,
                                      json::serialize(json::object{{"metadata", metadata}}),
                                      DeadlineAfter(120s))
                                  .status());
  }
  return Status::OK();
}

BITFUSION_REGISTER(Provisioner, "openstack", OpenStackProvisionerOptions, OpenStackProvisioner);
BITFUSION_REGISTER(Provisioner, "rackspace", OpenStackProvisionerOptions, OpenStackProvisioner);

}  // namespace bitfusion
