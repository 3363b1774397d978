#include "provisioners/softlayer_provisioner.h"

#include <algorithm>
#include <boost/json.hpp>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <iomanip>
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
#include "net/http_client.h"
#include "provisioners/aws_config_internal.h"
#include "provisioners/cloud_uri_options.h"
#include "provisioners/softlayer_internal.h"
#include "provisioners/wait_ready_internal.h"

namespace bitfusion {
namespace {

namespace json = boost::json;
using internal::JsonObject;
using internal::JsonObjectAt;
using internal::JsonStringAt;
using namespace std::chrono_literals;
using internal::GetEnv;

constexpr const char* kDefaultEndpoint = "https://api.softlayer.com/rest/v3.1";
constexpr const char* kGuestMask =
    "mask[id,hostname,domain,fullyQualifiedDomainName,startCpus,maxMemory,createDate,"
    "provisionDate,primaryIpAddress,primaryBackendIpAddress,powerState[keyName],"
    "activeTransaction[id],datacenter[name],tagReferences[tag[name]],"
    "billingItem[orderItem[preset[keyName]]]]";
constexpr const char* kHardwareMask =
    "mask[id,globalIdentifier,hostname,domain,fullyQualifiedDomainName,"
    "processorPhysicalCoreAmount,memoryCapacity,createDate,provisionDate,primaryIpAddress,"
    "primaryBackendIpAddress,activeTransaction[id],datacenter[name],tagReferences[tag[name]],"
    "billingItem[id,hourlyFlag,orderItem[preset[keyName]]]]";
constexpr const char* kCredentialsHint =
    "check SL_USERNAME and SL_API_KEY (or ~/.softlayer): the API username and a current API "
    "key from the IBM Cloud console, Manage > Access (IAM) > API keys, classic infrastructure";
constexpr int kPageSize = 100;  // softlayer-python's page

bool IsGlobalIdentifier(const std::string& id) {
  static const RE2 kUuid(
      "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}");
  return RE2::FullMatch(id, kUuid);
}

bool IsGuestId(const std::string& id) {
  return !id.empty() && id.size() < 19 && std::all_of(id.begin(), id.end(), ::isdigit);
}

// What SoftLayer's exception codes mean for the caller, and what to tell a person.
struct CodeInfo {
  StatusCode code;
  const char* hint;
};

bool IsThrottled(const std::string& code) {
  return code == "SoftLayer_Exception_WebService_RateLimitExceeded";
}

bool IsCapacity(const std::string& code) {
  return code.find("InsufficientResources") != std::string::npos ||
         code.find("Capacity") != std::string::npos;
}

CodeInfo Classify(const std::string& code, long status) {
  if (status == 401 || code == "SoftLayer_Exception_InvalidLegacyToken" ||
      code.rfind("SoftLayer_Exception_Account_Authentication", 0) == 0) {
    return {StatusCode::kPermissionDenied, kCredentialsHint};
  }
  if (code == "SoftLayer_Exception_AccessDenied" ||
      code == "SoftLayer_Exception_PermissionDenied" || status == 403) {
    return {StatusCode::kPermissionDenied,
            "the API user lacks the permission; grant it (Virtual Server, tag management) in "
            "the IBM Cloud console"};
  }
  if (code == "SoftLayer_Exception_ObjectNotFound" || status == 404) {
    return {StatusCode::kNotFound,
            "list the machines with `bitfusion machines list --provisioner URI`"};
  }
  if (IsThrottled(code)) {
    return {StatusCode::kUnavailable, "SoftLayer is throttling this account; try again later"};
  }
  if (IsCapacity(code)) {
    return {StatusCode::kResourceExhausted,
            "ask for fewer machines, another flavour or another datacenter"};
  }
  if (code == "SoftLayer_Exception_Public" || code.rfind("SoftLayer_Exception_", 0) == 0) {
    return {StatusCode::kInvalidArgument, "correct the request"};
  }
  return {StatusCode::kUnavailable, "SoftLayer is failing; try again later"};
}

// One ownership label as one SoftLayer tag, "key:value".
Status CheckTag(const std::string& key, const std::string& value) {
  static const RE2 kKey("[A-Za-z0-9_.-]+");
  static const RE2 kValue("[A-Za-z0-9 _.:-]*");
  if (!RE2::FullMatch(key, kKey) || !RE2::FullMatch(value, kValue) ||
      key.size() + value.size() + 1 > 255) {
    return InvalidArgumentError("label \"" + key + "\"=\"" + value +
                                "\" cannot be a SoftLayer tag: keys are [A-Za-z0-9_.-]+, values "
                                "[A-Za-z0-9 _.:-]*, both together at most 254 characters");
  }
  return Status::OK();
}

// "bf-" plus 16 hex digits: a DNS label of its own for each guest.
std::string NewHostname(const std::string& token, int index) {
  std::string clean;
  for (char c : token) {
    if (std::isalnum(static_cast<unsigned char>(c))) {
      clean.push_back(internal::AsciiLower(c));
    }
  }
  clean = clean.substr(0, 40);
  return "bf-" + clean + "-" + std::to_string(index);
}

}  // namespace

Result<SoftLayerProvisionerOptions> SoftLayerProvisionerOptions::FromUri(const Uri& uri) {
  BITFUSION_RETURN_IF_ERROR(
      uri.CheckQueryKeys({"endpoint", "type", "os", "domain", "hourly", "private", "ssh_user",
                          "wait_ssh", "poll", "attempts", "backoff"}));
  if (uri.host.empty() || (!uri.path.empty() && uri.path != "/")) {
    return InvalidArgumentError("softlayer:// takes a datacenter and no path, got \"" +
                                uri.ToString() + "\"; write softlayer://dal13");
  }
  if (!uri.user.empty() || !uri.password.empty()) {
    return InvalidArgumentError(
        "softlayer:// takes no credentials in the URI; set SL_USERNAME and SL_API_KEY");
  }
  SoftLayerProvisionerOptions o;
  o.datacenter = uri.host;
  o.endpoint = uri.Query("endpoint").value_or("");
  o.default_type = uri.Query("type").value_or(o.default_type);
  o.os_code = uri.Query("os").value_or(o.os_code);
  o.domain = uri.Query("domain").value_or(o.domain);
  BITFUSION_ASSIGN_OR_RETURN(o.hourly, uri.QueryBool("hourly", o.hourly));
  BITFUSION_ASSIGN_OR_RETURN(o.private_only, uri.QueryBool("private", o.private_only));
  BITFUSION_RETURN_IF_ERROR(internal::ReadCloudUriOptions(uri, o));
  return o;
}

Result<std::shared_ptr<SoftLayerProvisioner>> SoftLayerProvisioner::Make(
    const SoftLayerProvisionerOptions& options) {
  auto p = std::shared_ptr<SoftLayerProvisioner>(new SoftLayerProvisioner(options));
  BITFUSION_RETURN_IF_ERROR(p->Init());
  return p;
}

Status SoftLayerProvisioner::Init() {
  std::string user =
      !GetEnv("SL_USERNAME").empty() ? GetEnv("SL_USERNAME") : GetEnv("SOFTLAYER_USERNAME");
  std::string key =
      !GetEnv("SL_API_KEY").empty() ? GetEnv("SL_API_KEY") : GetEnv("SOFTLAYER_API_KEY");
  std::string endpoint = !options_.endpoint.empty() ? options_.endpoint : GetEnv("SL_ENDPOINT_URL");
  const std::string file = GetEnv("HOME") + "/.softlayer";
  if (user.empty() || key.empty() || endpoint.empty()) {
    std::ifstream in(file);
    if (in) {
      std::stringstream s;
      s << in.rdbuf();
      const auto ini = internal::ParseAwsIni(s.str());
      if (auto it = ini.find("softlayer"); it != ini.end()) {
        auto get = [&](const char* k) {
          auto v = it->second.find(k);
          return v == it->second.end() ? std::string() : v->second;
        };
        if (user.empty() && key.empty()) {
          user = get("username");
          key = get("api_key");
          if (!key.empty()) net::WarnIfReadableByOthers(file, "SoftLayer API key");
        }
        if (endpoint.empty()) endpoint = get("endpoint_url");
      }
    }
  }
  if (user.empty() || key.empty()) {
    return PermissionDeniedError(Where() +
                                 ": no SoftLayer credentials found (SL_USERNAME and "
                                 "SL_API_KEY, SOFTLAYER_USERNAME and SOFTLAYER_API_KEY, "
                                 "or username and api_key in [softlayer] of " +
                                 file + ")");
  }
  endpoint_ = endpoint.empty() ? kDefaultEndpoint : endpoint;
  while (!endpoint_.empty() && endpoint_.back() == '/') endpoint_.pop_back();
  net::HttpClientOptions o;
  o.base_url = endpoint_;
  o.peer_name = "SoftLayer at " + endpoint_;
  o.user = user;
  o.password = key;
  o.retry.max_attempts = options_.max_attempts;
  o.retry.initial_backoff = options_.initial_backoff;
  o.retry.max_backoff = 20s;
  o.retry.retry_statuses = {429, 502, 503, 504};
  o.retry.retry_response = [](const net::HttpResponse& r) {
    auto e = internal::ParseSoftLayerError(r.body);
    return e.has_value() && IsThrottled(e->code);
  };
  BITFUSION_ASSIGN_OR_RETURN(http_, net::HttpClient::Make(o));
  return Status::OK();
}

namespace {

// One answer from SoftLayer: its JSON and, for lists, the SoftLayer-Total-Items header.
struct Answer {
  json::value body;
  std::int64_t total = -1;
};

Result<Answer> Decode(const std::string& where, const std::string& what,
                      const Result<net::HttpResponse>& response) {
  if (!response) {
    return Status(response.error().code(),
                  where + " " + what + ": " + Redact(response.error().message()));
  }
  if (response->status >= 300) {
    const auto error = internal::ParseSoftLayerError(response->body);
    if (!error) {
      return UnavailableError(where + " " + what + " answered HTTP " +
                              std::to_string(response->status) +
                              " without SoftLayer's error JSON; try again later");
    }
    const CodeInfo info = Classify(error->code, response->status);
    return Status(info.code, where + " " + what + " failed: " + error->code + ": " +
                                 Redact(error->message) + " (" + info.hint + ")");
  }
  Answer a;
  boost::system::error_code ec;
  a.body = json::parse(response->body, ec);
  if (ec) return InternalError(where + " " + what + " answered JSON that does not parse");
  if (auto total = response->Header("softlayer-total-items")) {
    a.total = std::strtoll(total->c_str(), nullptr, 10);
  }
  return a;
}

net::HttpRequest Request(const std::string& method, const std::string& target,
                         const std::string& body, Deadline deadline) {
  net::HttpRequest r;
  r.method = method;
  r.target = target;
  r.deadline = deadline;
  if (!body.empty()) {
    r.body = body;
    r.headers = {{"Content-Type", "application/json"}};
  }
  return r;
}

std::string Params(const json::value& v) {
  return json::serialize(json::object{{"parameters", json::array{v}}});
}

}  // namespace

Result<std::vector<MachineType>> SoftLayerProvisioner::Types() {
  {
    std::lock_guard lock(mu_);
    if (catalogue_) return *catalogue_;
  }
  auto r = http_->Send(Request("GET", "/SoftLayer_Virtual_Guest/getCreateObjectOptions.json", "",
                               DeadlineAfter(120s)));
  BITFUSION_ASSIGN_OR_RETURN(auto a, Decode(Where(), "getCreateObjectOptions", r));
  const json::object* options = JsonObject(&a.body);
  std::vector<MachineType> out;
  std::set<std::string> datacenters;
  auto each = [&](std::string_view key, auto&& fn) {
    const json::value* list = options == nullptr ? nullptr : options->if_contains(key);
    if (list == nullptr || !list->is_array()) return;
    for (const auto& e : list->as_array()) fn(JsonObject(&e));
  };
  each("flavors", [&](const json::object* f) {
    MachineType t = internal::ParseSoftLayerFlavor(JsonObjectAt(f, "flavor"));
    if (!t.name.empty()) out.push_back(std::move(t));
  });
  each("datacenters", [&](const json::object* d) {
    datacenters.insert(
        JsonStringAt(JsonObjectAt(JsonObjectAt(d, "template"), "datacenter"), "name"));
  });
  // Bare metal: the fixed configuration presets. An account without bare-metal rights still
  // gets its virtual guests.
  std::set<std::string> presets;
  auto hw = http_->Send(
      Request("GET", "/SoftLayer_Hardware/getCreateObjectOptions.json", "", DeadlineAfter(120s)));
  auto hw_answer = Decode(Where(), "SoftLayer_Hardware::getCreateObjectOptions", hw);
  if (!hw_answer && hw_answer.error().code() != StatusCode::kPermissionDenied) {
    return hw_answer.error();
  }
  if (!hw_answer) {
    LogAt(LogLevel::kInfo, Where(), ": no bare-metal types (", hw_answer.error().message(), ")");
  } else if (const json::object* hw_options = JsonObject(&hw_answer->body)) {
    const json::value* list = hw_options->if_contains("fixedConfigurationPresets");
    const std::size_t n = list != nullptr && list->is_array() ? list->as_array().size() : 0;
    for (std::size_t i = 0; i < n; ++i) {
      MachineType t =
          internal::ParseSoftLayerPreset(JsonObjectAt(JsonObject(&list->as_array()[i]), "preset"));
      if (t.name.empty()) continue;
      presets.insert(t.name);
      out.push_back(std::move(t));
    }
  }
  std::sort(out.begin(), out.end(),
            [](const MachineType& a, const MachineType& b) { return a.name < b.name; });
  std::lock_guard lock(mu_);
  catalogue_ = out;
  datacenters_ = std::move(datacenters);
  presets_ = std::move(presets);
  return out;
}

namespace {

// How each kind of machine is reached.
struct KindInfo {
  const char* service;      // the SoftLayer service that makes and ends it
  const char* list_call;    // SoftLayer_Account's listing
  const char* filter_root;  // the objectFilter's relational name
  const char* mask;
  const char* id_field;  // the property that is bitfusion's id of it
};

const KindInfo& Info(bool hardware) {
  static const KindInfo kGuest{"SoftLayer_Virtual_Guest", "getVirtualGuests", "virtualGuests",
                               kGuestMask, "id"};
  static const KindInfo kHardware{"SoftLayer_Hardware", "getHardware", "hardware", kHardwareMask,
                                  "globalIdentifier"};
  return hardware ? kHardware : kGuest;
}

}  // namespace

Result<std::string> SoftLayerProvisioner::CreateOne(Kind kind, const std::string& template_json,
                                                    const std::string& hostname) {
  const KindInfo& info = Info(kind == Kind::kHardware);
  const Deadline deadline = DeadlineAfter(300s);
  const std::string filter = json::serialize(json::object{
      {info.filter_root, json::object{{"hostname", {{"operation", "_= " + hostname}}},
                                      {"domain", {{"operation", "_= " + options_.domain}}}}}});
  const std::string what = std::string(info.service) + "::createObject";
  for (int attempt = 1;; ++attempt) {
    // createObject is not idempotent: the client sends it once, and this loop decides.
    auto request = Request("POST", "/" + std::string(info.service) + "/createObject.json",
                           template_json, deadline);
    request.idempotent = false;
    auto response = http_->Send(request);
    auto answer = Decode(Where(), what, response);
    if (answer) {
      // Bare metal answers no id yet, only its globalIdentifier (SLDN, SoftLayer_Hardware).
      const std::string id = JsonStringAt(JsonObject(&answer->body), info.id_field);
      if (id.empty()) return InternalError(Where() + " " + what + " answered no " + info.id_field);
      return id;
    }
    const bool definite =
        response.ok() && internal::ParseSoftLayerError(response->body).has_value();
    const std::string code = definite ? internal::ParseSoftLayerError(response->body)->code : "";
    const bool retryable = !definite || IsThrottled(code) || IsCapacity(code);
    const bool last = !retryable || attempt >= options_.max_attempts;
    if (!last) {
      net::RetryPolicy policy;
      policy.initial_backoff = options_.initial_backoff;
      policy.max_backoff = 20s;
      std::this_thread::sleep_for(net::JitteredBackoff(policy, attempt));
    }
    if (!definite) {
      // The answer was lost, not refused: the machine may exist (even after the last attempt,
      // so that it is not left behind untagged). Its host name is its own.
      auto found = Objects(kind, filter, deadline);
      if (found.ok() && !found->empty()) return found->front().id;
      if (!found.ok()) return answer.error().WithContext("and looking it up failed");
    }
    if (last) return answer.error();
    LogAt(LogLevel::kInfo, Where(), ": createObject for ", hostname, " failed (",
          answer.error().message(), "); trying again");
  }
}

Status SoftLayerProvisioner::SetTags(Kind kind, const std::string& id, const Labels& tags) {
  std::string joined;
  for (const auto& [k, v] : tags) joined += (joined.empty() ? "" : ",") + k + ":" + v;
  const KindInfo& info = Info(kind == Kind::kHardware);
  auto request = Request("POST", "/" + std::string(info.service) + "/" + id + "/setTags.json",
                         Params(json::value(joined)), DeadlineAfter(120s));
  request.idempotent = true;  // it replaces the whole set
  return Decode(Where(), std::string(info.service) + "::setTags", http_->Send(request)).status();
}

Result<std::vector<MachineInfo>> SoftLayerProvisioner::Create(const MachineRequest& request) {
  if (request.count < 1 || request.count > 100) {
    return InvalidArgumentError("machine count must be 1..100, got " +
                                std::to_string(request.count));
  }
  // Everything that can be judged before SoftLayer makes anything is judged here.
  BITFUSION_ASSIGN_OR_RETURN(auto catalogue, Types());
  MachineType type;
  if (request.type.empty() && !request.requirements.empty()) {
    auto chosen = ResolveMachineType(catalogue, request.requirements);
    if (!chosen) return Status(chosen.error().code(), Where() + ": " + chosen.error().message());
    type = chosen->type;
  } else {
    const std::string name = request.type.empty() ? options_.default_type : request.type;
    auto it = std::find_if(catalogue.begin(), catalogue.end(),
                           [&](const MachineType& t) { return t.name == name; });
    if (it == catalogue.end()) {
      return InvalidArgumentError(Where() + " offers no flavour or bare-metal preset \"" + name +
                                  "\" (getCreateObjectOptions); list them with `bitfusion "
                                  "machines types --provisioner " +
                                  Where() + "`");
    }
    type = *it;
  }
  Kind kind = Kind::kGuest;
  {
    std::lock_guard lock(mu_);
    if (!datacenters_.empty() && datacenters_.count(options_.datacenter) == 0) {
      std::string known;
      for (const auto& d : datacenters_) known += (known.empty() ? "" : ", ") + d;
      return InvalidArgumentError(Where() + ": SoftLayer has no datacenter \"" +
                                  options_.datacenter + "\"; it offers " + known);
    }
    if (presets_.count(type.name) > 0) kind = Kind::kHardware;
  }
  if (!request.zone.empty() && request.zone != options_.datacenter) {
    return InvalidArgumentError(Where() + " makes machines in " + options_.datacenter +
                                " only, not in zone \"" + request.zone + "\"");
  }
  if (request.spot) {
    return InvalidArgumentError(Where() + " does not make spot (transient) machines");
  }
  Labels tags = request.labels;
  for (auto& [k, v] : OwnerLabels(request.run_id, request.ttl_s)) tags[k] = v;
  for (const auto& [k, v] : tags) BITFUSION_RETURN_IF_ERROR(CheckTag(k, v));

  json::object t;
  t["domain"] = options_.domain;
  t["datacenter"] = {{"name", options_.datacenter}};
  t["hourlyBillingFlag"] = options_.hourly;
  if (kind == Kind::kHardware) {
    t["fixedConfigurationPreset"] = {{"keyName", type.name}};
  } else {
    t["localDiskFlag"] = false;
    t["supplementalCreateObjectOptions"] = {{"flavorKeyName", type.name}};
  }
  if (options_.private_only) t["privateNetworkOnlyFlag"] = true;
  const std::string image = request.image;
  // An image template is named by its globalIdentifier (a UUID); anything else is an OS code.
  if (IsGlobalIdentifier(image)) {
    if (kind == Kind::kHardware) {
      return InvalidArgumentError(Where() + ": bare-metal preset " + type.name +
                                  " is installed from an OS code (UBUNTU_LATEST, ...), not an "
                                  "image template");
    }
    t["blockDeviceTemplateGroup"] = {{"globalIdentifier", image}};
  } else {
    t["operatingSystemReferenceCode"] = image.empty() ? options_.os_code : image;
  }
  if (!request.ssh_key_name.empty()) {
    char* end = nullptr;
    const long long key_id = std::strtoll(request.ssh_key_name.c_str(), &end, 10);
    if (end == request.ssh_key_name.c_str() || *end != '\0') {
      return InvalidArgumentError(
          "SoftLayer names SSH keys by their numeric id (slcli sshkey "
          "list), got \"" +
          request.ssh_key_name + "\"");
    }
    t["sshKeys"] = json::array{json::object{{"id", key_id}}};
  }

  const std::string token =
      request.client_token.empty() ? NewRunId().substr(0, 16) : request.client_token;
  const std::int64_t now = WallNowNs();
  std::vector<MachineInfo> out;
  Status failed;
  for (int i = 0; i < request.count && failed.ok(); ++i) {
    const std::string hostname = NewHostname(token, i);
    t["hostname"] = hostname;
    auto id = CreateOne(kind, Params(t), hostname);
    if (!id) {
      failed = id.error();
      break;
    }
    MachineInfo m;
    m.id = *id;
    m.provider = "softlayer";
    m.type = type.name;
    m.state = "pending";
    m.hostname = hostname + "." + options_.domain;
    m.zone = options_.datacenter;
    m.ssh.user = options_.ssh_user;
    m.ssh.key_name = request.ssh_key_name;
    m.labels = tags;
    m.created_ns = now;
    m.cpu.threads = type.vcpus;
    m.cpu.architecture = type.cpu_architecture;
    m.cpu.vendor = type.cpu_vendor;
    m.memory_bytes = type.memory_bytes;
    m.accelerators = type.accelerators;
    {
      std::lock_guard lock(mu_);
      created_ns_.emplace(m.id, now);
    }
    out.push_back(m);
    // Tags only attach to a machine that exists; until they do, its name says who made it.
    failed = SetTags(kind, m.id, tags);
  }
  if (!failed.ok()) {
    std::vector<std::string> ids;
    for (const auto& m : out) ids.push_back(m.id);
    const Status ended = ids.empty() ? Status::OK() : Destroy(ids);
    return failed.WithContext(ended.ok()
                                  ? "nothing was left behind"
                                  : "and cancelling what was made failed too (" + ended.message() +
                                        "); run `bitfusion reap --provisioner URI`");
  }
  return out;
}

MachineInfo SoftLayerProvisioner::FromJson(Kind kind, const json::object& object) {
  MachineInfo m =
      internal::SoftLayerMachine(kind == Kind::kHardware, object, options_.private_only);
  m.ssh.user = options_.ssh_user;
  std::lock_guard lock(mu_);
  if (auto it = created_ns_.find(m.id); it != created_ns_.end()) m.created_ns = it->second;
  if (auto it = running_ns_.find(m.id); it != running_ns_.end()) m.running_ns = it->second;
  for (const auto& t : catalogue_ ? *catalogue_ : std::vector<MachineType>{}) {
    if (t.name == m.type) {
      m.accelerators = t.accelerators;
      m.cpu.vendor = t.cpu_vendor;
    }
  }
  return m;
}

Result<std::vector<MachineInfo>> SoftLayerProvisioner::Objects(Kind kind, const std::string& filter,
                                                               Deadline deadline) {
  const KindInfo& info = Info(kind == Kind::kHardware);
  const std::string what = std::string("SoftLayer_Account::") + info.list_call;
  std::vector<MachineInfo> out;
  for (std::int64_t offset = 0;; offset += kPageSize) {
    const std::string target = "/SoftLayer_Account/" + std::string(info.list_call) +
                               ".json?objectMask=" + internal::PercentEncode(info.mask) +
                               "&objectFilter=" + internal::PercentEncode(filter) +
                               "&resultLimit=" + std::to_string(offset) + "," +
                               std::to_string(kPageSize);
    auto r = http_->Send(Request("GET", target, "", deadline));
    BITFUSION_ASSIGN_OR_RETURN(auto a, Decode(Where(), what, r));
    if (!a.body.is_array()) {
      return InternalError(Where() + " " + what + " answered something other than a list");
    }
    for (const auto& g : a.body.as_array()) {
      if (const json::object* o = JsonObject(&g)) out.push_back(FromJson(kind, *o));
    }
    const std::int64_t seen = offset + static_cast<std::int64_t>(a.body.as_array().size());
    if (a.body.as_array().size() < static_cast<std::size_t>(kPageSize) ||
        (a.total >= 0 && seen >= a.total)) {
      break;
    }
  }
  return out;
}

Result<MachineInfo> SoftLayerProvisioner::Object(const std::string& id, Deadline deadline) {
  const bool hardware = IsGlobalIdentifier(id);
  if (!hardware && !IsGuestId(id)) {
    return NotFoundError(Where() + " has no machine \"" + id +
                         "\" (SoftLayer guest ids are numbers, bare-metal ids UUIDs)");
  }
  const json::value match = hardware
                                ? json::value{{"globalIdentifier", {{"operation", "_= " + id}}}}
                                : json::value{{"id", {{"operation", std::stoll(id)}}}};
  const std::string filter = json::serialize(json::object{{Info(hardware).filter_root, match}});
  BITFUSION_ASSIGN_OR_RETURN(auto found,
                             Objects(hardware ? Kind::kHardware : Kind::kGuest, filter, deadline));
  if (found.empty()) {
    return NotFoundError(Where() + " has no " + (hardware ? "bare-metal server " : "guest ") + id +
                         " (SoftLayer_Exception_ObjectNotFound); list the machines with "
                         "`bitfusion machines list --provisioner URI`");
  }
  return found.front();
}

Result<MachineInfo> SoftLayerProvisioner::WaitReady(const std::string& id, Deadline deadline) {
  internal::ReadyWait wait;
  wait.what = Where() + " machine " + id;
  wait.wait_ssh = options_.wait_ssh;
  wait.poll = options_.poll;
  wait.deadline = deadline;
  wait.hint = "wait longer (SoftLayer takes minutes for guests, hours for bare metal)";
  return internal::WaitUntilReady(
      wait,
      [&]() -> Result<std::optional<MachineInfo>> {
        BITFUSION_ASSIGN_OR_RETURN(MachineInfo m, Object(id, deadline));
        if (m.state == "stopped") {
          return FailedPreconditionError(Where() + " guest " + id +
                                         " is provisioned but powered off; power it on first");
        }
        return std::optional<MachineInfo>(std::move(m));
      },
      [&] {
        std::lock_guard lock(mu_);
        return running_ns_.emplace(id, WallNowNs()).first->second;
      });
}

Result<std::vector<MachineInfo>> SoftLayerProvisioner::List() {
  const std::string creator = std::string(kLabelCreator) + ":bitfusion";
  const Deadline deadline = DeadlineAfter(120s);
  std::vector<MachineInfo> out;
  for (const Kind kind : {Kind::kGuest, Kind::kHardware}) {
    const KindInfo& info = Info(kind == Kind::kHardware);
    const json::value datacenter = {{"name", {{"operation", "_= " + options_.datacenter}}}};
    const json::value order = {
        {"operation", "orderBy"},
        {"options", json::array{{{"name", "sort"}, {"value", json::array{"ASC"}}}}}};
    // Tagged as bitfusion's, and, for the tag window, named as bitfusion names machines.
    const json::value tagged = {
        {info.filter_root,
         {{"datacenter", datacenter},
          {"tagReferences",
           {{"tag",
             {{"name",
               {{"operation", "in"},
                {"options", json::array{{{"name", "data"}, {"value", json::array{creator}}}}}}}}}}},
          {"id", order}}}};
    const json::value named = {{info.filter_root,
                                {{"datacenter", datacenter},
                                 {"hostname", {{"operation", "^= bf-"}}},
                                 {"domain", {{"operation", "_= " + options_.domain}}},
                                 {"id", order}}}};
    BITFUSION_ASSIGN_OR_RETURN(auto mine, Objects(kind, json::serialize(tagged), deadline));
    BITFUSION_ASSIGN_OR_RETURN(auto untagged, Objects(kind, json::serialize(named), deadline));
    std::set<std::string> seen;
    for (auto& m : mine) {
      seen.insert(m.id);
      out.push_back(std::move(m));
    }
    for (auto& m : untagged) {
      if (seen.count(m.id) == 0 && m.labels.count(kLabelRunId) == 0) out.push_back(std::move(m));
    }
  }
  return out;
}

Status SoftLayerProvisioner::DestroyHardware(const std::string& id) {
  const std::string target = "/SoftLayer_Hardware/" + id + "/getObject.json?objectMask=" +
                             internal::PercentEncode("mask[id,billingItem[id]]");
  auto got = Decode(Where(), "SoftLayer_Hardware::getObject " + id,
                    http_->Send(Request("GET", target, "", DeadlineAfter(120s))));
  if (!got) {
    std::lock_guard lock(mu_);
    if (got.error().code() == StatusCode::kNotFound && destroyed_.count(id) > 0) {
      return Status::OK();  // reclaimed since this object cancelled it
    }
    return got.error();
  }
  const std::string item = JsonStringAt(JsonObjectAt(JsonObject(&got->body), "billingItem"), "id");
  if (!item.empty()) {
    // Cancelled at once (hourly charges stop; a monthly server is billed to the month's end).
    auto request = Request(
        "POST", "/SoftLayer_Billing_Item/" + item + "/cancelItem.json",
        json::serialize(json::object{{"parameters", json::array{true, false, "No longer needed",
                                                                "bitfusion: machines down"}}}),
        DeadlineAfter(120s));
    request.idempotent = false;
    BITFUSION_RETURN_IF_ERROR(
        Decode(Where(), "SoftLayer_Billing_Item::cancelItem " + item + " (server " + id + ")",
               http_->Send(request))
            .status());
  }
  // Without a billing item it is cancelled already, and ends when the data center reclaims it.
  std::lock_guard lock(mu_);
  destroyed_.insert(id);
  return Status::OK();
}

Status SoftLayerProvisioner::Destroy(const std::vector<std::string>& ids) {
  for (const auto& id : ids) {
    if (IsGlobalIdentifier(id)) {
      BITFUSION_RETURN_IF_ERROR(DestroyHardware(id));
      continue;
    }
    if (!IsGuestId(id)) {
      return NotFoundError(Where() + " has no machine \"" + id +
                           "\" (SoftLayer guest ids are numbers, bare-metal ids UUIDs)");
    }
    auto r = http_->Send(Request("GET", "/SoftLayer_Virtual_Guest/" + id + "/deleteObject.json", "",
                                 DeadlineAfter(120s)));
    auto a = Decode(Where(), "SoftLayer_Virtual_Guest::deleteObject " + id, r);
    std::lock_guard lock(mu_);
    if (a.ok()) {
      destroyed_.insert(id);
    } else if (a.error().code() != StatusCode::kNotFound || destroyed_.count(id) == 0) {
      // A guest cancelled earlier is gone at once; any other missing one was never ours.
      return a.error();
    }
  }
  return Status::OK();
}

Status SoftLayerProvisioner::Keep(const std::vector<std::string>& ids) {
  for (const auto& id : ids) {
    BITFUSION_ASSIGN_OR_RETURN(MachineInfo m, Object(id, DeadlineAfter(120s)));
    Labels tags = m.labels;
    for (const char* key : kCreatorProcessLabels) tags.erase(key);
    BITFUSION_RETURN_IF_ERROR(
        SetTags(IsGlobalIdentifier(id) ? Kind::kHardware : Kind::kGuest, id, tags));
  }
  return Status::OK();
}

BITFUSION_REGISTER(Provisioner, "softlayer", SoftLayerProvisionerOptions, SoftLayerProvisioner);

}  // namespace bitfusion
