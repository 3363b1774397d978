// What a bitfusion-probe in a container on another machine's engine needs on that machine, for
// as long as its "probe:NAME" source lives: the probe binary and a directory for its socket, both
// bind-mounted into the container by the remote engine, and a way back to this host.
//
//   * The copy: a host+ssh:// probe started over the machine's SSH master with a one-hour tick and
//     nothing but its clock exchanges to do (ssh_probe_source.h). Its private directory
//     (`mktemp -d`, 0700) holds the bitfusion-probe the container mounts, and is removed by the
//     remote shell's EXIT trap when that probe ends: when this object goes, when bitfusion or
//     its ssh client dies, or when the connection drops. Nothing outlives the connection.
//   * The clocks: containers share their host's clocks, so the host probe's clock offset and
//     wall - monotonic difference move the container probe's stamps onto this host's timeline
//     too (time_shift), and its series carry the same clock_offset_ns / clock_uncertainty_ns.
//   * The way back: sshd listens on DIR/run/probe.sock on the machine and forwards each connection
//     over the master to the local "probe:NAME" source's socket (`ssh -O forward -R`, OpenSSH
//     stream-local forwarding), cancelled when this object goes.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "bitfusion/status.h"
#include "metrics/probe_records.h"
#include "metrics/ssh_probe_source.h"

namespace bitfusion {

/// Concurrency: Open, then Forward once, from one thread; the destructor from any.
class RemoteProbeHost {
 public:
  /// Logs in through `login` (a host+ssh:// URI: USER@HOST[:PORT] and its login keys, and
  /// machine=NAME for the label), copies `probe_path` there and measures the clock offset.
  /// Unavailable naming the host when it cannot be reached or the copy does not start.
  static Result<std::shared_ptr<RemoteProbeHost>> Open(const std::string& login,
                                                       const std::string& probe_path);
  /// Cancels the forward and ends the host probe (its directory goes with it).
  ~RemoteProbeHost();
  RemoteProbeHost(const RemoteProbeHost&) = delete;
  RemoteProbeHost& operator=(const RemoteProbeHost&) = delete;

  /// Makes DIR/run and forwards DIR/run/probe.sock on the machine to `local_socket` here. For a
  /// container that runs as a numeric user other than root (`user`, ContainerSpec::user), the
  /// directory, the probe and the socket are opened to every user of the machine (said once):
  /// the socket is made by sshd as the login user, 0600.
  Status Forward(const std::string& local_socket, const std::string& user);

  /// On the machine: the probe to mount, and the directory its socket is in.
  std::string probe_path() const { return host_->remote_dir() + "/bitfusion-probe"; }
  std::string run_dir() const { return host_->remote_dir() + "/run"; }
  /// What the container probe's stamps need to land on this host's clocks, and the labels its
  /// series get for it (machine, clock_offset_ns, clock_uncertainty_ns).
  internal::ProbeRecords::TimeShift time_shift() const { return host_->time_shift(); }
  std::map<std::string, std::string> labels() const;
  /// The machine's SSH master (the host probe's): for other channels to it, as gpu+ssh:// opens.
  std::shared_ptr<SshSession> session() const { return session_; }

 private:
  RemoteProbeHost() = default;

  std::string machine_;
  std::shared_ptr<SshProbeSource> host_;
  std::shared_ptr<SshSession> session_;       // the master the forward is on (host_'s)
  std::string remote_socket_, local_socket_;  // set once forwarded
};

}  // namespace bitfusion
