#include "sinks/es_sink.h"

#include <openssl/evp.h>

#include <boost/json.hpp>

#include <any>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <utility>

#include "bitfusion/log.h"
#include "bitfusion/registry.h"
#include "core/base64.h"
#include "core/sha256.h"
#include "net/http_client.h"
#include "sinks/record_json.h"

namespace bitfusion {

namespace {

using IndexPer = ElasticsearchSinkOptions::IndexPer;

// Why `name` cannot be an index name, or "" when it can (Elasticsearch's rules).
std::string IndexNameProblem(std::string_view name) {
  if (name.empty()) return "it is empty";
  if (name.size() > 200) return "it is longer than 200 bytes (with suffixes, 255 is the limit)";
  if (name == "." || name == "..") return "it is . or ..";
  if (name.front() == '-' || name.front() == '_' || name.front() == '+') {
    return "it starts with -, _ or +";
  }
  for (const char c : name) {
    if (c >= 'A' && c <= 'Z') return "it is not lower-case";
    if (std::string_view("\\/*?\"<>| ,#:").find(c) != std::string_view::npos) {
      return std::string("it holds '") + c + "'";
    }
  }
  return "";
}

// Whether a bulk answer starts by saying "errors": false (whitespace allowed, as any JSON).
bool NoErrors(std::string_view answer) {
  const std::string_view head = answer.substr(0, 128);
  std::size_t at = head.find("\"errors\"");
  if (at == std::string_view::npos) return false;
  at += 8;
  while (at < head.size() && (head[at] == ' ' || head[at] == ':' || head[at] == '\n')) ++at;
  return head.substr(at, 5) == "false";
}

}  // namespace

Result<ElasticsearchSinkOptions> ElasticsearchSinkOptions::FromUri(const Uri& uri) {
  BITFUSION_RETURN_IF_ERROR(uri.CheckQueryKeys(internal::HttpSinkQueryKeys(
      {"index_per", "api_key", "api_key_file", "template", "request_bytes", "item_attempts"})));
  ElasticsearchSinkOptions options;
  options.redacted_uri = internal::RedactedUri(uri);
  BITFUSION_ASSIGN_OR_RETURN(options.http,
                             internal::ReadHttpSinkUri(uri, "es", 9200, "Elasticsearch"));
  options.index = uri.path.empty() ? "" : uri.path.substr(1);
  if (const std::string why = IndexNameProblem(options.index); !why.empty()) {
    return InvalidArgumentError("sink URI " + options.redacted_uri + " names no usable index (" +
                                why + "); write es://HOST:PORT/INDEX with a lower-case INDEX");
  }
  const std::string per = uri.Query("index_per").value_or("none");
  if (per == "none") {
    options.index_per = IndexPer::kNone;
  } else if (per == "day") {
    options.index_per = IndexPer::kDay;
  } else if (per == "month") {
    options.index_per = IndexPer::kMonth;
  } else if (per == "run") {
    options.index_per = IndexPer::kRun;
  } else {
    return InvalidArgumentError("option index_per=\"" + per + "\" in " + options.redacted_uri +
                                " is not one of none, day, month, run");
  }
  std::string key = uri.Query("api_key").value_or("");
  if (auto file = uri.Query("api_key_file")) {
    BITFUSION_ASSIGN_OR_RETURN(key, internal::ReadSecretFile(*file, "api_key_file", uri));
  } else if (const char* env = std::getenv("BITFUSION_ES_API_KEY");
             key.empty() && options.http.client.user.empty() && env != nullptr) {
    key = env;
  }
  if (!key.empty()) {
    if (!options.http.client.user.empty()) {
      return InvalidArgumentError("sink URI " + options.redacted_uri +
                                  " has both a user and an API key; give one of them");
    }
    // "id:key" as given by the create-API-key answer's id and api_key; else the encoded form.
    options.api_key = key.find(':') != std::string::npos ? internal::Base64(key) : key;
  }
  BITFUSION_ASSIGN_OR_RETURN(options.install_template,
                             uri.QueryBool("template", options.install_template));
  BITFUSION_ASSIGN_OR_RETURN(
      const std::int64_t request_bytes,
      uri.QueryInt("request_bytes", static_cast<std::int64_t>(options.request_bytes)));
  BITFUSION_ASSIGN_OR_RETURN(const std::int64_t attempts,
                             uri.QueryInt("item_attempts", options.item_attempts));
  if (request_bytes < 1024 || attempts < 1) {
    return InvalidArgumentError("options in " + options.redacted_uri +
                                ": request_bytes must be at least 1024, item_attempts at least 1");
  }
  options.request_bytes = static_cast<std::size_t>(request_bytes);
  options.item_attempts = static_cast<int>(attempts);
  BITFUSION_ASSIGN_OR_RETURN(options.sink, ResultSinkOptions::FromUri(uri));
  return options;
}

namespace internal {

namespace {

constexpr std::int64_t kNsPerDay = 86'400'000'000'000;

// Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
void CivilFromDays(std::int64_t z, std::int64_t& y, unsigned& m, unsigned& d) {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  y = static_cast<std::int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp < 10 ? mp + 3 : mp - 9;
  y += m <= 2;
}

void Append2(std::string& out, unsigned v) {
  out.push_back(static_cast<char>('0' + v / 10));
  out.push_back(static_cast<char>('0' + v % 10));
}

std::uint64_t Mix(std::uint64_t x) {
  // splitmix64's finalizer: a bijection, so one series never maps two timestamps to one id.
  std::uint64_t z = x + 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

void AppendHex64(std::string& out, std::uint64_t v) {
  static constexpr char kHex[] = "0123456789abcdef";
  char buf[16];
  for (int i = 15; i >= 0; --i) {
    buf[i] = kHex[v & 0xF];
    v >>= 4;
  }
  out.append(buf, 16);
}

// An index name part made from a label value (it follows "INDEX-", so it never starts the
// name): only a-z, 0-9, '.', '-' and '_' are kept, upper-case ASCII is lowered, and everything
// else becomes '_'. An allowlist, because Elasticsearch also refuses non-ASCII upper case
// (it lower-cases with Locale.ROOT), the name is written into the bulk action unescaped (a
// control character or newline would break the NDJSON), and a cut must not split a UTF-8
// sequence.
std::string IndexPart(std::string_view text) {
  std::string out;
  for (const char c : text) {
    if (c >= 'A' && c <= 'Z') {
      out.push_back(static_cast<char>(c - 'A' + 'a'));
    } else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
               c == '_') {
      out.push_back(c);
    } else {
      out.push_back('_');
    }
  }
  if (out.empty()) out = "none";
  if (out.size() > 50) out = out.substr(0, 34) + Sha256Hex(text).substr(0, 16);
  return out;
}

}  // namespace

EsBulkEncoder::EsBulkEncoder(std::string index, IndexPer index_per)
    : index_(std::move(index)), index_per_(index_per) {}

std::string EsBulkEncoder::FieldName(std::string_view key) {
  std::string out(key);
  for (char& c : out) {
    if (c == '.') c = '_';
  }
  bool blank = true;
  for (const char c : out) blank = blank && std::isspace(static_cast<unsigned char>(c));
  if (blank) out.insert(out.begin(), '_');
  return out;
}

Labels EsBulkEncoder::FieldNames(const Labels& labels) {
  Labels out;
  // Keys that need no change first, so they keep their names when a changed one would clash.
  for (const auto& [key, value] : labels) {
    if (FieldName(key) == key) out.emplace(key, value);
  }
  for (const auto& [key, value] : labels) {
    std::string name = FieldName(key);
    if (name == key) continue;
    while (out.count(name) != 0) name.push_back('_');
    out.emplace(std::move(name), value);
  }
  return out;
}

void EsBulkEncoder::AppendTimestamp(std::string& out, std::int64_t ns) {
  std::int64_t days = ns / kNsPerDay;
  std::int64_t rem = ns % kNsPerDay;
  if (rem < 0) {
    rem += kNsPerDay;
    --days;
  }
  std::int64_t y = 0;
  unsigned m = 0;
  unsigned d = 0;
  CivilFromDays(days, y, m, d);
  if (y >= 0 && y <= 9999) {
    const auto yy = static_cast<unsigned>(y);
    Append2(out, yy / 100);
    Append2(out, yy % 100);
  } else {
    AppendInt(out, y);
  }
  out.push_back('-');
  Append2(out, m);
  out.push_back('-');
  Append2(out, d);
  out.push_back('T');
  const auto secs = static_cast<unsigned>(rem / 1'000'000'000);
  Append2(out, secs / 3600);
  out.push_back(':');
  Append2(out, secs / 60 % 60);
  out.push_back(':');
  Append2(out, secs % 60);
  out.push_back('.');
  auto nanos = static_cast<unsigned>(rem % 1'000'000'000);
  char buf[9];
  for (int i = 8; i >= 0; --i) {
    buf[i] = static_cast<char>('0' + nanos % 10);
    nanos /= 10;
  }
  out.append(buf, 9);
  out.push_back('Z');
}

void EsBulkEncoder::AppendId(std::string& out, std::uint64_t series_hi, std::uint64_t series_lo,
                             std::int64_t ns) {
  const auto t = static_cast<std::uint64_t>(ns);
  AppendHex64(out, series_hi ^ Mix(t));
  AppendHex64(out, series_lo ^ Mix(t ^ 0x5851f42d4c957f2dULL));
}

void EsBulkEncoder::IndexName(const SampleBatch&, const SeriesCode& code, std::int64_t ns,
                              std::string& out) {
  out += index_;
  if (index_per_ == IndexPer::kNone) return;
  out.push_back('-');
  if (index_per_ == IndexPer::kRun) {
    out += code.run_index;
    return;
  }
  std::int64_t day = ns / kNsPerDay;
  if (ns % kNsPerDay < 0) --day;
  if (day != cached_day_) {
    cached_date_.clear();
    AppendTimestamp(cached_date_, day * kNsPerDay);
    cached_date_.resize(10);  // YYYY-MM-DD
    cached_date_[4] = '.';
    cached_date_[7] = '.';
    cached_day_ = day;
  }
  out.append(cached_date_, 0, index_per_ == IndexPer::kDay ? 10 : 7);
}

void EsBulkEncoder::Append(const SampleBatch& batch, std::string& out,
                           std::vector<std::size_t>* offsets) {
  const std::size_t series_count = batch.series.size();
  if (series_.size() < series_count) series_.resize(series_count);
  std::string canonical;
  for (std::size_t s = 0; s < series_count; ++s) {
    const Series& series = batch.series[s];
    merged_ = batch.labels;
    for (const auto& [key, value] : series.labels) merged_[key] = value;
    SeriesCode& code = series_[s];
    code.before_value.assign(R"({"metric":)");
    AppendJsonString(code.before_value, series.metric);
    code.before_value += R"(,"value":)";
    code.after_value.assign(R"(,"unit":)");
    AppendJsonString(code.after_value, series.unit);
    code.after_value += R"(,"metadata":)";
    AppendJsonLabels(code.after_value, FieldNames(merged_));
    code.after_value += R"(,"timestamp":")";
    // The series' identity: its canonical text (as SQLite's series table holds it), hashed.
    canonical.clear();
    AppendJsonString(canonical, series.metric);
    AppendJsonString(canonical, series.unit);
    AppendJsonLabels(canonical, merged_);
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    EVP_Digest(canonical.data(), canonical.size(), digest, &size, EVP_sha256(), nullptr);
    std::memcpy(&code.id_hi, digest, 8);
    std::memcpy(&code.id_lo, digest + 8, 8);
    if (index_per_ == IndexPer::kRun) {
      auto run = merged_.find("run");
      code.run_index = IndexPart(run != merged_.end() ? run->second : "");
    }
  }
  const std::size_t n = batch.size();
  for (std::size_t i = 0; i < n; ++i) {
    if (offsets != nullptr) offsets->push_back(out.size());
    const SeriesCode& code = series_[batch.series_index[i]];
    const std::int64_t ns = batch.timestamp_ns[i];
    out += R"({"index":{"_index":")";
    IndexName(batch, code, ns, out);
    out += R"(","_id":")";
    AppendId(out, code.id_hi, code.id_lo, ns);
    out += "\"}}\n";
    out += code.before_value;
    AppendJsonSampleValue(out, batch.value[i]);
    out += code.after_value;
    AppendTimestamp(out, ns);
    out += R"(","timestamp_ns":)";
    AppendInt(out, ns);
    out += R"(,"monotonic_ns":)";
    AppendInt(out, batch.monotonic_ns[i]);
    out += "}\n";
  }
}

Result<std::string> EsBulkEncoder::RunDocument(const RunRecord& record) {
  RunRecord copy = record;
  copy.labels = FieldNames(copy.labels);
  copy.machine.labels = FieldNames(copy.machine.labels);
  for (Sample& result : copy.results) result.metadata = FieldNames(result.metadata);
  const std::string json = RunRecordJson(copy, false);
  std::string doc = R"({"timestamp":")";
  AppendTimestamp(doc, record.exit.start_ns != 0 ? record.exit.start_ns : record.exit.end_ns);
  doc += "\",";
  doc.append(json, 1);  // json starts with '{'
  return doc;
}

}  // namespace internal

ElasticsearchSink::ElasticsearchSink(const ElasticsearchSinkOptions& options,
                                     std::unique_ptr<net::HttpClient> client)
    : ResultSink(options.redacted_uri, options.sink),
      options_(options),
      client_(std::move(client)),
      encoder_(options.index, options.index_per) {}

ElasticsearchSink::~ElasticsearchSink() { CloseOnDestroy(); }

Result<std::shared_ptr<ElasticsearchSink>> ElasticsearchSink::Make(
    const ElasticsearchSinkOptions& options) {
  BITFUSION_ASSIGN_OR_RETURN(auto client, net::HttpClient::Make(options.http.client));
  auto sink = std::shared_ptr<ElasticsearchSink>(new ElasticsearchSink(options, std::move(client)));
  BITFUSION_RETURN_IF_ERROR(sink->OpenSpool());
  return sink;
}

Result<net::HttpResponse> ElasticsearchSink::Send(const std::string& method,
                                                  const std::string& target,
                                                  std::string_view content_type,
                                                  std::string& body) {
  net::Headers headers;
  if (!options_.api_key.empty())
    headers.emplace_back("Authorization", "ApiKey " + options_.api_key);
  BITFUSION_ASSIGN_OR_RETURN(net::HttpResponse response,
                             internal::SendBody(*client_, options_.http, method, target,
                                                content_type, body, std::move(headers)));
  if (response.status == 401 || response.status == 403) {
    return PermissionDeniedError(client_->options().peer_name + " refused " + method + " " +
                                 target + " (HTTP " + std::to_string(response.status) +
                                 "); check the user and password or API key, and that it may "
                                 "write to index " +
                                 options_.index + ": " + response.body.substr(0, 300));
  }
  return response;
}

Status ElasticsearchSink::Prepare() {
  if (prepared_) return Status::OK();
  std::string no_body;
  BITFUSION_ASSIGN_OR_RETURN(net::HttpResponse root, Send("GET", "/", "application/json", no_body));
  if (root.status != 200) {
    return UnavailableError(client_->options().peer_name + " answered HTTP " +
                            std::to_string(root.status) + " to GET /: " + root.body.substr(0, 300));
  }
  boost::json::error_code ec;
  const boost::json::value info = boost::json::parse(root.body, ec);
  const boost::json::value* number = nullptr;
  if (!ec && info.is_object()) {
    if (const auto* version = info.as_object().if_contains("version");
        version != nullptr && version->is_object()) {
      number = version->as_object().if_contains("number");
    }
  }
  if (number == nullptr || !number->is_string()) {
    return FailedPreconditionError(client_->options().peer_name +
                                   " does not answer GET / as Elasticsearch does; is the address "
                                   "right?");
  }
  const std::string text(number->as_string());
  major_version_ = std::atoi(text.c_str());
  const int minor = std::atoi(text.c_str() + text.find('.') + 1);
  const bool opensearch = root.body.find("\"opensearch\"") != std::string::npos;
  if (!opensearch && major_version_ < 7) {
    return FailedPreconditionError(client_->options().peer_name + " is Elasticsearch " + text +
                                   "; this sink needs 7.0 or later (date_nanos, typeless APIs)");
  }
  if (options_.install_template) {
    const bool composable = opensearch || major_version_ > 7 || minor >= 8;
    Status put = [&]() -> Status {
      const std::string mappings =
          R"({"dynamic_templates":[{"strings":{"match_mapping_type":)"
          R"("string","mapping":{"type":"keyword","ignore_above":1024}}}],)"
          R"("properties":{"metric":{"type":"keyword"},)"
          R"("unit":{"type":"keyword"},"value":{"type":"double"},)"
          R"("value_text":{"type":"keyword"},)"
          R"("timestamp":{"type":"date_nanos"},)"
          R"("timestamp_ns":{"type":"long"},)"
          R"("monotonic_ns":{"type":"long"},)"
          R"("metadata":{"type":"object"},)"
          R"("results":{"properties":{"value":{"type":"double"}}},)"
          R"("machine":{"properties":{"cpu":{"properties":)"
          R"({"max_mhz":{"type":"double"}}}}}}})";
      std::string patterns = "[";
      internal::AppendJsonString(patterns, options_.index);
      patterns += ",";
      internal::AppendJsonString(patterns, options_.index + "-*");
      patterns += "]";
      std::string body =
          composable
              ? R"({"index_patterns":)" + patterns +
                    R"(,"priority":200,"_meta":{"created_by":"bitfusion"},"template":{)"
                    R"("mappings":)" +
                    mappings + "}}"
              : R"({"index_patterns":)" + patterns + R"(,"order":200,"mappings":)" + mappings + "}";
      const std::string target =
          (composable ? "/_index_template/bitfusion-" : "/_template/bitfusion-") + options_.index;
      BITFUSION_ASSIGN_OR_RETURN(net::HttpResponse r,
                                 Send("PUT", target, "application/json", body));
      if (r.status / 100 == 2) return Status::OK();
      return FailedPreconditionError("HTTP " + std::to_string(r.status) + ": " +
                                     r.body.substr(0, 500));
    }();
    if (put.code() == StatusCode::kUnavailable) return put;
    if (!put.ok()) {
      // The data still goes in, mapped by whatever templates the cluster has.
      LogAt(LogLevel::kWarning, "sink ", uri(),
            ": Elasticsearch refused bitfusion's index template (", put.message(),
            "); documents are stored with the cluster's own mappings. Add ",
            "template=false to stop trying");
    }
  }
  prepared_ = true;
  return Status::OK();
}

Status ElasticsearchSink::Bulk(std::string& body, std::vector<std::size_t> offsets,
                               std::vector<std::size_t> items, std::vector<bool>* done,
                               const std::string& run_id) {
  // An item is settled -- stored, or refused for good -- once; a retry of the call skips it.
  auto settle = [&](std::size_t i) {
    if (done != nullptr) (*done)[items[i]] = true;
  };
  for (int attempt = 1;; ++attempt) {
    BITFUSION_ASSIGN_OR_RETURN(net::HttpResponse r,
                               Send("POST", "/_bulk", "application/x-ndjson", body));
    const auto count = static_cast<std::int64_t>(offsets.size());
    if (r.status == 413 && offsets.size() > 1) {
      // Too large for the cluster's http.max_content_length: halves, each on its own.
      const std::size_t half = offsets.size() / 2;
      const std::size_t cut = offsets[half];
      const auto mid = static_cast<std::ptrdiff_t>(half);
      std::vector<std::size_t> second(offsets.begin() + mid, offsets.end());
      for (std::size_t& o : second) o -= cut;
      std::vector<std::size_t> second_items(items.begin() + mid, items.end());
      offsets.resize(half);
      items.resize(half);
      std::string first_half = body.substr(0, cut);
      std::string second_half = body.substr(cut);
      BITFUSION_RETURN_IF_ERROR(
          Bulk(first_half, std::move(offsets), std::move(items), done, run_id));
      return Bulk(second_half, std::move(second), std::move(second_items), done, run_id);
    }
    if (r.status != 200) {
      // The whole request refused (malformed, a missing pipeline...): sending it again would
      // block everything behind it.
      const std::string why = "HTTP " + std::to_string(r.status) + ": " + r.body.substr(0, 500);
      for (std::size_t i = 0; i < offsets.size(); ++i) settle(i);
      if (!run_id.empty()) {
        LogAt(LogLevel::kError, "sink ", uri(), ": run ", run_id,
              " is not stored, Elasticsearch refuses it: ", why);
        return Status::OK();
      }
      RecordDropped(count, "Elasticsearch refused the whole bulk request: " + why);
      return Status::OK();
    }
    // Elasticsearch puts "errors" before "items": most answers are settled without parsing.
    if (NoErrors(r.body)) {
      for (std::size_t i = 0; i < offsets.size(); ++i) settle(i);
      return Status::OK();
    }
    boost::json::error_code ec;
    const boost::json::value answer = boost::json::parse(r.body, ec);
    const boost::json::array* list = nullptr;
    if (!ec && answer.is_object()) {
      if (const auto* v = answer.as_object().if_contains("items"); v && v->is_array()) {
        list = &v->as_array();
      }
    }
    if (list == nullptr || list->size() != offsets.size()) {
      return UnavailableError(client_->options().peer_name +
                              " answered a bulk request with something that is not a bulk "
                              "answer: " +
                              r.body.substr(0, 300));
    }
    std::vector<std::size_t> retry;
    std::int64_t dropped = 0;
    std::string reason;
    for (std::size_t i = 0; i < list->size(); ++i) {
      const auto& item = (*list)[i];
      if (!item.is_object() || item.as_object().empty()) continue;
      const auto& result = item.as_object().begin()->value();
      if (!result.is_object()) continue;
      const auto* status = result.as_object().if_contains("status");
      const std::int64_t code = status != nullptr && status->is_int64() ? status->as_int64() : 0;
      if (code == 429 || code >= 500) {
        retry.push_back(i);
        continue;
      }
      settle(i);
      if (code >= 200 && code < 300) continue;
      ++dropped;
      if (reason.empty()) {
        if (const auto* error = result.as_object().if_contains("error")) {
          reason = boost::json::serialize(*error).substr(0, 500);
        }
      }
    }
    if (!run_id.empty() && dropped > 0) {
      LogAt(LogLevel::kError, "sink ", uri(), ": run ", run_id,
            " is not stored, Elasticsearch refuses it: ", reason);
    } else {
      RecordDropped(dropped, reason);
    }
    if (retry.empty()) return Status::OK();
    if (attempt >= options_.item_attempts) {
      return UnavailableError(client_->options().peer_name + " refused " +
                              std::to_string(retry.size()) + " of " + std::to_string(count) +
                              " documents with 429 or 5xx " + std::to_string(attempt) +
                              " times in a row");
    }
    // Only what may succeed later is sent again.
    std::string again;
    std::vector<std::size_t> again_offsets;
    std::vector<std::size_t> again_items;
    for (const std::size_t i : retry) {
      const std::size_t start = offsets[i];
      const std::size_t end = i + 1 < offsets.size() ? offsets[i + 1] : body.size();
      again_offsets.push_back(again.size());
      again_items.push_back(items[i]);
      again.append(body, start, end - start);
    }
    body = std::move(again);
    offsets = std::move(again_offsets);
    items = std::move(again_items);
    std::this_thread::sleep_for(RetryBackoff(attempt));
  }
}

Status ElasticsearchSink::WriteSamples(const std::vector<SampleBatch>& batches) {
  BITFUSION_RETURN_IF_ERROR(Prepare());
  // Which documents of this data Elasticsearch has settled in earlier attempts: only the rest
  // is sent again.
  std::size_t total = 0;
  for (const SampleBatch& batch : batches) total += batch.size();
  std::any& progress = DeliveryProgress();
  if (!progress.has_value()) progress = std::vector<bool>(total, false);
  auto& done = *std::any_cast<std::vector<bool>>(&progress);
  body_.clear();
  std::vector<std::size_t> offsets;
  std::vector<std::size_t> items;
  std::size_t next = 0;
  auto send = [&]() -> Status {
    Status status = Bulk(body_, std::move(offsets), std::move(items), &done, "");
    body_.clear();
    offsets.clear();
    items.clear();
    return status;
  };
  for (const SampleBatch& batch : batches) {
    const std::size_t first = offsets.size();
    encoder_.Append(batch, body_, &offsets);
    for (std::size_t i = 0; i < batch.size(); ++i) items.push_back(next + i);
    next += batch.size();
    // Documents settled before are cut out again (a rare path: retries only).
    bool any_done = false;
    for (std::size_t k = first; k < items.size() && !any_done; ++k) any_done = done[items[k]];
    if (any_done) {
      std::string kept(body_, 0, first < offsets.size() ? offsets[first] : body_.size());
      std::vector<std::size_t> kept_offsets(offsets.begin(),
                                            offsets.begin() + static_cast<std::ptrdiff_t>(first));
      std::vector<std::size_t> kept_items(items.begin(),
                                          items.begin() + static_cast<std::ptrdiff_t>(first));
      for (std::size_t k = first; k < items.size(); ++k) {
        if (done[items[k]]) continue;
        const std::size_t end = k + 1 < offsets.size() ? offsets[k + 1] : body_.size();
        kept_offsets.push_back(kept.size());
        kept_items.push_back(items[k]);
        kept.append(body_, offsets[k], end - offsets[k]);
      }
      body_ = std::move(kept);
      offsets = std::move(kept_offsets);
      items = std::move(kept_items);
    }
    if (body_.size() >= options_.request_bytes) {
      // Sending part of a call and failing later is fine: what was settled is not sent again.
      BITFUSION_RETURN_IF_ERROR(send());
    }
  }
  if (!offsets.empty()) BITFUSION_RETURN_IF_ERROR(send());
  body_.clear();
  return Status::OK();
}

Status ElasticsearchSink::WriteRun(const RunRecord& record) {
  BITFUSION_RETURN_IF_ERROR(Prepare());
  BITFUSION_ASSIGN_OR_RETURN(const std::string doc, internal::EsBulkEncoder::RunDocument(record));
  std::string body = R"({"index":{"_index":)";
  internal::AppendJsonString(body, options_.index + "-runs");
  body += R"(,"_id":)";
  internal::AppendJsonString(body, record.run_id);
  body += "}}\n" + doc + "\n";
  return Bulk(body, {0}, {0}, nullptr, record.run_id);
}

BITFUSION_REGISTER(ResultSink, "es", ElasticsearchSinkOptions, ElasticsearchSink);
BITFUSION_REGISTER(ResultSink, "es+https", ElasticsearchSinkOptions, ElasticsearchSink);

}  // namespace bitfusion
