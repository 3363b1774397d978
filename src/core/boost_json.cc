// Boost.JSON is compiled once, here (Debian ships it header-only); hidden from consumers by the
// library's default symbol visibility.
#include <boost/json/src.hpp>
