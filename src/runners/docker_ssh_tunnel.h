// docker+ssh://: the engine's unix socket on another host, forwarded through one SSH master
// connection (OpenSSH stream-local forwarding, `ssh -O forward -L LOCAL:REMOTE`) to a socket in
// that session's private 0700 directory, where the ordinary unix-socket HTTP client reaches it.
// This is what `docker -H ssh://` gets from `docker system dial-stdio`, without needing the
// docker CLI on the remote host.
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "bitfusion/status.h"
#include "net/ssh_session.h"
#include "runners/docker_runner.h"

namespace bitfusion {

/// Concurrency: every method may be called from several threads at once.
class DockerSshTunnel {
 public:
  /// Logs in to options.ssh (a master connection) and forwards the engine's socket. Unavailable
  /// naming the host when it cannot be reached or refuses the login. Does not contact the
  /// engine: a wrong socket path shows on the first call (see Diagnose).
  static Result<std::unique_ptr<DockerSshTunnel>> Open(const DockerRunnerOptions& options);
  /// Ends the master; the forward and its local socket go with it.
  ~DockerSshTunnel();
  DockerSshTunnel(const DockerSshTunnel&) = delete;
  DockerSshTunnel& operator=(const DockerSshTunnel&) = delete;

  /// The local end of the forward.
  const std::string& local_socket() const { return local_socket_; }

  /// For a call that failed to reach the engine: when the local end no longer answers (the
  /// master died: killed, its connection dropped, or idle past ControlPersist), logs in again
  /// and forwards anew. True when it did, so the call may be sent again.
  bool Restore();

  /// Why the engine cannot be reached through the tunnel, for an error message: the SSH
  /// connection is gone, or the engine's socket on the host is missing or not usable by the
  /// login user. Asks the host (one SSH command).
  std::string Diagnose();

 private:
  DockerSshTunnel(const DockerRunnerOptions::Ssh& ssh, SshSessionOptions options);
  Status Establish();  // under mu_
  bool LocalAnswers() const;

  const DockerRunnerOptions::Ssh ssh_;
  const std::string host_;  // "ssh://user@host:port", for messages
  std::mutex mu_;
  SshSession session_;
  std::string local_socket_;   // fixed once Open() succeeded
  std::string restore_error_;  // guarded by mu_: why the last Restore() failed
};

}  // namespace bitfusion
