// Numbers for people: about five significant digits whatever the magnitude, and percentages.
// Shared by the summary table, the comparison table and the HTML report.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace bitfusion::internal {

/// 0.1959, 2.8780, 24950.7, 1.2e+09; "nan", "inf" for non-finite values.
std::string FormatNumber(double v);
/// A ratio as a signed percentage with one or two decimals: 0.0123 -> "+1.23%".
std::string FormatPercent(double ratio, bool sign = true);

/// Bytes in binary units: "12.3 GiB", "512 MiB", "100 KiB", "0 B".
std::string FormatBytes(std::uint64_t bytes);

/// An aligned text table: the header, a rule of dashes, the rows. Columns whose `left` entry is
/// true are left-aligned, the others (numbers) right-aligned; trailing padding is trimmed.
std::string FormatTextTable(const std::vector<std::string>& header,
                            const std::vector<std::vector<std::string>>& rows,
                            const std::vector<bool>& left);

}  // namespace bitfusion::internal
