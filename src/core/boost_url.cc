// Boost.URL is compiled once, here (Debian ships it header-only); see boost_json.cc.
#include <boost/url/src.hpp>
