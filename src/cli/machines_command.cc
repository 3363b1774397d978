// `bitfusion machines types|up|list|down`: a provisioner's catalogue, bringing machines up
// (ready, with their boot timestamps) and down, and the machines bitfusion's tags mark.
#include <algorithm>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <thread>

#include "bitfusion/clock.h"
#include "bitfusion/log.h"
#include "bitfusion/provisioner.h"
#include "bitfusion/serialize.h"
#include "cli/commands.h"
#include "core/shell_quote.h"
#include "devices/device_request.h"

namespace bitfusion::cli {
namespace {

namespace po = boost::program_options;

int ExitFor(const Status& s) {
  return s.code() == StatusCode::kInvalidArgument || s.code() == StatusCode::kNotFound
             ? kExitUsage
             : kExitFailed;
}

int Fail(const char* command, const Status& s) {
  std::cerr << "bitfusion machines " << command << ": " << s.message() << "\n";
  return ExitFor(s);
}

std::string Iso(std::int64_t ns) {
  if (ns <= 0) return "-";
  const std::time_t t = static_cast<std::time_t>(ns / 1'000'000'000);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string Label(const MachineInfo& m, const char* key) {
  auto it = m.labels.find(key);
  return it == m.labels.end() ? "" : it->second;
}

void AddRequirementOptions(po::options_description& options) {
  options.add_options()(
      "gpu", po::value<std::string>(),
      "KIND[:COUNT]: GPUs by model or vendor (A10G, nvidia, any), count default 1")(
      "fpga", po::value<std::string>(), "KIND[:COUNT]: FPGAs, as --gpu")(
      "min-vcpus", po::value<int>(), "at least this many vCPUs")(
      "min-memory", po::value<std::string>(), "at least this much memory: 64GiB")(
      "arch", po::value<std::string>(), "CPU architecture: x86_64, arm64");
}

Result<MachineRequirements> Requirements(const po::variables_map& vm) {
  MachineRequirements r;
  for (const char* kind : {"gpu", "fpga"}) {
    if (!vm.count(kind)) continue;
    if (!r.accelerator_kind.empty()) return InvalidArgumentError("give --gpu or --fpga, not both");
    BITFUSION_RETURN_IF_ERROR(
        ParseAcceleratorRequirement(kind, vm[kind].as<std::string>(), "--" + std::string(kind), r));
  }
  if (vm.count("min-vcpus")) {
    r.min_vcpus = vm["min-vcpus"].as<int>();
    if (r.min_vcpus < 1) return InvalidArgumentError("--min-vcpus must be at least 1");
  }
  if (vm.count("min-memory")) {
    auto bytes = ParseByteSize(vm["min-memory"].as<std::string>());
    if (!bytes) return InvalidArgumentError("--min-memory: " + bytes.error().message());
    r.min_memory_bytes = *bytes;
  }
  if (vm.count("arch")) r.cpu_architecture = vm["arch"].as<std::string>();
  return r;
}

// JSON string literal (the library's serialiser covers its own types; these are the command's).
std::string Quote(std::string_view text) {
  std::string out = "\"";
  for (const char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned char>(c));
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

template <class T, class F>
std::string JsonArray(const std::vector<T>& items, F&& each) {
  std::string out = "[";
  for (std::size_t i = 0; i < items.size(); ++i) out += (i ? "," : "") + each(items[i]);
  return out + "]";
}

std::string TypeJson(const MachineType& t) {
  char price[32] = "null";
  if (t.hourly_price_usd >= 0) std::snprintf(price, sizeof price, "%.6g", t.hourly_price_usd);
  return "{\"name\":" + Quote(t.name) + ",\"vcpus\":" + std::to_string(t.vcpus) +
         ",\"memory_bytes\":" + std::to_string(t.memory_bytes) +
         ",\"cpu_architecture\":" + Quote(t.cpu_architecture) +
         ",\"cpu_vendor\":" + Quote(t.cpu_vendor) + ",\"accelerators\":" +
         JsonArray(t.accelerators,
                   [](const AcceleratorInfo& a) {
                     return "{\"kind\":" + Quote(a.kind) + ",\"vendor\":" + Quote(a.vendor) +
                            ",\"model\":" + Quote(a.model) +
                            ",\"count\":" + std::to_string(a.count) + "}";
                   }) +
         ",\"hourly_price_usd\":" + price + "}";
}

std::string Accelerators(const std::vector<AcceleratorInfo>& acc) {
  std::string out;
  for (const auto& a : acc) {
    out += (out.empty() ? "" : ", ") + std::to_string(a.count) + "x " + a.vendor + " " + a.model +
           " (" + a.kind + ")";
  }
  return out.empty() ? "-" : out;
}

Result<std::shared_ptr<Provisioner>> Open(const po::variables_map& vm) {
  if (!vm.count("provisioner")) return InvalidArgumentError("--provisioner URI is required");
  return ProvisionerFromUri(vm["provisioner"].as<std::string>());
}

int Types(const std::vector<std::string>& args) {
  po::options_description options("options");
  options.add_options()("provisioner", po::value<std::string>(), "aws://REGION, local://, null://")(
      "explain", "say which type the requirements resolve to, and why each other one does not")(
      "json", "print JSON");
  AddRequirementOptions(options);
  po::variables_map vm;
  if (auto exit =
          ParseOptions("machines types",
                       "--provisioner URI [--gpu KIND[:COUNT]] [--fpga KIND[:COUNT]] "
                       "[--min-vcpus N] [--min-memory 64GiB] [--arch A] [--explain] [--json]",
                       options, {}, args, vm)) {
    return *exit;
  }
  auto req = Requirements(vm);
  if (!req) return Fail("types", req.error());
  auto p = Open(vm);
  if (!p) return Fail("types", p.error());
  auto types = (*p)->Types();
  if (!types) return Fail("types", types.error());
  std::vector<MachineType> fitting;
  for (const auto& t : *types) {
    if (UnmetRequirement(t, *req).empty()) fitting.push_back(t);
  }
  std::optional<TypeResolution> chosen;
  if (!req->empty() || vm.count("explain")) {
    auto r = ResolveMachineType(*types, *req);
    if (!r) return Fail("types", r.error());
    chosen = *r;
    // Cheapest first, in the resolver's order.
    std::vector<MachineType> ordered{chosen->type};
    for (const auto& line : chosen->explanation) {
      const std::string name = line.substr(0, line.find(':'));
      if (name == chosen->type.name || line.find(": satisfies") == std::string::npos) continue;
      for (const auto& t : fitting) {
        if (t.name == name) ordered.push_back(t);
      }
    }
    fitting = ordered;
  }
  if (vm.count("json")) {
    const std::string types_json = JsonArray(fitting, TypeJson);
    if (vm.count("explain")) {
      std::cout << "{\"chosen\":" << TypeJson(chosen->type)
                << ",\"summary\":" << Quote(chosen->summary) << ",\"explanation\":"
                << JsonArray(chosen->explanation, [](const std::string& l) { return Quote(l); })
                << ",\"types\":" << types_json << "}\n";
    } else {
      std::cout << types_json << "\n";
    }
    return kExitOk;
  }
  std::printf("%-22s %6s %10s %10s  %s\n", "TYPE", "VCPUS", "MEMORY", "PRICE", "ACCELERATORS");
  for (const auto& t : fitting) {
    char price[32] = "-";
    if (t.hourly_price_usd >= 0) std::snprintf(price, sizeof price, "$%.4g/h", t.hourly_price_usd);
    std::printf("%-22s %6d %7.1f GiB %10s  %s\n", t.name.c_str(), t.vcpus,
                static_cast<double>(t.memory_bytes) / (1ULL << 30), price,
                Accelerators(t.accelerators).c_str());
  }
  if (chosen) {
    std::printf("\nresolves to %s\n", chosen->summary.c_str());
    if (vm.count("explain")) {
      for (const auto& line : chosen->explanation) std::printf("  %s\n", line.c_str());
    }
  }
  return kExitOk;
}

// The MachineInfo as the library serialises it, plus who owns it and until when.
std::string MachineJson(const MachineInfo& m) {
  std::string out = ToJson(m);
  const std::string owner =
      Label(m, kLabelHost) + (Label(m, kLabelPid).empty() ? "" : ":" + Label(m, kLabelPid));
  out.pop_back();  // the closing brace
  out += ",\"owner\":" + Quote(owner) + ",\"run_id\":" + Quote(Label(m, kLabelRunId)) +
         ",\"expires\":" + Quote(Label(m, kLabelExpires)) + "}";
  return out;
}

void PrintMachines(const std::vector<MachineInfo>& machines, bool as_json, bool owners) {
  if (as_json) {
    std::cout << "[";
    for (std::size_t i = 0; i < machines.size(); ++i) {
      std::cout << (i ? ",\n" : "\n") << MachineJson(machines[i]);
    }
    std::cout << (machines.empty() ? "]\n" : "\n]\n");
    return;
  }
  if (owners) {
    std::printf("%-21s %-14s %-14s %-16s %-24s %-20s %s\n", "ID", "TYPE", "STATE", "ADDRESS",
                "OWNER", "RUN", "EXPIRES");
    for (const auto& m : machines) {
      const std::string exp = Label(m, kLabelExpires);
      const std::string owner =
          Label(m, kLabelHost) + (Label(m, kLabelPid).empty() ? "" : ":" + Label(m, kLabelPid));
      std::printf("%-21s %-14s %-14s %-16s %-24s %-20s %s\n", m.id.c_str(), m.type.c_str(),
                  m.state.c_str(), m.address.empty() ? "-" : m.address.c_str(), owner.c_str(),
                  Label(m, kLabelRunId).c_str(),
                  exp.empty() ? "never" : Iso(std::stoll(exp) * 1'000'000'000).c_str());
    }
    return;
  }
  std::printf("%-21s %-14s %-16s %-9s %-20s %-20s %-20s %s\n", "ID", "TYPE", "ADDRESS", "STATE",
              "CREATED", "RUNNING", "SSH", "READY");
  for (const auto& m : machines) {
    std::printf("%-21s %-14s %-16s %-9s %-20s %-20s %-20s %s\n", m.id.c_str(), m.type.c_str(),
                m.address.empty() ? "-" : m.address.c_str(), m.state.c_str(),
                Iso(m.created_ns).c_str(), Iso(m.running_ns).c_str(), Iso(m.ssh_ready_ns).c_str(),
                Iso(m.ready_ns).c_str());
  }
}

int Up(const std::vector<std::string>& args) {
  po::options_description options("options");
  options.add_options()("provisioner", po::value<std::string>(), "aws://REGION, null://, ...")(
      "type", po::value<std::string>(), "machine type; or give requirements")(
      "count", po::value<int>()->default_value(1), "how many")(
      "ttl", po::value<std::string>()->default_value("4h"),
      "expiry tag = creation + this; `bitfusion reap --provisioner URI` ends them after it")(
      "tag", po::value<std::vector<std::string>>()->composing(), "K=V, repeatable")(
      "image", po::value<std::string>(), "OS image (AMI); default: the provider's")(
      "zone", po::value<std::string>(), "availability zone")("spot", "spot capacity")(
      "key-name", po::value<std::string>(), "SSH key pair name")("run-id", po::value<std::string>(),
                                                                 "run id tag; default: a new one")(
      "timeout", po::value<std::string>()->default_value("15m"), "how long to wait for ready")(
      "json", "print JSON");
  AddRequirementOptions(options);
  po::variables_map vm;
  if (auto exit = ParseOptions("machines up",
                               "--provisioner URI (--type T | requirements) [--count N] "
                               "[--ttl 4h] [--tag K=V]... [--json]",
                               options, {}, args, vm)) {
    return *exit;
  }
  auto req = Requirements(vm);
  if (!req) return Fail("up", req.error());
  MachineRequest request;
  request.requirements = *req;
  if (vm.count("type")) {
    if (!req->empty())
      return Fail("up", InvalidArgumentError("give --type or requirements, not both"));
    request.type = vm["type"].as<std::string>();
  }
  request.count = vm["count"].as<int>();
  if (request.count < 1) return Fail("up", InvalidArgumentError("--count must be at least 1"));
  auto ttl = ParseDuration(vm["ttl"].as<std::string>());
  if (!ttl) return Fail("up", InvalidArgumentError("--ttl: " + ttl.error().message()));
  request.ttl_s = std::chrono::duration_cast<std::chrono::seconds>(*ttl).count();
  auto timeout = ParseDuration(vm["timeout"].as<std::string>());
  if (!timeout) return Fail("up", InvalidArgumentError("--timeout: " + timeout.error().message()));
  if (vm.count("tag")) {
    for (const auto& kv : vm["tag"].as<std::vector<std::string>>()) {
      const auto eq = kv.find('=');
      if (eq == std::string::npos || eq == 0) {
        return Fail("up", InvalidArgumentError("--tag " + kv + ": write KEY=VALUE"));
      }
      request.labels[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
  }
  if (vm.count("image")) request.image = vm["image"].as<std::string>();
  if (vm.count("zone")) request.zone = vm["zone"].as<std::string>();
  request.spot = vm.count("spot") > 0;
  if (vm.count("key-name")) request.ssh_key_name = vm["key-name"].as<std::string>();
  request.run_id = vm.count("run-id") ? vm["run-id"].as<std::string>()
                                      : "up-" + std::to_string(WallNowNs() / 1'000'000);
  auto p = Open(vm);
  if (!p) return Fail("up", p.error());
  InstallInterruptHandler();
  auto created = (*p)->Create(request);
  if (!created) return Fail("up", created.error());
  std::vector<std::string> ids;
  for (const auto& m : *created) ids.push_back(m.id);
  // From here on, anything but a clean finish ends what was made: a failure, Ctrl-C, SIGTERM.
  auto teardown = [&](const Status& why, int exit) {
    std::cerr << "bitfusion machines up: " << why.message() << "; destroying the " << ids.size()
              << " machine(s) it made\n";
    if (Status s = (*p)->Destroy(ids); !s.ok()) {
      std::cerr << "bitfusion machines up: destroying failed too (" << s.message()
                << "); run `bitfusion reap --provisioner "
                << ShellQuote(Redact(vm["provisioner"].as<std::string>())) << "`\n";
    }
    return exit;
  };
  std::vector<MachineInfo> ready(created->size());
  const Deadline deadline = DeadlineAfter(*timeout);
  for (std::size_t i = 0; i < created->size(); ++i) {
    if (InterruptFlag().load()) return teardown(CancelledError("interrupted"), kExitInterrupted);
    // Short waits, so that an interrupt is seen within a poll or two.
    while (true) {
      const Deadline step = std::min(deadline, DeadlineAfter(std::chrono::seconds(2)));
      auto m = (*p)->WaitReady((*created)[i].id, step);
      if (m) {
        ready[i] = *m;
        break;
      }
      if (m.error().code() != StatusCode::kDeadlineExceeded || step == deadline) {
        return teardown(m.error(), kExitFailed);
      }
      if (InterruptFlag().load()) return teardown(CancelledError("interrupted"), kExitInterrupted);
    }
  }
  if (Status s = (*p)->Keep(ids); !s.ok()) return teardown(s, kExitFailed);
  for (auto& m : ready) {
    for (const char* key : kCreatorProcessLabels) m.labels.erase(key);
  }
  PrintMachines(ready, vm.count("json") > 0, false);
  return kExitOk;
}

int List(const std::vector<std::string>& args) {
  po::options_description options("options");
  options.add_options()("provisioner", po::value<std::string>(), "aws://REGION, null://, ...")(
      "all", "also machines that are terminating or gone")("json", "print JSON");
  po::variables_map vm;
  if (auto exit = ParseOptions("machines list", "--provisioner URI [--all] [--json]", options, {},
                               args, vm)) {
    return *exit;
  }
  auto p = Open(vm);
  if (!p) return Fail("list", p.error());
  auto all = (*p)->List();
  if (!all) return Fail("list", all.error());
  std::vector<MachineInfo> shown;
  for (const auto& m : *all) {
    if (Label(m, kLabelCreator) != "bitfusion") continue;
    if (!vm.count("all") && (m.state == "terminated" || m.state == "shutting-down")) continue;
    shown.push_back(m);
  }
  PrintMachines(shown, vm.count("json") > 0, true);
  return kExitOk;
}

int Down(const std::vector<std::string>& args) {
  po::options_description options("options");
  options.add_options()("provisioner", po::value<std::string>(), "aws://REGION, null://, ...")(
      "id", po::value<std::vector<std::string>>()->composing(), "machine ids (positional)")(
      "run-id", po::value<std::string>(), "all machines of this run")(
      "all-mine", "all machines this host created")("json", "print JSON");
  po::positional_options_description pos;
  pos.add("id", -1);
  po::variables_map vm;
  if (auto exit = ParseOptions("machines down",
                               "--provisioner URI (ID... | --run-id ID | --all-mine) [--json]",
                               options, pos, args, vm)) {
    return *exit;
  }
  const int ways = (vm.count("id") > 0) + (vm.count("run-id") > 0) + (vm.count("all-mine") > 0);
  if (ways != 1) {
    return Fail("down", InvalidArgumentError("give machine ids, --run-id ID or --all-mine"));
  }
  auto p = Open(vm);
  if (!p) return Fail("down", p.error());
  std::vector<std::string> ids;
  if (vm.count("id")) {
    ids = vm["id"].as<std::vector<std::string>>();
  } else {
    auto all = (*p)->List();
    if (!all) return Fail("down", all.error());
    for (const auto& m : *all) {
      if (m.state == "terminated" || m.state == "shutting-down") continue;
      const bool match = vm.count("run-id")
                             ? Label(m, kLabelRunId) == vm["run-id"].as<std::string>()
                             : Label(m, kLabelHost) == OwnerIdentity::Self().host;
      if (match && Label(m, kLabelCreator) == "bitfusion") ids.push_back(m.id);
    }
  }
  if (!ids.empty()) {
    if (Status s = (*p)->Destroy(ids); !s.ok()) return Fail("down", s);
  }
  if (vm.count("json")) {
    std::cout << "{\"destroyed\":"
              << JsonArray(ids, [](const std::string& id) { return Quote(id); }) << "}\n";
  } else {
    for (const auto& id : ids) std::printf("destroyed %s\n", id.c_str());
    std::printf("destroyed %zu machine(s)\n", ids.size());
  }
  return kExitOk;
}

}  // namespace

int MachinesCommand(const std::vector<std::string>& args) {
  const char* usage =
      "usage: bitfusion machines <types|up|list|down> --provisioner URI [options]\n\n"
      "  types   the provider's machine types; with requirements, the cheapest that fits\n"
      "  up      bring machines up and print them once they are ready\n"
      "  list    the machines bitfusion's tags mark, with owner and expiry\n"
      "  down    destroy machines by id, by run id, or all this host made\n";
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    std::fputs(usage, args.empty() ? stderr : stdout);
    return args.empty() ? kExitUsage : kExitOk;
  }
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  if (args[0] == "types") return Types(rest);
  if (args[0] == "up") return Up(rest);
  if (args[0] == "list") return List(rest);
  if (args[0] == "down") return Down(rest);
  std::fprintf(stderr, "bitfusion machines: unknown subcommand \"%s\"\n\n%s", args[0].c_str(),
               usage);
  return kExitUsage;
}

}  // namespace bitfusion::cli
