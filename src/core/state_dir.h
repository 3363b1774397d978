// Where bitfusion keeps state that must outlive a process (the sinks' spools, the ledger of
// process:// groups), and the one check every such directory passes: it is this user's and
// closed to others, so no other local user can plant what a later run would act on.
#pragma once

#include <filesystem>
#include <string_view>

#include "bitfusion/status.h"

namespace bitfusion::internal {

/// $XDG_STATE_HOME/bitfusion, else $HOME/.local/state/bitfusion. Without either as an absolute
/// path, FailedPrecondition saying so (there is no /tmp fallback another user could prepare);
/// `remedy` says what else the caller accepts ("give the sink URI spool=DIR").
Result<std::filesystem::path> StateDir(std::string_view remedy);

/// Creates `dir` (and its parents) if needed, 0700 when this call makes it, and checks that it
/// is a directory (not a link) owned by this user that group and others cannot write:
/// PermissionDenied naming it and `remedy` otherwise.
Status EnsurePrivateDir(const std::filesystem::path& dir, std::string_view remedy);

}  // namespace bitfusion::internal
