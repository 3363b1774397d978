#include "core/cpu_list.h"

#include <algorithm>
#include <string_view>

#include "core/text_file.h"

namespace bitfusion::internal {

Result<std::vector<CpuRange>> ParseCpuList(const std::string& cpuset) {
  auto bad = [&] {
    return InvalidArgumentError("cpuset \"" + cpuset + "\" is not a CPU list like \"0-3,6\"");
  };
  std::vector<CpuRange> ranges;
  std::string_view rest(cpuset);
  while (!rest.empty()) {
    const auto comma = rest.find(',');
    const std::string_view item = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    if (comma != std::string_view::npos && rest.empty()) return bad();
    const auto dash = item.find('-');
    const std::string_view a = item.substr(0, dash);
    const std::string_view b = dash == std::string_view::npos ? a : item.substr(dash + 1);
    const auto first = ParseNumber<unsigned>(a);
    const auto last = ParseNumber<unsigned>(b);
    if (!first || !last || *first > *last) return bad();
    ranges.push_back({*first, *last});
  }
  if (ranges.empty()) return bad();
  return ranges;
}

std::optional<std::vector<unsigned>> CpuIds(const std::string& list) {
  auto ranges = ParseCpuList(list);
  if (!ranges) return std::nullopt;
  std::vector<bool> in(kMaxLinuxCpus);
  for (const auto& r : *ranges) {
    if (r.last >= kMaxLinuxCpus) return std::nullopt;
    std::fill(in.begin() + r.first, in.begin() + r.last + 1, true);
  }
  std::vector<unsigned> out;
  for (unsigned cpu = 0; cpu < in.size(); ++cpu) {
    if (in[cpu]) out.push_back(cpu);
  }
  return out;
}

}  // namespace bitfusion::internal
