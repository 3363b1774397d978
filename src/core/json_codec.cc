#include "core/json_codec.h"

#include <boost/json.hpp>
#include <boost/json/basic_parser_impl.hpp>

#include <charconv>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

namespace bitfusion {
namespace internal {

JsonShapeError JsonShapeError::Within(std::string_view field) const {
  std::string path(field);
  if (!path_.empty()) {
    if (path_.front() != '[') path.push_back('.');
    path += path_;
  }
  return JsonShapeError(std::move(path), problem_);
}

namespace {

using boost::json::array;
using boost::json::object;
using boost::json::value;

// ---- Parsing ---------------------------------------------------------------------------------

// Boost.JSON's own handler (a value_stack), except that doubles are read from their digits
// exactly instead of taken from the parser's fast approximation.
struct ExactHandler {
  static constexpr std::size_t max_object_size = object::max_size();
  static constexpr std::size_t max_array_size = array::max_size();
  static constexpr std::size_t max_key_size = boost::json::string::max_size();
  static constexpr std::size_t max_string_size = boost::json::string::max_size();

  boost::json::value_stack st;
  std::string number;  // the parts of a number split across buffers

  using error_code = boost::json::error_code;
  using string_view = boost::json::string_view;

  bool on_document_begin(error_code&) { return true; }
  bool on_document_end(error_code&) { return true; }
  bool on_object_begin(error_code&) { return true; }
  bool on_object_end(std::size_t n, error_code&) {
    st.push_object(n);
    return true;
  }
  bool on_array_begin(error_code&) { return true; }
  bool on_array_end(std::size_t n, error_code&) {
    st.push_array(n);
    return true;
  }
  bool on_key_part(string_view s, std::size_t, error_code&) {
    st.push_chars(s);
    return true;
  }
  bool on_key(string_view s, std::size_t, error_code&) {
    st.push_key(s);
    return true;
  }
  bool on_string_part(string_view s, std::size_t, error_code&) {
    st.push_chars(s);
    return true;
  }
  bool on_string(string_view s, std::size_t, error_code&) {
    st.push_string(s);
    return true;
  }
  bool on_number_part(string_view s, error_code&) {
    number.append(s.data(), s.size());
    return true;
  }
  bool on_int64(std::int64_t i, string_view, error_code&) {
    number.clear();
    st.push_int64(i);
    return true;
  }
  bool on_uint64(std::uint64_t u, string_view, error_code&) {
    number.clear();
    st.push_uint64(u);
    return true;
  }
  bool on_double(double d, string_view s, error_code&) {
    number.append(s.data(), s.size());
    double exact = 0;
    const auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), exact);
    // Out of range (1e400) is what the parser's own value says it is: ±infinity or 0.
    if (ec == std::errc() && end == number.data() + number.size()) d = exact;
    number.clear();
    st.push_double(d);
    return true;
  }
  bool on_bool(bool b, error_code&) {
    st.push_bool(b);
    return true;
  }
  bool on_null(error_code&) {
    st.push_null();
    return true;
  }
  bool on_comment_part(string_view, error_code&) { return true; }
  bool on_comment(string_view, error_code&) { return true; }
};

// ---- Writing ---------------------------------------------------------------------------------

value Number(double d) {
  if (std::isfinite(d)) return value(d);
  return value(nullptr);
}

value ToValue(const std::string& s) { return value(s); }
value ToValue(bool b) { return value(b); }
value ToValue(double d) { return Number(d); }

template <class Int>
requires std::is_integral_v<Int> value ToValue(Int i) { return value(i); }

template <class Enum>
requires std::is_enum_v<Enum> value ToValue(Enum e) {
  return value(static_cast<std::underlying_type_t<Enum>>(e));
}

template <class T>
requires std::is_class_v<T> value ToValue(const T& v) { return boost::json::value_from(v); }

template <class T>
value ToValue(const std::vector<T>& v) {
  array a;
  a.reserve(v.size());
  for (const auto& e : v) a.push_back(ToValue(e));
  return a;
}

// The members of one struct written into one JSON object, in the order Describe lists them.
class Members {
 public:
  explicit Members(object& out) : out_(out) {}

  template <class T>
  void operator()(std::string_view name, const T& v) {
    out_.emplace(name, ToValue(v));
  }
  void Labels(std::string_view name, const bitfusion::Labels& labels) {
    object o;
    o.reserve(labels.size());
    for (const auto& [key, text] : labels) o.emplace(key, text);
    out_.emplace(name, std::move(o));
  }
  // cereal's shape for a map that is not a label set: [{"key": k, "value": v}, ...].
  void Pairs(std::string_view name, const std::map<std::string, std::string>& map) {
    array a;
    a.reserve(map.size());
    for (const auto& [key, text] : map) a.push_back(object{{"key", key}, {"value", text}});
    out_.emplace(name, std::move(a));
  }
  void SampleValue(std::string_view name, double v) {
    out_.emplace(name, Number(v));
    // Right after the value, where a reader looks for it.
    if (!std::isfinite(v)) out_.emplace("value_text", NonFiniteText(v));
  }
  void ValueColumn(std::string_view name, const std::vector<double>& values) {
    array numbers;
    numbers.reserve(values.size());
    bool all_finite = true;
    for (const double d : values) {
      numbers.push_back(Number(d));
      all_finite = all_finite && std::isfinite(d);
    }
    out_.emplace(name, std::move(numbers));
    if (all_finite) return;
    array texts;
    texts.reserve(values.size());
    for (const double d : values) {
      texts.push_back(std::isfinite(d) ? value(nullptr) : value(NonFiniteText(d)));
    }
    out_.emplace("value_text", std::move(texts));
  }

 private:
  object& out_;
};

// ---- Reading ---------------------------------------------------------------------------------

const char* KindName(const value& v) {
  switch (v.kind()) {
    case boost::json::kind::null: return "null";
    case boost::json::kind::bool_: return "a boolean";
    case boost::json::kind::int64:
    case boost::json::kind::uint64: return "an integer";
    case boost::json::kind::double_: return "a number with a fraction";
    case boost::json::kind::string: return "a string";
    case boost::json::kind::array: return "an array";
    case boost::json::kind::object: return "an object";
  }
  return "something else";
}

[[noreturn]] void Expected(const char* what, const value& got) {
  throw JsonShapeError("", std::string("expected ") + what + ", got " + KindName(got));
}

void Read(const value& in, std::string& out) {
  const auto* s = in.if_string();
  if (s == nullptr) Expected("a string", in);
  out.assign(s->data(), s->size());
}

void Read(const value& in, bool& out) {
  const auto* b = in.if_bool();
  if (b == nullptr) Expected("true or false", in);
  out = *b;
}

template <class Int>
requires std::is_integral_v<Int>
void Read(const value& in, Int& out) {
  using Limits = std::numeric_limits<Int>;
  if (const auto* i = in.if_int64()) {
    if (*i >= static_cast<std::int64_t>(Limits::min()) &&
        (*i < 0 || static_cast<std::uint64_t>(*i) <= static_cast<std::uint64_t>(Limits::max()))) {
      out = static_cast<Int>(*i);
      return;
    }
  } else if (const auto* u = in.if_uint64()) {
    if (*u <= static_cast<std::uint64_t>(Limits::max())) {
      out = static_cast<Int>(*u);
      return;
    }
  } else {
    Expected("an integer", in);
  }
  throw JsonShapeError("", "integer " + boost::json::serialize(in) + " is out of range [" +
                               std::to_string(Limits::min()) + ", " +
                               std::to_string(Limits::max()) + "]");
}

// A number; null is a value that was not finite.
void Read(const value& in, double& out) {
  if (in.is_null()) {
    out = std::numeric_limits<double>::quiet_NaN();
  } else if (const auto* d = in.if_double()) {
    out = *d;
  } else if (const auto* i = in.if_int64()) {
    out = static_cast<double>(*i);
  } else if (const auto* u = in.if_uint64()) {
    out = static_cast<double>(*u);
  } else {
    Expected("a number (or null)", in);
  }
}

template <class Enum>
requires std::is_enum_v<Enum>
void Read(const value& in, Enum& out) {
  std::underlying_type_t<Enum> number{};
  Read(in, number);
  out = static_cast<Enum>(number);
}

template <class T>
requires std::is_class_v<T>
void Read(const value& in, T& out) { out = boost::json::value_to<T>(in); }

template <class T>
void Read(const value& in, std::vector<T>& out) {
  const auto* a = in.if_array();
  if (a == nullptr) Expected("an array", in);
  out.clear();
  out.resize(a->size());
  for (std::size_t i = 0; i < a->size(); ++i) {
    try {
      Read((*a)[i], out[i]);
    } catch (const JsonShapeError& e) {
      throw e.Within("[" + std::to_string(i) + "]");
    }
  }
}

void ReadLabels(const value& in, Labels& out) {
  const auto* o = in.if_object();
  if (o == nullptr) Expected("an object of strings", in);
  out.clear();
  for (const auto& member : *o) {
    const std::string key(member.key().data(), member.key().size());
    try {
      Read(member.value(), out[key]);
    } catch (const JsonShapeError& e) {
      throw e.Within(key);
    }
  }
}

void ReadPairs(const value& in, std::map<std::string, std::string>& out) {
  const auto* a = in.if_array();
  if (a == nullptr) Expected("an array of {\"key\", \"value\"} objects", in);
  out.clear();
  for (std::size_t i = 0; i < a->size(); ++i) {
    const auto* pair = (*a)[i].if_object();
    try {
      if (pair == nullptr) Expected("an object {\"key\", \"value\"}", (*a)[i]);
      std::string key;
      std::string text;
      for (const auto& member : *pair) {
        try {
          if (member.key() == "key") {
            Read(member.value(), key);
          } else if (member.key() == "value") {
            Read(member.value(), text);
          } else {
            throw JsonShapeError("", "unknown field (expected only \"key\" and \"value\")");
          }
        } catch (const JsonShapeError& e) {
          throw e.Within(std::string(member.key()));
        }
      }
      out[std::move(key)] = std::move(text);
    } catch (const JsonShapeError& e) {
      throw e.Within("[" + std::to_string(i) + "]");
    }
  }
}

double NonFiniteFromText(const value& text) {
  const auto* s = text.if_string();
  if (s != nullptr) {
    if (*s == "NaN") return std::numeric_limits<double>::quiet_NaN();
    if (*s == "Infinity") return std::numeric_limits<double>::infinity();
    if (*s == "-Infinity") return -std::numeric_limits<double>::infinity();
  }
  throw JsonShapeError("", std::string("expected \"NaN\", \"Infinity\" or \"-Infinity\", got ") +
                               boost::json::serialize(text));
}

// The members of one JSON object read into one struct: each is looked up by name, an error in
// it is reported under its name, and Done() refuses members the struct does not have.
class Fields {
 public:
  Fields(const value& in, const char* type) : type_(type) {
    object_ = in.if_object();
    if (object_ == nullptr) {
      throw JsonShapeError("",
                           std::string("expected an object (") + type + "), got " + KindName(in));
    }
  }

  template <class T>
  void operator()(std::string_view name, T& out) {
    Each(name, [&](const value& v) { Read(v, out); });
  }
  void Labels(std::string_view name, bitfusion::Labels& out) {
    Each(name, [&](const value& v) { ReadLabels(v, out); });
  }
  void Pairs(std::string_view name, std::map<std::string, std::string>& out) {
    Each(name, [&](const value& v) { ReadPairs(v, out); });
  }
  // A null value is one that was not finite; "value_text" says which.
  void SampleValue(std::string_view name, double& out) {
    (*this)(name, out);
    const value* text = Take("value_text");
    const value* number = object_->if_contains(name);
    if (text == nullptr || (number != nullptr && !number->is_null())) return;
    try {
      out = NonFiniteFromText(*text);
    } catch (const JsonShapeError& e) {
      throw e.Within("value_text");
    }
  }
  void ValueColumn(std::string_view name, std::vector<double>& out) {
    (*this)(name, out);
    const value* texts = Take("value_text");
    if (texts == nullptr) return;
    try {
      const auto* a = texts->if_array();
      if (a == nullptr || a->size() != out.size()) {
        throw JsonShapeError("", "expected an array as long as \"" + std::string(name) + "\" (" +
                                     std::to_string(out.size()) + ")");
      }
      const array& numbers = object_->at(name).get_array();
      for (std::size_t i = 0; i < a->size(); ++i) {
        if (!numbers[i].is_null() || (*a)[i].is_null()) continue;
        try {
          out[i] = NonFiniteFromText((*a)[i]);
        } catch (const JsonShapeError& e) {
          throw e.Within("[" + std::to_string(i) + "]");
        }
      }
    } catch (const JsonShapeError& e) {
      throw e.Within("value_text");
    }
  }

  void Done() const {
    for (const auto& member : *object_) {
      if (!Known(member.key())) {
        throw JsonShapeError(std::string(member.key()),
                             std::string("unknown field (a ") + type_ + " has no such member)");
      }
    }
  }

 private:
  template <class F>
  void Each(std::string_view name, F&& read) {
    names_.push_back(name);
    const value* v = object_->if_contains(name);
    if (v == nullptr) return;  // missing: the default stays
    try {
      read(*v);
    } catch (const JsonShapeError& e) {
      throw e.Within(name);
    }
  }
  const value* Take(std::string_view name) {
    names_.push_back(name);
    return object_->if_contains(name);
  }
  bool Known(boost::json::string_view key) const {
    for (const auto& name : names_) {
      if (name == std::string_view(key.data(), key.size())) return true;
    }
    return false;
  }

  const object* object_ = nullptr;
  const char* type_;
  std::vector<std::string_view> names_;
};

// ---- The shape -------------------------------------------------------------------------------
//
// One list of members per type, in the order they are written (cereal's order, which stored
// records and tools have); the same list reads them. `f` is Members when writing, Fields when
// reading; `v` is const when writing.

template <class V, class T>
concept Is = std::same_as<std::remove_const_t<V>, T>;

template <class F, Is<Sample> V>
void Describe(F& f, V& v) {
  f("metric", v.metric);
  f.SampleValue("value", v.value);
  f("unit", v.unit);
  f.Labels("metadata", v.metadata);
  f("timestamp_ns", v.timestamp_ns);
  f("monotonic_ns", v.monotonic_ns);
}

// Series::counter is not stored (sample.h).
template <class F, Is<Series> V>
void Describe(F& f, V& v) {
  f("metric", v.metric);
  f("unit", v.unit);
  f.Labels("labels", v.labels);
}

template <class F, Is<SampleBatch> V>
void Describe(F& f, V& v) {
  f.Labels("labels", v.labels);
  f("series", v.series);
  f("series_index", v.series_index);
  f("timestamp_ns", v.timestamp_ns);
  f("monotonic_ns", v.monotonic_ns);
  f.ValueColumn("value", v.value);
}

template <class F, Is<CacheInfo> V>
void Describe(F& f, V& v) {
  f("level", v.level);
  f("type", v.type);
  f("size_bytes", v.size_bytes);
  f("line_bytes", v.line_bytes);
  f("instances", v.instances);
}

template <class F, Is<CpuInfo> V>
void Describe(F& f, V& v) {
  f("vendor", v.vendor);
  f("model_name", v.model_name);
  f("architecture", v.architecture);
  f("sockets", v.sockets);
  f("cores", v.cores);
  f("threads", v.threads);
  f("numa_nodes", v.numa_nodes);
  f("max_mhz", v.max_mhz);
  f("caches", v.caches);
  f("flags", v.flags);
}

template <class F, Is<AcceleratorInfo> V>
void Describe(F& f, V& v) {
  f("kind", v.kind);
  f("vendor", v.vendor);
  f("vendor_id", v.vendor_id);
  f("device_id", v.device_id);
  f("class_code", v.class_code);
  f("pci_address", v.pci_address);
  f("driver", v.driver);
  f("model", v.model);
  f("numa_node", v.numa_node);
  f("count", v.count);
}

template <class F, Is<SshEndpoint> V>
void Describe(F& f, V& v) {
  f("host", v.host);
  f("port", v.port);
  f("user", v.user);
  f("key_name", v.key_name);
}

template <class F, Is<MachineInfo> V>
void Describe(F& f, V& v) {
  f("id", v.id);
  f("provider", v.provider);
  f("hostname", v.hostname);
  f("address", v.address);
  f("type", v.type);
  f("state", v.state);
  f("cpu", v.cpu);
  f("memory_bytes", v.memory_bytes);
  f("kernel", v.kernel);
  f("os", v.os);
  f("accelerators", v.accelerators);
  f.Labels("labels", v.labels);
  f("zone", v.zone);
  f("spot", v.spot);
  f("ssh", v.ssh);
  f("created_ns", v.created_ns);
  f("running_ns", v.running_ns);
  f("ssh_ready_ns", v.ssh_ready_ns);
  f("ready_ns", v.ready_ns);
}

template <class F, Is<Mount> V>
void Describe(F& f, V& v) {
  f("type", v.type);
  f("source", v.source);
  f("target", v.target);
  f("read_only", v.read_only);
  f("tmpfs_bytes", v.tmpfs_bytes);
}

template <class F, Is<DeviceMapping> V>
void Describe(F& f, V& v) {
  f("path_on_host", v.path_on_host);
  f("path_in_container", v.path_in_container);
  f("permissions", v.permissions);
}

template <class F, Is<DeviceRequestEntry> V>
void Describe(F& f, V& v) {
  f("driver", v.driver);
  f("count", v.count);
  f("device_ids", v.device_ids);
  f("capabilities", v.capabilities);
  f.Pairs("options", v.options);
}

template <class F, Is<HealthCheck> V>
void Describe(F& f, V& v) {
  f("command", v.command);
  f("interval_ns", v.interval_ns);
  f("timeout_ns", v.timeout_ns);
  f("start_period_ns", v.start_period_ns);
  f("retries", v.retries);
}

template <class F, Is<ContainerSpec> V>
void Describe(F& f, V& v) {
  f("name", v.name);
  f("image", v.image);
  f("entrypoint", v.entrypoint);
  f("command", v.command);
  f.Pairs("env", v.env);
  f("working_dir", v.working_dir);
  f("user", v.user);
  f("mounts", v.mounts);
  f("devices", v.devices);
  f("device_requests", v.device_requests);
  f("cdi_devices", v.cdi_devices);
  f("device_cgroup_rules", v.device_cgroup_rules);
  f("cpuset", v.cpuset);
  f("cpus", v.cpus);
  f("memory_bytes", v.memory_bytes);
  f("shm_bytes", v.shm_bytes);
  f("network_mode", v.network_mode);
  f.Labels("labels", v.labels);
  f("timeout_ns", v.timeout_ns);
  f("health_check", v.health_check);
}

template <class F, Is<ResourceUsage> V>
void Describe(F& f, V& v) {
  f("user_cpu_ns", v.user_cpu_ns);
  f("system_cpu_ns", v.system_cpu_ns);
  f("max_rss_bytes", v.max_rss_bytes);
  f("minor_faults", v.minor_faults);
  f("major_faults", v.major_faults);
  f("voluntary_switches", v.voluntary_switches);
  f("involuntary_switches", v.involuntary_switches);
  f("read_bytes", v.read_bytes);
  f("write_bytes", v.write_bytes);
}

template <class F, Is<ExitStatus> V>
void Describe(F& f, V& v) {
  f("exit_code", v.exit_code);
  f("signal", v.signal);
  f("timed_out", v.timed_out);
  f("oom_killed", v.oom_killed);
  f("start_ns", v.start_ns);
  f("end_ns", v.end_ns);
  f("wall_time_ns", v.wall_time_ns);
  f("usage", v.usage);
}

template <class F, Is<ObserverOverhead> V>
void Describe(F& f, V& v) {
  f("cpu_ns", v.cpu_ns);
  f("samples", v.samples);
  f("samples_dropped", v.samples_dropped);
  f("interval_ns", v.interval_ns);
}

template <class F, Is<RunRecord> V>
void Describe(F& f, V& v) {
  f("run_id", v.run_id);
  f("plan", v.plan);
  f("plan_run_id", v.plan_run_id);
  f("benchmark", v.benchmark);
  f("repetition", v.repetition);
  f("warmup", v.warmup);
  f("runner", v.runner);
  f("command", v.command);
  f("image", v.image);
  f("image_digest", v.image_digest);
  f("machine", v.machine);
  f("status", v.status);
  f("error", v.error);
  f("exit", v.exit);
  f("results", v.results);
  f("overhead", v.overhead);
  f.Labels("labels", v.labels);
}

template <class F, Is<Device> V>
void Describe(F& f, V& v) {
  f("id", v.id);
  f("kind", v.kind);
  f("vendor", v.vendor);
  f("vendor_id", v.vendor_id);
  f("device_id", v.device_id);
  f("model", v.model);
  f("pci_address", v.pci_address);
  f("numa_node", v.numa_node);
  f("index", v.index);
  f("memory_bytes", v.memory_bytes);
  f("driver", v.driver);
  f("device_nodes", v.device_nodes);
  f.Labels("properties", v.properties);
}

template <class F, Is<Event> V>
void Describe(F& f, V& v) {
  f("type", v.type);
  f("source", v.source);
  f("subject", v.subject);
  f("action", v.action);
  f.Labels("attributes", v.attributes);
  f("time_ns", v.time_ns);
}

// What a type's members must satisfy together, checked after reading.
template <class T>
void Validate(const T&) {}

void Validate(const SampleBatch& v) {
  const std::size_t n = v.value.size();
  const auto check = [n](const char* name, std::size_t size) {
    if (size != n) {
      throw JsonShapeError(name, std::to_string(size) + " entries where \"value\" has " +
                                     std::to_string(n) + " (the columns are parallel)");
    }
  };
  check("series_index", v.series_index.size());
  check("timestamp_ns", v.timestamp_ns.size());
  check("monotonic_ns", v.monotonic_ns.size());
}

template <class T>
void WriteObject(value& out, const T& v) {
  Members members(out.emplace_object());
  Describe(members, v);
}

template <class T>
T ReadObject(const value& in, const char* type) {
  T v;
  Fields fields(in, type);
  Describe(fields, v);
  fields.Done();
  Validate(v);
  return v;
}

template <class T>
Status Decode(const value& tree, T& out) {
  try {
    out = boost::json::value_to<T>(tree);
    return Status::OK();
  } catch (const JsonShapeError& e) {
    return InvalidArgumentError("malformed JSON record: " +
                                (e.path().empty() ? e.problem() : e.path() + ": " + e.problem()));
  } catch (const std::exception& e) {
    // Allocation failures, a value_stack limit: nothing the input's shape explains.
    return InvalidArgumentError(std::string("malformed JSON record: ") + e.what());
  }
}

}  // namespace

Result<value> ParseJsonExactly(std::string_view text) {
  boost::json::basic_parser<ExactHandler> parser(boost::json::parse_options{});
  parser.handler().st.reset();
  boost::json::error_code ec;
  const std::size_t n = parser.write_some(false, text.data(), text.size(), ec);
  if (!ec && n < text.size()) ec = boost::json::error::extra_data;
  if (ec) {
    return InvalidArgumentError("malformed JSON record: " + ec.message() + " at byte " +
                                std::to_string(n));
  }
  return parser.handler().st.release();
}

#define BITFUSION_DEFINE_DECODE(T) \
  Status FromJsonValue(const value& tree, T& out) { return Decode(tree, out); }
BITFUSION_DEFINE_DECODE(Sample)
BITFUSION_DEFINE_DECODE(SampleBatch)
BITFUSION_DEFINE_DECODE(RunRecord)
BITFUSION_DEFINE_DECODE(MachineInfo)
BITFUSION_DEFINE_DECODE(ContainerSpec)
BITFUSION_DEFINE_DECODE(Device)
BITFUSION_DEFINE_DECODE(Event)
#undef BITFUSION_DEFINE_DECODE

}  // namespace internal

#define BITFUSION_DEFINE_JSON_CONVERSIONS(T)                                                 \
  void tag_invoke(const boost::json::value_from_tag&, boost::json::value& out, const T& v) { \
    internal::WriteObject(out, v);                                                           \
  }                                                                                          \
  T tag_invoke(const boost::json::value_to_tag<T>&, const boost::json::value& in) {          \
    return internal::ReadObject<T>(in, #T);                                                  \
  }
BITFUSION_DEFINE_JSON_CONVERSIONS(Sample)
BITFUSION_DEFINE_JSON_CONVERSIONS(Series)
BITFUSION_DEFINE_JSON_CONVERSIONS(SampleBatch)
BITFUSION_DEFINE_JSON_CONVERSIONS(CacheInfo)
BITFUSION_DEFINE_JSON_CONVERSIONS(CpuInfo)
BITFUSION_DEFINE_JSON_CONVERSIONS(AcceleratorInfo)
BITFUSION_DEFINE_JSON_CONVERSIONS(SshEndpoint)
BITFUSION_DEFINE_JSON_CONVERSIONS(MachineInfo)
BITFUSION_DEFINE_JSON_CONVERSIONS(Mount)
BITFUSION_DEFINE_JSON_CONVERSIONS(DeviceMapping)
BITFUSION_DEFINE_JSON_CONVERSIONS(DeviceRequestEntry)
BITFUSION_DEFINE_JSON_CONVERSIONS(HealthCheck)
BITFUSION_DEFINE_JSON_CONVERSIONS(ContainerSpec)
BITFUSION_DEFINE_JSON_CONVERSIONS(ResourceUsage)
BITFUSION_DEFINE_JSON_CONVERSIONS(ExitStatus)
BITFUSION_DEFINE_JSON_CONVERSIONS(ObserverOverhead)
BITFUSION_DEFINE_JSON_CONVERSIONS(RunRecord)
BITFUSION_DEFINE_JSON_CONVERSIONS(Device)
BITFUSION_DEFINE_JSON_CONVERSIONS(Event)
#undef BITFUSION_DEFINE_JSON_CONVERSIONS

}  // namespace bitfusion
