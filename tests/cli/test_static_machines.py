"""`bitfusion machines up/list/down --provisioner static://...` against a real sshd on 127.0.0.1
that this module starts (its own port, host key and authorized_keys) and stops by PID.

Needs root and /usr/sbin/sshd (Debian: openssh-server); without them the tests skip, and under
CI=true they fail.
"""
import json
import os
import signal
import socket
import subprocess
import time

import pytest

from cli_helpers import run

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


@pytest.fixture(scope="module")
def inventory(tmp_path_factory):
    require(os.geteuid() == 0 and os.access(SSHD, os.X_OK),
            "needs root and /usr/sbin/sshd (apt-get install openssh-server)")
    d = tmp_path_factory.mktemp("static")
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


def uri(d, name="hosts.json"):
    return f"static://{d / name}?lease_dir={d / 'leases'}&ssh_config={d / 'ssh_config'}"


def test_up_list_down(inventory):
    d = inventory
    up = run("machines", "up", "--provisioner", uri(d), "--type", "fpga=xilinx-u250",
             "--run-id", "cli-static", "--json", check=0)
    [m] = json.loads(up.stdout)
    assert m["id"] == "metal"
    assert m["address"] == "127.0.0.1"
    assert m["memory_bytes"] > 0  # the fingerprint came over SSH
    # `up` has exited: the lease now belongs to its run id, and another process sees it.
    listed = json.loads(run("machines", "list", "--provisioner", uri(d), "--json", check=0).stdout)
    assert [x["id"] for x in listed] == ["metal"]
    assert listed[0]["run_id"] == "cli-static"
    busy = run("machines", "up", "--provisioner", uri(d), "--type", "metal")
    assert busy.returncode != 0
    assert "metal (leased by run cli-static)" in busy.stderr
    run("machines", "down", "--provisioner", uri(d), "metal", check=0)
    assert json.loads(run("machines", "list", "--provisioner", uri(d), "--json",
                          check=0).stdout) == []


def test_bad_input_is_one_clear_error(inventory):
    d = inventory
    broken = run("machines", "list", "--provisioner", uri(d, "broken.json"))
    assert broken.returncode != 0
    assert "broken.json: line 2" in broken.stderr
    gone = run("machines", "up", "--provisioner", uri(d, "dead.json"), "--type", "gone")
    assert gone.returncode != 0
    assert 'host "gone"' in gone.stderr and "Connection refused" in gone.stderr
    none = run("machines", "up", "--provisioner", uri(d), "--type", "h100-box")
    assert none.returncode != 0
    assert '"h100-box"' in none.stderr and "its hosts are metal" in none.stderr
    assert json.loads(run("machines", "list", "--provisioner", uri(d, "dead.json"), "--json",
                          check=0).stdout) == []
