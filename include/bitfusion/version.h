#pragma once

#include "bitfusion/export.h"

namespace bitfusion {
/// "0.1.0"
BITFUSION_EXPORT const char* Version();
}  // namespace bitfusion
