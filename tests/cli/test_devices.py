"""`bitfusion devices` on the recorded trees in tests/fixtures/sysfs and on this host."""
import json
import os
import subprocess
from pathlib import Path

import pytest

BIN = os.environ.get("BITFUSION_BIN", "bitfusion")
TREES = Path(__file__).resolve().parents[1] / "fixtures" / "sysfs"


def run(*args, check=None):
    proc = subprocess.run([BIN, "devices", *args], capture_output=True, text=True, timeout=120)
    if check is not None:
        assert proc.returncode == check, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc


def test_help():
    out = run("--help", check=0).stdout
    assert "usage: bitfusion devices" in out
    assert "--sysfs-root" in out and "--json" in out


def test_dgx_tree_as_json():
    devices = json.loads(run("--json", "--sysfs-root", str(TREES / "dgx-a100"), check=0).stdout)
    assert [d["id"] for d in devices] == [
        "0000:07:00.0", "0000:0f:00.0", "0000:47:00.0", "0000:4e:00.0",
        "0000:87:00.0", "0000:90:00.0", "0000:b7:00.0", "0000:bd:00.0"]
    first = devices[0]
    assert first["vendor"] == "NVIDIA"
    assert first["model"] == "NVIDIA A100-SXM4-40GB"
    assert first["numa_node"] == 0 and devices[7]["numa_node"] == 1
    assert first["device_nodes"][0] == "/dev/nvidia0"
    assert "/dev/nvidiactl" in first["device_nodes"]
    props = first["properties"]
    props = props if isinstance(props, dict) else {p["key"]: p["value"] for p in props}
    assert props["pcie_link"] == "16.0 GT/s PCIe x16"
    assert props["pcie_switch"] == "0000:00:01.1"


def test_alveo_tree_as_text():
    out = run("--sysfs-root", str(TREES / "alveo-u250"), check=0).stdout
    assert "0000:3b:00.1  fpga Xilinx 10ee:5005" in out
    assert "/dev/xclmgmt15104" in out
    assert "/dev/dri/renderD129" in out
    assert "mgmt_pci_address" in out


def test_malformed_entries_are_warned_about_not_fatal(tmp_path):
    proc = run("--json", "--allocator",
               f"sysfs://{TREES / 'mixed'}?lock_dir={tmp_path}", check=0)
    assert len(json.loads(proc.stdout)) == 4
    assert "0000:00:05.0: vendor, device or class file missing" in proc.stderr
    assert "0000:00:06.0: malformed" in proc.stderr


def test_bad_roots_and_options_are_usage_errors():
    proc = run("--sysfs-root", "/nonexistent/tree", check=2)
    assert "/nonexistent/tree" in proc.stderr
    proc = run("--sysfs-root", str(TREES / "mixed"), "--allocator", "local://", check=2)
    assert "not both" in proc.stderr
    proc = run("--allocator", "local://?lockdir=/tmp", check=2)
    assert "lock_dir" in proc.stderr


def count_accelerators_on_this_host():
    """The same rules as ClassifyAccelerator, read independently from /sys: one device per GPU
    function, one per FPGA card (its functions grouped by domain:bus:device)."""
    gpus, cards = 0, set()
    bus = Path("/sys/bus/pci/devices")
    for dev in sorted(bus.iterdir()) if bus.is_dir() else []:
        try:
            vendor = (dev / "vendor").read_text().strip()
            klass = int((dev / "class").read_text().strip(), 16) >> 16
        except (OSError, ValueError):
            continue
        if klass not in (0x03, 0x12):
            continue
        if vendor in ("0x10de", "0x1002"):
            gpus += 1
        elif vendor in ("0x10ee", "0x1172") or (vendor == "0x8086" and klass == 0x12):
            cards.add(vendor + dev.name.rsplit(".", 1)[0])
    return gpus + len(cards)


def test_this_host_agrees_with_sysfs(tmp_path):
    devices = json.loads(run("--json", "--allocator", f"local://?lock_dir={tmp_path}", check=0).stdout)
    assert len(devices) == count_accelerators_on_this_host()
    text = run("--allocator", f"local://?lock_dir={tmp_path}", check=0).stdout
    if not devices:
        assert "no accelerators found" in text
