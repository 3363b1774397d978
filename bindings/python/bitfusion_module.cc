// Python SDK: inventory, plans, metric streams, and the status codes as exception classes.
// Names mirror the C++ API in snake_case; the GIL is released around every blocking call.
#include <pybind11/functional.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <bitfusion/bitfusion.h>

#include <cerrno>
#include <chrono>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace py = pybind11;

namespace {

using bitfusion::Result;
using bitfusion::Status;
using bitfusion::StatusCode;

// One Python exception class per status code, all subclasses of bitfusion.Error.
std::map<StatusCode, py::object>& ExceptionClasses() {
  static auto* classes = new std::map<StatusCode, py::object>();
  return *classes;
}

[[noreturn]] void Raise(const Status& status) { throw bitfusion::StatusError(status); }

template <class T>
T Unwrap(Result<T> result) {
  if (!result) Raise(result.error());
  return std::move(*result);
}

py::object JsonToPython(const std::string& json) {
  return py::module_::import("json").attr("loads")(json);
}

py::object Inventory(const std::string& provisioner_uri) {
  std::vector<bitfusion::MachineInfo> machines;
  {
    py::gil_scoped_release release;
    auto provisioner = Unwrap(bitfusion::ProvisionerFromUri(provisioner_uri));
    machines = Unwrap(provisioner->List());
  }
  py::list out;
  for (const auto& m : machines) out.append(JsonToPython(bitfusion::ToJson(m)));
  return out;
}

py::object RunPlan(const std::string& spec_path, const std::vector<std::string>& sinks,
                   const std::vector<std::string>& program_dirs) {
  std::string summary;
  {
    py::gil_scoped_release release;
    auto plan = Unwrap(bitfusion::LoadPlan(spec_path));
    bitfusion::ExperimentOptions options;
    options.sinks = sinks;
    options.program_dirs = program_dirs;
    summary = bitfusion::FormatSummaryJson(Unwrap(bitfusion::RunPlan(plan, options)));
  }
  return JsonToPython(summary);
}

// "1%" / 0.01 style options and better={"metric": "lower"|"higher"}, as the CLI takes them.
bitfusion::CompareOptions CompareOptionsFrom(double threshold, double alpha,
                                             const std::map<std::string, std::string>& better) {
  bitfusion::CompareOptions options;
  if (!(threshold >= 0 && threshold < 1)) {
    Raise(bitfusion::InvalidArgumentError("threshold must be a fraction in [0, 1), e.g. 0.01"));
  }
  if (!(alpha > 0 && alpha < 1)) {
    Raise(bitfusion::InvalidArgumentError("alpha must be in (0, 1), e.g. 0.05"));
  }
  options.threshold = threshold;
  options.alpha = alpha;
  for (const auto& [metric, way] : better) {
    if (way != "lower" && way != "higher") {
      Raise(bitfusion::InvalidArgumentError(
          "better[\"" + metric + "\"] must be \"lower\" or \"higher\", not \"" + way + "\""));
    }
    options.better[metric] =
        way == "lower" ? bitfusion::Better::kLower : bitfusion::Better::kHigher;
  }
  return options;
}

py::object Compare(const std::string& baseline, const std::string& candidate, double threshold,
                   double alpha, const std::map<std::string, std::string>& better) {
  const auto options = CompareOptionsFrom(threshold, alpha, better);
  std::string json;
  {
    py::gil_scoped_release release;
    json = bitfusion::FormatComparisonJson(
        Unwrap(bitfusion::CompareResults(baseline, candidate, options)));
  }
  return JsonToPython(json);
}

py::object Report(const std::string& results, const std::string& output,
                  const std::string& baseline, const std::string& title, int width,
                  double threshold, double alpha,
                  const std::map<std::string, std::string>& better) {
  bitfusion::ReportOptions options;
  options.baseline = baseline;
  options.title = title;
  options.plot_width = width;
  options.compare = CompareOptionsFrom(threshold, alpha, better);
  std::string html;
  std::string comparison;
  {
    py::gil_scoped_release release;
    html = Unwrap(bitfusion::RenderReport(results, options));
    if (!baseline.empty()) {
      comparison = bitfusion::FormatComparisonJson(
          Unwrap(bitfusion::CompareResults(baseline, results, options.compare)));
    }
    if (!output.empty()) {
      std::ofstream out(output, std::ios::binary | std::ios::trunc);
      out << html;
      out.close();
      if (!out) Raise(bitfusion::ErrnoError(errno, "writing " + output));
    }
  }
  py::dict out;
  auto selection = Unwrap(bitfusion::SelectResults(results));
  out["results"] = selection.store->location() + "@" + selection.plan_run.plan_run_id;
  out["plan"] = selection.plan_run.plan;
  out["runs"] = selection.runs.size();
  // The summary in the same shape as run_plan()'s and `bitfusion run --json`'s.
  bitfusion::PlanResult summarised;
  summarised.summary = bitfusion::SummarizeRuns(selection.runs, options.compare.statistics);
  out["summary"] = JsonToPython(bitfusion::FormatSummaryJson(summarised))["summary"];
  out["comparison"] = comparison.empty() ? py::object(py::none()) : JsonToPython(comparison);
  out["html"] = html;
  if (!output.empty()) out["output"] = output;
  return out;
}

py::dict SampleToPython(const bitfusion::Sample& sample) {
  py::dict d;
  d["metric"] = sample.metric;
  d["value"] = sample.value;
  d["unit"] = sample.unit;
  d["labels"] = sample.metadata;
  d["timestamp_ns"] = sample.timestamp_ns;
  d["monotonic_ns"] = sample.monotonic_ns;
  return d;
}

std::chrono::nanoseconds Seconds(double s) {
  return std::chrono::nanoseconds(static_cast<std::int64_t>(s * 1e9));
}

// A MetricStream for Python. Subscriber callbacks run on the stream's delivery thread with the
// GIL taken; stop() and the destructor release the GIL while they wait for that thread, which
// would otherwise wait for the GIL forever.
class PyMetricStream {
 public:
  PyMetricStream(const std::vector<std::string>& sources, double interval_s,
                 const std::vector<std::string>& sinks, bool rates, double delivery_interval_s,
                 const bitfusion::Labels& labels, const std::string& overflow) {
    bitfusion::MetricStreamOptions options;
    options.interval = Seconds(interval_s);
    options.delivery_interval = Seconds(delivery_interval_s);
    options.rates = rates;
    options.labels = labels;
    if (overflow == "block") {
      options.overflow = bitfusion::OverflowPolicy::kBlock;
    } else if (overflow != "drop_oldest") {
      Raise(bitfusion::InvalidArgumentError(
          "overflow must be \"drop_oldest\" or \"block\", not \"" + overflow + "\""));
    }
    stream_ = Unwrap(bitfusion::MetricStream::Make(options));
    if (sources.empty()) {
      Raise(bitfusion::InvalidArgumentError(
          "a metric stream needs at least one source, e.g. sources=[\"host\"]"));
    }
    for (const auto& source : sources) {
      if (Status s = stream_->Add(source); !s.ok()) Raise(s);
    }
    for (const auto& uri : sinks) {
      auto sink = Unwrap(bitfusion::ResultSinkFromUri(uri));
      if (Status s = stream_->Attach(sink); !s.ok()) Raise(s);
      sinks_.push_back(std::move(sink));
    }
  }

  ~PyMetricStream() {
    py::gil_scoped_release release;
    // Errors here have nowhere to go but the log; stop() is the way to see them.
    if (Status s = Shutdown(); !s.ok()) {
      bitfusion::Log(bitfusion::LogLevel::kWarning, "bitfusion.MetricStream: " + s.ToString());
    }
  }

  // `callback(samples)` gets each delivered batch as a list of sample dicts.
  void Subscribe(py::function callback) {
    // The Python function must be released with the GIL held, whichever thread drops it last.
    std::shared_ptr<py::function> fn(new py::function(std::move(callback)), [](py::function* f) {
      py::gil_scoped_acquire gil;
      delete f;
    });
    subscriptions_.push_back(stream_->Subscribe([fn](const bitfusion::SampleBatch& batch) {
      py::gil_scoped_acquire gil;
      try {
        py::list samples;
        for (std::size_t i = 0; i < batch.size(); ++i) samples.append(SampleToPython(batch.At(i)));
        (*fn)(samples);
      } catch (py::error_already_set& e) {
        // An exception in a callback must not end the delivery thread: report it the way
        // Python reports exceptions it cannot raise (sys.unraisablehook).
        e.discard_as_unraisable("bitfusion.MetricStream subscriber");
      }
    }));
  }

  void Start() {
    py::gil_scoped_release release;
    if (Status s = stream_->Start(); !s.ok()) Raise(s);
  }

  void Stop() {
    Status status;
    {
      py::gil_scoped_release release;
      status = Shutdown();
    }
    if (!status.ok()) Raise(status);
  }

  py::dict Overhead() const {
    const bitfusion::StreamOverhead o = stream_->Overhead();
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
  // Stops sampling, delivers what is left, closes the sinks and ends the subscriptions. Called
  // without the GIL.
  Status Shutdown() {
    if (stopped_) return Status();
    stopped_ = true;
    Status status = stream_->Stop();
    for (auto& sink : sinks_) {
      if (Status s = sink->Close(); !s.ok() && status.ok()) status = s;
    }
    subscriptions_.clear();
    return status;
  }

  std::unique_ptr<bitfusion::MetricStream> stream_;
  std::vector<std::shared_ptr<bitfusion::ResultSink>> sinks_;
  std::vector<bitfusion::Subscription> subscriptions_;
  bool stopped_ = false;
};

}  // namespace

PYBIND11_MODULE(bitfusion, m) {
  m.doc() = "bitfusion: heterogeneous hardware and container benchmarking";
  py::object base = py::reinterpret_borrow<py::object>(PyExc_Exception);
  py::object error =
      py::reinterpret_steal<py::object>(PyErr_NewException("bitfusion.Error", base.ptr(), nullptr));
  m.attr("Error") = error;
  const std::pair<StatusCode, const char*> kCodes[] = {
      {StatusCode::kInvalidArgument, "InvalidArgumentError"},
      {StatusCode::kNotFound, "NotFoundError"},
      {StatusCode::kAlreadyExists, "AlreadyExistsError"},
      {StatusCode::kPermissionDenied, "PermissionDeniedError"},
      {StatusCode::kFailedPrecondition, "FailedPreconditionError"},
      {StatusCode::kResourceExhausted, "ResourceExhaustedError"},
      {StatusCode::kUnavailable, "UnavailableError"},
      {StatusCode::kDeadlineExceeded, "DeadlineExceededError"},
      {StatusCode::kCancelled, "CancelledError"},
      {StatusCode::kIOError, "IOError"},
      {StatusCode::kUnimplemented, "UnimplementedError"},
      {StatusCode::kInternal, "InternalError"},
  };
  for (const auto& [code, name] : kCodes) {
    const std::string qualified = std::string("bitfusion.") + name;
    py::object cls = py::reinterpret_steal<py::object>(
        PyErr_NewException(qualified.c_str(), error.ptr(), nullptr));
    m.attr(name) = cls;
    ExceptionClasses()[code] = cls;
  }
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const bitfusion::StatusError& e) {
      auto it = ExceptionClasses().find(e.status().code());
      PyObject* cls = it != ExceptionClasses().end() ? it->second.ptr() : PyExc_RuntimeError;
      PyErr_SetString(cls, e.status().message().c_str());
    }
  });

  m.def("version", &bitfusion::Version, "The library version, e.g. \"0.1.0\".");
  m.def("inventory", &Inventory, py::arg("provisioner") = "local://",
        "Fingerprints of the machines a provisioner knows (local:// is this host), as dicts.");
  m.def("run_plan", &RunPlan, py::arg("spec"), py::arg("sinks") = std::vector<std::string>{},
        py::arg("program_dirs") = std::vector<std::string>{},
        "Runs a plan file; returns the summary, the runs and any sink errors as a dict. `sinks` "
        "replaces the plan's sinks when given.");

  m.def("compare", &Compare, py::arg("baseline"), py::arg("candidate"), py::arg("threshold") = 0.01,
        py::arg("alpha") = 0.05, py::arg("better") = std::map<std::string, std::string>{},
        "Compares two plan runs (\"STORE[@PLAN_RUN_ID]\": a path, sqlite://... or jsonl://...) as "
        "`bitfusion compare --json` does: per benchmark and metric the change of the median, its "
        "bootstrap interval, the Mann-Whitney U p-value and a verdict (\"faster\", \"slower\", "
        "\"no change\", or None when no test is possible). `better` maps metric names to "
        "\"lower\" or \"higher\" where the unit does not say.");
  m.def("report", &Report, py::arg("results"), py::arg("output") = "", py::arg("baseline") = "",
        py::arg("title") = "", py::arg("width") = 960, py::arg("threshold") = 0.01,
        py::arg("alpha") = 0.05, py::arg("better") = std::map<std::string, std::string>{},
        "Renders the HTML report of a plan run (as `bitfusion report`), writes it to `output` "
        "when given, and returns the same data as a dict: summary statistics per benchmark and "
        "metric, the comparison with `baseline` (or None), and the page as `html`.");

  py::class_<PyMetricStream>(m, "MetricStream",
                             "Samples sources (\"host\", \"process:PID\", \"cgroup:PATH\", ...) "
                             "every `interval` seconds on a thread of its own and delivers "
                             "batches to sinks and subscribers from another. Use as a context "
                             "manager, or start() and stop().")
      .def(py::init<const std::vector<std::string>&, double, const std::vector<std::string>&, bool,
                    double, const bitfusion::Labels&, const std::string&>(),
           py::arg("sources"), py::arg("interval") = 0.01,
           py::arg("sinks") = std::vector<std::string>{}, py::arg("rates") = false,
           py::arg("delivery_interval") = 0.1, py::arg("labels") = bitfusion::Labels{},
           py::arg("overflow") = "drop_oldest")
      .def("subscribe", &PyMetricStream::Subscribe, py::arg("callback"),
           "callback(samples) runs on the delivery thread for each batch, with a list of dicts "
           "(metric, value, unit, labels, timestamp_ns, monotonic_ns). Before start().")
      .def("start", &PyMetricStream::Start)
      .def("stop", &PyMetricStream::Stop,
           "Stops sampling, delivers everything sampled, closes the sinks. Idempotent.")
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
