// SHA-256 on OpenSSL, as lower-case hex: the one place the library hashes for identities
// (machine ids, import run ids, image context digests, spool and series keys).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "bitfusion/export.h"

struct evp_md_ctx_st;

namespace bitfusion::internal {

/// SHA-256 of `data`, 64 lower-case hex digits.
BITFUSION_EXPORT std::string Sha256Hex(std::string_view data);

/// SHA-256 over data given in pieces.
class BITFUSION_EXPORT Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(std::string_view data);
  /// 64 lower-case hex digits; the object is spent afterwards.
  std::string HexDigest();

 private:
  evp_md_ctx_st* ctx_;
};

}  // namespace bitfusion::internal
