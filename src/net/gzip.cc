#include "net/gzip.h"

#include <zlib.h>

#include <algorithm>

namespace bitfusion::net {
namespace {

// 16 + MAX_WBITS: zlib writes (and reads) the gzip wrapper instead of the zlib one.
constexpr int kGzipWindowBits = 16 + MAX_WBITS;
constexpr std::size_t kMaxChunk = 1u << 30;  // zlib counts in uInt

}  // namespace

Result<std::string> Gzip(std::string_view data, int level) {
  z_stream z{};
  if (deflateInit2(&z, level, Z_DEFLATED, kGzipWindowBits, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    return InternalError("zlib deflateInit2 failed; please report this as a bitfusion bug");
  }
  std::string out;
  out.resize(deflateBound(&z, static_cast<uLong>(std::min(data.size(), kMaxChunk))) + 64);
  std::size_t in_done = 0;
  int rc = Z_OK;
  do {
    const std::size_t in_now = std::min(data.size() - in_done, kMaxChunk);
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data() + in_done));
    z.avail_in = static_cast<uInt>(in_now);
    const int flush = in_done + in_now == data.size() ? Z_FINISH : Z_NO_FLUSH;
    do {
      if (z.total_out == out.size()) out.resize(out.size() * 2);
      z.next_out = reinterpret_cast<Bytef*>(out.data() + z.total_out);
      z.avail_out = static_cast<uInt>(std::min(out.size() - z.total_out, kMaxChunk));
      rc = deflate(&z, flush);
    } while (z.avail_out == 0 || (flush == Z_FINISH && rc == Z_OK));
    in_done += in_now;
  } while (in_done < data.size());
  const std::size_t size = z.total_out;
  deflateEnd(&z);
  if (rc != Z_STREAM_END) {
    return InternalError("zlib deflate failed; please report this as a bitfusion bug");
  }
  out.resize(size);
  return out;
}

Result<std::string> Gunzip(std::string_view data) {
  z_stream z{};
  if (inflateInit2(&z, kGzipWindowBits) != Z_OK) {
    return InternalError("zlib inflateInit2 failed; please report this as a bitfusion bug");
  }
  std::string out;
  char buf[1 << 16];
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(std::min(data.size(), kMaxChunk));
  int rc = Z_OK;
  for (;;) {
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof(buf);
    rc = inflate(&z, Z_NO_FLUSH);
    out.append(buf, sizeof(buf) - z.avail_out);
    if (rc == Z_STREAM_END && z.avail_in > 0) {
      inflateReset(&z);  // another member follows
      continue;
    }
    if (rc != Z_OK) break;
  }
  inflateEnd(&z);
  if (rc != Z_STREAM_END) {
    return InvalidArgumentError("the gzip data is damaged or cut short (zlib: " +
                                std::string(rc == Z_BUF_ERROR ? "unexpected end" : "bad data") +
                                ")");
  }
  return out;
}

}  // namespace bitfusion::net
