#include "runners/docker_ssh_tunnel.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <string_view>

namespace bitfusion {

using namespace std::chrono_literals;

// The forward's socket, beside the master's in its private directory, whose length the
// runtime_dir bound allows for.
constexpr std::string_view kForwardName = "docker.sock";
static_assert(kForwardName.size() <= kMaxControlDirName);

Result<std::unique_ptr<DockerSshTunnel>> DockerSshTunnel::Open(const DockerRunnerOptions& options) {
  SshSessionOptions s;
  s.config_file = options.ssh.config_file;
  s.connect_timeout = std::max<std::chrono::seconds>(
      1s, std::chrono::ceil<std::chrono::seconds>(options.connect_timeout));
  // A forward needs no remote shell; the few diagnostic commands each take a channel.
  s.command_channel = false;
  // The user's first: ssh takes the first value it sees for a key, so ?ssh_option= overrides
  // these defaults (never SshSession's own BatchMode and control settings, which come first).
  s.options = options.ssh.options;
  // A master that comes back after dying binds the forward where the old one was.
  s.options.push_back("StreamLocalBindUnlink=yes");
  // A dead network ends the master, so the next call logs in again.
  s.options.push_back("ServerAliveInterval=15");
  s.options.push_back("ServerAliveCountMax=3");
  s.runtime_dir = options.ssh.runtime_dir;
  std::unique_ptr<DockerSshTunnel> tunnel(new DockerSshTunnel(options.ssh, std::move(s)));
  std::lock_guard lock(tunnel->mu_);
  BITFUSION_RETURN_IF_ERROR(tunnel->Establish());
  return tunnel;
}

DockerSshTunnel::DockerSshTunnel(const DockerRunnerOptions::Ssh& ssh, SshSessionOptions options)
    : ssh_(ssh),
      host_("ssh://" + SshTarget{ssh.host, ssh.port, ssh.user, {}}.ToString()),
      session_(SshTarget{ssh.host, ssh.port, ssh.user, ssh.identity_file}, std::move(options)) {}

DockerSshTunnel::~DockerSshTunnel() { session_.Close(); }

Status DockerSshTunnel::Establish() {
  const std::string what = "Docker engine at " + host_ + " (socket " + ssh_.socket_path + ")";
  if (Status s = session_.Connect(); !s.ok()) return Status(s.code(), what + ": " + s.message());
  const std::string local = (session_.control_path().parent_path() / kForwardName).string();
  // The HTTP client was given the first one; a master that comes back keeps its directory.
  if (!local_socket_.empty() && local != local_socket_) {
    return InternalError(what + ": the SSH control directory moved from " + local_socket_ + " to " +
                         local);
  }
  local_socket_ = local;
  if (Status s = session_.ForwardUnixSocket(local, ssh_.socket_path); !s.ok()) {
    return Status(s.code(), what + ": " + s.message() +
                                "; does sshd there allow stream-local forwarding "
                                "(AllowStreamLocalForwarding, DisableForwarding)?");
  }
  return Status::OK();
}

bool DockerSshTunnel::LocalAnswers() const {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (local_socket_.empty() || local_socket_.size() >= sizeof addr.sun_path) return false;
  std::memcpy(addr.sun_path, local_socket_.c_str(), local_socket_.size() + 1);
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  const bool ok = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

bool DockerSshTunnel::Restore() {
  std::lock_guard lock(mu_);
  // Another thread may have restored it already.
  if (LocalAnswers()) return true;
  Status s = Establish();
  restore_error_ = s.ok() ? "" : s.message();
  return s.ok() && LocalAnswers();
}

std::string DockerSshTunnel::Diagnose() {
  std::lock_guard lock(mu_);
  if (!LocalAnswers()) {
    return "the SSH connection to " + host_ + " is gone" +
           (restore_error_.empty() ? "" : " and logging in again failed: " + restore_error_);
  }
  const std::string& path = ssh_.socket_path;
  auto r = session_.Run({"sh", "-c",
                         "if [ ! -S \"$1\" ]; then echo missing; elif [ ! -r \"$1\" ] || [ ! -w "
                         "\"$1\" ]; then echo denied; else echo ok; fi",
                         "sh", path},
                        15s);
  const std::string answer = r.ok() ? r->out.substr(0, r->out.find('\n')) : "";
  if (answer == "missing") {
    return "no socket at " + path + " on " + host_ +
           ": is dockerd running there? (?socket= names another path)";
  }
  if (answer == "denied") {
    return "the login user on " + host_ + " may not use " + path +
           ": add it to the socket's group (docker) or log in as another user";
  }
  if (answer == "ok") {
    return path + " on " + host_ +
           " exists but nothing answers through the SSH forward: restart dockerd there, or check "
           "that its sshd allows stream-local forwarding (AllowStreamLocalForwarding)";
  }
  return "asking " + host_ + " about " + path + " over SSH failed too (" +
         (r.ok() ? (r->timed_out ? "no answer" : "exit status " + std::to_string(r->exit_status))
                 : r.error().message()) +
         ")";
}

}  // namespace bitfusion
