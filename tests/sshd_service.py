"""A real sshd on 127.0.0.1 for the Python tests (CLI and SDK): its own port, host key,
authorized_keys and config under a directory the test owns, stopped by PID. Yields a directory
with hosts.json (one reachable host "metal", labels fpga=xilinx-u250), dead.json (a host on a
closed port) and broken.json (a syntax error), and the matching ssh_config.

Needs root and /usr/sbin/sshd (Debian: openssh-server); without them the tests skip, and under
CI=true they fail.
"""
import contextlib
import json
import os
import signal
import socket
import subprocess
import time

import pytest

SSHD = "/usr/sbin/sshd"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def require(ok, why):
    if not ok:
        if os.environ.get("CI") == "true":
            pytest.fail(why + " (CI=true: a test that cannot reach its service is a failure)")
        pytest.skip(why)


@contextlib.contextmanager
def static_inventory(d):
    require(os.geteuid() == 0 and os.access(SSHD, os.X_OK),
            "needs root and /usr/sbin/sshd (apt-get install openssh-server)")
    for key in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / key)],
                       check=True, stdin=subprocess.DEVNULL)
    (d / "authorized_keys").write_text((d / "client_key.pub").read_text())
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    port = free_port()
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n"
        f"AuthorizedKeysFile {d}/authorized_keys\nPermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n")
    (d / "ssh_config").write_text(
        f"Host *\n  StrictHostKeyChecking accept-new\n  UserKnownHostsFile {d}/known_hosts\n"
        "  GlobalKnownHostsFile /dev/null\n  LogLevel ERROR\n")
    log = open(d / "sshd.log", "w")
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(d / "sshd_config")], stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        for _ in range(200):
            if "Server listening" in (d / "sshd.log").read_text():
                break
            assert proc.poll() is None, (d / "sshd.log").read_text()
            time.sleep(0.05)
        (d / "hosts.json").write_text(json.dumps({"hosts": [
            {"name": "metal", "address": "127.0.0.1", "port": port, "user": "root",
             "key": "client_key", "labels": {"fpga": "xilinx-u250"}}]}))
        dead = free_port()
        (d / "dead.json").write_text(json.dumps({"hosts": [
            {"name": "gone", "address": "127.0.0.1", "port": dead, "user": "root"}]}))
        (d / "broken.json").write_text('{"hosts": [\n  {"name": "x", "address": }\n]}')
        yield d
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
        log.close()


@pytest.fixture(scope="module")
def inventory(tmp_path_factory):
    """The directory of static_inventory, for one test module."""
    with static_inventory(tmp_path_factory.mktemp("static")) as d:
        yield d


def static_uri(d, name="hosts.json"):
    return f"static://{d / name}?lease_dir={d / 'leases'}&ssh_config={d / 'ssh_config'}"
