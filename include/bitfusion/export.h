// Marks what the shared library exports; everything else is hidden (-fvisibility=hidden).
// A C++11 attribute, so it composes with [[nodiscard]] in any order.
#pragma once

#define BITFUSION_EXPORT [[gnu::visibility("default")]]
