// The wait every cloud provisioner's WaitReady shares: poll the provider until the machine
// runs, then (optionally) until its SSH port answers with a banner, stamping running_ns,
// ssh_ready_ns and ready_ns, all within a deadline.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "bitfusion/clock.h"
#include "bitfusion/machine.h"
#include "bitfusion/status.h"

namespace bitfusion::internal {

struct ReadyWait {
  std::string what;      ///< "aws://us-east-1 instance i-0abc", for messages
  bool wait_ssh = true;  ///< also wait for port ssh.port to answer with an SSH banner
  std::chrono::nanoseconds poll{std::chrono::seconds(2)};
  Deadline deadline = kNoDeadline;
  std::string hint;  ///< what to do when the deadline passes: "wait longer, or ..."
};

/// Calls `look` every wait.poll until it shows the machine "running" (then, with wait_ssh,
/// until its SSH port answers). `look` returns the machine as the provider shows it now,
/// nullopt when the provider does not show it yet (eventual consistency), or an error that
/// ends the wait (a state the machine will not leave, with the provider's reason). A state
/// other than "pending" and "running" is FailedPrecondition. `first_running` is called when
/// the machine is seen running and returns the time it was first seen so (the caller keeps
/// it, so that every wait reports the same).
Result<MachineInfo> WaitUntilReady(const ReadyWait& wait,
                                   const std::function<Result<std::optional<MachineInfo>>()>& look,
                                   const std::function<std::int64_t()>& first_running);

}  // namespace bitfusion::internal
