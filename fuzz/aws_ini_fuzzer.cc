// ~/.aws/credentials and ~/.aws/config as AWS writes them: ParseAwsIni; the same bytes as the
// instance metadata service's role credentials: ParseImdsCredentials.
#include <cstddef>
#include <cstdint>
#include <string>

#include "provisioners/aws_config_internal.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const auto ini = bitfusion::internal::ParseAwsIni(text);
  std::size_t total = 0;
  for (const auto& [section, keys] : ini) total += section.size() + keys.size();
  const auto imds = bitfusion::internal::ParseImdsCredentials(200, text, "role");
  if (imds.ok())
    total += imds->access_key_id.size() + static_cast<std::size_t>(imds->expires_unix_s);
  volatile std::size_t sink = total;
  (void)sink;
  return 0;
}
