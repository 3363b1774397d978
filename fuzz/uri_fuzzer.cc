// Small text formats from configuration and from the engines' answers: backend URIs
// (Uri::Parse, its typed query accessors and FilePath), durations ("10ms"), byte sizes
// ("40GiB") and RFC 3339 timestamps (Docker, EC2, IMDS, Keystone all send them).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "bitfusion/clock.h"
#include "bitfusion/uri.h"
#include "core/rfc3339.h"
#include "devices/device_request.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto uri = bitfusion::Uri::Parse(text); uri.ok()) {
    (void)uri->ToString();
    (void)uri->FilePath();
    // The typed accessors on the first keys only: each failing one builds its error from the
    // whole URI, so every key of a 50 KB input made the run quadratic (740 runs/s).
    std::size_t keys = 0;
    for (const auto& [key, value] : uri->query) {
      if (++keys > 8) break;
      (void)uri->Query(key);
      (void)uri->QueryInt(key, 0);
      (void)uri->QueryBool(key, false);
      (void)uri->QueryDuration(key, std::chrono::nanoseconds(0));
    }
    (void)uri->CheckQueryKeys({"a", "b"});
  }
  (void)bitfusion::ParseDuration(text);
  (void)bitfusion::ParseByteSize(text);
  const auto ns = bitfusion::internal::ParseRfc3339(text);
  const auto s = bitfusion::internal::ParseRfc3339Seconds(text);
  // Same text, two resolutions: whenever the nanosecond form parses, the seconds agree.
  if (ns &&
      (!s || *s != (*ns >= 0 ? *ns / 1'000'000'000 : -((-*ns + 999'999'999) / 1'000'000'000)))) {
    __builtin_trap();
  }
  return 0;
}
