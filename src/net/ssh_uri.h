// The SSH part of the URIs of backends that reach another host through SshSession
// (process+ssh://, host+ssh://): USER@HOST[:PORT] and the query keys that say how to log in. One
// reading for all of them, so a machine's URI means the same login whichever backend takes it.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "bitfusion/status.h"
#include "bitfusion/uri.h"
#include "net/ssh_session.h"

namespace bitfusion::internal {

/// The query keys SshLoginFromUri reads: identity, ssh_config, ssh_option (repeatable),
/// connect_timeout (seconds, >= 1, default 10), runtime_dir.
inline const std::vector<std::string_view> kSshUriKeys = {"identity", "ssh_config", "ssh_option",
                                                          "connect_timeout", "runtime_dir"};

struct SshLogin {
  SshTarget target;
  SshSessionOptions session;
};

/// SCHEME://USER@HOST[:PORT]?identity=KEY&ssh_config=FILE&ssh_option=KEY=VALUE
///   &connect_timeout=10&runtime_dir=DIR. `scheme` names the backend in messages. Refuses a
/// password in the URI, a path, a key or config file that does not exist, and a malformed
/// ssh_option or connect_timeout. Other query keys are the caller's to check.
Result<SshLogin> SshLoginFromUri(const Uri& uri, std::string_view scheme);

/// The URI's runtime_dir, checked to leave room for ssh's control socket (CheckRuntimeDir). Every
/// backend that takes runtime_dir= reads it here.
Result<std::filesystem::path> RuntimeDirFromUri(const Uri& uri, std::string_view scheme);

/// The URI's ssh_option values, in order, each checked to be KEY=VALUE (or KEY VALUE, as ssh -o
/// also takes it). Every backend that takes ssh_option= (process+ssh://, host+ssh://,
/// gpu+ssh://, sysfs+ssh://, docker+ssh://, static://) reads it here.
Result<std::vector<std::string>> SshOptionsFromUri(const Uri& uri, std::string_view scheme);

}  // namespace bitfusion::internal
