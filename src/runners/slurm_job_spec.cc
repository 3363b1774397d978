#include "runners/slurm_job_spec.h"

#include <signal.h>

#include <boost/json.hpp>
#include <cmath>
#include <map>

#include "core/shell_quote.h"
#include "net/slurm_rest.h"
#include "runners/container_spec_checks.h"

namespace bitfusion::internal {

namespace json = boost::json;

namespace {
std::string JoinList(const std::vector<std::string>& items) {
  std::string s;
  for (const auto& i : items) s += (s.empty() ? "" : ", ") + i;
  return s.empty() ? "none" : s;
}
}  // namespace

std::string SlurmBatchScript(const std::vector<std::string>& argv) {
  std::string script = "#!/bin/sh\nexec";
  for (const auto& a : argv) script += " " + ShellQuote(a);
  return script + "\n";
}

Result<std::string> SlurmGresFor(const ContainerSpec& spec, const std::string& fallback) {
  if (spec.device_requests.empty()) return fallback;
  int gpus = 0;
  for (const auto& r : spec.device_requests) {
    if (!r.device_ids.empty()) {
      return InvalidArgumentError(
          "slurm:// cannot ask for particular devices (device_ids " + JoinList(r.device_ids) +
          "): Slurm picks the GPUs of a GRES request; give a count instead");
    }
    if (r.count <= 0) {
      return InvalidArgumentError("slurm:// needs a GPU count >= 1 in device_requests (got " +
                                  std::to_string(r.count) +
                                  "; -1 = all cannot be asked of Slurm); give a number");
    }
    if (!r.driver.empty() && r.driver != "nvidia" && r.driver != "gpu") {
      return InvalidArgumentError(
          "slurm:// asks for GPUs as GRES \"gpu:N\"; device request "
          "driver \"" +
          r.driver + "\" has no GRES it maps to");
    }
    gpus += r.count;
  }
  return "gpu:" + std::to_string(gpus);
}

Result<ExitStatus> SlurmExitStatus(std::string_view state, std::int64_t wait_status,
                                   int sent_signal, std::string_view reason) {
  ExitStatus e;
  const int raw = static_cast<int>(wait_status);
  const int sig = raw & 0x7f;
  e.exit_code = sig != 0 ? -1 : (raw >> 8) & 0xff;
  e.signal = sig;
  const bool clean = sig == 0 && e.exit_code == 0;
  if (state == "CANCELLED" && (sent_signal != 0 || clean)) {
    // Slurm's cancel sends SIGTERM, then SIGKILL after KillWait: the signal asked for says
    // more than the one that ended the script.
    e.signal = sent_signal != 0 ? sent_signal : SIGKILL;
    e.exit_code = -1;
  } else if (state == "TIMEOUT" || state == "OUT_OF_MEMORY") {
    (state == "TIMEOUT" ? e.timed_out : e.oom_killed) = true;
    if (clean) {
      e.signal = SIGKILL;
      e.exit_code = -1;
    }
  } else if (state == "NODE_FAIL" || state == "BOOT_FAIL" || state == "PREEMPTED" ||
             state == "DEADLINE") {
    return UnavailableError("ended " + std::string(state) + " (reason: " + std::string(reason) +
                            "); Slurm has no exit status for it");
  }
  return e;
}

Result<SlurmSubmission> SlurmSubmissionFor(const ContainerSpec& spec, const SlurmRunnerOptions& o,
                                           const std::string& id, const Labels& labels) {
  if (!spec.image.empty()) {
    return InvalidArgumentError(
        "slurm:// runs host commands as batch jobs and has no images "
        "(asked for \"" +
        spec.image + "\"); leave image empty and give the command, or use docker://");
  }
  std::vector<std::string> unsupported;
  if (!spec.mounts.empty()) unsupported.push_back("mounts");
  if (!spec.devices.empty()) unsupported.push_back("devices (ask for GPUs with device_requests)");
  if (!spec.cdi_devices.empty()) unsupported.push_back("cdi_devices");
  if (!spec.device_cgroup_rules.empty()) unsupported.push_back("device_cgroup_rules");
  if (!spec.user.empty()) unsupported.push_back("user (jobs run as slurmrestd's user)");
  if (!spec.cpuset.empty()) unsupported.push_back("cpuset");
  if (spec.shm_bytes != 0) unsupported.push_back("shm_bytes");
  if (!spec.health_check.command.empty()) unsupported.push_back("health_check");
  if (!spec.network_mode.empty() && spec.network_mode != "host") {
    unsupported.push_back("network_mode");
  }
  if (!unsupported.empty()) {
    return InvalidArgumentError("slurm:// cannot honour " + JoinList(unsupported) +
                                " (Slurm runs host commands, not containers); drop them or use "
                                "docker://");
  }
  std::vector<std::string> argv = spec.entrypoint;
  argv.insert(argv.end(), spec.command.begin(), spec.command.end());
  if (argv.empty() || argv[0].empty()) {
    return InvalidArgumentError("container spec has no command; set command (argv) to run");
  }
  BITFUSION_RETURN_IF_ERROR(CheckEnvironmentNames(spec.env));
  BITFUSION_RETURN_IF_ERROR(CheckTimeout(spec.timeout_ns));
  if (spec.cpus < 0 || spec.memory_bytes < 0) {
    return InvalidArgumentError("cpus and memory_bytes must not be negative");
  }
  BITFUSION_ASSIGN_OR_RETURN(auto gres, SlurmGresFor(spec, o.gres));

  json::object comment_labels;
  for (const auto& [k, v] : labels) comment_labels[k] = v;

  std::map<std::string, std::string> env = spec.env;
  if (!env.count("PATH")) env["PATH"] = "/usr/local/bin:/usr/bin:/bin";
  json::object environment;
  for (const auto& [k, v] : env) environment[k] = v;

  const auto out = o.output_dir / (id + ".out");
  const auto err = o.output_dir / (id + ".err");
  json::object job;
  job["name"] = id;
  job["comment"] = std::string(kSlurmCommentPrefix) + json::serialize(comment_labels);
  job["environment"] = std::move(environment);
  job["current_working_directory"] =
      spec.working_dir.empty() ? o.output_dir.string() : spec.working_dir;
  job["standard_output"] = out.string();
  job["standard_error"] = err.string();
  job["standard_input"] = "/dev/null";
  if (!o.partition.empty()) job["partition"] = o.partition;
  if (!gres.empty()) job["gres"] = gres;
  if (!o.nodelist.empty()) job["nodelist"] = o.nodelist;
  if (spec.timeout_ns > 0) {
    job["time_limit"] =
        static_cast<std::int64_t>(std::ceil(static_cast<double>(spec.timeout_ns) / 60e9));
  }
  if (spec.cpus > 0) job["cpus_per_task"] = static_cast<std::int64_t>(std::ceil(spec.cpus));
  if (spec.memory_bytes > 0) {
    job["memory_per_node"] = (spec.memory_bytes + (1 << 20) - 1) >> 20;  // MB
  }
  json::object body;
  body["script"] = SlurmBatchScript(argv);
  body["job"] = std::move(job);

  SlurmSubmission out_job;
  out_job.body = json::serialize(body);
  out_job.gres = std::move(gres);
  out_job.out = out;
  out_job.err = err;
  return out_job;
}

}  // namespace bitfusion::internal
