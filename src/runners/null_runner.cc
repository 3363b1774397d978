#include "runners/null_runner.h"

#include <atomic>

#include "bitfusion/registry.h"

namespace bitfusion {
namespace {

class NullContainer final : public Container {
 public:
  explicit NullContainer(std::string id) : id_(std::move(id)) {}
  const std::string& id() const override { return id_; }
  Status Start() override {
    if (started_) return FailedPreconditionError("container " + id_ + " was already started");
    started_ = true;
    exit_.start_ns = exit_.end_ns = WallNowNs();
    exit_.exit_code = 0;
    return Status::OK();
  }
  Result<ExitStatus> Wait(Deadline) override {
    if (!started_) return FailedPreconditionError("container " + id_ + " was not started");
    return exit_;
  }
  Status Stop(std::chrono::nanoseconds) override { return Status::OK(); }
  Status Kill(int) override { return Status::OK(); }
  Subscription Logs(LogCallback) override { return Subscription(); }
  void Keep() override {}

 private:
  std::string id_;
  bool started_ = false;
  ExitStatus exit_;
};

}  // namespace

Result<NullRunnerOptions> NullRunnerOptions::FromUri(const Uri& uri) {
  BITFUSION_RETURN_IF_ERROR(uri.CheckQueryKeys({}));
  return NullRunnerOptions{};
}

Result<std::shared_ptr<NullRunner>> NullRunner::Make(const NullRunnerOptions&) {
  return std::make_shared<NullRunner>();
}

Result<RunnerCapabilities> NullRunner::Capabilities() {
  RunnerCapabilities caps;
  caps.engine = "null";
  caps.images = true;
  return caps;
}

Status NullRunner::EnsureImage(const std::string&, Deadline) { return Status::OK(); }

Result<std::unique_ptr<Container>> NullRunner::Create(const ContainerSpec&) {
  static std::atomic<int> next{0};
  return std::unique_ptr<Container>(new NullContainer("null-" + std::to_string(next++)));
}

BITFUSION_REGISTER(ContainerRunner, "null", NullRunnerOptions, NullRunner);

}  // namespace bitfusion
