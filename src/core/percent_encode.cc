#include "core/percent_encode.h"

#include <boost/url/encode.hpp>
#include <boost/url/grammar/lut_chars.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>

namespace bitfusion::internal {

std::string PercentEncode(std::string_view text, bool keep_slash) {
  static constexpr boost::urls::grammar::lut_chars kWithSlash =
      boost::urls::unreserved_chars + boost::urls::grammar::lut_chars('/');
  return keep_slash ? boost::urls::encode(text, kWithSlash)
                    : boost::urls::encode(text, boost::urls::unreserved_chars);
}

}  // namespace bitfusion::internal
