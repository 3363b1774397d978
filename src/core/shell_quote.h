// Quoting for a POSIX shell: for command lines bitfusion sends to one (over SSH, in a Slurm batch
// script) and for the commands its messages tell a user to paste into one.
#pragma once

#include <string>

#include "bitfusion/export.h"

namespace bitfusion {

/// Quotes `arg` for a POSIX shell (exported for the CLI, which prints such commands): 'it'\''s'
/// style; safe for any bytes but NUL.
BITFUSION_EXPORT std::string ShellQuote(const std::string& arg);

}  // namespace bitfusion
