#include "bitfusion/gbench_import.h"

#include <boost/json.hpp>

#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <optional>
#include <set>
#include <string>

#include "core/json_numbers.h"
#include "core/sha256.h"

namespace bitfusion {
namespace {

namespace json = boost::json;

bool IsNumber(const json::value& v) {
  return v.is_string() && !v.get_string().empty() && v.get_string()[0] == '#';
}

std::optional<double> Number(const json::value* v) {
  if (v == nullptr || !IsNumber(*v)) return std::nullopt;
  const json::string& s = v->get_string();
  double out = 0;
  auto [p, ec] = std::from_chars(s.data() + 1, s.data() + s.size(), out);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return out;
}

std::string Text(const json::value* v) {
  if (v == nullptr) return "";
  if (v->is_string()) {
    std::string s(v->get_string());
    return IsNumber(*v) ? s.substr(1) : s;
  }
  if (v->is_bool()) return v->get_bool() ? "true" : "false";
  return "";
}

// "2024-01-02T03:04:05+01:00" (what the library writes) as ns since the epoch; 0 if unreadable
// or out of the years nanoseconds in an int64 hold.
// Field widths are bounded, so no field can overflow an int, and the date must exist.
std::int64_t ParseDate(const std::string& text) {
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0, oh = 0, om = 0;
  char sign = '+';
  const int n = std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%c%2d:%2d", &y, &mo, &d, &h, &mi,
                            &s, &sign, &oh, &om);
  if (n < 6 || h > 24 || mi > 59 || s > 60 || h < 0 || mi < 0 || s < 0) return 0;
  namespace c = std::chrono;
  if (mo < 1 || d < 1) return 0;
  const c::year_month_day ymd{c::year(y), c::month(static_cast<unsigned>(mo)),
                              c::day(static_cast<unsigned>(d))};
  if (!ymd.ok()) return 0;
  std::int64_t secs =
      c::sys_days(ymd).time_since_epoch().count() * std::int64_t{86400} + h * 3600 + mi * 60 + s;
  if (n == 9 && (sign == '+' || sign == '-')) {
    secs -= (sign == '+' ? 1 : -1) * (oh * 3600 + om * 60);
  }
  // Nanoseconds in an int64 reach from 1677 to 2262; a year past them is unreadable too.
  constexpr std::int64_t kMaxSeconds = std::numeric_limits<std::int64_t>::max() / 1'000'000'000;
  if (secs > kMaxSeconds || secs < -kMaxSeconds) return 0;
  return secs * 1'000'000'000;
}

// A count of the context (CPUs, a cache's level, size and sharing) as an integer: absent is 0,
// but a value that is not a whole number from 0 to `max` (1e300, -1, 2.5, a NaN) is refused,
// since converting it would overflow or be undefined.
Result<std::int64_t> Count(const json::object& o, const char* field, const std::string& where,
                           std::int64_t max) {
  const json::value* v = o.if_contains(field);
  if (v == nullptr) return 0;
  const std::optional<double> d = Number(v);
  // max + 1.0 is exact for the limits used (2^31 and 2^62 are powers of two).
  if (!d || !(*d >= 0) || !(*d < static_cast<double>(max) + 1.0) || std::floor(*d) != *d) {
    return InvalidArgumentError("not usable Google Benchmark JSON: " + where + field + " is " +
                                (IsNumber(*v) ? Text(v) : std::string("not a number")) +
                                ", not a whole number from 0 to " + std::to_string(max));
  }
  return static_cast<std::int64_t>(*d);
}

// Fields of a benchmark entry that are not user counters.
const std::set<std::string, std::less<>> kEntryFields = {"name",
                                                         "family_index",
                                                         "per_family_instance_index",
                                                         "run_name",
                                                         "run_type",
                                                         "repetitions",
                                                         "repetition_index",
                                                         "threads",
                                                         "iterations",
                                                         "real_time",
                                                         "cpu_time",
                                                         "time_unit",
                                                         "bytes_per_second",
                                                         "items_per_second",
                                                         "label",
                                                         "aggregate_name",
                                                         "aggregate_unit",
                                                         "error_occurred",
                                                         "error_message",
                                                         "big_o",
                                                         "rms",
                                                         "complexity"};

}  // namespace

Result<GbenchImport> ImportGoogleBenchmarkJson(std::string_view text,
                                               const GbenchImportOptions& options) {
  json::error_code ec;
  // Boost 1.81 parses doubles fast, not exactly; the numbers of a benchmark are its results, so
  // each number is kept as its own text and read with from_chars.
  const json::value doc = json::parse(internal::JsonNumbersAsText(text), ec);
  if (ec) {
    return InvalidArgumentError("not Google Benchmark JSON: it does not parse (" + ec.message() +
                                "); write it with --benchmark_format=json or "
                                "--benchmark_out=FILE");
  }
  const json::object* root = doc.if_object();
  const json::value* context_value = root ? root->if_contains("context") : nullptr;
  const json::value* benchmarks_value = root ? root->if_contains("benchmarks") : nullptr;
  if (context_value == nullptr || !context_value->is_object() || benchmarks_value == nullptr ||
      !benchmarks_value->is_array()) {
    return InvalidArgumentError(
        "not Google Benchmark JSON: it needs an object with \"context\" and a \"benchmarks\" "
        "array, as --benchmark_format=json writes");
  }
  const json::object& context = context_value->get_object();
  GbenchImport out;
  RunRecord& run = out.run;
  run.run_id = options.run_id.empty() ? internal::Sha256Hex(text).substr(0, 32) : options.run_id;
  const std::string executable = Text(context.if_contains("executable"));
  const std::string program =
      executable.empty() ? "gbench" : std::filesystem::path(executable).filename().string();
  run.benchmark = program;
  run.runner = "import://gbench";
  if (!executable.empty()) run.command = {executable};
  run.exit.start_ns = ParseDate(Text(context.if_contains("date")));
  run.exit.end_ns = run.exit.start_ns;
  run.machine.hostname = Text(context.if_contains("host_name"));
  constexpr std::int64_t kMaxInt = std::numeric_limits<int>::max();
  BITFUSION_ASSIGN_OR_RETURN(const std::int64_t num_cpus,
                             Count(context, "num_cpus", "context.", kMaxInt));
  const int cpus = static_cast<int>(num_cpus);
  run.machine.cpu.threads = cpus;
  run.machine.cpu.max_mhz = Number(context.if_contains("mhz_per_cpu")).value_or(0);
  if (const auto* caches = context.if_contains("caches"); caches && caches->is_array()) {
    for (std::size_t i = 0; i < caches->get_array().size(); ++i) {
      const json::value& c = caches->get_array()[i];
      if (!c.is_object()) continue;
      const json::object& o = c.get_object();
      const std::string where = "context.caches[" + std::to_string(i) + "].";
      CacheInfo cache;
      cache.type = Text(o.if_contains("type"));
      BITFUSION_ASSIGN_OR_RETURN(const std::int64_t level, Count(o, "level", where, kMaxInt));
      BITFUSION_ASSIGN_OR_RETURN(const std::int64_t size,
                                 Count(o, "size", where, std::int64_t{1} << 62));
      BITFUSION_ASSIGN_OR_RETURN(const std::int64_t sharing_count,
                                 Count(o, "num_sharing", where, kMaxInt));
      cache.level = static_cast<int>(level);
      cache.size_bytes = static_cast<std::uint64_t>(size);
      const int sharing = static_cast<int>(sharing_count);
      cache.instances = sharing > 0 && cpus > 0 ? cpus / sharing : 0;
      run.machine.cpu.caches.push_back(cache);
    }
  }
  run.labels = options.labels;
  for (const char* key : {"library_build_type", "cpu_scaling_enabled", "library_version"}) {
    const std::string v = Text(context.if_contains(key));
    if (!v.empty())
      run.labels[key == std::string("library_version") ? "gbench_library_version" : key] = v;
  }
  if (const auto* load = context.if_contains("load_avg"); load && load->is_array()) {
    const char* names[] = {"load_avg_1m", "load_avg_5m", "load_avg_15m"};
    for (std::size_t i = 0; i < load->get_array().size() && i < 3; ++i) {
      run.labels[names[i]] = Text(&load->get_array()[i]);
    }
  }

  SampleBatch& batch = out.samples;
  batch.labels = options.labels;
  batch.labels["run"] = run.run_id;
  batch.labels["program"] = program;
  const std::int64_t at = run.exit.start_ns;
  std::string errors;
  for (const json::value& entry_value : benchmarks_value->get_array()) {
    if (!entry_value.is_object()) continue;
    const json::object& e = entry_value.get_object();
    Labels labels = {{"benchmark", Text(e.if_contains("name"))},
                     {"run_name", Text(e.if_contains("run_name"))},
                     {"run_type", Text(e.if_contains("run_type"))},
                     {"threads", Text(e.if_contains("threads"))},
                     {"family_index", Text(e.if_contains("family_index"))}};
    for (const char* key : {"repetition_index", "aggregate_name", "label"}) {
      const std::string v = Text(e.if_contains(key));
      if (!v.empty()) labels[key] = v;
    }
    for (auto it = labels.begin(); it != labels.end();) {
      it = it->second.empty() ? labels.erase(it) : std::next(it);
    }
    auto add = [&](const std::string& metric, const std::string& unit, double value) {
      batch.Append(batch.AddSeries({metric, unit, labels}), at, 0, value);
    };
    if (Text(e.if_contains("error_occurred")) == "true") {
      const std::string message = Text(e.if_contains("error_message"));
      labels["error_message"] = message;
      add("gbench.error", "1", 1);
      errors += (errors.empty() ? "" : "; ") + labels["benchmark"] + ": " + message;
      continue;
    }
    const std::string time_unit = Text(e.if_contains("time_unit"));
    const bool percentage = Text(e.if_contains("aggregate_unit")) == "percentage";
    if (auto v = Number(e.if_contains("real_time"))) {
      add("gbench.real_time", percentage ? "%" : time_unit, *v);
    }
    if (auto v = Number(e.if_contains("cpu_time"))) {
      add("gbench.cpu_time", percentage ? "%" : time_unit, *v);
    }
    if (auto v = Number(e.if_contains("iterations"))) add("gbench.iterations", "1", *v);
    if (auto v = Number(e.if_contains("bytes_per_second"))) {
      add("gbench.bytes_per_second", percentage ? "%" : "B/s", *v);
    }
    if (auto v = Number(e.if_contains("items_per_second"))) {
      add("gbench.items_per_second", percentage ? "%" : "1/s", *v);
    }
    for (const auto& member : e) {
      const std::string_view key(member.key().data(), member.key().size());
      if (kEntryFields.count(key) != 0) continue;
      if (auto v = Number(&member.value())) {
        add("gbench.counter." + std::string(key), percentage ? "%" : "1", *v);
      }
    }
  }
  if (!errors.empty()) {
    run.status = kRunFailed;
    run.error = errors;
  }
  for (std::size_t i = 0; i < batch.size(); ++i) run.results.push_back(batch.At(i));
  return out;
}

}  // namespace bitfusion
