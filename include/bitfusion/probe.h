// Sampling a container from inside: bitfusion-probe, a small static program mounted into the
// container, samples the container's own view (its cgroup as it sees it, /proc/stat,
// /proc/meminfo, every process of its pid namespace) and streams the samples over a unix socket
// in a directory bind-mounted from the host to a "probe:NAME" metric source.
//
// Inside and outside land on one timeline: containers share the host's CLOCK_REALTIME and
// CLOCK_MONOTONIC (engines make no time namespace), the probe stamps each tick with both, and
// the source stores those stamps, not the time it received them.
//
//   ContainerSpec spec = ...;
//   auto probe = ProbeContainer({.name = "bench"}, spec);  // mounts + wraps the command
//   stream->Add(probe->source);                            // listening already
//   auto c = runner->Create(spec); c->Start(); ...         // the probe connects when it starts
//
// The source ends (Collect answers NotFound, the stream publishes kMetricSourceEnded) once the
// probe disconnects, i.e. after the command has exited.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "bitfusion/container.h"
#include "bitfusion/export.h"
#include "bitfusion/metric_stream.h"
#include "bitfusion/status.h"

namespace bitfusion {

struct ContainerProbeOptions {
  /// Value of the label container="..." on every series; empty = spec.name, else "container".
  std::string name;
  /// Time between the probe's ticks, 1 ms .. 1 h; absolute monotonic deadlines inside.
  std::chrono::nanoseconds interval = std::chrono::milliseconds(10);
  /// Sample every process of the container (proc.* series with labels pid and comm).
  bool processes = true;
  /// The bitfusion-probe on this host; empty = FindProbe().
  std::string probe_path;
  /// Host directory for the socket, bind-mounted read-only; empty = a new private one under
  /// /tmp (0700, or the container's numeric user's), removed with the source.
  std::string socket_dir;
  /// The engine's host, when the container runs on another machine (a docker+ssh:// runner's):
  /// a host+ssh:// URI with its login (USER@HOST[:PORT], identity, ssh_config, ssh_option,
  /// connect_timeout; machine=NAME labels the series). The probe is copied into a private
  /// directory there for the source's life, its socket there is forwarded back over the SSH
  /// master, and its stamps are moved onto this host's clocks with that machine's measured
  /// offset (series carry machine, clock_offset_ns and clock_uncertainty_ns). Needs socket_dir
  /// empty. Empty = the engine is on this host.
  std::string remote;
  /// Where the probe and the socket directory appear inside the container.
  std::string mount_dir = "/.bitfusion";
  /// true: the probe becomes the entrypoint and runs the spec's command (exit status passed
  /// through, signals forwarded). false: only the mounts are added; start a sample-only probe
  /// later with Container::Exec(ContainerProbe::exec_command).
  bool wrap = true;
};

struct ContainerProbe {
  /// The "probe:NAME" source, already listening: add it to a MetricStream before the container
  /// starts. Series carry labels view="inside" and container=NAME.
  std::shared_ptr<MetricSource> source;
  /// argv (for ExecSpec::command) that starts a sample-only probe in the running container; it
  /// samples until the source is destroyed or the container stops.
  std::vector<std::string> exec_command;
  std::string socket_path;  ///< on this host
};

/// Sets `spec` up to be sampled from inside and makes the matching source: bind-mounts the probe
/// (read-only) and the socket directory at options.mount_dir, and with options.wrap replaces
/// the entrypoint with the probe followed by "--" and the old entrypoint (an empty entrypoint
/// means the image's is replaced: put it in spec.entrypoint when the image has one).
/// InvalidArgument when wrapping a spec with neither entrypoint nor command, or for an interval
/// out of range; NotFound when the probe cannot be found.
BITFUSION_EXPORT Result<ContainerProbe> ProbeContainer(const ContainerProbeOptions& options,
                                                       ContainerSpec& spec);

/// The bitfusion-probe to mount: $BITFUSION_PROBE, else beside the running program (a build
/// tree), else ../libexec/bitfusion/ from the running program or from libbitfusion (an
/// install). NotFound lists where it looked.
BITFUSION_EXPORT Result<std::string> FindProbe();

}  // namespace bitfusion
