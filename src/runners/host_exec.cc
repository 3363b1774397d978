#include "runners/host_exec.h"

#include <signal.h>

#include <mutex>

namespace bitfusion::internal {

ContainerSpec HostExecSpec(const ExecSpec& exec, std::map<std::string, std::string> env,
                           const std::string& working_dir) {
  ContainerSpec child;
  child.command = exec.command;
  child.env = std::move(env);
  for (const auto& [k, v] : exec.env) child.env[k] = v;
  child.working_dir = exec.working_dir.empty() ? working_dir : exec.working_dir;
  return child;
}

Result<ExecResult> RunHostExec(Container& sibling, Deadline deadline, const std::string& id) {
  ExecResult result;
  std::mutex mu;
  auto sub = sibling.Logs([&](LogStream s, std::string_view line) {
    std::lock_guard lock(mu);
    (s == LogStream::kStdout ? result.output : result.errors).append(line).append("\n");
  });
  BITFUSION_RETURN_IF_ERROR(sibling.Start());
  auto exit = sibling.Wait(deadline);
  if (!exit) {
    (void)sibling.Kill(SIGKILL);
    return exit.error().WithContext("exec in process " + id);
  }
  sub.Cancel();
  result.exit_code = exit->signal != 0 ? 128 + exit->signal : exit->exit_code;
  return result;
}

}  // namespace bitfusion::internal
