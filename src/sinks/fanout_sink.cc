#include "sinks/fanout_sink.h"

#include <utility>

#include "bitfusion/log.h"
#include "bitfusion/registry.h"

namespace bitfusion {

Result<FanoutSinkOptions> FanoutSinkOptions::FromUri(const Uri& uri) {
  BITFUSION_RETURN_IF_ERROR(uri.CheckQueryKeys({"sink"}));
  FanoutSinkOptions options;
  for (const auto& [key, value] : uri.query) {
    if (key == "sink") options.sinks.push_back(value);
  }
  if (options.sinks.empty() || !uri.host.empty() || !uri.path.empty()) {
    return InvalidArgumentError(
        "sink URI " + uri.ToString() +
        " names no sinks; write fanout://?sink=URI&sink=URI with each URI percent-encoded, e.g. "
        "fanout://?sink=sqlite%3A%2F%2Fr.db&sink=jsonl%3A%2F%2Fr.jsonl");
  }
  return options;
}

namespace {

ResultSinkOptions PassThrough() {
  ResultSinkOptions options;
  options.batch_samples = 1;  // the children batch
  return options;
}

std::string FanoutUri(const std::vector<std::shared_ptr<ResultSink>>& children) {
  std::string uri = "fanout://?";
  for (std::size_t i = 0; i < children.size(); ++i) {
    if (i > 0) uri += "&";
    uri += "sink=" + children[i]->uri();
  }
  return uri;
}

}  // namespace

FanoutSink::FanoutSink(std::string uri, std::vector<std::shared_ptr<ResultSink>> children)
    : ResultSink(std::move(uri), PassThrough()),
      children_(std::move(children)),
      logged_(children_.size(), false) {}

FanoutSink::~FanoutSink() { CloseOnDestroy(); }

Result<std::shared_ptr<FanoutSink>> FanoutSink::Make(const FanoutSinkOptions& options) {
  std::vector<std::shared_ptr<ResultSink>> children;
  for (const std::string& uri : options.sinks) {
    auto child = ResultSinkFromUri(uri);
    if (!child) return child.error().WithContext("fanout:// child " + Redact(uri));
    children.push_back(std::move(*child));
  }
  return Make(std::move(children));
}

Result<std::shared_ptr<FanoutSink>> FanoutSink::Make(
    std::vector<std::shared_ptr<ResultSink>> children) {
  if (children.empty()) return InvalidArgumentError("a fan-out sink needs at least one sink");
  for (const auto& child : children) {
    if (child == nullptr) return InvalidArgumentError("a fan-out sink was given a null sink");
  }
  std::string uri = FanoutUri(children);
  return std::shared_ptr<FanoutSink>(new FanoutSink(std::move(uri), std::move(children)));
}

void FanoutSink::NoteChildError(std::size_t child, const Status& status) {
  if (logged_[child]) return;
  logged_[child] = true;
  LogAt(LogLevel::kWarning, "fan-out: ", status.message(),
        "; that sink keeps what it could not send, the others go on");
}

// The children own what they were given from here on (each keeps and retries its failures), so
// a child's error is not this call's: reporting it here would make the base send the batches
// again, twice to every child that took them.
Status FanoutSink::WriteSamples(const std::vector<SampleBatch>& batches) {
  for (std::size_t c = 0; c < children_.size(); ++c) {
    for (const SampleBatch& batch : batches) {
      if (Status s = children_[c]->Write(batch); !s.ok()) NoteChildError(c, s);
    }
  }
  return Status::OK();
}

Status FanoutSink::WriteRun(const RunRecord& record) {
  for (std::size_t c = 0; c < children_.size(); ++c) {
    if (Status s = children_[c]->Write(record); !s.ok()) NoteChildError(c, s);
  }
  return Status::OK();
}

namespace {

// The first failure's code, with every failure's message.
Status Combine(const std::vector<Status>& statuses) {
  Status first;
  std::string message;
  for (const Status& s : statuses) {
    if (s.ok()) continue;
    if (first.ok()) first = s;
    if (!message.empty()) message += "; ";
    message += s.message();
  }
  return first.ok() ? first : Status(first.code(), message);
}

}  // namespace

Status FanoutSink::SyncBackend(Deadline deadline) {
  // Closing: CloseBackend closes every child, and a child's Close flushes it (trying a failing
  // store once more, where a Flush in the same outage would leave it to the retry).
  if (closing()) return Status::OK();
  std::vector<Status> statuses;
  for (const auto& child : children_) statuses.push_back(child->Flush(deadline));
  return Combine(statuses);
}

Status FanoutSink::CloseBackend(Deadline deadline) {
  std::vector<Status> statuses;
  for (const auto& child : children_) statuses.push_back(child->Close(deadline));
  return Combine(statuses);
}

BITFUSION_REGISTER(ResultSink, "fanout", FanoutSinkOptions, FanoutSink);

Result<std::shared_ptr<ResultSink>> MakeFanoutSink(std::vector<std::shared_ptr<ResultSink>> sinks) {
  auto sink = FanoutSink::Make(std::move(sinks));
  if (!sink) return sink.error();
  return std::shared_ptr<ResultSink>(std::move(*sink));
}

}  // namespace bitfusion
