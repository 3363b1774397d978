#include "provisioners/wait_ready_internal.h"

#include <thread>

#include "net/ssh_session.h"

namespace bitfusion::internal {

Result<MachineInfo> WaitUntilReady(const ReadyWait& wait,
                                   const std::function<Result<std::optional<MachineInfo>>()>& look,
                                   const std::function<std::int64_t()>& first_running) {
  using namespace std::chrono_literals;
  std::string last_state = "not shown yet";
  while (true) {
    BITFUSION_ASSIGN_OR_RETURN(std::optional<MachineInfo> seen, look());
    if (seen) {
      MachineInfo& m = *seen;
      last_state = m.state;
      if (m.state == "running") {
        m.running_ns = first_running();
        if (!wait.wait_ssh) {
          m.ready_ns = WallNowNs();
          return m;
        }
        if (!m.ssh.host.empty() && SshBannerAnswers(m.ssh.host, m.ssh.port, 2s)) {
          m.ssh_ready_ns = WallNowNs();
          m.ready_ns = m.ssh_ready_ns;
          return m;
        }
        last_state = "running, but SSH does not answer at " +
                     (m.ssh.host.empty() ? std::string("(no address yet)") : m.ssh.host) + ":" +
                     std::to_string(m.ssh.port);
      } else if (m.state != "pending") {
        return FailedPreconditionError(wait.what + " is " + m.state + "; it will not become ready");
      }
    }
    if (std::chrono::steady_clock::now() + wait.poll >= wait.deadline) {
      return DeadlineExceededError(wait.what + " is still " + last_state + "; " + wait.hint);
    }
    std::this_thread::sleep_for(wait.poll);
  }
}

}  // namespace bitfusion::internal
