#include "sinks/csv_sink.h"

#include <cmath>
#include <utility>

#include "bitfusion/registry.h"

namespace bitfusion {

Result<CsvSinkOptions> CsvSinkOptions::FromUri(const Uri& uri) {
  CsvSinkOptions options;
  BITFUSION_RETURN_IF_ERROR(
      internal::ReadAppendFileUri(uri, ".csv", options.path, options.fsync, options.sink));
  return options;
}

namespace internal {
namespace {

void AppendLabelText(std::string& out, std::string_view text) {
  for (const char c : text) {
    if (c == '\\' || c == ';' || c == '=') out.push_back('\\');
    out.push_back(c);
  }
}

void AppendCsvValue(std::string& out, double v) {
  if (std::isfinite(v)) {
    AppendDouble(out, v);
  } else {
    out += NonFiniteText(v);
  }
}

// A plain decimal number ("-1.5", "+2e-3"): a spreadsheet reads it as a number, not a formula.
bool IsNumber(std::string_view t) {
  std::size_t i = 0;
  if (i < t.size() && (t[i] == '+' || t[i] == '-')) ++i;
  std::size_t digits = 0;
  for (; i < t.size() && t[i] >= '0' && t[i] <= '9'; ++i) ++digits;
  if (i < t.size() && t[i] == '.') {
    for (++i; i < t.size() && t[i] >= '0' && t[i] <= '9'; ++i) ++digits;
  }
  if (digits == 0) return false;
  if (i < t.size() && (t[i] == 'e' || t[i] == 'E')) {
    ++i;
    if (i < t.size() && (t[i] == '+' || t[i] == '-')) ++i;
    std::size_t exponent = 0;
    for (; i < t.size() && t[i] >= '0' && t[i] <= '9'; ++i) ++exponent;
    if (exponent == 0) return false;
  }
  return i == t.size();
}

// Spreadsheets run a cell that starts with = + - @ as a formula, and some strip a leading tab
// or CR first (CSV injection). Text cells like that get OWASP's remedy, a leading single quote;
// a cell that is just a number is not a formula and stays as it is.
bool FormulaLike(std::string_view text) {
  if (text.empty()) return false;
  switch (text.front()) {
    case '=':
    case '+':
    case '-':
    case '@':
    case '\t':
    case '\r': return !IsNumber(text);
    default: return false;
  }
}

}  // namespace

void AppendCsvField(std::string& out, std::string_view text) {
  std::string neutralised;
  if (FormulaLike(text)) {
    // Appended, not "'" + std::string&&: GCC 12 at -O3 reports a bogus -Wrestrict overlap for a
    // one-character literal plus a temporary string (GCC bug 105329).
    neutralised.assign(1, '\'').append(text);
    text = neutralised;
  }
  bool quote = false;
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (c == ',' || c == '"' || u < 0x20 || u == 0x7F) {
      quote = true;
      break;
    }
  }
  if (!quote) {
    AppendValidUtf8(out, text);
    return;
  }
  const std::string valid = ValidUtf8(text);
  out.push_back('"');
  for (const char c : valid) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
}

std::string CsvLabels(const Labels& labels) {
  std::string out;
  bool first = true;
  for (const auto& [key, value] : labels) {
    if (!first) out.push_back(';');
    first = false;
    AppendLabelText(out, key);
    out.push_back('=');
    AppendLabelText(out, value);
  }
  return out;
}

void CsvEncoder::Append(const SampleBatch& batch, std::string& out) {
  const std::size_t series_count = batch.series.size();
  if (before_value_.size() < series_count) {
    before_value_.resize(series_count);
    after_value_.resize(series_count);
  }
  for (std::size_t s = 0; s < series_count; ++s) {
    const Series& series = batch.series[s];
    std::string& before = before_value_[s];
    // assign(1, ','), not assign(","): GCC 12 at -O3 reports a bogus -Wrestrict overlap when a
    // one-character literal is assigned to a std::string (GCC bug 105329).
    before.assign(1, ',');
    AppendCsvField(before, series.metric);
    before.push_back(',');
    std::string& after = after_value_[s];
    after.assign(1, ',');  // as above (GCC bug 105329)
    AppendCsvField(after, series.unit);
    after.push_back(',');
    if (series.labels.empty()) {
      AppendCsvField(after, CsvLabels(batch.labels));
    } else {
      merged_ = batch.labels;
      for (const auto& [key, value] : series.labels) merged_[key] = value;
      AppendCsvField(after, CsvLabels(merged_));
    }
    after += "\r\n";
  }
  const std::size_t n = batch.size();
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint32_t s = batch.series_index[i];
    AppendInt(out, batch.timestamp_ns[i]);
    out.push_back(',');
    AppendInt(out, batch.monotonic_ns[i]);
    out += before_value_[s];
    AppendCsvValue(out, batch.value[i]);
    out += after_value_[s];
  }
}

void CsvEncoder::AppendRun(const RunRecord& record, std::string& out) {
  Labels run_labels;
  run_labels["run_id"] = record.run_id;
  run_labels["benchmark"] = record.benchmark;
  run_labels["repetition"] = std::to_string(record.repetition);
  run_labels["status"] = record.status;
  if (!record.plan.empty()) run_labels["plan"] = record.plan;
  if (!record.plan_run_id.empty()) run_labels["plan_run_id"] = record.plan_run_id;
  if (record.warmup) run_labels["warmup"] = "true";

  // One series per row: label precedence differs from a batch's (the run's own labels win), so
  // every row carries its fully merged set and the batch shares none.
  SampleBatch rows;
  auto add_row = [&](const std::string& metric, const std::string& unit, Labels labels,
                     std::int64_t wall_ns, std::int64_t mono_ns, double value) {
    for (const auto& [key, v] : record.labels) labels.emplace(key, v);
    for (const auto& [key, v] : run_labels) labels[key] = v;
    rows.Append(rows.AddSeries({metric, unit, std::move(labels)}), wall_ns, mono_ns, value);
  };
  const std::int64_t end_ns = record.exit.end_ns;
  for (const Sample& result : record.results) {
    add_row(result.metric, result.unit, result.metadata,
            result.timestamp_ns != 0 ? result.timestamp_ns : end_ns, result.monotonic_ns,
            result.value);
  }
  add_row("run.wall_time", "s", {}, end_ns, 0, static_cast<double>(record.exit.wall_time_ns) / 1e9);
  add_row("run.exit_code", "1", {}, end_ns, 0, record.exit.exit_code);
  Append(rows, out);
}

}  // namespace internal

CsvSink::CsvSink(const CsvSinkOptions& options, std::unique_ptr<internal::AppendOnlyFile> file)
    : AppendFileSink("csv://" + options.path.string(), options.sink, options.fsync,
                     std::move(file)) {}

CsvSink::~CsvSink() { CloseOnDestroy(); }

Result<std::shared_ptr<CsvSink>> CsvSink::Make(const CsvSinkOptions& options) {
  BITFUSION_ASSIGN_OR_RETURN(auto file,
                             internal::AppendOnlyFile::Open(options.path, "csv sink file"));
  BITFUSION_ASSIGN_OR_RETURN(const std::int64_t size, file->Size());
  const std::string name = "csv sink file " + options.path.string();
  if (size == 0) {
    BITFUSION_RETURN_IF_ERROR(file->Begin());
    BITFUSION_RETURN_IF_ERROR(file->WriteOrAbort(internal::kCsvHeader));
  } else {
    BITFUSION_ASSIGN_OR_RETURN(const std::string head,
                               file->ReadPrefix(internal::kCsvHeader.size()));
    if (head != internal::kCsvHeader) {
      return FailedPreconditionError(
          name + " already holds data whose first line is not the header \"" +
          std::string(internal::kCsvHeader.substr(0, internal::kCsvHeader.size() - 2)) +
          "\"; choose a new file rather than mixing formats");
    }
  }
  return std::shared_ptr<CsvSink>(new CsvSink(options, std::move(file)));
}

void CsvSink::EncodeBatch(const SampleBatch& batch, std::string& out) {
  encoder_.Append(batch, out);
}

void CsvSink::EncodeRun(const RunRecord& record, std::string& out) {
  encoder_.AppendRun(record, out);
}

BITFUSION_REGISTER(ResultSink, "csv", CsvSinkOptions, CsvSink);

}  // namespace bitfusion
