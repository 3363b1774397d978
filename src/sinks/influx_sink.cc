#include "sinks/influx_sink.h"

#include <cmath>
#include <utility>

#include "bitfusion/registry.h"
#include "core/percent_encode.h"
#include "core/sha256.h"
#include "sinks/record_json.h"

namespace bitfusion {

namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD
constexpr std::size_t kMaxNameBytes = 1024;
constexpr std::size_t kCutNameBytes = 1000;

}  // namespace

Result<InfluxSinkOptions> InfluxSinkOptions::FromUri(const Uri& uri) {
  BITFUSION_RETURN_IF_ERROR(
      uri.CheckQueryKeys(internal::HttpSinkQueryKeys({"rp", "create_db", "request_bytes"})));
  InfluxSinkOptions options;
  options.redacted_uri = internal::RedactedUri(uri);
  BITFUSION_ASSIGN_OR_RETURN(options.http,
                             internal::ReadHttpSinkUri(uri, "influx", 8086, "InfluxDB"));
  options.database = uri.path.empty() ? "" : uri.path.substr(1);
  if (options.database.empty() || options.database.find('/') != std::string::npos) {
    return InvalidArgumentError("sink URI " + options.redacted_uri +
                                " names no database; write influx://HOST:PORT/DATABASE");
  }
  options.retention_policy = uri.Query("rp").value_or("");
  BITFUSION_ASSIGN_OR_RETURN(options.create_database,
                             uri.QueryBool("create_db", options.create_database));
  BITFUSION_ASSIGN_OR_RETURN(
      const std::int64_t request_bytes,
      uri.QueryInt("request_bytes", static_cast<std::int64_t>(options.request_bytes)));
  if (request_bytes < 1024) {
    return InvalidArgumentError("option request_bytes in " + options.redacted_uri +
                                " must be at least 1024");
  }
  options.request_bytes = static_cast<std::size_t>(request_bytes);
  BITFUSION_ASSIGN_OR_RETURN(options.sink, ResultSinkOptions::FromUri(uri));
  return options;
}

namespace internal {

void InfluxEncoder::AppendName(std::string& out, std::string_view text, bool equals) {
  std::string valid = ValidUtf8(text);
  if (valid.size() > kMaxNameBytes) {
    std::size_t cut = kCutNameBytes;
    // Back off to the start of a UTF-8 sequence.
    while (cut > 0 && (static_cast<unsigned char>(valid[cut]) & 0xC0) == 0x80) --cut;
    const std::string digest = Sha256Hex(text).substr(0, 16);
    valid.resize(cut);
    valid += "~" + digest;
  }
  for (std::size_t i = 0; i < valid.size(); ++i) {
    const char c = valid[i];
    switch (c) {
      case '\n':
      case '\r': out += kReplacement; break;
      case ',':
      case ' ':
        out.push_back('\\');
        out.push_back(c);
        break;
      case '=':
        if (equals) out.push_back('\\');
        out.push_back(c);
        break;
      case '\\':
        // A backslash right before the separator that follows would escape it.
        if (i + 1 == valid.size()) {
          out += kReplacement;
        } else {
          out.push_back(c);
        }
        break;
      default: out.push_back(c);
    }
  }
}

void InfluxEncoder::AppendTags(std::string& out, const Labels& labels) {
  for (const auto& [key, value] : labels) {
    if (key.empty() || value.empty()) continue;
    out.push_back(',');
    AppendName(out, key, true);
    out.push_back('=');
    AppendName(out, value, true);
  }
}

void InfluxEncoder::AppendStringField(std::string& out, std::string_view text) {
  out.push_back('"');
  for (const char c : ValidUtf8(text)) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('"');
}

namespace {

// The tags of a point: labels with the reserved keys moved aside, plus `extra` (which wins).
Labels PointTags(const Labels& labels,
                 std::initializer_list<std::pair<const char*, std::string>> extra) {
  Labels tags;
  for (const auto& [key, value] : labels) {
    if (key == "time" || key == "unit") {
      tags["_" + key] = value;
    } else {
      tags[key] = value;
    }
  }
  for (const auto& [key, value] : extra) tags[key] = value;
  return tags;
}

void AppendValueFields(std::string& out, double value, std::int64_t monotonic_ns) {
  if (std::isfinite(value)) {
    out += "value=";
    AppendDouble(out, value);
  } else {
    out += "value_text=\"";
    out += NonFiniteText(value);
    out.push_back('"');
  }
  out += ",monotonic_ns=";
  AppendInt(out, monotonic_ns);
  out.push_back('i');
}

}  // namespace

std::size_t InfluxEncoder::Append(const SampleBatch& batch, std::string& out) {
  const std::size_t series_count = batch.series.size();
  if (prefix_.size() < series_count) prefix_.resize(series_count);
  for (std::size_t s = 0; s < series_count; ++s) {
    const Series& series = batch.series[s];
    std::string& prefix = prefix_[s];
    prefix.clear();
    AppendName(prefix, series.metric.empty() ? "_" : series.metric, false);
    if (series.labels.empty()) {
      AppendTags(prefix, PointTags(batch.labels, {{"unit", series.unit}}));
    } else {
      merged_ = batch.labels;
      for (const auto& [key, value] : series.labels) merged_[key] = value;
      AppendTags(prefix, PointTags(merged_, {{"unit", series.unit}}));
    }
    prefix.push_back(' ');
  }
  const std::size_t n = batch.size();
  for (std::size_t i = 0; i < n; ++i) {
    out += prefix_[batch.series_index[i]];
    AppendValueFields(out, batch.value[i], batch.monotonic_ns[i]);
    out.push_back(' ');
    AppendInt(out, batch.timestamp_ns[i]);
    out.push_back('\n');
  }
  return n;
}

void InfluxEncoder::AppendRun(const RunRecord& record, std::string& out) {
  const ExitStatus& exit = record.exit;
  const std::int64_t at = exit.start_ns != 0 ? exit.start_ns : exit.end_ns;
  out += "bitfusion_run";
  AppendTags(out, {{"run_id", record.run_id},
                   {"benchmark", record.benchmark},
                   {"plan", record.plan},
                   {"plan_run_id", record.plan_run_id}});
  out += " status=";
  AppendStringField(out, record.status);
  out += ",error=";
  AppendStringField(out, record.error);
  out += ",warmup=";
  out += record.warmup ? "true" : "false";
  const std::pair<const char*, std::int64_t> ints[] = {
      {"repetition", record.repetition},
      {"exit_code", exit.exit_code},
      {"signal", exit.signal},
      {"wall_time_ns", exit.wall_time_ns},
      {"start_ns", exit.start_ns},
      {"end_ns", exit.end_ns},
      {"user_cpu_ns", exit.usage.user_cpu_ns},
      {"system_cpu_ns", exit.usage.system_cpu_ns},
      {"max_rss_bytes", exit.usage.max_rss_bytes},
      {"observer_cpu_ns", record.overhead.cpu_ns},
      {"observer_samples", record.overhead.samples},
      {"observer_samples_dropped", record.overhead.samples_dropped},
  };
  for (const auto& [name, v] : ints) {
    out.push_back(',');
    out += name;
    out.push_back('=');
    AppendInt(out, v);
    out.push_back('i');
  }
  out += ",record=";
  AppendStringField(out, RunRecordJson(record, false));
  out.push_back(' ');
  AppendInt(out, at);
  out.push_back('\n');
  for (const Sample& result : record.results) {
    out += "bitfusion_result";
    AppendTags(out, PointTags(result.metadata, {{"run_id", record.run_id},
                                                {"benchmark", record.benchmark},
                                                {"metric", result.metric},
                                                {"unit", result.unit}}));
    out.push_back(' ');
    AppendValueFields(out, result.value, result.monotonic_ns);
    out.push_back(' ');
    AppendInt(out, result.timestamp_ns != 0 ? result.timestamp_ns : exit.end_ns);
    out.push_back('\n');
  }
}

}  // namespace internal

InfluxSink::InfluxSink(const InfluxSinkOptions& options, std::unique_ptr<net::HttpClient> client)
    : ResultSink(options.redacted_uri, options.sink),
      options_(options),
      client_(std::move(client)) {
  write_target_ = "/write?db=" + internal::PercentEncode(options.database) + "&precision=ns";
  if (!options.retention_policy.empty()) {
    write_target_ += "&rp=" + internal::PercentEncode(options.retention_policy);
  }
}

InfluxSink::~InfluxSink() { CloseOnDestroy(); }

Result<std::shared_ptr<InfluxSink>> InfluxSink::Make(const InfluxSinkOptions& options) {
  BITFUSION_ASSIGN_OR_RETURN(auto client, net::HttpClient::Make(options.http.client));
  auto sink = std::shared_ptr<InfluxSink>(new InfluxSink(options, std::move(client)));
  BITFUSION_RETURN_IF_ERROR(sink->OpenSpool());
  return sink;
}

Status InfluxSink::EnsureDatabase() {
  if (database_ready_ || !options_.create_database) return Status::OK();
  std::string name;
  for (const char c : options_.database) {
    if (c == '"' || c == '\\') name.push_back('\\');
    name.push_back(c);
  }
  std::string no_body;
  BITFUSION_ASSIGN_OR_RETURN(
      net::HttpResponse response,
      internal::SendBody(*client_, options_.http, "POST",
                         "/query?q=" + internal::PercentEncode("CREATE DATABASE \"" + name + "\""),
                         "application/x-www-form-urlencoded", no_body));
  if (response.status == 401 || response.status == 403) {
    return PermissionDeniedError("InfluxDB refused CREATE DATABASE for " + options_.redacted_uri +
                                 " (HTTP " + std::to_string(response.status) +
                                 "); check the user and password, or create the database "
                                 "yourself and add create_db=false");
  }
  if (response.status / 100 != 2 || response.body.find("\"error\"") != std::string::npos) {
    return FailedPreconditionError("InfluxDB could not create database \"" + options_.database +
                                   "\" (HTTP " + std::to_string(response.status) +
                                   "): " + response.body.substr(0, 300));
  }
  database_ready_ = true;
  return Status::OK();
}

Status InfluxSink::Post(std::string& lines, std::int64_t points) {
  BITFUSION_ASSIGN_OR_RETURN(net::HttpResponse response,
                             internal::SendBody(*client_, options_.http, "POST", write_target_,
                                                "text/plain; charset=utf-8", lines));
  if (response.status == 204 || response.status == 200) return Status::OK();
  const std::string error = response.Header("x-influxdb-error").value_or(response.body);
  if (response.status == 404) {
    // The database went away (or was never made, with create_db=false): make it and retry.
    database_ready_ = false;
    return UnavailableError("InfluxDB at " + options_.http.client.base_url + ": " + error);
  }
  if (response.status == 401 || response.status == 403) {
    return PermissionDeniedError("InfluxDB refused the write to " + options_.redacted_uri +
                                 " (HTTP " + std::to_string(response.status) +
                                 "); check the user and password: " + error);
  }
  if (response.status == 400) {
    // The points InfluxDB could parse and accept are stored; the rest never will be.
    std::int64_t dropped = points;
    if (const auto at = error.find("dropped="); at != std::string::npos) {
      dropped = std::atoll(error.c_str() + at + 8);
    }
    // "max key length exceeded ... dropped=0" does not count the point it refused.
    if (dropped == 0) dropped = 1;
    RecordDropped(std::min(dropped, points), "InfluxDB: " + error.substr(0, 500));
    return Status::OK();
  }
  return UnavailableError("InfluxDB at " + options_.http.client.base_url + " answered HTTP " +
                          std::to_string(response.status) + ": " + error.substr(0, 300));
}

Status InfluxSink::WriteSamples(const std::vector<SampleBatch>& batches) {
  BITFUSION_RETURN_IF_ERROR(EnsureDatabase());
  internal::InfluxEncoder encoder;
  body_.clear();
  std::int64_t points = 0;
  for (const SampleBatch& batch : batches) {
    points += static_cast<std::int64_t>(encoder.Append(batch, body_));
    if (body_.size() >= options_.request_bytes) {
      // Sending part of a call and failing later is fine: points overwrite themselves.
      BITFUSION_RETURN_IF_ERROR(Post(body_, points));
      body_.clear();
      points = 0;
    }
  }
  if (points > 0) BITFUSION_RETURN_IF_ERROR(Post(body_, points));
  body_.clear();
  return Status::OK();
}

Status InfluxSink::WriteRun(const RunRecord& record) {
  BITFUSION_RETURN_IF_ERROR(EnsureDatabase());
  std::string lines;
  internal::InfluxEncoder().AppendRun(record, lines);
  return Post(lines, 1 + static_cast<std::int64_t>(record.results.size()));
}

BITFUSION_REGISTER(ResultSink, "influx", InfluxSinkOptions, InfluxSink);
BITFUSION_REGISTER(ResultSink, "influx+https", InfluxSinkOptions, InfluxSink);

}  // namespace bitfusion
