#include <algorithm>
#include <utility>
#include <vector>

#include "bitfusion/metric_stream.h"
#include "bitfusion/registry.h"

namespace bitfusion {
namespace {

// Turns the counters of the wrapped source into per-second rates, in place in the batch: the
// samples the inner source appended are rewritten and compacted, so no copy is made.
class RateSource final : public MetricSource {
 public:
  RateSource(std::shared_ptr<MetricSource> inner, std::string uri)
      : inner_(std::move(inner)), uri_(std::move(uri)) {}

  const std::string& uri() const override { return uri_; }
  std::int64_t BackgroundCpuNs() const override { return inner_->BackgroundCpuNs(); }
  std::int64_t SamplesDropped() const override { return inner_->SamplesDropped(); }
  bool BuffersBetweenTicks() const override { return inner_->BuffersBetweenTicks(); }
  void TargetStarted() override { inner_->TargetStarted(); }
  bool Drain(std::chrono::nanoseconds timeout) override { return inner_->Drain(timeout); }
  std::string WhyDisabled() const override { return inner_->WhyDisabled(); }

  Status Collect(Timestamp now, SampleBatch& batch) override {
    const std::size_t series_before = batch.series.size();
    if (series_before != series_end_) {
      // A batch whose series table this wrapper did not follow: its indices mean other series,
      // so the previous values are of no use.
      last_.clear();
      rate_.clear();
      converted_ = series_before;
    }
    const std::size_t before = batch.size();
    Status status = inner_->Collect(now, batch);

    const std::size_t series = batch.series.size();
    if (rate_.size() < series) {
      rate_.resize(series, 0);
      last_.resize(series);
    }
    for (std::size_t s = converted_; s < series; ++s) {
      Series& declared = batch.series[s];
      if (!declared.counter) continue;
      declared.counter = false;
      declared.unit += "/s";
      rate_[s] = 1;
    }
    converted_ = series;
    series_end_ = series;

    std::size_t out = before;
    for (std::size_t i = before; i < batch.size(); ++i) {
      const std::uint32_t s = batch.series_index[i];
      double v = batch.value[i];
      if (s < rate_.size() && rate_[s] != 0) {
        Last& last = last_[s];
        const std::int64_t mono = batch.monotonic_ns[i];
        const bool usable = last.valid && mono > last.mono_ns && v >= last.value;
        const double previous = last.value;
        const std::int64_t previous_ns = last.mono_ns;
        last = Last{v, mono, true};
        if (!usable) continue;
        v = (v - previous) / (static_cast<double>(mono - previous_ns) / 1e9);
      }
      batch.series_index[out] = s;
      batch.timestamp_ns[out] = batch.timestamp_ns[i];
      batch.monotonic_ns[out] = batch.monotonic_ns[i];
      batch.value[out] = v;
      ++out;
    }
    batch.series_index.resize(out);
    batch.timestamp_ns.resize(out);
    batch.monotonic_ns.resize(out);
    batch.value.resize(out);
    return status;
  }

 private:
  struct Last {
    double value = 0;
    std::int64_t mono_ns = 0;
    bool valid = false;
  };

  std::shared_ptr<MetricSource> inner_;
  std::string uri_;
  std::vector<char> rate_;  // by series index: 1 for a counter delivered as a rate
  std::vector<Last> last_;  // by series index
  std::size_t converted_ = 0;
  std::size_t series_end_ = 0;
};

}  // namespace

MetricSource::~MetricSource() = default;

std::int64_t MetricSource::BackgroundCpuNs() const { return 0; }

std::int64_t MetricSource::SamplesDropped() const { return 0; }

bool MetricSource::BuffersBetweenTicks() const { return false; }

void MetricSource::TargetStarted() {}

bool MetricSource::Drain(std::chrono::nanoseconds) { return true; }

std::string MetricSource::WhyDisabled() const { return ""; }

std::shared_ptr<MetricSource> CountersAsRates(std::shared_ptr<MetricSource> source) {
  if (source == nullptr) return nullptr;
  std::string uri = source->uri();
  uri += uri.find('?') == std::string::npos ? "?rate=true" : "&rate=true";
  return std::make_shared<RateSource>(std::move(source), std::move(uri));
}

Result<std::shared_ptr<MetricSource>> MetricSourceFromUri(std::string_view text,
                                                          const BackendContext& context) {
  BITFUSION_ASSIGN_OR_RETURN(Uri uri, Uri::Parse(text));
  BITFUSION_ASSIGN_OR_RETURN(const bool rate, uri.QueryBool("rate", false));
  // "rate" belongs to every source, so it is taken off before the backend checks its own keys.
  std::erase_if(uri.query, [](const auto& kv) { return kv.first == "rate"; });
  BITFUSION_ASSIGN_OR_RETURN(auto source, Registry<MetricSource>::Instance().Make(uri, context));
  if (!rate) return source;
  return std::shared_ptr<MetricSource>(
      std::make_shared<RateSource>(std::move(source), std::string(text)));
}

}  // namespace bitfusion
