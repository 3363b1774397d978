// EventBus and Reactor from Python: subscribers, filters and reactor rules written as Python
// functions next to the built-in rules. Callbacks run on the bus's delivery thread with the GIL
// taken; one that raises is reported with its traceback and the bus goes on.
#include <pybind11/functional.h>

#include "py_common.h"
#include "py_handles.h"

namespace bitfusion::python {
namespace {

using BusHolder = std::unique_ptr<EventBus, ReleaseGilDelete<EventBus>>;
using ReactorHolder = std::unique_ptr<Reactor, ReleaseGilDelete<Reactor>>;

EventFilter FilterFrom(const std::optional<py::function>& filter, const std::string& where) {
  if (!filter) return nullptr;
  auto raw = std::shared_ptr<py::function>(new py::function(*filter), [](py::function* f) {
    py::gil_scoped_acquire gil;
    delete f;
  });
  return [raw, where](const Event& event) {
    py::gil_scoped_acquire gil;
    try {
      return py::bool_((*raw)(event)).cast<bool>();
    } catch (py::error_already_set& e) {
      // A filter that fails lets nothing through, and says why.
      e.discard_as_unraisable(where.c_str());
      return false;
    }
  };
}

EventCallback ActionFrom(py::function action, const std::string& where) {
  Callback cb(std::move(action), where);
  return [cb](const Event& event) { cb(event); };
}

}  // namespace

void RegisterEvents(py::module_& m) {
  py::class_<PySubscription, std::shared_ptr<PySubscription>>(
      m, "Subscription",
      "Delivery to a callback (logs, events, stats, metric batches) until cancel() or the end "
      "of a `with` block.")
      .def("cancel", &PySubscription::Cancel,
           "Stops delivery; when it returns, the callback is not running and will not again.")
      .def_property_readonly("active", &PySubscription::active)
      .def("__enter__", [](std::shared_ptr<PySubscription> s) { return s; })
      .def("__exit__", [](PySubscription& s, const py::args&) { s.Cancel(); });

  py::class_<EventBus, BusHolder>(
      m, "EventBus",
      "Fans events out to subscribers on a delivery thread of its own, in publication order; a "
      "slow subscriber never blocks a publisher (beyond queue_capacity the oldest is dropped "
      "and counted).")
      .def(py::init([](std::size_t queue_capacity) {
             EventBusOptions options;
             options.queue_capacity = queue_capacity;
             return BusHolder(new EventBus(options));
           }),
           py::arg("queue_capacity") = 65536)
      .def(
          "publish", [](EventBus& bus, Event event) { bus.Publish(std::move(event)); },
          py::arg("event"), "Queues an Event (or a dict of its fields); never blocks.")
      .def(
          "subscribe",
          [](EventBus& bus, py::function callback, const std::vector<EventType>& types,
             std::optional<py::function> filter) {
            return std::make_shared<PySubscription>(
                bus.Subscribe(types, FilterFrom(filter, "bitfusion EventBus filter"),
                              ActionFrom(std::move(callback), "bitfusion EventBus subscriber")));
          },
          py::arg("callback"), py::arg("types") = std::vector<EventType>{},
          py::arg("filter") = py::none(),
          "callback(Event) for events of `types` (EventType values or names such as "
          "\"container_died\" / \"container.died\"; all when empty) that `filter(event)` "
          "accepts, until the returned Subscription is cancelled.")
      .def(
          "flush",
          [](EventBus& bus, std::optional<double> timeout) {
            const Deadline deadline = DeadlineIn(timeout);
            Status status;
            {
              py::gil_scoped_release release;
              status = bus.Flush(deadline);
            }
            Check(status);
          },
          py::arg("timeout") = py::none(),
          "Waits until every event published before the call has been delivered.")
      .def(
          "counters",
          [](const EventBus& bus) {
            const EventBusCounters c = bus.counters();
            py::dict d;
            d["published"] = c.published;
            d["delivered"] = c.delivered;
            d["dropped"] = c.dropped;
            return d;
          },
          "A dict of events published, delivered and dropped so far.");

  py::class_<ReactorRule>(m, "ReactorRule",
                          "A rule: on events of `types` that pass `filter`, run `action`. Make "
                          "your own with Reactor.add(name, action, ...), or take a built-in: "
                          "attach_log_tail_on_failure(), mark_failed_on_oom().")
      .def_readonly("name", &ReactorRule::name)
      .def_readonly("types", &ReactorRule::types);

  py::class_<Reactor, ReactorHolder>(m, "Reactor",
                                     "Holds rules on an EventBus for as long as it lives.")
      .def(py::init([](EventBus& bus) { return ReactorHolder(new Reactor(bus)); }), py::arg("bus"),
           py::keep_alive<1, 2>())
      .def(
          "add", [](Reactor& r, ReactorRule rule) { r.Add(std::move(rule)); }, py::arg("rule"),
          "Adds a built-in ReactorRule.")
      .def(
          "add",
          [](Reactor& r, const std::string& name, py::function action,
             const std::vector<EventType>& types, std::optional<py::function> filter) {
            ReactorRule rule;
            rule.name = name;
            rule.types = types;
            rule.filter = FilterFrom(filter, "bitfusion reactor rule " + name + " filter");
            rule.action = ActionFrom(std::move(action), "bitfusion reactor rule " + name);
            r.Add(std::move(rule));
          },
          py::arg("name"), py::arg("action"), py::arg("types") = std::vector<EventType>{},
          py::arg("filter") = py::none(),
          "Adds a rule written in Python: action(Event) on events of `types` that "
          "`filter(event)` accepts.")
      .def("fired", &Reactor::fired, py::arg("name"), "How many times rule `name` has acted.");

  m.def(
      "attach_log_tail_on_failure",
      [](std::shared_ptr<ContainerRunner> runner, std::size_t lines, py::function attach) {
        Callback cb(std::move(attach), "bitfusion attach_log_tail_on_failure callback");
        return AttachLogTailOnFailure(
            std::move(runner), lines,
            [cb](const Event& e, std::vector<LogLine> tail) { cb(e, std::move(tail)); });
      },
      py::arg("runner"), py::arg("lines"), py::arg("attach"),
      "Built-in rule: when a container dies with a non-zero exit code, fetch its last `lines` "
      "log lines from `runner` and call attach(event, [LogLine]).");
  m.def(
      "mark_failed_on_oom",
      [](py::function mark) {
        Callback cb(std::move(mark), "bitfusion mark_failed_on_oom callback");
        return MarkFailedOnOom([cb](const Event& e) { cb(e); });
      },
      py::arg("mark"), "Built-in rule: mark(event) when the OOM killer struck a container.");
  m.def(
      "event_attribute",
      [](const Event& e, const std::string& key) { return EventAttribute(e, key); },
      py::arg("event"), py::arg("key"), "An event attribute, or \"\" when absent.");
}

}  // namespace bitfusion::python
