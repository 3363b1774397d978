// `bitfusion reap`: removes the containers and images that runs left behind — those whose
// creating process on this host is gone (a kill -9, a crash, a power cut) and those past their
// expiry label — from one engine. Objects without bitfusion's labels are never touched.
#include <cstdio>
#include <iostream>

#include "bitfusion/container_runner.h"
#include "bitfusion/provisioner.h"
#include "cli/commands.h"

namespace bitfusion::cli {

namespace po = boost::program_options;

namespace {

int ReapMachines(const po::variables_map& vm) {
  auto provisioner = ProvisionerFromUri(vm["provisioner"].as<std::string>());
  if (!provisioner) {
    std::cerr << "bitfusion reap: " << provisioner.error().message() << "\n";
    return kExitUsage;
  }
  ReapPolicy policy;
  policy.expired_any_host = vm.count("all-expired") > 0;
  policy.dry_run = vm.count("dry-run") > 0;
  if (vm.count("run-id")) policy.run_id = vm["run-id"].as<std::string>();
  auto report = (*provisioner)->Reap(policy);
  if (!report) {
    std::cerr << "bitfusion reap: " << report.error().message() << "\n";
    return report.error().code() == StatusCode::kInvalidArgument ? kExitUsage : kExitFailed;
  }
  const char* verb = policy.dry_run ? "would destroy" : "destroyed";
  for (const auto& m : report->machines) std::printf("%s machine %s\n", verb, m.c_str());
  for (const auto& e : report->errors)
    std::cerr << "bitfusion reap: could not destroy " << e << "\n";
  std::printf("%s %zu machine(s)\n", verb, report->machines.size());
  return report->errors.empty() ? kExitOk : kExitFailed;
}

}  // namespace

int ReapCommand(const std::vector<std::string>& args) {
  po::options_description options("options");
  options.add_options()("runner", po::value<std::string>()->default_value("docker://"),
                        "the engine to clean: docker:// (DOCKER_HOST, else "
                        "/var/run/docker.sock), docker:///PATH.sock, docker+tls://HOST:PORT, "
                        "docker+ssh://USER@HOST[:PORT], or process:// "
                        "(process groups in this user's process ledger)")(
      "all-expired",
      "also remove expired objects that other hosts created (a shared remote engine)")(
      "run-id", po::value<std::string>(),
      "remove only the objects of this run (its bitfusion.run_id label), whatever their state")(
      "dry-run,n", "list what would be removed, remove nothing")(
      "provisioner", po::value<std::string>(),
      "clean a provisioner instead (aws://REGION, null://): destroy, among machines with "
      "bitfusion's tags only, those past expiry and those whose creating process here is gone");
  po::positional_options_description pos;
  po::variables_map vm;
  if (auto exit = ParseOptions("reap",
                               "[--runner URI | --provisioner URI] [--all-expired] [--run-id ID] "
                               "[--dry-run]",
                               options, pos, args, vm)) {
    return *exit;
  }
  if (vm.count("provisioner")) return ReapMachines(vm);
  const std::string uri = vm["runner"].as<std::string>();
  auto runner = ContainerRunnerFromUri(uri);
  if (!runner) {
    std::cerr << "bitfusion reap: " << runner.error().message() << "\n";
    return kExitUsage;
  }
  ReapPolicy policy;
  policy.expired_any_host = vm.count("all-expired") > 0;
  policy.dry_run = vm.count("dry-run") > 0;
  if (vm.count("run-id")) policy.run_id = vm["run-id"].as<std::string>();
  auto report = (*runner)->Reap(policy);
  if (!report) {
    std::cerr << "bitfusion reap: " << report.error().message() << "\n";
    return report.error().code() == StatusCode::kInvalidArgument ? kExitUsage : kExitFailed;
  }
  const char* verb = policy.dry_run ? "would remove" : "removed";
  for (const auto& c : report->containers) std::printf("%s container %s\n", verb, c.c_str());
  for (const auto& i : report->images) std::printf("%s image %s\n", verb, i.c_str());
  for (const auto& e : report->errors)
    std::cerr << "bitfusion reap: could not remove " << e << "\n";
  std::printf("%s %zu container(s) and %zu image(s)\n", verb, report->containers.size(),
              report->images.size());
  return report->errors.empty() ? kExitOk : kExitFailed;
}

}  // namespace bitfusion::cli
