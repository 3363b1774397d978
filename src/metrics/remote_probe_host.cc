#include "metrics/remote_probe_host.h"

#include <chrono>
#include <utility>

#include "bitfusion/log.h"
#include "bitfusion/uri.h"
#include "net/ssh_session.h"

namespace bitfusion {

Result<std::shared_ptr<RemoteProbeHost>> RemoteProbeHost::Open(const std::string& login,
                                                               const std::string& probe_path) {
  BITFUSION_ASSIGN_OR_RETURN(Uri uri, Uri::Parse(login));
  BITFUSION_ASSIGN_OR_RETURN(SshProbeSourceOptions o, SshProbeSourceOptions::FromUri(uri));
  // It samples once and then only answers the clock exchanges; the container's probe samples.
  o.interval = std::chrono::hours(1);
  o.processes = false;
  o.cgroup = false;
  o.probe_path = probe_path;
  std::shared_ptr<RemoteProbeHost> h(new RemoteProbeHost());
  h->machine_ = o.machine.empty() ? o.target.ToString() : o.machine;
  BITFUSION_ASSIGN_OR_RETURN(h->host_, SshProbeSource::Make(o));
  if (h->host_->remote_dir().empty()) {
    return UnavailableError("probe: the copy on " + h->machine_ +
                            " did not say where it is (no directory line from its shell)");
  }
  h->session_ = SshSession::Shared(o.target, o.session);  // host_'s, which holds it
  return h;
}

RemoteProbeHost::~RemoteProbeHost() {
  if (!remote_socket_.empty()) {
    if (Status s = session_->CancelRemoteForward(remote_socket_, local_socket_); !s.ok()) {
      // The master is gone (and the forward with it) or the host is away: the directory goes
      // when the host probe's channel ends, whatever happens here.
      LogAt(LogLevel::kDebug, "probe: ", s.message());
    }
  }
  if (host_) (void)host_->Stop();
}

Status RemoteProbeHost::Forward(const std::string& local_socket, const std::string& user) {
  const std::string dir = host_->remote_dir();
  const std::string sock = run_dir() + "/probe.sock";
  const std::string name = user.substr(0, user.find(':'));
  const bool other_user = !name.empty() && name != "root" && name != "0";
  BITFUSION_ASSIGN_OR_RETURN(
      auto made, session_->Run({"mkdir", "-m", "700", run_dir()}, std::chrono::seconds(30)));
  if (made.exit_status != 0) {
    return UnavailableError("probe: making " + run_dir() + " on " + machine_ +
                            " failed: " + made.err);
  }
  BITFUSION_RETURN_IF_ERROR(session_->ForwardRemoteUnixSocket(sock, local_socket)
                                .WithContext("probe: the way back from " + machine_));
  remote_socket_ = sock;
  local_socket_ = local_socket;
  if (other_user) {
    LogOnceAt(LogLevel::kInfo, "remote-probe-user", "probe: a container on ", machine_,
              " runs as user \"", user,
              "\", so its probe's directory and socket there are open to every user of that "
              "machine (sshd makes the socket 0600 for the login user); run it as root to keep "
              "them private");
    BITFUSION_ASSIGN_OR_RETURN(
        auto opened,
        session_->Run(
            {"sh", "-c", "chmod 711 \"$1\" \"$2\" && chmod 755 \"$3\" && chmod 666 \"$4\"", "sh",
             dir, run_dir(), probe_path(), sock},
            std::chrono::seconds(30)));
    if (opened.exit_status != 0) {
      return UnavailableError("probe: opening " + dir + " on " + machine_ + " to user " + user +
                              " failed: " + opened.err);
    }
  }
  return Status::OK();
}

std::map<std::string, std::string> RemoteProbeHost::labels() const {
  const auto& offset = host_->clock_offset();
  return {{"machine", machine_},
          {"clock_offset_ns", std::to_string(offset.offset_ns)},
          {"clock_uncertainty_ns", std::to_string(offset.uncertainty_ns)}};
}

}  // namespace bitfusion
