#include "bitfusion/container_runner.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <sstream>

#include <re2/re2.h>

#include "bitfusion/registry.h"

namespace bitfusion {

namespace {

Status NotSupported(std::string_view what) {
  return UnimplementedError(std::string(what) +
                            " is not supported by this container runner backend; use docker://");
}

}  // namespace

Container::~Container() = default;
ContainerRunner::~ContainerRunner() = default;

Result<ExecResult> Container::Exec(const ExecSpec&, Deadline) { return NotSupported("Exec"); }
Status Container::CopyIn(const std::filesystem::path&, const std::string&) {
  return NotSupported("CopyIn");
}
Status Container::CopyOut(const std::string&, const std::filesystem::path&) {
  return NotSupported("CopyOut");
}
Result<bool> Container::PathExists(const std::string&) { return NotSupported("PathExists"); }
Result<ContainerInfo> Container::Inspect() { return NotSupported("Inspect"); }
Result<Subscription> Container::Stats(StatsCallback, std::chrono::nanoseconds) {
  return NotSupported("Stats");
}

Result<ImageInfo> ContainerRunner::ImportImage(const ImportSpec&, Deadline) {
  return NotSupported("ImportImage");
}
Result<ImageInfo> ContainerRunner::BuildImage(const BuildSpec&, Deadline) {
  return NotSupported("BuildImage");
}
Result<ImageInfo> ContainerRunner::PullImage(const std::string&, const RegistryAuth&, Deadline,
                                             const ImageProgressCallback&) {
  return NotSupported("PullImage");
}
Result<ImageInfo> ContainerRunner::InspectImage(const std::string&) {
  return NotSupported("InspectImage");
}
Result<std::vector<ImageInfo>> ContainerRunner::ListImages(const Labels&) {
  return NotSupported("ListImages");
}
Status ContainerRunner::RemoveImage(const std::string&, bool) {
  return NotSupported("RemoveImage");
}
Status ContainerRunner::TagImage(const std::string&, const std::string&) {
  return NotSupported("TagImage");
}
Status ContainerRunner::PushImage(const std::string&, const RegistryAuth&, Deadline,
                                  const ImageProgressCallback&) {
  return NotSupported("PushImage");
}
Status ContainerRunner::SaveImage(const std::string&, const ArchiveSink&, Deadline) {
  return NotSupported("SaveImage");
}
Result<std::vector<std::string>> ContainerRunner::LoadImage(const ArchiveSource&, Deadline) {
  return NotSupported("LoadImage");
}
Result<std::vector<ContainerInfo>> ContainerRunner::ListContainers(const Labels&) {
  return NotSupported("ListContainers");
}
Result<ContainerInfo> ContainerRunner::InspectContainer(const std::string&) {
  return NotSupported("InspectContainer");
}
Result<std::unique_ptr<Container>> ContainerRunner::OpenContainer(const std::string&) {
  return NotSupported("OpenContainer");
}
Result<std::vector<LogLine>> ContainerRunner::TailLogs(const std::string&, std::size_t) {
  return NotSupported("TailLogs");
}
Result<Subscription> ContainerRunner::Events(EventCallback) { return NotSupported("Events"); }
Result<ReapReport> ContainerRunner::Reap(const ReapPolicy&) { return NotSupported("Reap"); }

Result<std::shared_ptr<ContainerRunner>> ContainerRunnerFromUri(std::string_view uri,
                                                                const BackendContext& context) {
  return Registry<ContainerRunner>::Instance().Make(uri, context);
}

// ---- wait strategies ---------------------------------------------------------------------

WaitStrategy WaitStrategy::LogMatches(std::string regex, int times) {
  WaitStrategy s(Kind::kLogMatches);
  s.text_ = std::move(regex);
  s.times_ = times;
  return s;
}
WaitStrategy WaitStrategy::Exited() { return WaitStrategy(Kind::kExited); }
WaitStrategy WaitStrategy::Healthy() { return WaitStrategy(Kind::kHealthy); }
WaitStrategy WaitStrategy::PortListening(std::uint16_t port) {
  WaitStrategy s(Kind::kPortListening);
  s.port_ = port;
  return s;
}
WaitStrategy WaitStrategy::FilePresent(std::string path) {
  WaitStrategy s(Kind::kFilePresent);
  s.text_ = std::move(path);
  return s;
}
WaitStrategy WaitStrategy::AllOf(std::vector<WaitStrategy> all) {
  WaitStrategy s(Kind::kAllOf);
  s.children_ = std::move(all);
  return s;
}
WaitStrategy WaitStrategy::AnyOf(std::vector<WaitStrategy> any) {
  WaitStrategy s(Kind::kAnyOf);
  s.children_ = std::move(any);
  return s;
}
WaitStrategy WaitStrategy::WithTimeout(std::chrono::nanoseconds timeout) const {
  WaitStrategy s = *this;
  s.timeout_ = timeout;
  return s;
}
WaitStrategy WaitStrategy::WithPollInterval(std::chrono::nanoseconds interval) const {
  WaitStrategy s = *this;
  s.poll_interval_ = interval;
  return s;
}

std::string WaitStrategy::Describe() const {
  std::string out;
  switch (kind_) {
    case Kind::kLogMatches:
      out = "log line matching /" + text_ + "/";
      if (times_ != 1) out += " " + std::to_string(times_) + " times";
      break;
    case Kind::kExited: out = "exit"; break;
    case Kind::kHealthy: out = "healthy health check"; break;
    case Kind::kPortListening: out = "TCP port " + std::to_string(port_) + " listening"; break;
    case Kind::kFilePresent: out = "file " + text_ + " present"; break;
    case Kind::kAllOf:
    case Kind::kAnyOf: {
      out = kind_ == Kind::kAllOf ? "all of (" : "any of (";
      for (std::size_t i = 0; i < children_.size(); ++i) {
        out += (i ? ", " : "") + children_[i].Describe();
      }
      out += ")";
      break;
    }
  }
  if (timeout_.count() > 0) out += " within " + FormatDuration(timeout_);
  return out;
}

namespace {

enum class NodeState { kPending, kMet, kFailed };

// One condition while a WaitFor runs: its compiled regex, log match count and verdict.
struct WaitNode {
  const WaitStrategy* strategy = nullptr;
  std::unique_ptr<RE2> regex;
  std::atomic<int> matches{0};
  Deadline own_deadline = kNoDeadline;
  NodeState state = NodeState::kPending;
  std::string why;  // for a failed one
  std::vector<std::unique_ptr<WaitNode>> children;
};

Result<std::unique_ptr<WaitNode>> BuildNodes(const WaitStrategy& s, Deadline began_plus_zero,
                                             std::vector<WaitNode*>& log_nodes) {
  auto node = std::make_unique<WaitNode>();
  node->strategy = &s;
  if (s.timeout().count() > 0) {
    node->own_deadline =
        began_plus_zero + std::chrono::duration_cast<Deadline::duration>(s.timeout());
  }
  switch (s.kind()) {
    case WaitStrategy::Kind::kLogMatches:
      if (s.times() < 1)
        return InvalidArgumentError("wait strategy " + s.Describe() + ": times must be at least 1");
      {
        RE2::Options options;
        options.set_log_errors(false);
        node->regex = std::make_unique<RE2>(s.text(), options);
        if (!node->regex->ok()) {
          return InvalidArgumentError("wait strategy " + s.Describe() +
                                      ": not a valid regular expression (" + node->regex->error() +
                                      "; RE2 syntax: no backreferences or lookaround)");
        }
      }
      log_nodes.push_back(node.get());
      break;
    case WaitStrategy::Kind::kPortListening:
      if (s.port() == 0) return InvalidArgumentError("wait strategy on TCP port 0: give a port");
      break;
    case WaitStrategy::Kind::kFilePresent:
      if (s.text().empty() || s.text()[0] != '/') {
        return InvalidArgumentError("wait strategy " + s.Describe() +
                                    ": the path must be absolute");
      }
      break;
    case WaitStrategy::Kind::kAllOf:
    case WaitStrategy::Kind::kAnyOf:
      if (s.children().empty()) {
        return InvalidArgumentError("wait strategy " + s.Describe() + " has no conditions");
      }
      for (const auto& c : s.children()) {
        BITFUSION_ASSIGN_OR_RETURN(auto child, BuildNodes(c, began_plus_zero, log_nodes));
        node->children.push_back(std::move(child));
      }
      break;
    default: break;
  }
  return node;
}

// Ports listed as LISTEN (state 0A) in /proc/net/tcp and tcp6 text.
bool ListensOn(std::string_view proc_net_tcp, std::uint16_t port) {
  std::istringstream in{std::string(proc_net_tcp)};
  std::string line;
  char hex[8];
  std::snprintf(hex, sizeof hex, ":%04X", port);
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string sl, local, remote, state;
    if (!(fields >> sl >> local >> remote >> state)) continue;
    if (state != "0A") continue;
    const auto colon = local.rfind(':');
    if (colon != std::string::npos && local.substr(colon) == hex) return true;
  }
  return false;
}

class WaitEvaluator {
 public:
  explicit WaitEvaluator(Container& c) : c_(c) {}

  // Per round: what Inspect said (fetched once, lazily).
  struct Round {
    std::optional<Result<ContainerInfo>> info;
    bool drained = false;  // exited and Wait() returned: every log line was delivered
  };

  Result<ContainerInfo> Info(Round& r) {
    if (!r.info) r.info = c_.Inspect();
    return *r.info;
  }

  static bool IsExited(const ContainerInfo& i) { return i.state == "exited" || i.state == "dead"; }

  Status Evaluate(WaitNode& n, Round& r, Deadline now) {
    if (n.state != NodeState::kPending) return Status::OK();
    const WaitStrategy& s = *n.strategy;
    auto fail = [&](std::string why) {
      n.state = NodeState::kFailed;
      n.why = s.Describe() + ": " + why;
    };
    switch (s.kind()) {
      case WaitStrategy::Kind::kLogMatches: {
        if (n.matches.load() >= s.times()) {
          n.state = NodeState::kMet;
          break;
        }
        BITFUSION_ASSIGN_OR_RETURN(auto info, Info(r));
        if (IsExited(info)) {
          // Its last lines may still be on their way: Wait() returns once all were delivered.
          if (!r.drained) {
            (void)c_.Wait(DeadlineAfter(std::chrono::seconds(5)));
            r.drained = true;
          }
          if (n.matches.load() >= s.times()) {
            n.state = NodeState::kMet;
          } else {
            fail("the container exited (code " + std::to_string(info.exit_code) + ") after " +
                 std::to_string(n.matches.load()) + " matching line(s)");
          }
        }
        break;
      }
      case WaitStrategy::Kind::kExited: {
        BITFUSION_ASSIGN_OR_RETURN(auto info, Info(r));
        if (IsExited(info)) n.state = NodeState::kMet;
        break;
      }
      case WaitStrategy::Kind::kHealthy: {
        BITFUSION_ASSIGN_OR_RETURN(auto info, Info(r));
        if (info.health == "healthy") {
          n.state = NodeState::kMet;
        } else if (info.health == "unhealthy") {
          fail("the health check reports unhealthy");
        } else if (IsExited(info)) {
          fail("the container exited (code " + std::to_string(info.exit_code) + ")");
        } else if (info.health.empty() && info.state == "running") {
          fail("the container has no health check; set ContainerSpec::health_check");
        }
        break;
      }
      case WaitStrategy::Kind::kPortListening:
      case WaitStrategy::Kind::kFilePresent: {
        BITFUSION_ASSIGN_OR_RETURN(auto info, Info(r));
        if (IsExited(info)) {
          fail("the container exited (code " + std::to_string(info.exit_code) + ")");
          break;
        }
        if (info.state != "running") break;
        if (s.kind() == WaitStrategy::Kind::kFilePresent) {
          BITFUSION_ASSIGN_OR_RETURN(bool exists, c_.PathExists(s.text()));
          if (exists) n.state = NodeState::kMet;
        } else {
          ExecSpec exec;
          exec.command = {"cat", "/proc/net/tcp", "/proc/net/tcp6"};
          auto got = c_.Exec(exec, DeadlineAfter(std::chrono::seconds(10)));
          if (!got) {
            // The container may have exited between Inspect and Exec; the next round says.
            if (got.error().code() == StatusCode::kUnimplemented) return got.error();
            break;
          }
          if (ListensOn(got->output, s.port())) n.state = NodeState::kMet;
        }
        break;
      }
      case WaitStrategy::Kind::kAllOf:
      case WaitStrategy::Kind::kAnyOf: {
        const bool all = s.kind() == WaitStrategy::Kind::kAllOf;
        std::size_t met = 0, failed = 0;
        std::string whys;
        for (auto& child : n.children) {
          BITFUSION_RETURN_IF_ERROR(Evaluate(*child, r, now));
          if (child->state == NodeState::kMet) ++met;
          if (child->state == NodeState::kFailed) {
            ++failed;
            whys += (whys.empty() ? "" : "; ") + child->why;
            if (all) break;
          }
        }
        if (all ? failed > 0 : met > 0) {
          if (all) {
            n.state = NodeState::kFailed;
            n.why = whys;
          } else {
            n.state = NodeState::kMet;
          }
        } else if (all ? met == n.children.size() : failed == n.children.size()) {
          if (all) {
            n.state = NodeState::kMet;
          } else {
            n.state = NodeState::kFailed;
            n.why = "none held: " + whys;
          }
        }
        break;
      }
    }
    if (n.state == NodeState::kPending && now >= n.own_deadline) {
      fail("not within " + FormatDuration(s.timeout()));
    }
    return Status::OK();
  }

 private:
  Container& c_;
};

std::chrono::nanoseconds ShortestPoll(const WaitStrategy& s) {
  std::chrono::nanoseconds p = s.poll_interval();
  for (const auto& c : s.children()) p = std::min(p, ShortestPoll(c));
  return std::max(p, std::chrono::nanoseconds(std::chrono::milliseconds(1)));
}

}  // namespace

Status Container::WaitFor(const WaitStrategy& strategy, Deadline deadline) {
  const Deadline began = std::chrono::steady_clock::now();
  std::vector<WaitNode*> log_nodes;
  BITFUSION_ASSIGN_OR_RETURN(auto root, BuildNodes(strategy, began, log_nodes));
  std::mutex mu;
  std::condition_variable cv;
  Subscription logs;
  if (!log_nodes.empty()) {
    logs = Logs([&](LogStream, std::string_view line) {
      bool any = false;
      for (WaitNode* n : log_nodes) {
        if (RE2::PartialMatch(line, *n->regex)) {
          n->matches.fetch_add(1);
          any = true;
        }
      }
      if (any) {
        std::lock_guard lock(mu);
        cv.notify_all();
      }
    });
  }
  WaitEvaluator evaluator(*this);
  const auto poll = ShortestPoll(strategy);
  while (true) {
    WaitEvaluator::Round round;
    const Deadline now = std::chrono::steady_clock::now();
    if (Status s = evaluator.Evaluate(*root, round, now); !s.ok()) {
      return s.WithContext("waiting for " + strategy.Describe() + " of container " + id());
    }
    if (root->state == NodeState::kMet) return Status::OK();
    if (root->state == NodeState::kFailed) {
      return FailedPreconditionError("container " + id() + " will not reach " +
                                     strategy.Describe() + ": " + root->why);
    }
    if (now >= deadline) {
      return DeadlineExceededError("container " + id() + " did not reach " + strategy.Describe() +
                                   " by the deadline");
    }
    std::unique_lock lock(mu);
    cv.wait_until(lock, std::min<Deadline>(deadline, now + poll));
  }
}

}  // namespace bitfusion
