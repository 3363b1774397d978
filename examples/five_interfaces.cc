// The five interfaces composed by hand: take this host, lease (no) accelerators, run a command
// while sampling host metrics, and store samples and the run record in SQLite.
//
//   five_interfaces [RESULTS_URI]      (default sqlite://five_interfaces.db)
#include <bitfusion/bitfusion.h>

#include <cstdio>

using namespace bitfusion;

int main(int argc, char** argv) {
  const std::string store = argc > 1 ? argv[1] : "sqlite://five_interfaces.db";
  auto fail = [](const Status& s) {
    std::fprintf(stderr, "five_interfaces: %s\n", s.ToString().c_str());
    return 1;
  };

  // Provisioner: this host, with its fingerprint.
  auto machines = ProvisionerFromUri("local://");
  if (!machines) return fail(machines.error());
  auto machine = (*machines)->WaitReady("local", DeadlineAfter(std::chrono::seconds(5)));
  if (!machine) return fail(machine.error());

  // DeviceAllocator: null:// has no devices, so ask for none; local:// leases real ones.
  auto devices = DeviceAllocatorFromUri("null://");
  if (!devices) return fail(devices.error());
  DeviceRequest none;
  none.count = 0;
  auto lease = (*devices)->Acquire(none, DeadlineAfter(std::chrono::seconds(1)));
  if (!lease) return fail(lease.error());

  // ResultSink and MetricStream: host counters every 10 ms into the store.
  auto sink = ResultSinkFromUri(store);
  if (!sink) return fail(sink.error());
  MetricStreamOptions stream_options;
  stream_options.interval = std::chrono::milliseconds(10);
  stream_options.labels = {{"example", "five_interfaces"}, {"machine", machine->hostname}};
  auto stream = MetricStream::Make(stream_options);
  if (!stream) return fail(stream.error());
  if (Status s = (*stream)->Add("host"); !s.ok()) return fail(s);
  if (Status s = (*stream)->Attach(*sink); !s.ok()) return fail(s);

  // ContainerRunner: process:// runs the command as a child of this program.
  auto runner = ContainerRunnerFromUri("process://");
  if (!runner) return fail(runner.error());
  ContainerSpec spec;
  spec.command = {"sh", "-c", "i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done; echo done"};
  auto container = (*runner)->Create(spec);
  if (!container) return fail(container.error());
  Subscription logs = (*container)->Logs([](LogStream, std::string_view line) {
    std::printf("container: %.*s\n", static_cast<int>(line.size()), line.data());
  });

  if (Status s = (*stream)->Start(); !s.ok()) return fail(s);
  if (Status s = (*container)->Start(); !s.ok()) return fail(s);
  auto exit = (*container)->Wait(DeadlineAfter(std::chrono::seconds(60)));
  if (Status s = (*stream)->Stop(); !s.ok()) return fail(s);
  if (!exit) return fail(exit.error());

  RunRecord record;
  record.run_id = NewRunId();
  record.benchmark = "shell-loop";
  record.command = spec.command;
  record.machine = *machine;
  record.exit = *exit;
  record.status = exit->success() ? kRunOk : kRunFailed;
  record.overhead.samples = (*stream)->Overhead().samples;
  if (Status s = (*sink)->Write(record); !s.ok()) return fail(s);
  if (Status s = (*sink)->Close(); !s.ok()) return fail(s);

  std::printf("%s on %s: exit %d in %.3f s, %lld samples stored in %s\n", record.benchmark.c_str(),
              machine->hostname.c_str(), exit->exit_code, exit->wall_time_ns / 1e9,
              static_cast<long long>(record.overhead.samples), store.c_str());
  return exit->success() ? 0 : 1;
}
