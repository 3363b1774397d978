#include "sinks/jsonl_sink.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/json.hpp>

#include <array>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <system_error>
#include <utility>

#include "bitfusion/registry.h"
#include "bitfusion/serialize.h"

namespace bitfusion {

Result<JsonlSinkOptions> JsonlSinkOptions::FromUri(const Uri& uri) {
  BITFUSION_RETURN_IF_ERROR(uri.CheckQueryKeys(ResultSinkOptions::QueryKeysWith({"fsync"})));
  JsonlSinkOptions options;
  options.path = uri.FilePath();
  if (options.path.empty()) {
    return InvalidArgumentError("sink URI " + uri.ToString() +
                                " names no file; write jsonl://out/results.jsonl (relative) or "
                                "jsonl:///abs/results.jsonl");
  }
  BITFUSION_ASSIGN_OR_RETURN(options.fsync, uri.QueryBool("fsync", options.fsync));
  BITFUSION_ASSIGN_OR_RETURN(options.sink, ResultSinkOptions::FromUri(uri));
  return options;
}

namespace internal {
namespace {

constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";  // U+FFFD in UTF-8

// Bytes a JSON string can carry as they are: printable ASCII other than '"' and '\'.
constexpr std::array<bool, 256> kJsonPlain = [] {
  std::array<bool, 256> plain{};
  for (int c = 0x20; c < 0x80; ++c) plain[c] = c != '"' && c != '\\';
  return plain;
}();

// Length of the UTF-8 sequence at text[i]. `valid` says whether it is well-formed (Unicode
// Table 3-7); when it is not, the length is that of the maximal subpart to replace by one
// U+FFFD, so a truncated sequence costs one replacement and the byte after it is kept.
std::size_t Utf8Sequence(std::string_view text, std::size_t i, bool& valid) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t n = text.size();
  const unsigned char c = p[i];
  valid = false;
  std::size_t len = 0;
  unsigned char lo = 0x80;
  unsigned char hi = 0xBF;
  if (c < 0x80) {
    valid = true;
    return 1;
  } else if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
  } else if (c == 0xE0) {
    len = 3;
    lo = 0xA0;  // no overlong forms
  } else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) {
    len = 3;
  } else if (c == 0xED) {
    len = 3;
    hi = 0x9F;  // no UTF-16 surrogates
  } else if (c == 0xF0) {
    len = 4;
    lo = 0x90;
  } else if (c >= 0xF1 && c <= 0xF3) {
    len = 4;
  } else if (c == 0xF4) {
    len = 4;
    hi = 0x8F;  // nothing above U+10FFFF
  } else {
    return 1;
  }
  if (i + 1 >= n || p[i + 1] < lo || p[i + 1] > hi) return 1;
  for (std::size_t k = 2; k < len; ++k) {
    if (i + k >= n || (p[i + k] & 0xC0) != 0x80) return k;
  }
  valid = true;
  return len;
}

// A compact JSON writer for Boost.JSON trees that formats numbers and strings exactly as the
// sample encoder does, so every line of a file looks alike.
void AppendJsonValue(std::string& out, const boost::json::value& v) {
  switch (v.kind()) {
    case boost::json::kind::null: out += "null"; break;
    case boost::json::kind::bool_: out += v.get_bool() ? "true" : "false"; break;
    case boost::json::kind::int64: AppendInt(out, v.get_int64()); break;
    case boost::json::kind::uint64: {
      char buf[24];
      auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v.get_uint64());
      out.append(buf, end);
      break;
    }
    case boost::json::kind::double_: {
      const double d = v.get_double();
      if (std::isfinite(d)) {
        AppendDouble(out, d);
      } else {
        out += "null";
      }
      break;
    }
    case boost::json::kind::string:
      AppendJsonString(out, std::string_view(v.get_string().data(), v.get_string().size()));
      break;
    case boost::json::kind::array: {
      out.push_back('[');
      bool first = true;
      for (const auto& e : v.get_array()) {
        if (!first) out.push_back(',');
        first = false;
        AppendJsonValue(out, e);
      }
      out.push_back(']');
      break;
    }
    case boost::json::kind::object: {
      out.push_back('{');
      bool first = true;
      for (const auto& member : v.get_object()) {
        if (!first) out.push_back(',');
        first = false;
        AppendJsonString(out, std::string_view(member.key().data(), member.key().size()));
        out.push_back(':');
        AppendJsonValue(out, member.value());
      }
      out.push_back('}');
      break;
    }
  }
}

// cereal's JSON (multi-line, raw bytes in strings) as a Boost.JSON tree. Doubles in it are not
// trusted to the last bit (Boost 1.81 parses numbers fast, not exactly): callers put the exact
// values back.
Result<boost::json::value> ParseCerealJson(const std::string& cereal_json, std::string_view what) {
  boost::json::error_code ec;
  // Invalid UTF-8 can only sit inside strings (the JSON syntax is ASCII), so repairing the
  // whole text repairs exactly the strings.
  boost::json::value tree = boost::json::parse(ValidUtf8(cereal_json), ec);
  if (ec || !tree.is_object()) {
    return InternalError("encoding " + std::string(what) + " as JSON failed (" + ec.message() +
                         "); please report this as a bitfusion bug");
  }
  return tree;
}

void PatchMaxMhz(boost::json::object& machine, double max_mhz) {
  auto* cpu = machine.if_contains("cpu");
  if (cpu == nullptr || !cpu->is_object()) return;
  if (std::isfinite(max_mhz)) {
    cpu->get_object()["max_mhz"] = max_mhz;
  } else {
    cpu->get_object()["max_mhz"] = nullptr;
  }
}

}  // namespace

void AppendValidUtf8(std::string& out, std::string_view text) {
  std::size_t run = 0;
  std::size_t i = 0;
  while (i < text.size()) {
    if (static_cast<unsigned char>(text[i]) < 0x80) {
      ++i;
      continue;
    }
    bool valid = false;
    const std::size_t len = Utf8Sequence(text, i, valid);
    if (valid) {
      i += len;
      continue;
    }
    out.append(text.data() + run, i - run);
    out += kReplacementChar;
    i += len;
    run = i;
  }
  out.append(text.data() + run, text.size() - run);
}

std::string ValidUtf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  AppendValidUtf8(out, text);
  return out;
}

void AppendJsonString(std::string& out, std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  std::size_t run = 0;
  std::size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (kJsonPlain[c]) {
      ++i;
      continue;
    }
    if (c >= 0x80) {
      bool valid = false;
      const std::size_t len = Utf8Sequence(text, i, valid);
      if (valid) {
        i += len;
        continue;
      }
      out.append(text.data() + run, i - run);
      out += kReplacementChar;
      i += len;
      run = i;
      continue;
    }
    out.append(text.data() + run, i - run);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default: {
        const char escape[] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xF]};
        out.append(escape, sizeof(escape));
      }
    }
    ++i;
    run = i;
  }
  out.append(text.data() + run, text.size() - run);
  out.push_back('"');
}

void AppendJsonLabels(std::string& out, const Labels& labels) {
  out.push_back('{');
  bool first = true;
  for (const auto& [key, value] : labels) {
    if (!first) out.push_back(',');
    first = false;
    AppendJsonString(out, key);
    out.push_back(':');
    AppendJsonString(out, value);
  }
  out.push_back('}');
}

void AppendDouble(std::string& out, double value) {
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), value);
  out.append(buf, end);
}

void AppendInt(std::string& out, std::int64_t value) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), value);
  out.append(buf, end);
}

std::string_view NonFiniteText(double value) {
  if (std::isnan(value)) return "NaN";
  return value > 0 ? "Infinity" : "-Infinity";
}

Result<std::string> RunRecordJson(const RunRecord& record, bool with_type) {
  // cereal would write NaN/Infinity as bare words, which are not JSON: encode a copy holding
  // finite stand-ins and put the real values back into the tree.
  RunRecord finite = record;
  for (auto& result : finite.results) result.value = 0;
  finite.machine.cpu.max_mhz = 0;
  BITFUSION_ASSIGN_OR_RETURN(boost::json::value tree,
                             ParseCerealJson(ToJson(finite), "run record " + record.run_id));
  auto& parsed = tree.get_object();
  if (auto* results = parsed.if_contains("results"); results && results->is_array()) {
    auto& array = results->get_array();
    for (std::size_t i = 0; i < array.size() && i < record.results.size(); ++i) {
      if (!array[i].is_object()) continue;
      auto& result = array[i].get_object();
      const double v = record.results[i].value;
      if (std::isfinite(v)) {
        result["value"] = v;
      } else {
        result["value"] = nullptr;
        // Right after "value", where a reader looks for it.
        boost::json::object reordered;
        for (auto& member : result) {
          reordered.emplace(member.key(), std::move(member.value()));
          if (member.key() == "value") reordered.emplace("value_text", NonFiniteText(v));
        }
        result = std::move(reordered);
      }
    }
  }
  if (auto* machine = parsed.if_contains("machine"); machine && machine->is_object()) {
    PatchMaxMhz(machine->get_object(), record.machine.cpu.max_mhz);
  }
  std::string out;
  if (with_type) {
    boost::json::object typed;
    typed.reserve(parsed.size() + 1);
    typed.emplace("type", "run");
    for (auto& member : parsed) typed.emplace(member.key(), std::move(member.value()));
    AppendJsonValue(out, boost::json::value(std::move(typed)));
  } else {
    AppendJsonValue(out, tree);
  }
  return out;
}

Result<std::string> MachineInfoJson(const MachineInfo& machine) {
  MachineInfo finite = machine;
  finite.cpu.max_mhz = 0;
  BITFUSION_ASSIGN_OR_RETURN(boost::json::value tree,
                             ParseCerealJson(ToJson(finite), "machine " + machine.id));
  PatchMaxMhz(tree.get_object(), machine.cpu.max_mhz);
  std::string out;
  AppendJsonValue(out, tree);
  return out;
}

void JsonlEncoder::Append(const SampleBatch& batch, std::string& out) {
  const std::size_t series_count = batch.series.size();
  if (before_value_.size() < series_count) {
    before_value_.resize(series_count);
    after_value_.resize(series_count);
  }
  // Everything about a series is the same on each of its lines: encode it once per batch.
  for (std::size_t s = 0; s < series_count; ++s) {
    const Series& series = batch.series[s];
    std::string& before = before_value_[s];
    before.assign(R"({"type":"sample","metric":)");
    AppendJsonString(before, series.metric);
    before += R"(,"value":)";
    std::string& after = after_value_[s];
    after.assign(R"(,"unit":)");
    AppendJsonString(after, series.unit);
    after += R"(,"metadata":)";
    if (series.labels.empty()) {
      AppendJsonLabels(after, batch.labels);
    } else {
      merged_ = batch.labels;
      for (const auto& [key, value] : series.labels) merged_[key] = value;
      AppendJsonLabels(after, merged_);
    }
    after += R"(,"timestamp":)";
  }
  const std::size_t n = batch.size();
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint32_t s = batch.series_index[i];
    out += before_value_[s];
    const double v = batch.value[i];
    if (std::isfinite(v)) {
      AppendDouble(out, v);
    } else {
      out += R"(null,"value_text":")";
      out += NonFiniteText(v);
      out.push_back('"');
    }
    out += after_value_[s];
    const std::int64_t wall_ns = batch.timestamp_ns[i];
    AppendDouble(out, static_cast<double>(wall_ns) / 1e9);
    out += R"(,"timestamp_ns":)";
    AppendInt(out, wall_ns);
    out += R"(,"monotonic_ns":)";
    AppendInt(out, batch.monotonic_ns[i]);
    out += "}\n";
  }
}

AppendOnlyFile::AppendOnlyFile(int fd, std::filesystem::path path, std::string what, bool regular)
    : fd_(fd), path_(std::move(path)), what_(std::move(what)), regular_(regular) {}

AppendOnlyFile::~AppendOnlyFile() {
  if (fd_ >= 0) ::close(fd_);
}

Result<std::unique_ptr<AppendOnlyFile>> AppendOnlyFile::Open(const std::filesystem::path& path,
                                                             std::string_view what) {
  const std::string name = std::string(what) + " " + path.string();
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    const int err = errno;
    std::error_code ec;
    const std::filesystem::path dir = path.parent_path();
    if (err == ENOENT && !dir.empty() && !std::filesystem::is_directory(dir, ec)) {
      return NotFoundError("cannot create " + name + ": directory " + dir.string() +
                           " does not exist; create it first or choose another path");
    }
    return ErrnoError(err, "cannot open " + name + " for appending");
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return ErrnoError(err, "cannot stat " + name);
  }
  return std::unique_ptr<AppendOnlyFile>(
      new AppendOnlyFile(fd, path, std::string(what), S_ISREG(st.st_mode)));
}

Result<std::int64_t> AppendOnlyFile::Size() const {
  if (!regular_) return 0;
  struct stat st {};
  if (::fstat(fd_, &st) != 0)
    return ErrnoError(errno, "cannot stat " + what_ + " " + path_.string());
  return static_cast<std::int64_t>(st.st_size);
}

Result<std::string> AppendOnlyFile::ReadPrefix(std::size_t n) const {
  std::string out(n, '\0');
  std::size_t got = 0;
  while (got < n) {
    const ssize_t r = ::pread(fd_, out.data() + got, n - got, static_cast<off_t>(got));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return ErrnoError(errno, "cannot read " + what_ + " " + path_.string());
    if (r == 0) break;
    got += static_cast<std::size_t>(r);
  }
  out.resize(got);
  return out;
}

Status AppendOnlyFile::Begin() {
  if (!regular_) return Status::OK();
  BITFUSION_ASSIGN_OR_RETURN(begin_size_, Size());
  return Status::OK();
}

Status AppendOnlyFile::Write(std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd_, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError(errno, "cannot write " + what_ + " " + path_.string());
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return Status::OK();
}

void AppendOnlyFile::Abort() {
  // Cutting back is what keeps a retried batch from being stored twice; if even that fails, the
  // disk is in trouble and the write error already says so.
  if (regular_ && begin_size_ >= 0) {
    [[maybe_unused]] const int rc = ::ftruncate(fd_, static_cast<off_t>(begin_size_));
  }
}

Status AppendOnlyFile::Sync() {
  if (::fsync(fd_) != 0 && errno != EINVAL && errno != EROFS) {
    return ErrnoError(errno, "cannot fsync " + what_ + " " + path_.string());
  }
  return Status::OK();
}

Status AppendOnlyFile::Close() {
  if (fd_ < 0) return Status::OK();
  const int fd = std::exchange(fd_, -1);
  if (::close(fd) != 0 && errno != EINTR) {
    return ErrnoError(errno, "cannot close " + what_ + " " + path_.string());
  }
  return Status::OK();
}

}  // namespace internal

namespace {
// Bytes encoded before they are written out: large enough to make system calls rare, small
// enough that a huge pending queue does not double in memory.
constexpr std::size_t kWriteChunkBytes = 1 << 20;
}  // namespace

JsonlSink::JsonlSink(const JsonlSinkOptions& options, std::string uri,
                     std::unique_ptr<internal::AppendOnlyFile> file)
    : ResultSink(std::move(uri), options.sink), options_(options), file_(std::move(file)) {}

JsonlSink::~JsonlSink() { CloseOnDestroy(); }

Result<std::shared_ptr<JsonlSink>> JsonlSink::Make(const JsonlSinkOptions& options) {
  BITFUSION_ASSIGN_OR_RETURN(auto file,
                             internal::AppendOnlyFile::Open(options.path, "jsonl sink file"));
  return std::shared_ptr<JsonlSink>(
      new JsonlSink(options, "jsonl://" + options.path.string(), std::move(file)));
}

Status JsonlSink::WriteSamples(const std::vector<SampleBatch>& batches) {
  BITFUSION_RETURN_IF_ERROR(file_->Begin());
  buffer_.clear();
  for (const SampleBatch& batch : batches) {
    encoder_.Append(batch, buffer_);
    if (buffer_.size() >= kWriteChunkBytes) {
      if (Status s = file_->Write(buffer_); !s.ok()) {
        file_->Abort();
        return s;
      }
      buffer_.clear();
    }
  }
  if (Status s = file_->Write(buffer_); !s.ok()) {
    file_->Abort();
    return s;
  }
  // One huge batch should not pin its encoding for the sink's lifetime.
  if (buffer_.capacity() > 16 * kWriteChunkBytes) std::string().swap(buffer_);
  return Status::OK();
}

Status JsonlSink::WriteRun(const RunRecord& record) {
  BITFUSION_ASSIGN_OR_RETURN(std::string line, internal::RunRecordJson(record, true));
  line.push_back('\n');
  BITFUSION_RETURN_IF_ERROR(file_->Begin());
  if (Status s = file_->Write(line); !s.ok()) {
    file_->Abort();
    return s;
  }
  return Status::OK();
}

Status JsonlSink::SyncBackend(Deadline) { return options_.fsync ? file_->Sync() : Status::OK(); }

Status JsonlSink::CloseBackend(Deadline) { return file_->Close(); }

BITFUSION_REGISTER(ResultSink, "jsonl", JsonlSinkOptions, JsonlSink);

}  // namespace bitfusion
