// RunPlan: the five interfaces composed into one workflow. Prepare: resolve every benchmark's
// command, find the machines (the provisioner's first, or the plan's groups acquired), and on
// each reach the runner, build or fetch the images and check the sources; open the sinks.
// Execute: on every machine (in parallel, one benchmark at a time each) lease each benchmark's
// devices, then run its warm-ups and repetitions (each one RunOnce, run_once.h) under a metric
// stream. Finish: close the sinks, release the machines, deliver the last events, summarise.
// Only interfaces are used here: a new runner, source, sink, allocator or provisioner works in
// plans without a change to this file.
#include <algorithm>
#include <map>
#include <mutex>
#include <thread>

#include "bitfusion/container_runner.h"
#include "bitfusion/device_allocator.h"
#include "bitfusion/events.h"
#include "bitfusion/experiment.h"
#include "bitfusion/log.h"
#include "bitfusion/metric_stream.h"
#include "bitfusion/probe.h"
#include "bitfusion/provisioner.h"
#include "bitfusion/registry.h"
#include "bitfusion/result_sink.h"
#include "bitfusion/uri.h"
#include "core/shell_quote.h"
#include "experiment/image_distribution.h"
#include "experiment/machine_preflight.h"
#include "experiment/plan_machines.h"
#include "experiment/plan_programs.h"
#include "experiment/repetition_policy.h"
#include "experiment/run_once.h"

namespace bitfusion {
namespace {

using namespace std::chrono_literals;
using namespace internal;

// One machine the plan runs on, and what the prepare step found there.
struct Placement {
  PlanMachine machine;
  std::vector<std::size_t> benchmarks;  // the plan's benchmarks it runs, in plan order
  std::vector<std::string> sources;     // the plan's metric sources sampled there
  std::shared_ptr<ContainerRunner> runner;
  RunnerCapabilities caps;
  std::map<std::string, std::string> digests;                   // image -> digest
  std::map<std::string, std::vector<std::string>> entrypoints;  // image -> ENTRYPOINT
  std::shared_ptr<ContainerRunner> shell;  // a group's machine: plain commands there
  MachinePreflight preflight;  // a group's machine: its setup and preflight (error: unusable)
  std::shared_ptr<DeviceAllocator> allocator;  // a remote machine's own, when it leases devices
};

// What the prepare step found: everything a run needs that could fail before the first run.
struct PreparedPlan {
  std::vector<std::vector<std::string>> argvs;  // per benchmark
  std::unique_ptr<PlanMachines> groups;         // the plan's machine groups; null without
  std::vector<Placement> placements;
  std::vector<ImageDelivery> images;       // how images reached the remote machines
  std::vector<MachinePreflight> replaced;  // machines that failed and were replaced
  std::vector<std::shared_ptr<ResultSink>> sinks;
  std::size_t caller_sinks = 0;  // the last ones in `sinks`: ExperimentOptions::sink_objects
};

std::string PlanName(const PlanSpec& plan) {
  return plan.source_file.empty() ? "plan " + plan.name : plan.source_file;
}

Result<std::shared_ptr<ContainerRunner>> ReachRunner(const std::string& uri,
                                                     RunnerCapabilities& caps) {
  BITFUSION_ASSIGN_OR_RETURN(auto runner, ContainerRunnerFromUri(uri));
  auto got = runner->Capabilities();
  if (!got) {
    if (got.error().code() != StatusCode::kUnavailable) return got.error();
    if (uri.find("+ssh://") != std::string::npos) return got.error();
    return UnavailableError(got.error().message() +
                            "\nNo container engine is reachable for this plan. To run the "
                            "benchmarks as plain processes instead, use a plan with \"runner\": "
                            "\"process://\", such as examples/specs/quickstart.json.");
  }
  caps = *got;
  return runner;
}

// With a runner of images: what dead runs left goes first, then the plan's own images are built
// and every other image is fetched; each image's digest and entrypoint are kept.
Status PrepareImages(const PlanSpec& plan, const ExperimentOptions& options, Placement& p) {
  const std::string& runner_uri = p.machine.runner_uri;
  if (p.caps.reap) {
    // What runs killed on this host left behind goes first (their containers and process
    // groups still hold CPUs).
    ReapPolicy dead;
    dead.expired = false;
    if (auto reaped = p.runner->Reap(dead); reaped.ok()) {
      if (!reaped->containers.empty() || !reaped->images.empty()) {
        LogAt(LogLevel::kWarning, "removed ", reaped->containers.size(), " container(s) and ",
              reaped->images.size(), " image(s) left by runs that died");
      }
      for (const auto& e : reaped->errors) LogAt(LogLevel::kWarning, "reap: ", e);
    } else if (reaped.error().code() != StatusCode::kUnimplemented) {
      return reaped.error().WithContext("removing what dead runs left on " + Redact(runner_uri));
    }
  }
  if (p.caps.images) {
    for (const std::size_t i : p.benchmarks) {
      if (plan.benchmarks[i].image.empty()) {
        return InvalidArgumentError(plan.source_file + ": benchmarks[" + std::to_string(i) +
                                    "].image: missing; runner " + Redact(runner_uri) +
                                    " runs images (or use \"runner\": \"process://\")");
      }
    }
    for (const auto& [ref, recipe] : plan.images) {
      BITFUSION_RETURN_IF_ERROR(BuildPlanImage(*p.runner, plan, ref, recipe, options));
    }
  }
  for (const std::size_t i : p.benchmarks) {
    const BenchmarkSpec& b = plan.benchmarks[i];
    if (!b.image.empty() && p.digests.count(b.image)) continue;
    if (!plan.images.count(b.image)) {
      BITFUSION_RETURN_IF_ERROR(
          p.runner->EnsureImage(b.image, DeadlineAfter(10min)).WithContext("benchmark " + b.name));
    }
    if (b.image.empty()) continue;
    BITFUSION_ASSIGN_OR_RETURN(auto info, p.runner->InspectImage(b.image));
    p.digests[b.image] = info.digest;
    p.entrypoints[b.image] = info.entrypoint;
  }
  return Status::OK();
}

// Every source of the plan is checked before anything runs. "container" and "probe" follow each
// run's own container, so they need a runner whose commands run in containers. A source that is
// made here and samples nothing on this machine (a "gpu" without a GPU library, a gpu+ssh://
// without nvidia-smi there: it warned once) is left out of the machine's runs, which would
// otherwise make it again each time for nothing (gpu+ssh:// logs in and copies a probe).
Status CheckSources(const PlanSpec& plan, const ExperimentOptions& options, Placement& p) {
  const RunnerCapabilities& caps = p.caps;
  const std::string runner_uri = Redact(p.machine.runner_uri);
  std::vector<std::string> disabled;
  for (const auto& source : p.sources) {
    auto probe = IsOwnProbeSource(source);
    if (!probe) return probe.error().WithContext("metric source \"" + source + "\"");
    if (*probe) {
      if (!caps.containers) {
        return InvalidArgumentError(
            PlanName(plan) +
            ": metric source \"probe\" mounts bitfusion-probe into each benchmark's container, "
            "but runner " +
            runner_uri + " (" + caps.engine + ") runs no containers; use a docker:// runner");
      }
      BITFUSION_RETURN_IF_ERROR(
          LocateProbe(plan, options).status().WithContext("metric source \"probe\""));
      continue;
    }
    auto own = IsOwnContainerSource(source);
    if (!own) return own.error().WithContext("metric source \"" + source + "\"");
    if (*own) {
      // process:// runs plain child processes, which have no cgroup of their own to sample.
      if (!caps.containers) {
        return InvalidArgumentError(
            PlanName(plan) +
            ": metric source \"container\" samples each benchmark's own container through its "
            "cgroup, but runner " +
            runner_uri + " (" + caps.engine +
            ") runs no containers; use a docker:// runner, or drop \"container\" (the run "
            "record's exit usage has each benchmark's CPU time and peak memory)");
      }
      continue;
    }
    if (source.starts_with("host+ssh://")) {
      // Made for real at each run: a check would start a probe on the machine.
      auto uri = Uri::Parse(source);
      if (uri) std::erase_if(uri->query, [](const auto& kv) { return kv.first == "rate"; });
      Status s = uri ? Registry<MetricSource>::Instance().Check(*uri) : uri.error();
      BITFUSION_RETURN_IF_ERROR(s.WithContext("metric source \"host\" of " + p.machine.name));
      continue;
    }
    auto made = MetricSourceFromUri(source);
    if (!made) return made.error().WithContext("metric source \"" + source + "\"");
    if (std::string why = (*made)->WhyDisabled(); !why.empty()) disabled.push_back(source);
  }
  std::erase_if(p.sources, [&disabled](const std::string& source) {
    return std::find(disabled.begin(), disabled.end(), source) != disabled.end();
  });
  // The runs still record their own results.
  if (!disabled.empty() && p.sources.empty()) p.sources.push_back("null");
  return Status::OK();
}

// The machine a plan without groups runs on: the first the plan's provisioner lists.
Result<PlanMachine> FindMachine(const PlanSpec& plan) {
  BITFUSION_ASSIGN_OR_RETURN(auto provisioner, ProvisionerFromUri(plan.provisioner));
  BITFUSION_ASSIGN_OR_RETURN(auto machines, provisioner->List());
  if (machines.empty()) {
    return FailedPreconditionError(PlanName(plan) + ": provisioner " + plan.provisioner +
                                   " has no machine to run on; bring one up first");
  }
  PlanMachine m;
  BITFUSION_ASSIGN_OR_RETURN(m.info,
                             provisioner->WaitReady(machines.front().id, DeadlineAfter(10s)));
  m.runner_uri = plan.runner;
  return m;
}

// A plan's "gpu" source that a remote machine's gpu+ssh:// can stand for: NVIDIA's (nvidia-smi),
// every GPU (nvidia-smi's numbering is not the local source's `devices`).
bool IsRemoteGpuSource(const Uri& uri) {
  if (uri.scheme != "gpu") return false;
  for (const auto& [key, value] : uri.query) {
    if (key == "rate" || (key == "vendor" && (value == "auto" || value == "nvml"))) continue;
    return false;
  }
  return true;
}

// Sources read on the controller's own host (procfs, sysfs, cgroups, NVML) would describe this
// host, not a remote machine: on a remote machine, "host" becomes its SSH form (a probe started
// there, docs/metrics.md) at the plan's interval, "gpu" its SSH form (nvidia-smi there),
// "container" on a docker machine its engine's
// stats stream, "probe" on a docker machine a probe copied there whose socket is forwarded back,
// and the other sources are not sampled (said once per plan, in CheckRemote).
std::vector<std::string> SourcesFor(const PlanSpec& plan, const PlanMachine& m) {
  if (m.local) return plan.sources;
  std::vector<std::string> out;
  // Without a probe to copy there (CheckRemote says so) the machine is not sampled, as before.
  const bool probe = FindProbe().ok();
  // A docker machine's engine reports its containers' counters itself ("container" becomes
  // its stats stream, run_once.cc).
  const bool engine_stats = ContainersSampledByEngine(m.runner_uri);
  for (const auto& source : plan.sources) {
    if (auto own = IsOwnContainerSource(source); engine_stats && own.ok() && *own) {
      out.push_back(source);
      continue;
    }
    // The probe is copied to the machine for each probed container (metrics/remote_probe_host.h).
    if (auto own = IsOwnProbeSource(source);
        engine_stats && own.ok() && *own && !m.host_source_uri.empty() && probe) {
      out.push_back(source);
      continue;
    }
    auto uri = Uri::Parse(source);
    if (!uri || m.host_source_uri.empty() || !probe) continue;
    std::string remote;
    if (uri->scheme == "host") {
      remote = m.host_source_uri + "&interval=" +
               std::to_string(std::max<std::int64_t>(plan.interval.count(), 1'000'000)) + "ns";
    } else if (IsRemoteGpuSource(*uri)) {
      // The machine's nvidia-smi, through the same login, every interval but not under 100ms
      // (metrics/ssh_gpu_source.h).
      remote = "gpu+ssh" + m.host_source_uri.substr(m.host_source_uri.find("://")) + "&interval=" +
               std::to_string(std::max<std::int64_t>(plan.interval.count(), 100'000'000)) + "ns";
    } else {
      continue;
    }
    if (auto rate = uri->Query("rate")) remote += "&rate=" + *rate;
    out.push_back(std::move(remote));
  }
  if (out.empty()) out.push_back("null");  // the run still records its own results
  return out;
}

// Which machines run which benchmarks: every benchmark on every machine of its groups.
std::vector<Placement> Place(const PlanSpec& plan, const std::vector<PlanMachine>& machines) {
  std::vector<Placement> out;
  for (const auto& m : machines) {
    Placement p;
    p.machine = m;
    p.sources = SourcesFor(plan, m);
    for (std::size_t i = 0; i < plan.benchmarks.size(); ++i) {
      const auto& on = plan.benchmarks[i].on;
      if (m.group.empty() || on.empty() || std::find(on.begin(), on.end(), m.group) != on.end()) {
        p.benchmarks.push_back(i);
      }
    }
    if (!p.benchmarks.empty()) out.push_back(std::move(p));
  }
  return out;
}

// A remote machine's devices are leased through its own allocator (DeviceAllocatorUriFor), but
// a Slurm node's come with its jobs (GRES). Of the plan's sources "host" and "gpu" describe a
// remote machine (through host+ssh:// and gpu+ssh://).
Status CheckRemote(const PlanSpec& plan, const std::vector<Placement>& placements) {
  std::string unsampled;
  bool slurm_unsampled = false;  // a Slurm node that is not logged in to
  for (const auto& p : placements) {
    if (p.machine.local) continue;
    if (p.machine.host_source_uri.empty() && p.machine.info.provider == "slurm") {
      slurm_unsampled = true;
    }
    for (const std::size_t i : p.benchmarks) {
      if (!plan.benchmarks[i].devices.empty() && p.machine.info.provider == "slurm") {
        return InvalidArgumentError(
            PlanName(plan) + ": benchmarks[" + std::to_string(i) + "].devices: benchmark " +
            plan.benchmarks[i].name + " runs on Slurm node " + p.machine.name +
            ", whose GPUs come with its jobs (GRES): ask for them with the group's \"gpu\" "
            "(\"any:N\", which each of its jobs then asks for) or the provisioner's "
            "?gres=gpu:N, and drop \"devices\"");
      }
    }
    const auto sampled_as = [&p](const char* prefix) {
      return std::any_of(p.sources.begin(), p.sources.end(),
                         [prefix](const auto& s) { return s.starts_with(prefix); });
    };
    const bool host_sampled = sampled_as("host+ssh://");
    const bool gpu_sampled = sampled_as("gpu+ssh://");
    for (const auto& source : plan.sources) {
      auto uri = Uri::Parse(source);
      if (source == "null" || (uri && uri->scheme == "null")) continue;
      if (uri && uri->scheme == "host" && host_sampled) continue;
      if (uri && IsRemoteGpuSource(*uri) && gpu_sampled) continue;
      if (std::find(p.sources.begin(), p.sources.end(), source) != p.sources.end()) continue;
      if (unsampled.find(source) == std::string::npos) {
        unsampled += (unsampled.empty() ? "" : ", ") + source;
      }
    }
  }
  if (!unsampled.empty()) {
    auto probe = FindProbe();
    LogAt(LogLevel::kWarning, "metric sources ", unsampled,
          " are read on this host and do not sample remote machines (their runs record wall "
          "time and their own results); \"host\" samples them through a bitfusion-probe "
          "started over SSH, and \"gpu\" (NVIDIA, every GPU) through nvidia-smi there",
          probe.ok() ? "" : ", but " + probe.error().message(),
          slurm_unsampled ? "; a Slurm group's nodes are logged in to when its provisioner "
                            "says how (slurm://…?ssh_user=USER)"
                          : "");
  }
  return Status::OK();
}

// Runs `fn` for every placement at once (machines are set up and checked in parallel).
template <class Fn>
void OnEveryMachine(std::vector<Placement>& placements, Fn fn) {
  std::vector<std::thread> workers;
  for (auto& p : placements) workers.emplace_back([&fn, &p] { fn(p); });
  for (auto& w : workers) w.join();
}

const MachineGroupSpec& GroupOf(const PlanSpec& plan, const Placement& p) {
  return *std::find_if(plan.machines.begin(), plan.machines.end(),
                       [&](const MachineGroupSpec& g) { return g.name == p.machine.group; });
}

// A group's setup steps on each of its machines, through a process runner there (process:// on
// this host, process+ssh:// elsewhere), before the machine's engine is reached: a step may
// install it. A machine that fails keeps the error in `preflight` and is left out.
void SetUpMachines(const PlanSpec& plan, const ExperimentOptions& options,
                   std::vector<Placement>& placements) {
  OnEveryMachine(placements, [&](Placement& p) {
    const MachineGroupSpec& group = GroupOf(plan, p);
    auto uri = p.machine.local ? Result<std::string>(std::string("process://"))
                               : RunnerUriFor("process://", group, p.machine.info);
    auto shell =
        uri ? ContainerRunnerFromUri(*uri) : Result<std::unique_ptr<ContainerRunner>>(uri.error());
    if (!shell) {
      p.preflight.machine = p.machine.name;
      p.preflight.error = "cannot run commands there: " + shell.error().message();
      return;
    }
    p.shell = std::move(*shell);
    p.preflight = SetUpMachine(group, p.machine.name, *p.shell, options.cancel);
  });
}

// The preflight on each machine whose setup passed; what it found is logged.
void CheckMachines(const PlanSpec& plan, const ExperimentOptions& options,
                   std::vector<Placement>& placements) {
  OnEveryMachine(placements, [&](Placement& p) {
    if (p.preflight.error.empty()) {
      CheckMachine(GroupOf(plan, p), *p.shell, p.caps, options.cancel, p.preflight);
    }
  });
  for (const auto& p : placements) {
    const MachinePreflight& f = p.preflight;
    if (!f.error.empty()) {
      LogAt(LogLevel::kError, "machine ", p.machine.name, " is not used: ", f.error);
      continue;
    }
    std::string drivers;
    for (const auto& d : f.accelerator_drivers) drivers += (drivers.empty() ? "" : ", ") + d;
    LogAt(LogLevel::kInfo, "machine ", p.machine.name, ": kernel ", f.kernel, ", ", f.engine, " ",
          f.engine_version, f.storage_driver.empty() ? "" : " (" + f.storage_driver + ")", ", ",
          f.free_inodes, " free inodes on ", f.data_root,
          drivers.empty() ? "" : ", drivers " + drivers,
          f.setup_steps > 0 ? ", " + std::to_string(f.setup_steps) + " setup step(s)" : "");
  }
}

// A machine that failed its setup or preflight is exchanged for another of its group, once: the
// failed one is reported (and kept leased until the end, so it is not handed out again); the
// new one is set up and checked like the others and, should it fail too, reported in its turn.
// A group whose provisioner has no other machine (a static inventory without a free host)
// keeps the failed one, reported, with its runs not made.
Status ReplaceFailedMachines(const PlanSpec& plan, const ExperimentOptions& options,
                             PreparedPlan& p) {
  for (auto& placement : p.placements) {
    if (placement.preflight.error.empty()) continue;
    if (options.cancel != nullptr && options.cancel->load()) break;
    const std::string failed = placement.machine.name;
    auto fresh = p.groups->Replace(plan, failed);
    if (!fresh) {
      LogAt(LogLevel::kWarning, "machine ", failed, " is not replaced: ", fresh.error().message());
      continue;
    }
    std::vector<Placement> one = Place(plan, {*fresh});
    if (one.empty()) continue;
    SetUpMachines(plan, options, one);
    Placement& next = one.front();
    auto runner =
        ReachRunner(next.preflight.error.empty() ? next.machine.runner_uri : "null://", next.caps);
    if (!runner) return runner.error().WithContext("machine " + next.machine.name);
    next.runner = std::move(*runner);
    CheckMachines(plan, options, one);
    LogAt(LogLevel::kWarning, "machine ", failed, " failed its setup or preflight (",
          placement.preflight.error, "); machine ", next.machine.name, " (",
          next.machine.info.ssh.host.empty() ? next.machine.info.id : next.machine.info.ssh.host,
          ") runs its benchmarks instead");
    placement.preflight.error += "; replaced by machine " + next.machine.name;
    p.replaced.push_back(std::move(placement.preflight));
    placement = std::move(next);
  }
  return Status::OK();
}

// The images of the benchmarks on remote docker machines come from this host's engine (those
// the plan builds from recipes are built there instead).
Result<std::vector<ImageDelivery>> SendImages(const PlanSpec& plan,
                                              const std::vector<Placement>& placements) {
  std::vector<ImageTarget> targets;
  for (const auto& p : placements) {
    if (p.machine.local || !p.caps.images || !p.preflight.error.empty()) continue;
    ImageTarget t{p.machine.name, p.runner.get(), {}};
    for (const std::size_t i : p.benchmarks) {
      const std::string& image = plan.benchmarks[i].image;
      if (image.empty() || plan.images.count(image) ||
          std::find(t.images.begin(), t.images.end(), image) != t.images.end()) {
        continue;
      }
      t.images.push_back(image);
    }
    if (!t.images.empty()) targets.push_back(std::move(t));
  }
  if (targets.empty()) return std::vector<ImageDelivery>{};
  RunnerCapabilities caps;
  auto local = ReachRunner(plan.runner, caps);
  if (!local) return local.error().WithContext("this host's engine, the source of the images");
  ImageDistributionOptions options;
  options.registry = plan.registry;
  options.auth = RegistryAuthFromEnvironment(plan.registry);
  return DistributeImages(**local, targets, options);
}

// Everything that can fail before a benchmark runs fails here, before any run starts.
Result<PreparedPlan> Prepare(const PlanSpec& plan, const ExperimentOptions& options,
                             const std::string& run_id) {
  if (plan.benchmarks.empty()) {
    return InvalidArgumentError("plan " + plan.name + " has no benchmarks");
  }
  PreparedPlan p;
  for (std::size_t i = 0; i < plan.benchmarks.size(); ++i) {
    BITFUSION_ASSIGN_OR_RETURN(auto argv, ResolveCommand(plan, plan.benchmarks[i], i, options));
    p.argvs.push_back(std::move(argv));
  }
  std::vector<PlanMachine> machines;
  if (plan.machines.empty()) {
    BITFUSION_ASSIGN_OR_RETURN(auto m, FindMachine(plan));
    machines.push_back(std::move(m));
  } else {
    BITFUSION_ASSIGN_OR_RETURN(p.groups, PlanMachines::Acquire(plan, run_id, options.cancel));
    machines = p.groups->machines();
  }
  p.placements = Place(plan, machines);
  BITFUSION_RETURN_IF_ERROR(CheckRemote(plan, p.placements));
  if (p.groups != nullptr) SetUpMachines(plan, options, p.placements);
  for (auto& placement : p.placements) {
    // A machine whose setup failed runs nothing; its engine may not even be there.
    const bool unusable = !placement.preflight.error.empty();
    auto runner = ReachRunner(unusable ? "null://" : placement.machine.runner_uri, placement.caps);
    if (!runner) {
      if (placement.machine.name.empty()) return runner.error();
      return runner.error().WithContext("machine " + placement.machine.name);
    }
    placement.runner = std::move(*runner);
  }
  if (p.groups != nullptr) {
    CheckMachines(plan, options, p.placements);
    BITFUSION_RETURN_IF_ERROR(ReplaceFailedMachines(plan, options, p));
  }
  const auto in_context = [](const Placement& placement, Status s) {
    return placement.machine.name.empty() ? s : s.WithContext("machine " + placement.machine.name);
  };
  // Sources first, on every machine at once (a gpu+ssh:// check logs in there), so that a bad
  // one fails the plan before images are sent or pulled; the first error in placement order.
  std::vector<Status> sources_checked(p.placements.size());
  OnEveryMachine(p.placements, [&](Placement& placement) {
    if (!placement.preflight.error.empty()) return;  // its runs are reported, not made
    sources_checked[&placement - p.placements.data()] = CheckSources(plan, options, placement);
  });
  for (std::size_t k = 0; k < p.placements.size(); ++k) {
    if (!sources_checked[k].ok()) return in_context(p.placements[k], sources_checked[k]);
  }
  BITFUSION_ASSIGN_OR_RETURN(p.images, SendImages(plan, p.placements));
  for (auto& placement : p.placements) {
    if (!placement.preflight.error.empty()) continue;
    if (Status s = PrepareImages(plan, options, placement); !s.ok()) {
      return in_context(placement, s);
    }
  }
  for (const auto& uri : options.sinks.empty() ? plan.sinks : options.sinks) {
    BITFUSION_ASSIGN_OR_RETURN(auto sink, ResultSinkFromUri(uri));
    p.sinks.push_back(std::move(sink));
  }
  p.caller_sinks = options.sink_objects.size();
  for (const auto& sink : options.sink_objects) {
    if (sink == nullptr)
      return InvalidArgumentError("ExperimentOptions::sink_objects holds a null sink");
    p.sinks.push_back(sink);
  }
  return p;
}

// Reactors on the engine's events: the last log lines of a container that failed, and the OOM
// killer's verdict, both keyed by the run id label each container carries. An inactive
// subscription when the runner has no events.
Subscription WatchEngine(Placement& p, EventBus& bus, Reactor& reactor, RunNotes& notes) {
  if (!p.caps.events) return {};
  auto by_run = [](const Event& e) { return EventAttribute(e, "run_id"); };
  reactor.Add(AttachLogTailOnFailure(p.runner, kStderrTail,
                                     [&notes, by_run](const Event& e, std::vector<LogLine> tail) {
                                       if (!by_run(e).empty()) notes.AddTail(by_run(e), tail);
                                     }));
  reactor.Add(MarkFailedOnOom([&notes, by_run](const Event& e) {
    if (!by_run(e).empty()) notes.MarkOom(by_run(e));
  }));
  auto subscribed = p.runner->Events(bus.Publisher());
  if (subscribed.ok()) return std::move(*subscribed);
  LogAt(LogLevel::kWarning, "no events from ", Redact(p.machine.runner_uri), " (",
        subscribed.error().ToString(), "); failed runs get stderr only");
  return {};
}

// Hands a record to the sinks and the caller; true when the plan is to stop (interrupted).
using StoreFn = std::function<bool(RunRecord)>;

// One benchmark's warm-ups and measured runs on one machine; each record goes to `store` as soon
// as it is made. Stops early when the plan is cancelled (returns false then). Why an adaptive
// benchmark stopped goes to `stopped`.
bool RunBenchmark(const RunContext& ctx, std::size_t index, const std::vector<std::string>& argv,
                  const LeasedDevices& devices, const StoreFn& store, std::string& stopped) {
  const BenchmarkSpec& b = ctx.plan.benchmarks[index];
  RepetitionPolicy policy(b);
  RunProgress progress;
  progress.machine = ctx.machine_name.empty() ? ctx.machine.hostname : ctx.machine_name;
  progress.benchmark = b.name;
  progress.benchmark_index = index;
  progress.benchmarks = ctx.plan.benchmarks.size();
  progress.warmups = b.warmup;
  progress.planned = b.repetitions;
  progress.target_rsd = b.adaptive.enabled ? b.adaptive.target_rsd : 0;
  progress.metric = policy.metric();
  const auto& on_progress = ctx.options.on_progress;
  const auto first_start = std::chrono::steady_clock::now();
  for (int k = 0;; ++k) {
    if (Cancelled(ctx.options)) return false;
    const bool warmup = k < b.warmup;
    const int repetition = warmup ? k : k - b.warmup;
    progress.started = true;
    progress.warmup = warmup;
    progress.run = repetition + 1;
    progress.record = nullptr;
    progress.stopped.clear();
    if (on_progress) on_progress(progress);
    RunRecord record = RunOnce(ctx, b, argv, devices, repetition, warmup);
    std::string why;
    if (!warmup) {
      why = policy.Add(record, std::chrono::steady_clock::now() - first_start);
      if (!why.empty() && b.adaptive.enabled) {
        record.labels["repetitions_stop"] = policy.stop_kind();
        record.labels["repetitions_stop_detail"] = why;
        stopped = why;
      }
    }
    progress.started = false;
    progress.last = policy.last();
    progress.rsd = policy.rsd();
    progress.eta_ns =
        why.empty() ? policy.EtaNs(k + 1, std::chrono::steady_clock::now() - first_start) : 0;
    progress.stopped = why;
    progress.record = &record;
    if (on_progress) on_progress(progress);
    progress.record = nullptr;
    if (store(std::move(record))) return false;
    if (!why.empty()) return true;
  }
}

// Every benchmark of the plan gets rows, in plan order; one with no successful run gets a
// wall_time row with 0 runs.
std::vector<MetricSummary> Summaries(const PlanSpec& plan, const std::vector<RunRecord>& runs) {
  const std::vector<MetricSummary> all = SummarizeRuns(runs);
  std::vector<MetricSummary> out;
  for (const auto& b : plan.benchmarks) {
    const std::size_t before = out.size();
    for (const auto& m : all) {
      // On machine groups a benchmark's rows are per machine: "stream@office-1".
      if (m.benchmark == b.name || m.benchmark.rfind(b.name + "@", 0) == 0) out.push_back(m);
    }
    if (out.size() == before) {
      MetricSummary m;
      m.benchmark = b.name;
      m.metric = "wall_time";
      m.unit = "s";
      out.push_back(m);
    }
  }
  return out;
}

// A record for a benchmark that could not run on a machine at all.
RunRecord ErrorRecord(const RunContext& ctx, const BenchmarkSpec& b, const Status& why) {
  RunRecord record;
  record.run_id = NewRunId();
  record.plan = ctx.plan.name;
  record.plan_run_id = ctx.plan_run_id;
  record.benchmark = b.name;
  record.runner = Redact(ctx.runner_uri);
  record.machine = ctx.machine;
  if (!ctx.machine_name.empty()) {
    record.labels = {{"machine", ctx.machine_name}, {"machine_group", ctx.machine_group}};
  }
  record.status = kRunError;
  record.error = why.ToString();
  return record;
}

// Whether a remote machine stopped answering: its runner cannot reach its engine any more.
bool MachineLost(const Placement& p) {
  if (p.machine.local) return false;
  auto caps = p.runner->Capabilities();
  return !caps.ok() && caps.error().code() == StatusCode::kUnavailable;
}

// machine.down for `m`: reason "preflight" (with the error) or "unreachable".
Event MachineDownEvent(const std::string& plan_name, const std::string& plan_run_id,
                       const PlanMachine& m, const std::string& reason, const std::string& error) {
  Event e;
  e.type = EventType::kMachineDown;
  e.source = "plan:" + plan_name;
  e.subject = m.name;
  e.attributes = {{"reason", reason}};
  if (reason == "preflight") e.attributes.emplace("error", error);
  e.attributes.emplace("machine_id", m.info.id);
  e.attributes.emplace("address", m.info.ssh.host);
  e.attributes.emplace("plan_run_id", plan_run_id);
  e.time_ns = WallNowNs();
  return e;
}

// What one machine's runs left for the end of the plan.
struct PlacementOutcome {
  bool lost = false;                     // it stopped answering mid-plan
  std::vector<std::string> failed_runs;  // run ids of the runs that ended in an error there
};

// Every benchmark placed on one machine, one after another. A remote machine that stops
// answering fails its own runs (each error names it), is announced on the bus (machine.down,
// reason "unreachable"), and its remaining benchmarks get one error record each; the other
// machines go on.
PlacementOutcome RunPlacement(
    const RunContext& ctx, const Placement& p, const PreparedPlan& prepared,
    DeviceAllocator* local_allocator, const StoreFn& store,
    const std::function<void(const std::string&, const std::string&)>& stopped,
    const EventCallback& publish) {
  PlacementOutcome outcome;
  DeviceAllocator* allocator = p.allocator != nullptr ? p.allocator.get() : local_allocator;
  const std::string where =
      p.machine.local ? "" : "machine " + p.machine.name + " (" + p.machine.info.ssh.host + ")";
  std::string lost;  // why, once the machine is lost
  if (!p.preflight.error.empty()) {
    lost = "machine " + p.machine.name + " failed its setup or preflight: " + p.preflight.error;
    publish(MachineDownEvent(ctx.plan.name, ctx.plan_run_id, p.machine, "preflight",
                             p.preflight.error));
  }
  const StoreFn store_here = [&](RunRecord record) {
    if (record.status == kRunError && !where.empty()) {
      record.error = where + ": " + record.error;
      outcome.failed_runs.push_back(record.run_id);
      if (lost.empty() && MachineLost(p)) {
        lost = where + " stopped answering";
        outcome.lost = true;
        publish(MachineDownEvent(ctx.plan.name, ctx.plan_run_id, p.machine, "unreachable", ""));
        LogAt(LogLevel::kError, lost,
              "; its remaining runs are not made, the other machines go on");
      }
    }
    return store(std::move(record)) || !lost.empty();
  };
  for (const std::size_t i : p.benchmarks) {
    const BenchmarkSpec& b = ctx.plan.benchmarks[i];
    if (!lost.empty()) {
      if (store(ErrorRecord(ctx, b, UnavailableError("not run: " + lost)))) return outcome;
      continue;
    }
    LeasedDevices devices;
    if (!b.devices.empty()) {
      auto leased = LeaseDevices(*allocator, p.caps, ctx.plan, b, ctx.options.cancel);
      if (!leased && leased.error().code() == StatusCode::kCancelled) return outcome;
      if (!leased) {
        // The benchmark cannot run; one record says why, and the plan goes on.
        if (store(ErrorRecord(ctx, b, leased.error().WithContext("leasing devices"))))
          return outcome;
        continue;
      }
      devices = std::move(*leased);
    }
    std::string why;
    const bool go_on = RunBenchmark(ctx, i, prepared.argvs[i], devices, store_here, why);
    if (!why.empty()) stopped(b.name, why);
    if (!go_on && lost.empty()) return outcome;
  }
  return outcome;
}

// A machine that stopped answering may keep what its last runs made there: their containers
// could not be removed while it was away. It is asked once more at the end of the plan (its
// runner logs in again), and the runs' objects are removed by their run ids. When it still
// does not answer, the error says how they go: by their expiry labels, or `bitfusion reap`.
void CleanUpLostMachine(const Placement& p, const PlacementOutcome& o,
                        std::vector<std::string>& errors) {
  if (!o.lost || !p.caps.reap || o.failed_runs.empty()) return;
  const std::string where = "machine " + p.machine.name + " (" + p.machine.info.ssh.host + ")";
  std::size_t removed = 0;
  for (std::size_t i = 0; i < o.failed_runs.size(); ++i) {
    ReapPolicy policy;
    policy.run_id = o.failed_runs[i];
    auto reaped = p.runner->Reap(policy);
    if (!reaped) {
      std::string commands;
      for (std::size_t j = i; j < o.failed_runs.size(); ++j) {
        commands += std::string(j == i ? "" : "; ") + "bitfusion reap --runner " +
                    ShellQuote(Redact(p.machine.runner_uri)) + " --run-id " + o.failed_runs[j];
      }
      errors.push_back(where + ": what its failed runs made there could not be removed (" +
                       reaped.error().message() +
                       "); it goes when its expiry label passes, or once the machine answers "
                       "again with: " +
                       commands);
      return;
    }
    removed += reaped->containers.size();
    for (const auto& e : reaped->errors) errors.push_back(where + ": " + e);
  }
  if (removed > 0) {
    LogAt(LogLevel::kInfo, where, " answers again: removed ", removed,
          " container(s) that its failed runs left there");
  }
}

}  // namespace

Result<PlanResult> RunPlan(const PlanSpec& plan, const ExperimentOptions& options) {
  const std::string plan_run_id = NewRunId();
  BITFUSION_ASSIGN_OR_RETURN(PreparedPlan p, Prepare(plan, options, plan_run_id));

  PlanResult result;
  result.plan = plan.name;
  result.plan_run_id = plan_run_id;
  result.images = p.images;
  if (p.groups != nullptr) {
    for (const auto& m : p.groups->machines()) result.machines[m.name] = m.info;
    for (const auto& m : p.groups->replaced()) result.machines[m.name] = m.info;
    for (const auto& placement : p.placements) {
      result.preflight[placement.machine.name] = placement.preflight;
    }
    for (const auto& f : p.replaced) result.preflight[f.machine] = f;
  }
  RunNotes notes;
  EventBus bus;
  Reactor reactor(bus);
  Subscription host_events;
  if (options.on_event) host_events = bus.Subscribe({}, nullptr, options.on_event);
  for (const auto& sink : p.sinks) sink->SetEventCallback(bus.Publisher());
  // The plan's webhooks hear its events (engines', leases', sinks', machines') as they happen.
  std::vector<std::shared_ptr<Webhook>> webhooks;
  for (std::size_t i = 0; i < plan.webhooks.size(); ++i) {
    auto hook = Webhook::Make(plan.webhooks[i]);
    if (!hook)
      return hook.error().WithContext(PlanName(plan) + ": webhooks[" + std::to_string(i) + "]");
    reactor.Add((*hook)->Rule());
    webhooks.push_back(std::move(*hook));
  }
  std::vector<Subscription> events;
  for (auto& placement : p.placements) {
    events.push_back(WatchEngine(placement, bus, reactor, notes));
  }
  // Every record goes to the sinks and the caller as soon as it is made; machines run in
  // parallel, so one at a time (progress reports too).
  std::mutex mu;
  std::vector<int> failed_writes(p.sinks.size(), 0);
  const StoreFn store = [&](RunRecord record) {
    std::lock_guard lock(mu);
    if (record.status == kRunInterrupted) result.interrupted = true;
    if (record.status != kRunOk && record.status != kRunInterrupted) ++result.failed_runs;
    for (std::size_t i = 0; i < p.sinks.size(); ++i) {
      if (Status s = p.sinks[i]->Write(record); !s.ok()) {
        result.sink_errors.push_back(s.ToString());
        ++failed_writes[i];
      }
    }
    if (options.on_run) options.on_run(record);
    result.runs.push_back(std::move(record));
    return result.interrupted;
  };
  auto stopped = [&](const std::string& benchmark, const std::string& why) {
    std::lock_guard lock(mu);
    result.repetitions_stopped[benchmark] = why;
  };
  ExperimentOptions run_options = options;
  if (options.on_progress && p.placements.size() > 1) {
    run_options.on_progress = [&mu, &options](const RunProgress& progress) {
      std::lock_guard lock(mu);
      options.on_progress(progress);
    };
  }
  // Leases and releases are published on the plan's bus and held in the plan run's name. The
  // plan's allocator serves this host's machine (made only when a benchmark there leases); a
  // remote machine's devices are its own, read and leased over SSH.
  std::shared_ptr<DeviceAllocator> allocator;
  for (auto& placement : p.placements) {
    if (!placement.preflight.error.empty() ||
        std::none_of(placement.benchmarks.begin(), placement.benchmarks.end(),
                     [&](std::size_t i) { return !plan.benchmarks[i].devices.empty(); })) {
      continue;
    }
    const BackendContext context{bus.Publisher(), result.plan_run_id, {}};
    if (placement.machine.local) {
      if (allocator != nullptr) continue;
      auto made = DeviceAllocatorFromUri(plan.device_allocator, context);
      if (!made) return made.error().WithContext("device_allocator " + plan.device_allocator);
      allocator = std::move(*made);
      continue;
    }
    auto uri = DeviceAllocatorUriFor(plan.device_allocator, GroupOf(plan, placement),
                                     placement.machine.info);
    auto made = uri ? DeviceAllocatorFromUri(*uri, context)
                    : Result<std::shared_ptr<DeviceAllocator>>(uri.error());
    if (!made) return made.error().WithContext("the devices of machine " + placement.machine.name);
    placement.allocator = std::move(*made);
  }

  const EventCallback publish = bus.Publisher();
  if (p.groups != nullptr) {
    for (const auto& m : p.groups->replaced()) {
      const auto f = result.preflight.find(m.name);
      publish(MachineDownEvent(plan.name, result.plan_run_id, m, "preflight",
                               f == result.preflight.end() ? "" : f->second.error));
    }
  }
  std::vector<RunContext> contexts;
  contexts.reserve(p.placements.size());
  for (std::size_t k = 0; k < p.placements.size(); ++k) {
    Placement& placement = p.placements[k];
    contexts.push_back(RunContext{
        plan, run_options, *placement.runner, p.sinks, placement.machine.info, result.plan_run_id,
        placement.digests, events[k].active() ? &notes : nullptr, placement.entrypoints,
        placement.sources, placement.machine.runner_uri, placement.machine.name,
        placement.machine.group, placement.machine.host_source_uri});
  }
  std::vector<PlacementOutcome> outcomes(p.placements.size());
  if (p.placements.size() == 1) {
    outcomes[0] =
        RunPlacement(contexts[0], p.placements[0], p, allocator.get(), store, stopped, publish);
  } else {
    std::vector<std::thread> workers;
    for (std::size_t k = 0; k < p.placements.size(); ++k) {
      workers.emplace_back([&, k] {
        outcomes[k] =
            RunPlacement(contexts[k], p.placements[k], p, allocator.get(), store, stopped, publish);
      });
    }
    for (auto& w : workers) w.join();
  }
  for (std::size_t k = 0; k < p.placements.size(); ++k) {
    CleanUpLostMachine(p.placements[k], outcomes[k], result.machine_errors);
  }
  if (Cancelled(options)) result.interrupted = true;
  events.clear();

  // Finish.
  // No deadline: each sink's own flush_timeout, which for a durable sink is one budget for the
  // whole outage, so a store that is down does not hold the plan up here either. An
  // interrupted plan gives each sink a few seconds: what a durable sink has not sent by then
  // stays in its spool for the next run.
  constexpr auto kInterruptedSinkWait = std::chrono::seconds(3);
  const bool cancelled = Cancelled(options);
  for (std::size_t i = 0; i < p.sinks.size(); ++i) {
    ResultSink& sink = *p.sinks[i];
    // The caller's own sinks (the last ones) stay open for the caller.
    const bool callers = i + p.caller_sinks >= p.sinks.size();
    const Deadline deadline = cancelled ? DeadlineAfter(kInterruptedSinkWait) : kNoDeadline;
    const Status closed = callers ? sink.Flush(deadline) : sink.Close(deadline);
    if (!closed.ok()) result.sink_errors.push_back(closed.ToString());
    SinkOutcome outcome;
    outcome.uri = sink.uri();
    outcome.counters = sink.counters();
    outcome.spool = sink.spool_dir();
    outcome.stored = closed.ok() && failed_writes[i] == 0 &&
                     outcome.counters.samples_pending == 0 && outcome.counters.runs_pending == 0 &&
                     outcome.counters.samples_dropped == 0;
    result.sinks.push_back(std::move(outcome));
  }
  if (p.groups != nullptr) {
    if (Status s = p.groups->Release(); !s.ok()) result.machine_errors.push_back(s.ToString());
  }
  // The caller sees every event of the plan before RunPlan returns.
  if (Status s = bus.Flush(DeadlineAfter(10s)); !s.ok()) {
    LogAt(LogLevel::kWarning, "delivering the plan's last events: ", s.ToString());
  }
  for (const auto& hook : webhooks) {
    if (Status s = hook->Flush(DeadlineAfter(cancelled ? 1s : 5s)); !s.ok()) {
      LogAt(LogLevel::kWarning, s.ToString());
    }
  }
  result.summary = Summaries(plan, result.runs);
  return result;
}

}  // namespace bitfusion
