#include "net/slurm_rest.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <iterator>
#include <set>

#include <re2/re2.h>

namespace bitfusion::internal {

namespace json = boost::json;

const std::vector<std::string>& SlurmApiVersionsSpoken() {
  // Only the job fields of v0.0.38 are read (v0.0.39 changed exit_code, job_state and the time
  // fields into objects); a newer version joins this list with its own parsing.
  static const std::vector<std::string> spoken = {"v0.0.38"};
  return spoken;
}

namespace {
std::vector<int> VersionNumbers(const std::string& v) {
  std::vector<int> out;
  std::size_t at = 1;  // after the 'v'
  while (at < v.size()) {
    const auto dot = v.find('.', at);
    out.push_back(std::atoi(v.substr(at, dot - at).c_str()));
    if (dot == std::string::npos) break;
    at = dot + 1;
  }
  return out;
}
std::string JoinList(const std::vector<std::string>& items) {
  std::string s;
  for (const auto& i : items) s += (s.empty() ? "" : ", ") + i;
  return s.empty() ? "none" : s;
}
}  // namespace

Result<std::string> PickSlurmApiVersion(std::string_view openapi_json,
                                        const std::vector<std::string>& spoken,
                                        std::string_view where) {
  boost::system::error_code ec;
  const json::value doc = json::parse(openapi_json, ec);
  if (ec || !doc.is_object() || !doc.as_object().contains("paths") ||
      !doc.at("paths").is_object()) {
    return InternalError("slurmrestd at " + std::string(where) +
                         " answered GET /openapi/v3 with no OpenAPI document (no \"paths\")");
  }
  static const RE2 kPath(R"(^/slurm/(v[0-9]+\.[0-9]+\.[0-9]+)/)");
  std::set<std::string> offered;
  for (const auto& [path, item] : doc.at("paths").as_object()) {
    std::string version;
    if (RE2::PartialMatch(std::string_view(path), kPath, &version)) offered.insert(version);
  }
  std::vector<std::string> offered_list(offered.begin(), offered.end());
  std::sort(offered_list.begin(), offered_list.end(),
            [](const auto& a, const auto& b) { return VersionNumbers(a) > VersionNumbers(b); });
  for (const auto& v : offered_list) {
    if (std::find(spoken.begin(), spoken.end(), v) != spoken.end()) return v;
  }
  return FailedPreconditionError(
      "slurmrestd at " + std::string(where) + " offers Slurm API versions " +
      JoinList(offered_list) + " and bitfusion speaks " + JoinList(spoken) +
      "; start slurmrestd with a plugin bitfusion speaks (-s openapi/v0.0.38) or use a "
      "bitfusion that speaks the server's");
}

std::vector<SlurmError> ParseSlurmErrors(std::string_view body) {
  std::vector<SlurmError> out;
  boost::system::error_code ec;
  const json::value doc = json::parse(body, ec);
  if (ec || !doc.is_object()) return out;
  const auto* errors = doc.as_object().if_contains("errors");
  if (errors == nullptr || !errors->is_array()) return out;
  for (const auto& e : errors->as_array()) {
    if (!e.is_object()) continue;
    const auto& o = e.as_object();
    SlurmError se;
    for (const char* key : {"error_number", "error_code"}) {
      if (const auto* n = o.if_contains(key); n != nullptr && n->is_int64()) {
        se.code = static_cast<int>(n->as_int64());
      }
    }
    if (const auto* s = o.if_contains("error"); s != nullptr && s->is_string()) {
      se.error = std::string(s->as_string());
    }
    if (const auto* s = o.if_contains("description"); s != nullptr && s->is_string()) {
      se.description = std::string(s->as_string());
    }
    if (const auto* s = o.if_contains("source"); s != nullptr && s->is_string()) {
      se.source = std::string(s->as_string());
    }
    out.push_back(std::move(se));
  }
  return out;
}

bool SlurmJobTerminal(const std::string& state) {
  return state == "COMPLETED" || state == "FAILED" || state == "CANCELLED" || state == "TIMEOUT" ||
         state == "NODE_FAIL" || state == "PREEMPTED" || state == "BOOT_FAIL" ||
         state == "DEADLINE" || state == "OUT_OF_MEMORY";
}

std::string SlurmJsonString(const json::object& o, const char* key) {
  const auto* v = o.if_contains(key);
  return v != nullptr && v->is_string() ? std::string(v->as_string()) : std::string();
}
std::int64_t SlurmJsonInt(const json::object& o, const char* key) {
  const auto* v = o.if_contains(key);
  if (v == nullptr) return 0;
  if (v->is_int64()) return v->as_int64();
  if (v->is_uint64()) {
    const std::uint64_t u = v->as_uint64();
    return u > static_cast<std::uint64_t>(INT64_MAX) ? 0 : static_cast<std::int64_t>(u);
  }
  if (v->is_double()) {
    const double d = v->as_double();
    return d >= -9.2e18 && d <= 9.2e18 ? static_cast<std::int64_t>(d) : 0;
  }
  return 0;
}

Labels SlurmCommentLabels(const std::string& comment) {
  Labels labels;
  if (comment.rfind(kSlurmCommentPrefix, 0) != 0) return labels;
  boost::system::error_code ec;
  const json::value v = json::parse(std::string_view(comment).substr(10), ec);
  if (ec || !v.is_object()) return labels;
  for (const auto& [k, val] : v.as_object()) {
    if (val.is_string()) labels[std::string(k)] = std::string(val.as_string());
  }
  return labels;
}

SlurmJobView ParseSlurmJob(const json::object& j) {
  SlurmJobView v;
  v.job_id = SlurmJsonInt(j, "job_id");
  v.name = SlurmJsonString(j, "name");
  v.state = SlurmJsonString(j, "job_state");
  v.reason = SlurmJsonString(j, "state_reason");
  v.comment = SlurmJsonString(j, "comment");
  v.exit_code = SlurmJsonInt(j, "exit_code");
  auto ns = [&](const char* key) {
    const std::int64_t s = SlurmJsonInt(j, key);
    return s > 0 && s < INT64_MAX / 1'000'000'000 ? s * 1'000'000'000 : 0;
  };
  v.start_ns = ns("start_time");
  v.end_ns = ns("end_time");
  v.submit_ns = ns("submit_time");
  return v;
}

namespace {

// The entries of an answer's array `key` that are objects, each read by `parse`.
template <class Parse>
auto EntriesOf(const json::object& answer, const char* key, Parse parse) {
  std::vector<decltype(parse(json::object()))> out;
  const auto* entries = answer.if_contains(key);
  if (entries == nullptr || !entries->is_array()) return out;
  for (const auto& e : entries->as_array()) {
    if (e.is_object()) out.push_back(parse(e.as_object()));
  }
  return out;
}

std::vector<std::string> SlurmJsonStrings(const json::object& o, const char* key) {
  std::vector<std::string> out;
  const auto* v = o.if_contains(key);
  if (v == nullptr || !v->is_array()) return out;
  for (const auto& e : v->as_array()) {
    if (e.is_string()) out.emplace_back(e.as_string());
  }
  return out;
}

bool SameIgnoringCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

}  // namespace

int SlurmGresGpus(std::string_view gres, std::string* model) {
  int total = 0;
  bool named = false;
  while (!gres.empty()) {
    const auto comma = gres.find(',');
    std::string_view entry = gres.substr(0, comma);
    gres = comma == std::string_view::npos ? std::string_view() : gres.substr(comma + 1);
    entry = entry.substr(0, entry.find('('));  // "(S:0-1)", "(IDX:0-1)"
    if (entry != "gpu" && !entry.starts_with("gpu:")) continue;
    // "gpu", "gpu:N", "gpu:TYPE", "gpu:TYPE:N"
    std::vector<std::string_view> parts;
    for (std::size_t at = 0;;) {
      const auto colon = entry.find(':', at);
      parts.push_back(entry.substr(at, colon == std::string_view::npos ? colon : colon - at));
      if (colon == std::string_view::npos) break;
      at = colon + 1;
    }
    std::string_view count = parts.size() > 1 ? parts.back() : std::string_view("1");
    std::string_view type = parts.size() == 3 ? parts[1] : std::string_view();
    int n = 0;
    const auto [end, ec] = std::from_chars(count.data(), count.data() + count.size(), n);
    if (ec == std::errc::result_out_of_range) continue;  // no count anyone means
    if (ec != std::errc() || end != count.data() + count.size()) {
      if (parts.size() != 2) continue;  // "gpu:TYPE" alone means one of that type
      type = count;
      n = 1;
    }
    if (n <= 0 || n > 1'000'000 || total > 1'000'000) continue;
    total += n;
    if (!named && model != nullptr && !type.empty()) {
      *model = std::string(type);
      named = true;
    }
  }
  return total;
}

std::vector<SlurmJobView> SlurmJobsOf(const json::object& answer) {
  return EntriesOf(answer, "jobs", ParseSlurmJob);
}

SlurmNodeView ParseSlurmNode(const json::object& j) {
  SlurmNodeView v;
  v.name = SlurmJsonString(j, "name");
  v.hostname = SlurmJsonString(j, "hostname");
  v.address = SlurmJsonString(j, "address");
  v.architecture = SlurmJsonString(j, "architecture");
  v.operating_system = SlurmJsonString(j, "operating_system");
  v.state = SlurmJsonString(j, "state");
  v.state_flags = SlurmJsonStrings(j, "state_flags");
  v.reason = SlurmJsonString(j, "reason");
  v.partitions = SlurmJsonStrings(j, "partitions");
  v.cpus = SlurmJsonInt(j, "cpus");
  v.real_memory_mb = SlurmJsonInt(j, "real_memory");
  v.gres = SlurmJsonString(j, "gres");
  v.gpus = SlurmGresGpus(v.gres, &v.gpu_model);
  return v;
}

std::vector<SlurmNodeView> SlurmNodesOf(const json::object& answer) {
  return EntriesOf(answer, "nodes", ParseSlurmNode);
}

bool SlurmNodeUsable(const SlurmNodeView& node) {
  static const char* const kUsable[] = {"idle", "mixed", "allocated", "completing"};
  static const char* const kKeepOff[] = {"DRAIN",       "DRAINING",         "DRAINED",
                                         "FAIL",        "FAILING",          "NOT_RESPONDING",
                                         "MAINTENANCE", "POWERED_DOWN",     "POWERING_DOWN",
                                         "POWER_DOWN",  "REBOOT_REQUESTED", "REBOOT_ISSUED"};
  const bool usable = std::any_of(std::begin(kUsable), std::end(kUsable),
                                  [&](const char* s) { return SameIgnoringCase(node.state, s); });
  if (!usable) return false;
  return std::none_of(node.state_flags.begin(), node.state_flags.end(), [](const std::string& f) {
    return std::any_of(std::begin(kKeepOff), std::end(kKeepOff),
                       [&](const char* s) { return SameIgnoringCase(f, s); });
  });
}

std::vector<SlurmPartitionView> SlurmPartitionsOf(const json::object& answer) {
  auto out = EntriesOf(answer, "partitions", [](const json::object& p) {
    SlurmPartitionView v;
    v.name = SlurmJsonString(p, "name");
    v.state = SlurmJsonString(p, "state");
    for (const auto& flag : SlurmJsonStrings(p, "flags")) {
      v.is_default = v.is_default || SameIgnoringCase(flag, "default");
    }
    return v;
  });
  std::erase_if(out, [](const SlurmPartitionView& v) { return v.name.empty(); });
  return out;
}

Result<std::shared_ptr<SlurmRest>> SlurmRest::Make(const SlurmRunnerOptions& o) {
  net::HttpClientOptions h;
  if (o.host.empty()) {
    h.base_url = "http://localhost";
    h.unix_socket = o.socket_path;
  } else {
    h.base_url = "http://" + o.host + ":" + std::to_string(o.port);
  }
  h.peer_name = "slurmrestd at " + o.Endpoint();
  h.connect_timeout = std::chrono::milliseconds(5'000);
  h.retry.max_attempts = 3;
  BITFUSION_ASSIGN_OR_RETURN(auto client, net::HttpClient::Make(h));
  auto rest = std::shared_ptr<SlurmRest>(new SlurmRest(o));
  rest->http_ = std::move(client);
  return rest;
}

SlurmRest::SlurmRest(const SlurmRunnerOptions& o) : options_(o), where_(o.Endpoint()) {}

Result<std::string> SlurmRest::Prefix() {
  std::lock_guard lock(mu_);
  if (!version_.empty()) return "/slurm/" + version_;
  if (!options_.api_version.empty()) {
    const auto& spoken = SlurmApiVersionsSpoken();
    if (std::find(spoken.begin(), spoken.end(), options_.api_version) == spoken.end()) {
      return InvalidArgumentError("slurm://?api=" + options_.api_version + ": bitfusion speaks " +
                                  spoken.front());
    }
    version_ = options_.api_version;
    return "/slurm/" + version_;
  }
  BITFUSION_ASSIGN_OR_RETURN(auto r, Raw("GET", "/openapi/v3", ""));
  if (r.status != 200) return Error(r, "GET /openapi/v3");
  BITFUSION_ASSIGN_OR_RETURN(version_,
                             PickSlurmApiVersion(r.body, SlurmApiVersionsSpoken(), where_));
  return "/slurm/" + version_;
}

Result<net::HttpResponse> SlurmRest::Call(const std::string& method, const std::string& path,
                                          const std::string& body) {
  BITFUSION_ASSIGN_OR_RETURN(auto prefix, Prefix());
  return Raw(method, prefix + path, body);
}

Result<json::object> SlurmRest::Json(const net::HttpResponse& r, const std::string& what) {
  if (r.status != 200) return Error(r, what);
  boost::system::error_code ec;
  json::value v = json::parse(r.body, ec);
  if (ec || !v.is_object()) {
    return InternalError("slurmrestd at " + where_ + " answered " + what + " with no JSON");
  }
  return std::move(v.as_object());
}

Status SlurmRest::Error(const net::HttpResponse& r, const std::string& what) const {
  if (r.status == 401) {
    return PermissionDeniedError(
        "slurmrestd at " + where_ + " refused authentication (HTTP 401) for " + what +
        (options_.host.empty()
             ? "; over a unix socket (rest_auth/local) run bitfusion as root or as "
               "slurmrestd's own user"
             : "; set SLURM_JWT to a valid token (scontrol token) for user \"" + options_.user +
                   "\" and make sure slurmrestd runs with -a rest_auth/jwt"));
  }
  std::string list;
  const auto errors = ParseSlurmErrors(r.body);
  // slurmrestd 22.05 passes a JWT through unchecked: slurmctld drops a bad one, and the
  // answer is a 500 about the lost connection, not a 401.
  const bool dropped = std::any_of(errors.begin(), errors.end(), [](const auto& e) {
    return e.code == 5005 || e.source == "slurm_load_ctl_conf";
  });
  for (const auto& e : errors) {
    list += (list.empty() ? "" : "; ") + (e.error.empty() ? std::string("error") : e.error);
    if (!e.description.empty() && e.description != e.error) list += " (" + e.description + ")";
    if (e.code != 0) list += " [" + std::to_string(e.code) + "]";
  }
  if (list.empty()) list = r.body.substr(0, 200);
  const std::string msg = "slurmrestd at " + where_ + ": " + what + " failed (HTTP " +
                          std::to_string(r.status) + "): " + list;
  if (dropped && !options_.host.empty()) {
    return UnavailableError(msg +
                            "; slurmctld dropped the request, which is how an invalid or "
                            "expired JWT shows (check SLURM_JWT and the user name \"" +
                            options_.user + "\")");
  }
  if (r.status == 400) return InvalidArgumentError(msg);
  if (r.status == 404) return NotFoundError(msg);
  return UnavailableError(msg);
}

Result<net::HttpResponse> SlurmRest::Raw(const std::string& method, const std::string& target,
                                         const std::string& body) {
  net::HttpRequest req;
  req.method = method;
  req.target = target;
  req.body = body;
  req.deadline = DeadlineAfter(options_.api_timeout);
  if (!body.empty()) req.headers.emplace_back("Content-Type", "application/json");
  if (!options_.host.empty()) {
    req.headers.emplace_back("X-SLURM-USER-NAME", options_.user);
    req.headers.emplace_back("X-SLURM-USER-TOKEN", options_.token);
  }
  auto r = http_->Send(req);
  if (!r.ok()) {
    return Status(r.error().code(),
                  r.error().message() +
                      (options_.host.empty()
                           ? " (is slurmrestd listening on unix:" + options_.socket_path + "?)"
                           : ""));
  }
  return r;
}

}  // namespace bitfusion::internal
