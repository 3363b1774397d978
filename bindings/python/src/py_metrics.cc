// MetricStream from Python. Subscriber callbacks run on the stream's delivery thread with the
// GIL taken; stop() and the destructor release the GIL while they wait for that thread, which
// would otherwise wait for the GIL forever.
#include <pybind11/functional.h>

#include "py_common.h"
#include "py_handles.h"

namespace bitfusion::python {
namespace {

py::dict SampleToPython(const Sample& sample) {
  py::dict d;
  d["metric"] = sample.metric;
  d["value"] = sample.value;
  d["unit"] = sample.unit;
  d["labels"] = sample.metadata;
  d["timestamp_ns"] = sample.timestamp_ns;
  d["monotonic_ns"] = sample.monotonic_ns;
  return d;
}

class PyMetricStream {
 public:
  PyMetricStream(const std::vector<std::string>& sources, double interval_s,
                 const std::vector<py::object>& sinks, bool rates, double delivery_interval_s,
                 const Labels& labels, const std::string& overflow) {
    MetricStreamOptions options;
    options.interval = Seconds(interval_s);
    options.delivery_interval = Seconds(delivery_interval_s);
    options.rates = rates;
    options.labels = labels;
    if (overflow == "block") {
      options.overflow = OverflowPolicy::kBlock;
    } else if (overflow != "drop_oldest") {
      Raise(InvalidArgumentError("overflow must be \"drop_oldest\" or \"block\", not \"" +
                                 overflow + "\""));
    }
    stream_ = Unwrap(MetricStream::Make(options));
    if (sources.empty()) {
      Raise(
          InvalidArgumentError("a metric stream needs at least one source, e.g. "
                               "sources=[\"host\"]"));
    }
    for (const auto& source : sources) Check(stream_->Add(source));
    for (const py::object& sink : sinks) {
      std::shared_ptr<ResultSink> made;
      if (py::isinstance<py::str>(sink)) {
        made = Unwrap(ResultSinkFromUri(sink.cast<std::string>()));
        owned_.push_back(made);  // the stream's own: closed by stop()
      } else if (py::isinstance<ResultSink>(sink)) {
        made = sink.cast<std::shared_ptr<ResultSink>>();
        callers_.push_back(sink);  // the caller's: kept alive, flushed, not closed
      } else {
        throw py::type_error("sinks must be URIs or bitfusion.ResultSink objects, not " +
                             std::string(py::str(py::type::of(sink).attr("__name__"))));
      }
      Check(stream_->Attach(made));
      all_.push_back(std::move(made));
    }
  }

  ~PyMetricStream() {
    py::gil_scoped_release release;
    // Errors here have nowhere to go but the log; stop() is the way to see them.
    if (Status s = Shutdown(); !s.ok()) {
      Log(LogLevel::kWarning, "bitfusion.MetricStream: " + s.ToString());
    }
    py::gil_scoped_acquire gil;
    callers_.clear();
  }

  void Subscribe(py::function callback, bool batches) {
    Callback cb(std::move(callback), "bitfusion MetricStream subscriber");
    if (batches) {
      // One copy of the columns per delivery (the stream reuses its batch); Python then sees
      // them through the buffer protocol without another.
      subscriptions_.push_back(stream_->Subscribe(
          [cb](const SampleBatch& batch) { cb(std::make_shared<SampleBatch>(batch)); }));
      return;
    }
    auto fn = std::make_shared<Callback>(std::move(cb));
    subscriptions_.push_back(stream_->Subscribe([fn](const SampleBatch& batch) {
      py::gil_scoped_acquire gil;
      py::list samples;
      for (std::size_t i = 0; i < batch.size(); ++i) samples.append(SampleToPython(batch.At(i)));
      (*fn)(samples);
    }));
  }

  void Start() {
    py::gil_scoped_release release;
    Check(stream_->Start());
  }

  void Stop() {
    Status status;
    {
      py::gil_scoped_release release;
      status = Shutdown();
    }
    Check(status);
  }

  py::dict Overhead() const {
    const StreamOverhead o = stream_->Overhead();
    py::dict d;
    d["sampler_cpu_ns"] = o.sampler_cpu_ns;
    d["delivery_cpu_ns"] = o.delivery_cpu_ns;
    d["source_cpu_ns"] = o.source_cpu_ns;
    d["ticks"] = o.ticks;
    d["ticks_missed"] = o.ticks_missed;
    d["samples"] = o.samples;
    d["samples_dropped"] = o.samples_dropped;
    d["delivery_errors"] = o.delivery_errors;
    d["source_errors"] = o.source_errors;
    d["sources_dropped"] = o.sources_dropped;
    return d;
  }

 private:
  // Stops sampling, delivers what is left, closes the stream's own sinks and flushes the
  // caller's, and ends the subscriptions. Called without the GIL.
  Status Shutdown() {
    if (stopped_) return Status();
    stopped_ = true;
    Status status = stream_->Stop();
    for (auto& sink : all_) {
      const bool own = std::find(owned_.begin(), owned_.end(), sink) != owned_.end();
      if (Status s = own ? sink->Close() : sink->Flush(); !s.ok() && status.ok()) status = s;
    }
    subscriptions_.clear();
    return status;
  }

  std::unique_ptr<MetricStream> stream_;
  std::vector<std::shared_ptr<ResultSink>> all_;
  std::vector<std::shared_ptr<ResultSink>> owned_;
  std::vector<py::object> callers_;
  std::vector<Subscription> subscriptions_;
  bool stopped_ = false;
};

}  // namespace

void RegisterMetrics(py::module_& m) {
  py::class_<PyMetricStream>(m, "MetricStream",
                             "Samples sources (\"host\", \"process:PID\", \"cgroup:PATH\", "
                             "\"container:ID\", \"gpu\", ...) every `interval` seconds on a "
                             "thread of its own and delivers batches to sinks (URIs or "
                             "ResultSink objects, Python ones included) and subscribers from "
                             "another. Use as a context manager, or start() and stop().")
      .def(py::init<const std::vector<std::string>&, double, const std::vector<py::object>&, bool,
                    double, const Labels&, const std::string&>(),
           py::arg("sources"), py::arg("interval") = 0.01,
           py::arg("sinks") = std::vector<py::object>{}, py::arg("rates") = false,
           py::arg("delivery_interval") = 0.1, py::arg("labels") = Labels{},
           py::arg("overflow") = "drop_oldest")
      .def("subscribe", &PyMetricStream::Subscribe, py::arg("callback"), py::arg("batches") = false,
           "callback(samples) runs on the delivery thread for each batch, with a list of dicts "
           "(metric, value, unit, labels, timestamp_ns, monotonic_ns); with batches=True it "
           "gets the SampleBatch itself (columns zero-copy through the buffer protocol: the "
           "fast way). Before start(). An exception in it is reported and delivery goes on.")
      .def("start", &PyMetricStream::Start, "Starts sampling on the stream's own threads.")
      .def("stop", &PyMetricStream::Stop,
           "Stops sampling, delivers everything sampled, closes the sinks it made from URIs and "
           "flushes the ResultSink objects it was given. Idempotent.")
      .def("overhead", &PyMetricStream::Overhead,
           "What observing cost: sampler/delivery/source CPU ns, ticks, samples, drops, errors.")
      .def(
          "__enter__",
          [](PyMetricStream& self) -> PyMetricStream& {
            self.Start();
            return self;
          },
          py::return_value_policy::reference)
      .def("__exit__", [](PyMetricStream& self, const py::args&) { self.Stop(); });
}

}  // namespace bitfusion::python
