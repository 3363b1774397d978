#include "core/proc_pid_stat.h"

#include <charconv>
#include <fstream>
#include <iterator>
#include <vector>

namespace bitfusion::internal {

std::optional<ProcPidStat> ParseProcPidStat(std::string_view text) {
  const auto paren = text.rfind(')');
  if (paren == std::string_view::npos || paren + 2 > text.size()) return std::nullopt;
  text.remove_prefix(paren + 2);
  // fields[0] is field 3 (state): ppid=4, utime=14, stime=15, cutime=16, cstime=17, threads=20,
  // rss=24.
  std::vector<std::string_view> fields;
  while (!text.empty() && fields.size() < 22) {
    const auto space = text.find_first_of(" \n");
    fields.push_back(text.substr(0, space));
    if (space == std::string_view::npos) break;
    text.remove_prefix(space + 1);
  }
  if (fields.size() < 22 || fields[0].size() != 1) return std::nullopt;
  auto field = [&](int n, std::int64_t& out) {
    const std::string_view f = fields[static_cast<std::size_t>(n - 3)];
    const auto r = std::from_chars(f.data(), f.data() + f.size(), out);
    return r.ec == std::errc() && r.ptr == f.data() + f.size();
  };
  ProcPidStat st;
  st.state = fields[0][0];
  std::int64_t t[4] = {};
  std::int64_t start = 0;
  if (!field(4, st.ppid) || !field(14, t[0]) || !field(15, t[1]) || !field(16, t[2]) ||
      !field(17, t[3]) || !field(20, st.threads) || !field(22, start) || !field(24, st.rss_pages) ||
      start < 0) {
    return std::nullopt;
  }
  st.start_ticks = static_cast<std::uint64_t>(start);
  st.cpu_ticks = t[0] + t[1] + t[2] + t[3];
  return st;
}

std::string ReadProcPidStat(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

}  // namespace bitfusion::internal
