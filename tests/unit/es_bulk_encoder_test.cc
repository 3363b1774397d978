// The Elasticsearch sink's index names from labels (index_per=run): whatever the label holds,
// the name is one Elasticsearch accepts and the bulk body stays one action line per sample.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <regex>
#include <string>
#include <vector>

#include "sinks/es_sink.h"

namespace bitfusion {
namespace {

std::vector<std::string> IndexNames(const std::string& run_label, std::size_t* lines = nullptr) {
  internal::EsBulkEncoder encoder("bf", ElasticsearchSinkOptions::IndexPer::kRun);
  SampleBatch batch;
  batch.labels["run"] = run_label;
  batch.Append(batch.AddSeries({"cpu", "ns", {}}), 1'700'000'000'000'000'000, 1, 1.0);
  std::string out;
  encoder.Append(batch, out);
  if (lines != nullptr) *lines = static_cast<std::size_t>(std::count(out.begin(), out.end(), '\n'));
  std::vector<std::string> names;
  const std::regex action(R"re(\{"index":\{"_index":"([^"]*)")re");
  for (auto it = std::sregex_iterator(out.begin(), out.end(), action); it != std::sregex_iterator();
       ++it) {
    names.push_back((*it)[1]);
  }
  return names;
}

TEST(EsBulkEncoderTest, IndexNamesFromLabelsHoldOnlyCharactersElasticsearchAccepts) {
  const std::regex allowed("bf-[a-z0-9._-]+");
  for (const std::string& label : std::vector<std::string>{
           "Run-42", "RÉSULTAT été", "a\nb", std::string("nul\0x", 5), "tab\there",
           "x\"}}\n{\"delete", "\\/*?\"<>| ,#:", std::string(40, 'x') + "ÉÉÉÉÉÉÉÉÉÉÉÉÉÉ",
           "\x01\x7f", ""}) {
    std::size_t lines = 0;
    const auto names = IndexNames(label, &lines);
    ASSERT_EQ(names.size(), 1u) << label;
    EXPECT_EQ(lines, 2u) << "one action and one document line for: " << label;
    EXPECT_TRUE(std::regex_match(names[0], allowed)) << names[0];
    EXPECT_LE(names[0].size(), 255u);
  }
  EXPECT_EQ(IndexNames("Run-42")[0], "bf-run-42");
  EXPECT_EQ(IndexNames("")[0], "bf-none");
}

}  // namespace
}  // namespace bitfusion
