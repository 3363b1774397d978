"""`bitfusion machines up/list/down --provisioner static://...` against a real sshd on 127.0.0.1
that this module starts (its own port, host key and authorized_keys) and stops by PID.

Needs root and /usr/sbin/sshd (Debian: openssh-server); without them the tests skip, and under
CI=true they fail.
"""
import json
import pathlib
import sys

from cli_helpers import run

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from sshd_service import inventory, static_uri as uri  # noqa: E402,F401 (inventory is a fixture)


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
