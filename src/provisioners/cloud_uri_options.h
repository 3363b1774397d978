// The URI keys every cloud provisioner (aws://, softlayer://, openstack://, rackspace://) reads
// the same way: who logs in, how machines are waited for, and how API calls are retried.
#pragma once

#include <chrono>
#include <string>

#include "bitfusion/status.h"
#include "bitfusion/uri.h"

namespace bitfusion::internal {

/// Reads `ssh_user`, `wait_ssh`, `poll`, `attempts` (1..20) and `backoff` into the options'
/// fields of those names (max_attempts and initial_backoff for the last two), keeping their
/// defaults for keys the URI does not have. InvalidArgument for a value that does not parse or
/// attempts out of range.
template <class Options>
Status ReadCloudUriOptions(const Uri& uri, Options& o) {
  o.ssh_user = uri.Query("ssh_user").value_or(o.ssh_user);
  BITFUSION_ASSIGN_OR_RETURN(o.wait_ssh, uri.QueryBool("wait_ssh", o.wait_ssh));
  BITFUSION_ASSIGN_OR_RETURN(o.poll, uri.QueryDuration("poll", o.poll));
  BITFUSION_ASSIGN_OR_RETURN(const auto attempts, uri.QueryInt("attempts", o.max_attempts));
  if (attempts < 1 || attempts > 20) {
    return InvalidArgumentError("attempts must be 1..20, got " + std::to_string(attempts));
  }
  o.max_attempts = static_cast<int>(attempts);
  BITFUSION_ASSIGN_OR_RETURN(const auto backoff, uri.QueryDuration("backoff", o.initial_backoff));
  o.initial_backoff = std::chrono::duration_cast<std::chrono::milliseconds>(backoff);
  return Status::OK();
}

}  // namespace bitfusion::internal
