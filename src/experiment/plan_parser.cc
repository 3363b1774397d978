// Plan files: JSON read with Boost.JSON; every error names the file and the line/column of a
// syntax error or the path of the offending field ("benchmarks[1].repetitions").
#include <boost/json.hpp>

#include <cctype>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

#include "bitfusion/clock.h"
#include "bitfusion/experiment.h"
#include "bitfusion/log.h"
#include "devices/device_request.h"

namespace bitfusion {
namespace {

namespace json = boost::json;

class FieldReader {
 public:
  FieldReader(std::string source) : source_(std::move(source)) {}

  Status Error(const std::string& path, const std::string& what) const {
    return InvalidArgumentError(source_ + ": " + path + ": " + what);
  }

  /// An error whose message already names the field, prefixed with the file.
  Status InFile(const Status& status) const {
    return InvalidArgumentError(source_ + ": " + status.message());
  }

  Status CheckKeys(const json::object& obj, const std::string& path,
                   const std::set<std::string>& known) const {
    for (const auto& kv : obj) {
      const std::string key(kv.key());
      if (known.count(key)) continue;
      std::string list;
      for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
      return Error(path.empty() ? key : path + "." + key, "unknown field; known fields: " + list);
    }
    return Status::OK();
  }

  Result<std::string> String(const json::value& v, const std::string& path) const {
    if (!v.is_string()) return Error(path, "expected a string");
    return std::string(v.get_string());
  }

  Result<std::vector<std::string>> Strings(const json::value& v, const std::string& path) const {
    if (!v.is_array()) return Error(path, "expected an array of strings");
    std::vector<std::string> out;
    for (std::size_t i = 0; i < v.get_array().size(); ++i) {
      BITFUSION_ASSIGN_OR_RETURN(auto s,
                                 String(v.get_array()[i], path + "[" + std::to_string(i) + "]"));
      out.push_back(std::move(s));
    }
    return out;
  }

  Result<int> Count(const json::value& v, const std::string& path, int min) const {
    if (!v.is_int64() && !v.is_uint64()) {
      return Error(path, "expected an integer >= " + std::to_string(min));
    }
    const std::int64_t n = v.is_int64() ? v.get_int64() : static_cast<std::int64_t>(v.get_uint64());
    if (n < min || n > 1'000'000) {
      return Error(path,
                   "expected an integer >= " + std::to_string(min) + ", got " + std::to_string(n));
    }
    return static_cast<int>(n);
  }

  Result<std::chrono::nanoseconds> Duration(const json::value& v, const std::string& path) const {
    if (v.is_number()) {
      const double seconds = v.to_number<double>();
      if (seconds < 0) return Error(path, "duration must not be negative");
      // Past int64 nanoseconds (292 years) the conversion would be undefined.
      if (!(seconds <= 9e9)) return Error(path, "duration too long (at most 9e9 seconds)");
      return std::chrono::nanoseconds(static_cast<std::int64_t>(seconds * 1e9));
    }
    if (!v.is_string()) return Error(path, "expected a duration such as \"10ms\" or \"2s\"");
    auto d = ParseDuration(v.get_string());
    if (!d) return Error(path, d.error().message());
    return *d;
  }

  Result<std::map<std::string, std::string>> StringMap(const json::value& v,
                                                       const std::string& path) const {
    if (!v.is_object()) return Error(path, "expected an object of strings");
    std::map<std::string, std::string> out;
    for (const auto& kv : v.get_object()) {
      const std::string key(kv.key());
      BITFUSION_ASSIGN_OR_RETURN(out[key], String(kv.value(), path + "." + key));
    }
    return out;
  }

 private:
  std::string source_;
};

// "2.5%" or 0.025.
Result<double> ParseFraction(const FieldReader& r, const json::value& v, const std::string& path) {
  double fraction = 0;
  if (v.is_number()) {
    fraction = v.to_number<double>();
  } else if (v.is_string()) {
    const std::string text(v.get_string());
    char* end = nullptr;
    const double number = std::strtod(text.c_str(), &end);
    if (end == text.c_str() || std::string_view(end) != "%") {
      return r.Error(path, "expected a percentage such as \"2.5%\", got \"" + text + "\"");
    }
    fraction = number / 100;
  } else {
    return r.Error(path, "expected a percentage such as \"2.5%\" or a fraction such as 0.025");
  }
  if (!(fraction > 0 && fraction < 1)) {
    return r.Error(path, "must be above 0 % and below 100 %");
  }
  return fraction;
}

// "repetitions": {"min": 3, "max": 20, "target_rsd": "2.5%", "max_time": "10m", "metric": M}
Status ParseAdaptive(const FieldReader& r, const json::object& obj, const std::string& path,
                     BenchmarkSpec& b) {
  BITFUSION_RETURN_IF_ERROR(
      r.CheckKeys(obj, path, {"min", "max", "target_rsd", "max_time", "metric"}));
  b.adaptive.enabled = true;
  b.repetitions = 20;
  for (const auto& kv : obj) {
    const std::string key(kv.key());
    const std::string field = path + "." + key;
    if (key == "min") {
      BITFUSION_ASSIGN_OR_RETURN(b.adaptive.min, r.Count(kv.value(), field, 2));
    } else if (key == "max") {
      BITFUSION_ASSIGN_OR_RETURN(b.repetitions, r.Count(kv.value(), field, 2));
    } else if (key == "target_rsd") {
      BITFUSION_ASSIGN_OR_RETURN(b.adaptive.target_rsd, ParseFraction(r, kv.value(), field));
    } else if (key == "max_time") {
      BITFUSION_ASSIGN_OR_RETURN(b.adaptive.max_time, r.Duration(kv.value(), field));
    } else if (key == "metric") {
      BITFUSION_ASSIGN_OR_RETURN(b.adaptive.metric, r.String(kv.value(), field));
      if (b.adaptive.metric.empty()) return r.Error(field, "name a metric, e.g. \"wall_time\"");
    }
  }
  if (b.adaptive.min > b.repetitions) {
    return r.Error(path, "min (" + std::to_string(b.adaptive.min) + ") is above max (" +
                             std::to_string(b.repetitions) + ")");
  }
  return Status::OK();
}

Result<BenchmarkSpec> ParseBenchmark(const FieldReader& r, const json::value& v,
                                     const std::string& path) {
  if (!v.is_object()) return r.Error(path, "expected an object");
  const auto& obj = v.get_object();
  BITFUSION_RETURN_IF_ERROR(
      r.CheckKeys(obj, path,
                  {"name", "program", "args", "command", "repetitions", "warmup", "env",
                   "working_dir", "timeout", "image", "devices", "on"}));
  BenchmarkSpec b;
  for (const auto& kv : obj) {
    const std::string key(kv.key());
    const std::string field = path + "." + key;
    const json::value& value = kv.value();
    if (key == "name") {
      BITFUSION_ASSIGN_OR_RETURN(b.name, r.String(value, field));
    } else if (key == "program") {
      BITFUSION_ASSIGN_OR_RETURN(b.program, r.String(value, field));
    } else if (key == "args") {
      BITFUSION_ASSIGN_OR_RETURN(b.args, r.Strings(value, field));
    } else if (key == "command") {
      BITFUSION_ASSIGN_OR_RETURN(b.command, r.Strings(value, field));
    } else if (key == "repetitions") {
      if (value.is_object()) {
        BITFUSION_RETURN_IF_ERROR(ParseAdaptive(r, value.get_object(), field, b));
      } else {
        BITFUSION_ASSIGN_OR_RETURN(b.repetitions, r.Count(value, field, 1));
      }
    } else if (key == "warmup") {
      BITFUSION_ASSIGN_OR_RETURN(b.warmup, r.Count(value, field, 0));
    } else if (key == "env") {
      BITFUSION_ASSIGN_OR_RETURN(b.env, r.StringMap(value, field));
    } else if (key == "working_dir") {
      BITFUSION_ASSIGN_OR_RETURN(b.working_dir, r.String(value, field));
    } else if (key == "timeout") {
      BITFUSION_ASSIGN_OR_RETURN(b.timeout, r.Duration(value, field));
    } else if (key == "image") {
      BITFUSION_ASSIGN_OR_RETURN(b.image, r.String(value, field));
    } else if (key == "devices") {
      auto devices = ParseDeviceRequestList(value, field);
      if (!devices) return r.InFile(devices.error());
      b.devices = std::move(*devices);
    } else if (key == "on") {
      if (value.is_string()) {
        b.on = {std::string(value.get_string())};
      } else {
        BITFUSION_ASSIGN_OR_RETURN(b.on, r.Strings(value, field));
      }
    }
  }
  if (b.program.empty() == b.command.empty()) {
    return r.Error(path,
                   "give exactly one of \"program\" (a bundled benchmark or a path) and "
                   "\"command\" (a full argv)");
  }
  if (!b.command.empty() && !b.args.empty()) {
    return r.Error(path + ".args", "\"args\" goes with \"program\"; put them in \"command\"");
  }
  if (b.name.empty()) {
    b.name = b.program.empty() ? b.command.front() : b.program;
    const auto slash = b.name.rfind('/');
    if (slash != std::string::npos) b.name = b.name.substr(slash + 1);
  }
  return b;
}

Result<ImageRecipe> ParseImageRecipe(const FieldReader& r, const json::value& v,
                                     const std::string& path) {
  if (!v.is_object()) return r.Error(path, "expected an object");
  BITFUSION_RETURN_IF_ERROR(
      r.CheckKeys(v.get_object(), path, {"context", "dockerfile", "files", "build_args"}));
  ImageRecipe recipe;
  for (const auto& kv : v.get_object()) {
    const std::string key(kv.key());
    const std::string field = path + "." + key;
    if (key == "context") {
      BITFUSION_ASSIGN_OR_RETURN(recipe.context, r.String(kv.value(), field));
    } else if (key == "dockerfile") {
      BITFUSION_ASSIGN_OR_RETURN(recipe.dockerfile, r.String(kv.value(), field));
    } else if (key == "files") {
      BITFUSION_ASSIGN_OR_RETURN(recipe.files, r.StringMap(kv.value(), field));
    } else if (key == "build_args") {
      BITFUSION_ASSIGN_OR_RETURN(recipe.build_args, r.StringMap(kv.value(), field));
    }
  }
  if (recipe.context.empty()) return r.Error(path + ".context", "missing; name the build context");
  return recipe;
}

// "preflight": {"min_free_inodes": 100000, "min_free_space": "2GiB", "min_engine_version": "20.10"}
Status ParsePreflightLimits(const FieldReader& r, const json::value& v, const std::string& path,
                            PreflightLimits& out) {
  if (!v.is_object()) return r.Error(path, "expected an object");
  BITFUSION_RETURN_IF_ERROR(r.CheckKeys(
      v.get_object(), path, {"min_free_inodes", "min_free_space", "min_engine_version"}));
  for (const auto& kv : v.get_object()) {
    const std::string key(kv.key());
    const std::string field = path + "." + key;
    if (key == "min_free_inodes") {
      const json::value& n = kv.value();
      if (n.is_uint64()) {
        out.min_free_inodes = n.get_uint64();
      } else if (n.is_int64() && n.get_int64() >= 0) {
        out.min_free_inodes = static_cast<std::uint64_t>(n.get_int64());
      } else {
        return r.Error(field, "expected a whole number of inodes >= 0");
      }
    } else if (key == "min_free_space") {
      BITFUSION_ASSIGN_OR_RETURN(auto text, r.String(kv.value(), field));
      auto bytes = ParseByteSize(text);
      if (!bytes) return r.Error(field, bytes.error().message());
      out.min_free_bytes = *bytes;
    } else if (key == "min_engine_version") {
      BITFUSION_ASSIGN_OR_RETURN(out.min_engine_version, r.String(kv.value(), field));
      if (out.min_engine_version.empty() ||
          out.min_engine_version.find_first_not_of("0123456789.") != std::string::npos) {
        return r.Error(field, "expected a version such as \"20.10\"");
      }
    }
  }
  return Status::OK();
}

// "machines": {"gpu": {"provisioner": "aws://us-east-1", "gpu": "nvidia:1", "count": 4,
// "ttl": "2h", "setup": ["apt-get install -y numactl"], "preflight": {...}}}
Result<MachineGroupSpec> ParseMachineGroup(const FieldReader& r, const std::string& name,
                                           const json::value& v, const std::string& path) {
  if (name.empty() || name.size() > 32 ||
      name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") !=
          std::string::npos) {
    return r.Error(path, "a group name is 1 to 32 letters, digits, '_' or '-'");
  }
  if (!v.is_object()) return r.Error(path, "expected an object");
  BITFUSION_RETURN_IF_ERROR(
      r.CheckKeys(v.get_object(), path,
                  {"provisioner", "count", "type", "gpu", "fpga", "min_vcpus", "min_memory", "arch",
                   "ttl", "image", "zone", "setup", "setup_timeout", "preflight"}));
  MachineGroupSpec g;
  g.name = name;
  for (const auto& kv : v.get_object()) {
    const std::string key(kv.key());
    const std::string field = path + "." + key;
    const json::value& value = kv.value();
    if (key == "provisioner") {
      BITFUSION_ASSIGN_OR_RETURN(g.provisioner, r.String(value, field));
    } else if (key == "count") {
      BITFUSION_ASSIGN_OR_RETURN(g.count, r.Count(value, field, 1));
      if (g.count > 256) return r.Error(field, "at most 256 machines per group");
    } else if (key == "type") {
      BITFUSION_ASSIGN_OR_RETURN(g.type, r.String(value, field));
    } else if (key == "gpu" || key == "fpga") {
      if (!g.requirements.accelerator_kind.empty()) {
        return r.Error(field, "give \"gpu\" or \"fpga\", not both");
      }
      BITFUSION_ASSIGN_OR_RETURN(auto spec, r.String(value, field));
      if (Status s = ParseAcceleratorRequirement(key, spec, field, g.requirements); !s.ok()) {
        return r.InFile(s);
      }
    } else if (key == "min_vcpus") {
      BITFUSION_ASSIGN_OR_RETURN(g.requirements.min_vcpus, r.Count(value, field, 1));
    } else if (key == "min_memory") {
      BITFUSION_ASSIGN_OR_RETURN(auto text, r.String(value, field));
      auto bytes = ParseByteSize(text);
      if (!bytes) return r.Error(field, bytes.error().message());
      g.requirements.min_memory_bytes = *bytes;
    } else if (key == "arch") {
      BITFUSION_ASSIGN_OR_RETURN(g.requirements.cpu_architecture, r.String(value, field));
    } else if (key == "ttl") {
      BITFUSION_ASSIGN_OR_RETURN(auto ttl, r.Duration(value, field));
      if (ttl < std::chrono::minutes(1)) return r.Error(field, "at least 1m");
      g.ttl = std::chrono::duration_cast<std::chrono::seconds>(ttl);
    } else if (key == "image") {
      BITFUSION_ASSIGN_OR_RETURN(g.image, r.String(value, field));
    } else if (key == "zone") {
      BITFUSION_ASSIGN_OR_RETURN(g.zone, r.String(value, field));
    } else if (key == "setup") {
      if (value.is_string()) {
        g.setup = {std::string(value.get_string())};
      } else {
        BITFUSION_ASSIGN_OR_RETURN(g.setup, r.Strings(value, field));
      }
      for (std::size_t i = 0; i < g.setup.size(); ++i) {
        if (g.setup[i].find_first_not_of(" \t\n") == std::string::npos) {
          return r.Error(field + "[" + std::to_string(i) + "]", "an empty setup step");
        }
      }
    } else if (key == "setup_timeout") {
      BITFUSION_ASSIGN_OR_RETURN(auto timeout, r.Duration(value, field));
      if (timeout < std::chrono::seconds(1)) return r.Error(field, "at least 1s");
      g.setup_timeout = std::chrono::duration_cast<std::chrono::seconds>(timeout);
    } else if (key == "preflight") {
      BITFUSION_RETURN_IF_ERROR(ParsePreflightLimits(r, value, field, g.preflight));
    }
  }
  if (g.provisioner.empty()) {
    return r.Error(path + ".provisioner",
                   "missing; name where the machines come from (\"static://inventory.json\", "
                   "\"aws://us-east-1\", \"local://\")");
  }
  if (!g.type.empty() && !g.requirements.empty()) {
    return r.Error(path, "give a \"type\" or requirements (gpu, fpga, min_vcpus, ...), not both");
  }
  return g;
}

// "webhooks": [{"url": "https://hooks.example/bf", "events": ["container.died"]}]
Result<WebhookOptions> ParseWebhook(const FieldReader& r, const json::value& v,
                                    const std::string& path) {
  if (!v.is_object()) return r.Error(path, "expected an object with \"url\" and \"events\"");
  BITFUSION_RETURN_IF_ERROR(r.CheckKeys(v.get_object(), path, {"url", "events"}));
  WebhookOptions hook;
  if (const auto* url = v.get_object().if_contains("url")) {
    BITFUSION_ASSIGN_OR_RETURN(hook.url, r.String(*url, path + ".url"));
  }
  if (hook.url.empty()) return r.Error(path + ".url", "missing; the webhook's http(s) URL");
  if (hook.url.rfind("http://", 0) != 0 && hook.url.rfind("https://", 0) != 0) {
    return r.Error(path + ".url", "expected an http:// or https:// URL, not " + Redact(hook.url));
  }
  if (const auto* events = v.get_object().if_contains("events")) {
    BITFUSION_ASSIGN_OR_RETURN(auto names, r.Strings(*events, path + ".events"));
    for (std::size_t i = 0; i < names.size(); ++i) {
      EventType type;
      if (!EventTypeFromName(names[i], type) || type == EventType::kOther) {
        return r.Error(path + ".events[" + std::to_string(i) + "]",
                       "unknown event \"" + names[i] +
                           "\"; e.g. container.died, container.oom, machine.down, "
                           "sink.degraded, device.leased, run.finished");
      }
      hook.types.push_back(type);
    }
  }
  return hook;
}

// "line L, column C" of a byte offset.
std::string Position(std::string_view text, std::size_t offset) {
  std::size_t line = 1, column = 1;
  for (std::size_t i = 0; i < offset && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
  }
  return "line " + std::to_string(line) + ", column " + std::to_string(column);
}

// "registry": where images go on their way to remote machines: HOST or HOST:PORT, as an image
// reference starts ("registry.lan:5000/bench/x:1"), so no scheme and no path.
Status CheckRegistry(const FieldReader& r, const std::string& registry) {
  if (registry.find("://") != std::string::npos) {
    return r.Error("registry", "\"" + registry +
                                   "\": give HOST:PORT without a scheme (e.g. \"127.0.0.1:5000\"); "
                                   "the engine picks HTTPS, or HTTP for a registry on 127.0.0.0/8 "
                                   "or one in its insecure-registries");
  }
  const auto colon = registry.rfind(':');
  const std::string host = colon == std::string::npos ? registry : registry.substr(0, colon);
  bool host_ok = !host.empty() && host.size() <= 253 && host.front() != '-' &&
                 host.front() != '.' && host.back() != '-' && host.back() != '.';
  for (char c : host) {
    host_ok = host_ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.');
  }
  if (!host_ok) {
    return r.Error("registry", "\"" + registry +
                                   "\" is not HOST or HOST:PORT (a host name or IPv4 address, "
                                   "e.g. \"registry.lan:5000\")");
  }
  if (colon != std::string::npos) {
    const std::string port = registry.substr(colon + 1);
    const bool digits = !port.empty() && port.size() <= 5 &&
                        port.find_first_not_of("0123456789") == std::string::npos;
    if (!digits || std::stoi(port) < 1 || std::stoi(port) > 65535) {
      return r.Error("registry",
                     "\"" + registry + "\": port \"" + port + "\" is not a number from 1 to 65535");
    }
  }
  return Status::OK();
}

}  // namespace

Result<PlanSpec> ParsePlan(std::string_view text, std::string_view source_name) {
  const std::string source(source_name);
  json::stream_parser parser;
  boost::system::error_code ec;
  const std::size_t consumed = parser.write_some(text.data(), text.size(), ec);
  if (!ec && consumed < text.size()) {
    // write_some stops after one complete value; anything but whitespace after it is an error.
    const auto rest = text.substr(consumed);
    if (rest.find_first_not_of(" \t\r\n") != std::string_view::npos) {
      return InvalidArgumentError(source + ": " + Position(text, consumed) +
                                  ": unexpected text after the plan object");
    }
  }
  if (!ec) parser.finish(ec);
  if (ec) {
    return InvalidArgumentError(source + ": " + Position(text, consumed) + ": " + ec.message());
  }
  const json::value root = parser.release();
  FieldReader r(source);
  if (!root.is_object()) return r.Error("(top level)", "expected a JSON object");
  const auto& obj = root.get_object();
  BITFUSION_RETURN_IF_ERROR(
      r.CheckKeys(obj, "",
                  {"name", "runner", "provisioner", "machines", "metrics", "sinks", "benchmarks",
                   "images", "device_allocator", "device_wait", "webhooks", "registry"}));
  PlanSpec plan;
  plan.source_file = source;
  for (const auto& kv : obj) {
    const std::string key(kv.key());
    const json::value& value = kv.value();
    if (key == "name") {
      BITFUSION_ASSIGN_OR_RETURN(plan.name, r.String(value, key));
    } else if (key == "provisioner") {
      BITFUSION_ASSIGN_OR_RETURN(plan.provisioner, r.String(value, key));
    } else if (key == "runner") {
      BITFUSION_ASSIGN_OR_RETURN(plan.runner, r.String(value, key));
    } else if (key == "sinks") {
      BITFUSION_ASSIGN_OR_RETURN(plan.sinks, r.Strings(value, key));
    } else if (key == "metrics") {
      if (!value.is_object()) return r.Error(key, "expected an object");
      BITFUSION_RETURN_IF_ERROR(r.CheckKeys(value.get_object(), key, {"sources", "interval"}));
      if (const auto* s = value.get_object().if_contains("sources")) {
        BITFUSION_ASSIGN_OR_RETURN(plan.sources, r.Strings(*s, "metrics.sources"));
      }
      if (const auto* i = value.get_object().if_contains("interval")) {
        BITFUSION_ASSIGN_OR_RETURN(plan.interval, r.Duration(*i, "metrics.interval"));
        if (plan.interval < std::chrono::milliseconds(1)) {
          return r.Error("metrics.interval", "must be at least 1ms");
        }
      }
    } else if (key == "registry") {
      BITFUSION_ASSIGN_OR_RETURN(plan.registry, r.String(value, key));
      BITFUSION_RETURN_IF_ERROR(CheckRegistry(r, plan.registry));
    } else if (key == "device_allocator") {
      BITFUSION_ASSIGN_OR_RETURN(plan.device_allocator, r.String(value, key));
    } else if (key == "device_wait") {
      BITFUSION_ASSIGN_OR_RETURN(plan.device_wait, r.Duration(value, key));
    } else if (key == "images") {
      if (!value.is_object()) return r.Error(key, "expected an object of image recipes");
      for (const auto& image : value.get_object()) {
        const std::string ref(image.key());
        BITFUSION_ASSIGN_OR_RETURN(plan.images[ref],
                                   ParseImageRecipe(r, image.value(), "images[\"" + ref + "\"]"));
      }
    } else if (key == "webhooks") {
      if (!value.is_array()) return r.Error(key, "expected an array of webhooks");
      for (std::size_t i = 0; i < value.get_array().size(); ++i) {
        BITFUSION_ASSIGN_OR_RETURN(auto hook, ParseWebhook(r, value.get_array()[i],
                                                           "webhooks[" + std::to_string(i) + "]"));
        plan.webhooks.push_back(std::move(hook));
      }
    } else if (key == "machines") {
      if (!value.is_object() || value.get_object().empty()) {
        return r.Error(key,
                       "expected an object of machine groups: {\"NAME\": {\"provisioner\": ...}}");
      }
      std::map<std::string, MachineGroupSpec> groups;  // in name order
      for (const auto& group : value.get_object()) {
        const std::string name(group.key());
        BITFUSION_ASSIGN_OR_RETURN(groups[name],
                                   ParseMachineGroup(r, name, group.value(), "machines." + name));
      }
      for (auto& [name, group] : groups) plan.machines.push_back(std::move(group));
    } else if (key == "benchmarks") {
      if (!value.is_array() || value.get_array().empty()) {
        return r.Error(key, "expected a non-empty array of benchmarks");
      }
      for (std::size_t i = 0; i < value.get_array().size(); ++i) {
        BITFUSION_ASSIGN_OR_RETURN(auto b, ParseBenchmark(r, value.get_array()[i],
                                                          "benchmarks[" + std::to_string(i) + "]"));
        plan.benchmarks.push_back(std::move(b));
      }
    }
  }
  if (plan.benchmarks.empty()) return r.Error("benchmarks", "missing; a plan needs benchmarks");
  std::set<std::string> names;
  for (std::size_t i = 0; i < plan.benchmarks.size(); ++i) {
    if (!names.insert(plan.benchmarks[i].name).second) {
      return r.Error("benchmarks[" + std::to_string(i) + "].name",
                     "duplicate benchmark name \"" + plan.benchmarks[i].name + "\"");
    }
  }
  if (!plan.machines.empty() && obj.contains("provisioner")) {
    return r.Error("provisioner",
                   "give \"machines\" (groups) or \"provisioner\" (one machine), not both");
  }
  for (std::size_t i = 0; i < plan.benchmarks.size(); ++i) {
    const auto& on = plan.benchmarks[i].on;
    for (std::size_t j = 0; j < on.size(); ++j) {
      const std::string field =
          "benchmarks[" + std::to_string(i) + "].on[" + std::to_string(j) + "]";
      if (plan.machines.empty()) {
        return r.Error(field, "the plan has no \"machines\" groups to run on");
      }
      std::string names;
      bool found = false;
      for (const auto& g : plan.machines) {
        found = found || g.name == on[j];
        names += (names.empty() ? "" : ", ") + g.name;
      }
      if (!found) return r.Error(field, "no machine group \"" + on[j] + "\"; groups: " + names);
    }
  }
  if (plan.name.empty()) {
    plan.name = source;
    const auto slash = plan.name.rfind('/');
    if (slash != std::string::npos) plan.name = plan.name.substr(slash + 1);
    const auto dot = plan.name.rfind('.');
    if (dot != std::string::npos && dot > 0) plan.name = plan.name.substr(0, dot);
  }
  return plan;
}

Result<PlanSpec> LoadPlan(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return ErrnoError(errno, "cannot read plan " + path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return ParsePlan(buffer.str(), path);
}

}  // namespace bitfusion
