#include <boost/json/src.hpp>  // Boost.JSON compiled into the fakes themselves, kept hidden

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "fakes/fake_vendor_config.h"

namespace bitfusion::fakes {

std::optional<boost::json::value> LoadFakeConfig(const char* env_var) {
  const char* path = std::getenv(env_var);
  if (path == nullptr) return std::nullopt;
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::stringstream text;
  text << in.rdbuf();
  boost::system::error_code ec;
  auto value = boost::json::parse(text.str(), ec);
  if (ec) return std::nullopt;
  return value;
}

}  // namespace bitfusion::fakes
