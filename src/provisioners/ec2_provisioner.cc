#include "provisioners/ec2_provisioner.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <unistd.h>

#include <algorithm>
#include <boost/property_tree/ptree.hpp>
#include <boost/property_tree/xml_parser.hpp>
#include <ctime>
#include <fstream>
#include <iomanip>
#include <sstream>
#include <thread>

#include "bitfusion/log.h"
#include "bitfusion/registry.h"
#include "core/base64.h"
#include "core/percent_encode.h"
#include "core/rfc3339.h"
#include "provisioners/cloud_uri_options.h"
#include "provisioners/ec2_internal.h"
#include "provisioners/wait_ready_internal.h"

namespace bitfusion {
namespace {

namespace pt = boost::property_tree;
using namespace std::chrono_literals;

constexpr const char* kApiVersion = "2016-11-15";
/// Tag that ties instances to the ClientToken of the call that made them, so a create that
/// failed after EC2 made its instances can find and end them.
constexpr const char* kTagClientToken = "bitfusion.client_token";

// What EC2's error codes mean for the caller: how to map them and what to tell a person.
struct CodeInfo {
  StatusCode code;
  const char* hint;
};

CodeInfo Classify(const std::string& code) {
  auto starts = [&](const char* p) { return code.rfind(p, 0) == 0; };
  if (code == "AuthFailure" || code == "SignatureDoesNotMatch" || code == "InvalidClientTokenId" ||
      code == "MissingAuthenticationToken" || code == "IncompleteSignature") {
    return {StatusCode::kPermissionDenied,
            "check the access key and its secret (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or "
            "the profile) and this host's clock"};
  }
  if (code == "RequestExpired" || code == "ExpiredToken") {
    return {StatusCode::kPermissionDenied,
            "the credentials or the request have expired; refresh the session token and check "
            "this host's clock"};
  }
  if (code == "UnauthorizedOperation" || code == "OptInRequired" || code == "Blocked") {
    return {StatusCode::kPermissionDenied,
            "the IAM identity may not do this; grant it the EC2 action (or opt in to the region)"};
  }
  if (code == "InvalidInstanceID.NotFound") {
    return {StatusCode::kNotFound,
            "list the machines with `bitfusion machines list --provisioner URI`"};
  }
  if (starts("InvalidInstanceType") || code == "Unsupported") {
    return {StatusCode::kInvalidArgument,
            "pick a type the region offers: `bitfusion machines types --provisioner aws://REGION`"};
  }
  if (starts("InvalidAMIID")) {
    return {StatusCode::kInvalidArgument, "name an image that exists in this region, or none"};
  }
  if (starts("InvalidKeyPair")) {
    return {StatusCode::kInvalidArgument, "create or import the key pair in this region first"};
  }
  if (starts("InvalidSubnet") || starts("InvalidGroup") || starts("InvalidParameter") ||
      starts("InvalidInstanceID") || code == "MissingParameter" ||
      code == "InvalidAvailabilityZone" || starts("InvalidPlacement") ||
      code == "IdempotentParameterMismatch" || code == "InvalidAction" ||
      code == "InvalidUserData.Malformed" || code == "InvalidPaginationToken") {
    return {StatusCode::kInvalidArgument, "correct the request"};
  }
  if (code == "InstanceLimitExceeded" || code == "VcpuLimitExceeded" ||
      code == "MaxSpotInstanceCountExceeded" || code == "SpotMaxPriceTooLow" ||
      code == "InsufficientInstanceCapacity" || code == "InsufficientCapacity") {
    return {StatusCode::kResourceExhausted,
            "ask for fewer machines, another type or zone, or a higher quota (Service Quotas)"};
  }
  if (code == "RequestLimitExceeded" || code == "Throttling" || code == "Unavailable" ||
      code == "ServiceUnavailable" || code == "InternalError" || code == "RequestTimeout") {
    return {StatusCode::kUnavailable, "EC2 is busy or failing; try again later"};
  }
  return {StatusCode::kFailedPrecondition, "see EC2's message"};
}

bool Retryable(const std::string& code) {
  return code == "RequestLimitExceeded" || code == "Throttling" ||
         code == "InsufficientInstanceCapacity" || code == "Unavailable" ||
         code == "ServiceUnavailable" || code == "InternalError" || code == "RequestTimeout" ||
         code == "EC2ThrottledException";
}

std::string ErrorCode(const std::string& body) {
  const auto b = body.find("<Code>");
  if (b == std::string::npos) return "";
  const auto e = body.find("</Code>", b);
  return e == std::string::npos ? "" : body.substr(b + 6, e - b - 6);
}

std::string Text(const pt::ptree& t, const std::string& path) {
  return t.get<std::string>(pt::ptree::path_type(path, '/'), "");
}

const pt::ptree* Child(const pt::ptree& t, const std::string& path) {
  auto c = t.get_child_optional(pt::ptree::path_type(path, '/'));
  return c ? &*c : nullptr;
}

// The entries of an EC2 list: <item> elements (<member> in a few places).
std::vector<const pt::ptree*> Items(const pt::ptree* list) {
  std::vector<const pt::ptree*> out;
  if (list == nullptr) return out;
  for (const auto& [name, child] : *list) {
    if (name == "item" || name == "member") out.push_back(&child);
  }
  return out;
}

std::int64_t Int(const pt::ptree& t, const std::string& path) {
  return std::strtoll(Text(t, path).c_str(), nullptr, 10);
}

std::int64_t ParseTimeNs(const std::string& text) {
  return internal::ParseRfc3339(text).value_or(0);
}

std::string NewClientToken() {
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof bytes) != 1) {
    for (auto& b : bytes) b = static_cast<unsigned char>(std::rand());
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "bf-";
  for (unsigned char b : bytes) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 0xF]);
  }
  return out;
}

MachineType ParseType(const pt::ptree& item) {
  MachineType t;
  t.name = Text(item, "instanceType");
  t.vcpus = static_cast<int>(Int(item, "vCpuInfo/defaultVCpus"));
  t.memory_bytes = static_cast<std::uint64_t>(Int(item, "memoryInfo/sizeInMiB")) << 20;
  t.cpu_vendor = Text(item, "processorInfo/manufacturer");
  for (const auto* a : Items(Child(item, "processorInfo/supportedArchitectures"))) {
    const std::string arch = a->data();
    // x86_64 over i386 and the Mac variants; arm64 over arm64_mac.
    if (t.cpu_architecture.empty() || arch == "x86_64" || arch == "arm64")
      t.cpu_architecture = arch;
  }
  auto add = [&](const char* kind, const pt::ptree* list) {
    for (const auto* a : Items(list)) {
      AcceleratorInfo info;
      info.kind = kind;
      info.vendor = Text(*a, "manufacturer");
      info.model = Text(*a, "name");
      info.count = static_cast<int>(Int(*a, "count"));
      if (info.count > 0) t.accelerators.push_back(info);
    }
  };
  add("gpu", Child(item, "gpuInfo/gpus"));
  add("fpga", Child(item, "fpgaInfo/fpgas"));
  add("accelerator", Child(item, "inferenceAcceleratorInfo/accelerators"));
  // Neuron devices repeat the inference accelerators on inf1; list them only where those are
  // absent (trn1, inf2).
  if (Child(item, "inferenceAcceleratorInfo/accelerators") == nullptr) {
    add("accelerator", Child(item, "neuronInfo/neuronDevices"));
  }
  for (auto& a : t.accelerators) {
    if (a.vendor.empty() && a.kind == "accelerator") a.vendor = "AWS";
  }
  return t;
}

}  // namespace

namespace internal {

Ec2ErrorBody ParseEc2Error(std::string_view body_view) {
  const std::string body(body_view);
  Ec2ErrorBody out;
  out.code = ErrorCode(body);
  const auto b = body.find("<Message>");
  const auto e = body.find("</Message>");
  if (b != std::string::npos && e != std::string::npos && e > b) {
    out.message = body.substr(b + 9, e - b - 9);
  }
  return out;
}

Result<Ec2Xml> ParseEc2Xml(std::string_view body) {
  Ec2Xml tree;
  try {
    std::istringstream in{std::string(body)};
    pt::read_xml(in, tree, pt::xml_parser::trim_whitespace);
  } catch (const std::exception& e) {
    return InternalError(std::string("XML that does not parse: ") + e.what());
  }
  if (tree.empty()) return InternalError("an empty document");
  return Ec2Xml(tree.begin()->second);
}

std::vector<MachineType> Ec2InstanceTypes(const Ec2Xml& answer) {
  std::vector<MachineType> out;
  for (const auto* item : Items(Child(answer, "instanceTypeSet"))) {
    out.push_back(ParseType(*item));
  }
  return out;
}

std::vector<MachineInfo> Ec2Instances(const Ec2Xml& answer) {
  std::vector<MachineInfo> out;
  for (const auto* reservation : Items(Child(answer, "reservationSet"))) {
    for (const auto* i : Items(Child(*reservation, "instancesSet"))) {
      MachineInfo m;
      m.id = Text(*i, "instanceId");
      m.provider = "aws";
      m.type = Text(*i, "instanceType");
      m.state = Text(*i, "instanceState/name");
      m.address =
          !Text(*i, "ipAddress").empty() ? Text(*i, "ipAddress") : Text(*i, "privateIpAddress");
      m.hostname = !Text(*i, "dnsName").empty() ? Text(*i, "dnsName") : Text(*i, "privateDnsName");
      m.zone = Text(*i, "placement/availabilityZone");
      m.spot = Text(*i, "instanceLifecycle") == "spot";
      m.ssh.host = m.address;
      m.ssh.key_name = Text(*i, "keyName");
      for (const auto* tag : Items(Child(*i, "tagSet"))) {
        m.labels[Text(*tag, "key")] = Text(*tag, "value");
      }
      m.created_ns = ParseTimeNs(Text(*i, "launchTime"));
      out.push_back(std::move(m));
    }
  }
  return out;
}

std::vector<MachineInfo> Ec2LaunchedInstances(const Ec2Xml& answer) {
  std::vector<MachineInfo> out;
  for (const auto* i : Items(Child(answer, "instancesSet"))) {
    MachineInfo m;
    m.id = Text(*i, "instanceId");
    m.provider = "aws";
    m.type = Text(*i, "instanceType");
    m.state = Text(*i, "instanceState/name");
    m.address = Text(*i, "privateIpAddress");
    m.zone = Text(*i, "placement/availabilityZone");
    out.push_back(std::move(m));
  }
  return out;
}

std::string Ec2NewestImageId(const Ec2Xml& answer) {
  std::string best_id, best_key;
  for (const auto* item : Items(Child(answer, "imagesSet"))) {
    const std::string key = Text(*item, "creationDate") + " " + Text(*item, "name");
    if (key > best_key) {
      best_key = key;
      best_id = Text(*item, "imageId");
    }
  }
  return best_id;
}

}  // namespace internal

Result<Ec2ProvisionerOptions> Ec2ProvisionerOptions::FromUri(const Uri& uri) {
  BITFUSION_RETURN_IF_ERROR(uri.CheckQueryKeys(
      {"endpoint", "profile", "image", "type", "subnet", "security_group", "key_name",
       "user_data_file", "ssh_user", "wait_ssh", "poll", "attempts", "backoff"}));
  if (!uri.path.empty() && uri.path != "/") {
    return InvalidArgumentError("aws:// takes a region and no path, got \"" + uri.ToString() +
                                "\"; write aws://us-east-1");
  }
  Ec2ProvisionerOptions o;
  o.region = uri.host;
  o.endpoint = uri.Query("endpoint").value_or("");
  o.profile = uri.Query("profile").value_or("");
  o.image = uri.Query("image").value_or("");
  o.default_type = uri.Query("type").value_or(o.default_type);
  o.subnet_id = uri.Query("subnet").value_or("");
  if (auto groups = uri.Query("security_group")) {
    std::istringstream in(*groups);
    for (std::string g; std::getline(in, g, ',');) {
      if (!g.empty()) o.security_group_ids.push_back(g);
    }
  }
  o.key_name = uri.Query("key_name").value_or("");
  if (auto path = uri.Query("user_data_file")) {
    std::ifstream in(*path, std::ios::binary);
    if (!in) return InvalidArgumentError("cannot read user_data_file " + *path);
    std::stringstream s;
    s << in.rdbuf();
    o.user_data = s.str();
    if (o.user_data.size() > 16 * 1024) {
      return InvalidArgumentError("user_data_file " + *path + " is over EC2's 16 KiB limit");
    }
  }
  BITFUSION_RETURN_IF_ERROR(internal::ReadCloudUriOptions(uri, o));
  return o;
}

Result<std::shared_ptr<Ec2Provisioner>> Ec2Provisioner::Make(const Ec2ProvisionerOptions& options) {
  auto p = std::shared_ptr<Ec2Provisioner>(new Ec2Provisioner(options));
  BITFUSION_RETURN_IF_ERROR(p->Init());
  return p;
}

Status Ec2Provisioner::Init() {
  BITFUSION_ASSIGN_OR_RETURN(
      settings_,
      internal::ResolveAwsSettings({options_.region, options_.endpoint, options_.profile}));
  net::HttpClientOptions o;
  o.base_url = settings_.endpoint;
  o.peer_name = "EC2 at " + settings_.endpoint;
  o.retry.max_attempts = options_.max_attempts;
  o.retry.initial_backoff = options_.initial_backoff;
  o.retry.max_backoff = 20s;
  o.retry.retry_statuses = {500, 502, 503, 504};
  o.retry.retry_response = [](const net::HttpResponse& r) {
    return r.status >= 400 && Retryable(ErrorCode(r.body));
  };
  BITFUSION_ASSIGN_OR_RETURN(http_, net::HttpClient::Make(o));
  // The Host header is signed, so it must be what curl sends: the authority of the endpoint.
  std::string authority = settings_.endpoint.substr(settings_.endpoint.find("://") + 3);
  host_header_ = authority.substr(0, authority.find('/'));
  return Status::OK();
}

std::string Ec2Provisioner::Where() const { return "aws://" + settings_.region; }

Result<net::AwsCredentials> Ec2Provisioner::Credentials() {
  std::lock_guard lock(mu_);
  const std::int64_t now = WallNowNs() / 1'000'000'000;
  // Temporary credentials are fetched again five minutes before they expire.
  if (credentials_ &&
      (credentials_->expires_unix_s == 0 || credentials_->expires_unix_s - 300 > now)) {
    return *credentials_;
  }
  BITFUSION_ASSIGN_OR_RETURN(auto c, internal::ResolveAwsCredentials(settings_));
  credentials_ = c;
  return c;
}

Result<std::shared_ptr<Ec2Provisioner::Xml>> Ec2Provisioner::Call(const std::string& action,
                                                                  const Params& params,
                                                                  Deadline deadline,
                                                                  int* attempts) {
  BITFUSION_ASSIGN_OR_RETURN(const auto credentials, Credentials());
  net::SigV4Request sig;
  sig.method = "POST";
  sig.path = "/";
  sig.body = "Action=" + action + "&Version=" + kApiVersion;
  for (const auto& [k, v] : params) {
    sig.body += "&" + internal::PercentEncode(k) + "=" + internal::PercentEncode(v);
  }
  sig.headers = {{"Host", host_header_},
                 {"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"}};
  net::SignV4(sig, credentials, settings_.region, "ec2", WallNowNs() / 1'000'000'000);
  net::HttpRequest request;
  request.method = "POST";
  request.target = "/";
  request.headers = sig.headers;
  request.body = std::move(sig.body);
  request.deadline = deadline;
  // Describe* only read, TerminateInstances is idempotent and RunInstances carries a
  // ClientToken: every call may be sent again.
  request.idempotent = true;
  auto response = http_->Send(request);
  if (!response) {
    return Status(response.error().code(),
                  Where() + " " + action + ": " + Redact(response.error().message()));
  }
  if (attempts != nullptr) *attempts = response->attempts;
  const auto [code, message] = internal::ParseEc2Error(response->body);
  if (response->status >= 300 || !code.empty()) {
    if (code.empty()) {
      return UnavailableError(Where() + " " + action + " answered HTTP " +
                              std::to_string(response->status) + " without an EC2 error code");
    }
    const CodeInfo info = Classify(code);
    return Status(info.code, Where() + " " + action + " failed: " + code + ": " + Redact(message) +
                                 " (" + info.hint + ")");
  }
  auto tree = internal::ParseEc2Xml(response->body);
  if (!tree) return InternalError(Where() + " " + action + " answered " + tree.error().message());
  return std::make_shared<Xml>(std::move(*tree));
}

Result<std::vector<MachineType>> Ec2Provisioner::Types() {
  {
    std::lock_guard lock(mu_);
    if (catalogue_) return *catalogue_;
  }
  std::vector<MachineType> out;
  std::string next;
  const Deadline deadline = DeadlineAfter(300s);
  do {
    Params params = {{"MaxResults", "100"}};
    if (!next.empty()) params.emplace_back("NextToken", next);
    BITFUSION_ASSIGN_OR_RETURN(auto xml, Call("DescribeInstanceTypes", params, deadline));
    for (auto& t : internal::Ec2InstanceTypes(*xml)) out.push_back(std::move(t));
    next = Text(*xml, "nextToken");
  } while (!next.empty());
  std::sort(out.begin(), out.end(),
            [](const MachineType& a, const MachineType& b) { return a.name < b.name; });
  std::lock_guard lock(mu_);
  catalogue_ = out;
  for (const auto& t : out) type_info_[t.name] = t;
  return out;
}

Result<MachineType> Ec2Provisioner::TypeInfo(const std::string& type) {
  {
    std::lock_guard lock(mu_);
    if (auto it = type_info_.find(type); it != type_info_.end()) return it->second;
  }
  auto xml = Call("DescribeInstanceTypes", {{"InstanceType.1", type}}, DeadlineAfter(60s));
  if (!xml && xml.error().code() == StatusCode::kInvalidArgument) {
    return InvalidArgumentError(Where() + " offers no instance type \"" + type + "\" (" +
                                xml.error().message() + ")");
  }
  BITFUSION_RETURN_IF_ERROR(xml.status());
  const auto items = Items(Child(**xml, "instanceTypeSet"));
  if (items.empty()) {
    return InvalidArgumentError(Where() + " offers no instance type \"" + type +
                                "\" (InvalidInstanceType); list them with `bitfusion machines "
                                "types --provisioner " +
                                Where() + "`");
  }
  MachineType t = ParseType(*items.front());
  std::lock_guard lock(mu_);
  type_info_[type] = t;
  return t;
}

Result<std::string> Ec2Provisioner::DefaultImage(const std::string& architecture) {
  const std::string arch = architecture.empty() ? "x86_64" : architecture;
  {
    std::lock_guard lock(mu_);
    if (auto it = default_images_.find(arch); it != default_images_.end()) return it->second;
  }
  BITFUSION_ASSIGN_OR_RETURN(auto xml,
                             Call("DescribeImages",
                                  {{"Owner.1", "amazon"},
                                   {"Filter.1.Name", "name"},
                                   {"Filter.1.Value.1", "al2023-ami-2023.*-kernel-*-" + arch},
                                   {"Filter.2.Name", "architecture"},
                                   {"Filter.2.Value.1", arch},
                                   {"Filter.3.Name", "state"},
                                   {"Filter.3.Value.1", "available"}},
                                  DeadlineAfter(60s)));
  const std::string best_id = internal::Ec2NewestImageId(*xml);
  if (best_id.empty()) {
    return NotFoundError(Where() + " has no Amazon Linux 2023 image for " + arch +
                         " (DescribeImages found none); name one with ?image=ami-… or "
                         "MachineRequest.image");
  }
  std::lock_guard lock(mu_);
  default_images_[arch] = best_id;
  return best_id;
}

Result<std::vector<MachineInfo>> Ec2Provisioner::Describe(Params params, Deadline deadline) {
  std::vector<MachineInfo> out;
  std::string next;
  const bool by_id = std::any_of(params.begin(), params.end(), [](const auto& p) {
    return p.first.rfind("InstanceId.", 0) == 0;
  });
  do {
    Params page = params;
    // MaxResults may not be combined with InstanceId.N.
    if (!by_id) page.emplace_back("MaxResults", "1000");
    if (!next.empty()) page.emplace_back("NextToken", next);
    BITFUSION_ASSIGN_OR_RETURN(auto xml, Call("DescribeInstances", page, deadline));
    for (auto& m : internal::Ec2Instances(*xml)) {
      m.ssh.user = options_.ssh_user;
      {
        std::lock_guard lock(mu_);
        if (auto it = created_ns_.find(m.id); it != created_ns_.end()) m.created_ns = it->second;
        if (auto it = running_ns_.find(m.id); it != running_ns_.end()) m.running_ns = it->second;
        if (auto it = type_info_.find(m.type); it != type_info_.end()) {
          m.cpu.threads = it->second.vcpus;
          m.cpu.architecture = it->second.cpu_architecture;
          m.cpu.vendor = it->second.cpu_vendor;
          m.memory_bytes = it->second.memory_bytes;
          m.accelerators = it->second.accelerators;
        }
      }
      out.push_back(std::move(m));
    }
    next = Text(*xml, "nextToken");
  } while (!next.empty());
  return out;
}

Result<std::vector<MachineInfo>> Ec2Provisioner::Create(const MachineRequest& request) {
  if (request.count < 1 || request.count > 1000) {
    return InvalidArgumentError("machine count must be 1..1000, got " +
                                std::to_string(request.count));
  }
  // Everything that can be judged before EC2 makes anything is judged here.
  MachineType type;
  if (!request.type.empty()) {
    BITFUSION_ASSIGN_OR_RETURN(type, TypeInfo(request.type));
  } else if (!request.requirements.empty()) {
    BITFUSION_ASSIGN_OR_RETURN(auto catalogue, Types());
    auto chosen = ResolveMachineType(catalogue, request.requirements);
    if (!chosen) {
      return Status(chosen.error().code(), Where() + ": " + chosen.error().message());
    }
    type = chosen->type;
  } else {
    BITFUSION_ASSIGN_OR_RETURN(type, TypeInfo(options_.default_type));
  }
  Labels tags = request.labels;
  for (auto& [k, v] : OwnerLabels(request.run_id, request.ttl_s)) tags[k] = v;
  const std::string token = request.client_token.empty() ? NewClientToken() : request.client_token;
  if (token.size() > 64) return InvalidArgumentError("client_token is longer than 64 characters");
  tags[kTagClientToken] = token;
  if (tags.size() > 50) {
    return InvalidArgumentError("EC2 allows 50 tags per instance; this request has " +
                                std::to_string(tags.size()) + " with bitfusion's own");
  }
  for (const auto& [k, v] : tags) {
    if (k.empty() || k.size() > 128 || v.size() > 256 || k.rfind("aws:", 0) == 0) {
      return InvalidArgumentError("tag \"" + k +
                                  "\" is not allowed by EC2 (keys 1-128 characters, not "
                                  "starting with aws:, values up to 256)");
    }
  }
  std::string image = !request.image.empty() ? request.image : options_.image;
  if (image.empty()) {
    BITFUSION_ASSIGN_OR_RETURN(image, DefaultImage(type.cpu_architecture));
  }

  Params p = {{"ImageId", image},
              {"InstanceType", type.name},
              {"MinCount", std::to_string(request.count)},  // all or nothing
              {"MaxCount", std::to_string(request.count)},
              {"ClientToken", token},
              {"TagSpecification.1.ResourceType", "instance"}};
  int n = 0;
  for (const auto& [k, v] : tags) {
    ++n;
    p.emplace_back("TagSpecification.1.Tag." + std::to_string(n) + ".Key", k);
    p.emplace_back("TagSpecification.1.Tag." + std::to_string(n) + ".Value", v);
  }
  const std::string key = !request.ssh_key_name.empty() ? request.ssh_key_name : options_.key_name;
  if (!key.empty()) p.emplace_back("KeyName", key);
  if (!options_.subnet_id.empty()) p.emplace_back("SubnetId", options_.subnet_id);
  for (std::size_t i = 0; i < options_.security_group_ids.size(); ++i) {
    p.emplace_back("SecurityGroupId." + std::to_string(i + 1), options_.security_group_ids[i]);
  }
  if (!options_.user_data.empty()) p.emplace_back("UserData", internal::Base64(options_.user_data));
  if (!request.zone.empty()) p.emplace_back("Placement.AvailabilityZone", request.zone);
  if (request.spot) {
    p.emplace_back("InstanceMarketOptions.MarketType", "spot");
    p.emplace_back("InstanceMarketOptions.SpotOptions.SpotInstanceType", "one-time");
    p.emplace_back("InstanceMarketOptions.SpotOptions.InstanceInterruptionBehavior", "terminate");
  }
  int attempts = 1;
  auto xml = Call("RunInstances", p, DeadlineAfter(180s), &attempts);
  const std::int64_t now = WallNowNs();
  if (!xml) {
    // A call that failed in transit or on EC2's side may have made the instances anyway: find
    // them by the token's tag and end them, so a failed create leaves nothing behind.
    const StatusCode c = xml.error().code();
    if (c == StatusCode::kUnavailable || c == StatusCode::kDeadlineExceeded ||
        c == StatusCode::kInternal || c == StatusCode::kCancelled) {
      if (Status s = TerminateByToken(token); !s.ok()) {
        return xml.error().WithContext("and ending what it may have made failed too (" +
                                       s.message() +
                                       "); run `bitfusion reap --provisioner URI` with this "
                                       "provisioner's URI");
      }
    }
    return xml.error();
  }
  std::vector<MachineInfo> out;
  for (auto& m : internal::Ec2LaunchedInstances(**xml)) {
    m.spot = request.spot;
    m.ssh.host = m.address;
    m.ssh.user = options_.ssh_user;
    m.ssh.key_name = key;
    m.labels = tags;
    m.created_ns = now;
    m.cpu.threads = type.vcpus;
    m.cpu.architecture = type.cpu_architecture;
    m.cpu.vendor = type.cpu_vendor;
    m.memory_bytes = type.memory_bytes;
    m.accelerators = type.accelerators;
    out.push_back(std::move(m));
  }
  {
    std::lock_guard lock(mu_);
    for (const auto& m : out) created_ns_.emplace(m.id, now);
  }
  if (attempts > 1) {
    // An earlier attempt may have made instances whose answer was lost; EC2 returns them
    // again for the same ClientToken, but an endpoint that ignores the token makes a second
    // set. Whatever carries the token and was not returned now is ended.
    std::set<std::string> keep;
    for (const auto& m : out) keep.insert(m.id);
    if (Status s = TerminateByToken(token, keep); !s.ok()) {
      LogAt(LogLevel::kWarning, Where(), ": ending duplicates of a retried RunInstances failed (",
            s.message(), "); `bitfusion reap --provisioner URI` will find them");
    }
  }
  if (out.size() != static_cast<std::size_t>(request.count)) {
    std::vector<std::string> ids;
    for (const auto& m : out) ids.push_back(m.id);
    const Status ended = ids.empty() ? Status::OK() : Destroy(ids);
    return InternalError(
        Where() + " RunInstances made " + std::to_string(out.size()) + " of " +
        std::to_string(request.count) + " instances; " +
        (ended.ok() ? "they were terminated" : "ending them failed: " + ended.message()));
  }
  return out;
}

Status Ec2Provisioner::TerminateByToken(const std::string& token,
                                        const std::set<std::string>& keep) {
  BITFUSION_ASSIGN_OR_RETURN(auto found,
                             Describe({{"Filter.1.Name", std::string("tag:") + kTagClientToken},
                                       {"Filter.1.Value.1", token}},
                                      DeadlineAfter(120s)));
  std::vector<std::string> ids;
  for (const auto& m : found) {
    if (m.state != "terminated" && m.state != "shutting-down" && keep.count(m.id) == 0) {
      ids.push_back(m.id);
    }
  }
  return ids.empty() ? Status::OK() : Destroy(ids);
}

Result<MachineInfo> Ec2Provisioner::WaitReady(const std::string& id, Deadline deadline) {
  bool ours = false;
  {
    std::lock_guard lock(mu_);
    ours = created_ns_.count(id) > 0;
  }
  internal::ReadyWait wait;
  wait.what = Where() + " instance " + id;
  wait.wait_ssh = options_.wait_ssh;
  wait.poll = options_.poll;
  wait.deadline = deadline;
  wait.hint = "wait longer, or check it in the EC2 console";
  return internal::WaitUntilReady(
      wait,
      [&]() -> Result<std::optional<MachineInfo>> {
        auto found = Describe({{"InstanceId.1", id}}, deadline);
        // EC2 is eventually consistent: an instance just made may not be described yet.
        if (!found && found.error().code() == StatusCode::kNotFound && ours) return std::nullopt;
        if (!found) return found.error();
        if (found->empty()) return NotFoundError(Where() + " has no instance \"" + id + "\"");
        return std::optional<MachineInfo>(found->front());
      },
      [&] {
        std::lock_guard lock(mu_);
        return running_ns_.emplace(id, WallNowNs()).first->second;
      });
}

Result<std::vector<MachineInfo>> Ec2Provisioner::List() {
  return Describe(
      {{"Filter.1.Name", std::string("tag:") + kLabelCreator}, {"Filter.1.Value.1", "bitfusion"}},
      DeadlineAfter(120s));
}

Status Ec2Provisioner::Destroy(const std::vector<std::string>& ids) {
  for (std::size_t start = 0; start < ids.size(); start += 1000) {
    Params p;
    for (std::size_t i = start; i < ids.size() && i < start + 1000; ++i) {
      p.emplace_back("InstanceId." + std::to_string(i - start + 1), ids[i]);
    }
    BITFUSION_ASSIGN_OR_RETURN(auto xml, Call("TerminateInstances", p, DeadlineAfter(120s)));
    for (const auto* item : Items(Child(*xml, "instancesSet"))) {
      const std::string state = Text(*item, "currentState/name");
      if (state != "shutting-down" && state != "terminated") {
        return UnavailableError(Where() + " TerminateInstances left " + Text(*item, "instanceId") +
                                " " + state + "; it is not terminating yet, try again");
      }
    }
  }
  return Status::OK();
}

Status Ec2Provisioner::Keep(const std::vector<std::string>& ids) {
  for (std::size_t start = 0; start < ids.size(); start += 1000) {
    Params p;
    for (std::size_t i = start; i < ids.size() && i < start + 1000; ++i) {
      p.emplace_back("ResourceId." + std::to_string(i - start + 1), ids[i]);
    }
    int n = 0;
    for (const char* key : kCreatorProcessLabels) {
      p.emplace_back("Tag." + std::to_string(++n) + ".Key", key);
    }
    BITFUSION_RETURN_IF_ERROR(Call("DeleteTags", p, DeadlineAfter(120s)).status());
  }
  return Status::OK();
}

BITFUSION_REGISTER(Provisioner, "aws", Ec2ProvisionerOptions, Ec2Provisioner);

}  // namespace bitfusion
