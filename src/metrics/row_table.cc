#include "metrics/row_table.h"

#include <limits>

namespace bitfusion {
namespace internal {

// The layout moved (a line appeared or vanished before this one): find the key anywhere.
const RowTable::Row* RowTable::FindMoved(std::size_t position, std::string_view key) {
  for (std::uint32_t i = 0; i < rows_.size(); ++i) {
    if (rows_[i].key == key) {
      if (position >= at_position_.size()) {
        at_position_.resize(position + 1, std::numeric_limits<std::uint32_t>::max());
      }
      at_position_[position] = i;
      return &rows_[i];
    }
  }
  return nullptr;
}

const RowTable::Row* RowTable::Add(std::size_t position, std::string_view key,
                                   std::uint32_t first_series, bool exported) {
  rows_.push_back(Row{std::string(key), first_series, exported});
  if (position >= at_position_.size()) {
    at_position_.resize(position + 1, std::numeric_limits<std::uint32_t>::max());
  }
  at_position_[position] = static_cast<std::uint32_t>(rows_.size() - 1);
  return &rows_.back();
}

void RowTable::Clear() {
  rows_.clear();
  at_position_.clear();
}

}  // namespace internal

}  // namespace bitfusion
