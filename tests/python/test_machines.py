"""Machines from Python on static://, against a real sshd on 127.0.0.1 that this module starts
(tests/sshd_service.py). null:// machines are in test_sdk.py."""
import pathlib
import sys

import pytest

import bitfusion

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from sshd_service import inventory, static_uri  # noqa: E402,F401 (inventory is a fixture)


def test_a_static_host_is_leased_fingerprinted_over_ssh_and_returned(inventory):
    provisioner = bitfusion.provisioner_from_uri(static_uri(inventory))
    assert [t.name for t in provisioner.types()] == ["metal"]
    with provisioner.up({"type": "fpga=xilinx-u250", "count": 1, "run_id": "py-static"},
                        timeout=120) as machines:
        [m] = machines.machines
        assert (m.id, m.ssh.host, m.ssh.user) == ("metal", "127.0.0.1", "root")
        assert m.state == "running" and m.memory_bytes > 0 and m.cpu.threads > 0
        assert 0 < m.created_ns <= m.ssh_ready_ns <= m.ready_ns
        assert [(x.id, x.labels.get("bitfusion.run_id")) for x in provisioner.list()] == \
            [("metal", "py-static")]
        busy = r"busy: metal \(leased by process [0-9]+ on .*run py-static"
        with pytest.raises(bitfusion.Error, match=busy):
            provisioner.up({"type": "metal", "count": 1}, timeout=30)
    assert provisioner.list() == [], "leaving the block returned the host"


def test_a_static_host_is_returned_when_the_block_raises(inventory):
    provisioner = bitfusion.provisioner_from_uri(static_uri(inventory))
    with pytest.raises(RuntimeError, match="step failed"):
        with provisioner.up({"type": "metal", "count": 1}, timeout=120):
            assert len(provisioner.list()) == 1
            raise RuntimeError("step failed")
    assert provisioner.list() == []


def test_an_unreachable_static_host_is_one_clear_error(inventory):
    provisioner = bitfusion.provisioner_from_uri(static_uri(inventory, "dead.json"))
    with pytest.raises(bitfusion.Error, match=r'host "gone".*Connection refused'):
        provisioner.up({"type": "gone", "count": 1}, timeout=60)
    assert provisioner.list() == []
