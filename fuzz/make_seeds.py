#!/usr/bin/env python3
"""Writes the seed corpora fuzz/corpus/TARGET/ from the repository's fixtures and the inputs the
unit tests use. Run from anywhere; rerun after changing it (the seeds are committed, so a fuzz
run needs nothing but the build). Seeds are named by content, so rerunning changes nothing."""
import hashlib
import io
import os
import re
import struct
import tarfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "fuzz", "corpus")
FIX = os.path.join(ROOT, "tests", "fixtures")


def read(*parts):
    with open(os.path.join(ROOT, *parts), "rb") as f:
        return f.read()


def opt(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def seed(target, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + hashlib.sha1(data).hexdigest()[:16]), "wb") as f:
        f.write(data)


def raw_strings(test, must):
    """The R"(...)" literals of a unit test that contain `must`."""
    text = read("tests", "unit", test).decode()
    return [s.encode() for s in re.findall(r'R"\((.*?)\)"', text, re.S) if must in s]


# ---- plan: the bundled specs and the plans of the unit tests
for name in sorted(os.listdir(os.path.join(ROOT, "examples", "specs"))):
    if name.endswith(".json"):
        seed("plan", read("examples", "specs", name))
for s in raw_strings("experiment_test.cc", "benchmarks"):
    seed("plan", s)
seed("plan", b'[{"kind": "gpu", "vendor": "NVIDIA", "count": 2, "min_memory": "40GiB", '
             b'"topology": "same_numa_node", "exclusive": true}]')

# ---- gbench
for s in raw_strings("gbench_import_test.cc", "context"):
    seed("gbench", s)

# ---- cdi: first byte 1 = YAML, 0 = JSON
for tree in sorted(os.listdir(os.path.join(FIX, "sysfs"))):
    for sub in ("etc/cdi", "var/run/cdi"):
        d = os.path.join(FIX, "sysfs", tree, sub)
        if not os.path.isdir(d):
            continue
        for name in sorted(os.listdir(d)):
            data = opt(os.path.join(d, name))
            seed("cdi", (b"\x00" if name.endswith(".json") else b"\x01") + data)

# ---- openstack_identity: first byte picks the interface (0 public)
for s in raw_strings("openstack_identity_test.cc", "token"):
    seed("openstack_identity", b"\x00" + s)

# ---- static_inventory
for s in raw_strings("static_provisioner_test.cc", "hosts"):
    seed("static_inventory", s)

# ---- aws_ini
seed("aws_ini", b"[default]\nregion = eu-west-1\n# comment\n[profile dev]\nservices = local\n"
                b"endpoint_url = http://profile:1\n[services local]\nec2 =\n"
                b"  endpoint_url = http://svc:2\n")
seed("aws_ini", b"[default]\naws_access_key_id = AKIDEXAMPLE\naws_secret_access_key = s\n"
                b"aws_session_token = t\n")

# ---- uri: URIs, durations, sizes, timestamps
for s in [b"sqlite://results.db", b"docker:///var/run/docker.sock", b"process://", b"host",
          b"host?proc_root=/x", b"process:1234", b"cgroup:/docker/ID?root=/sys/fs/cgroup&detail_every=10",
          b"es+https://user:p%40ss@host:9200/index?gzip=true&timeout=5s",
          b"docker-stats:ID?runner=docker%2Btls%3A%2F%2Fbuild-host%3A2376",
          b"static:///abs/hosts.json?ssh_option=K=V&connect_timeout=10",
          b"sysfs:///srv/trees/dgx-a100?enrich=false", b"csv:r.csv",
          b"10ms", b"1.5s", b"4h", b"100us", b"40GiB", b"512MB", b"1e3",
          b"2026-11-25T05:44:21.607427873Z", b"2026-11-25T05:44:21+02:00",
          b"2012-06-05T11:26:53.000-05:00", b"0001-01-01T00:00:00Z", b"1969-12-31T23:59:59.5Z",
          b"2026-12-04T01:02:03+0100"]:
    seed("uri", s)

# ---- procfs: the twelve files of procfs_fuzzer.cc, NUL-separated
PROC_FILES = ["stat", "meminfo", "loadavg", "diskstats", "net/dev", "pressure/cpu",
              "pressure/memory", "pressure/io"]
for host in sorted(os.listdir(os.path.join(FIX, "proc"))):
    base = os.path.join(FIX, "proc", host)
    pids = [p for p in os.listdir(base) if p.isdigit()] or [""]
    freq = opt(os.path.join(base, "sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq"))
    for pid in pids:
        parts = [opt(os.path.join(base, f)) for f in PROC_FILES] + [freq]
        parts += [opt(os.path.join(base, pid, f)) if pid else b"" for f in ("stat", "status", "io")]
        seed("procfs", b"\x00".join(parts))

# ---- cgroup: /proc/PID/cgroup, then the v2 files, then the v1 files (cgroup_fuzzer.cc)
V2 = ["cpu.stat", "memory.current", "memory.max", "memory.stat", "io.stat", "pids.current",
      "pids.max"]
V1 = [("cpuacct", "cpuacct.usage"), ("cpuacct", "cpuacct.stat"), ("cpu", "cpu.stat"),
      ("memory", "memory.usage_in_bytes"), ("memory", "memory.limit_in_bytes"),
      ("memory", "memory.stat"), ("blkio", "blkio.throttle.io_service_bytes"),
      ("blkio", "blkio.throttle.io_serviced"), ("pids", "pids.current"), ("pids", "pids.max")]


def only_dir(d):
    for dirpath, _, files in os.walk(d):
        if any(f in files for f in V2 + [x for _, x in V1]):
            return dirpath
    return d


v2 = only_dir(os.path.join(FIX, "cgroup/v2/sys/fs/cgroup"))
v1root = os.path.join(FIX, "cgroup/v1/sys/fs/cgroup")
v1 = {c: only_dir(os.path.join(v1root, c)) for c in ("cpu", "cpuacct", "memory", "blkio", "pids")}
for version in ("v1", "v2"):
    pdir = os.path.join(FIX, "cgroup", version, "proc")
    proc_cgroup = b""
    for pid in os.listdir(pdir):
        proc_cgroup = opt(os.path.join(pdir, pid, "cgroup"))
    parts = [proc_cgroup]
    parts += [opt(os.path.join(v2, f)) if version == "v2" else b"" for f in V2]
    parts += [opt(os.path.join(v1[c], f)) if version == "v1" else b"" for c, f in V1]
    seed("cgroup", b"\x00".join(parts))

# ---- fingerprint: a host tree as the remote fingerprint script prints it
for host in sorted(os.listdir(os.path.join(FIX, "hosts"))):
    base = os.path.join(FIX, "hosts", host)
    out = [b"\n@@BF-UNAME fuzzhost 6.1.0-18-amd64 x86_64\n"]
    for dirpath, dirs, files in sorted(os.walk(base)):
        rel = "/" + os.path.relpath(dirpath, base)
        for name in sorted(dirs + files):
            full = os.path.join(dirpath, name)
            path = (rel.rstrip("/") + "/" + name).encode()
            if os.path.islink(full):
                out.append(b"\n@@BF-LINK " + path + b" " + os.readlink(full).encode() + b"\n")
            elif os.path.isfile(full):
                out.append(b"\n@@BF-FILE " + path + b"\n" + opt(full))
            elif re.search(r"/node/node[0-9]+$", path.decode()):
                out.append(b"\n@@BF-DIR " + path + b"\n")
    out.append(b"\n@@BF-END\n")
    seed("fingerprint", b"".join(out))

# ---- tar: ustar, PAX and GNU archives with files, directories, symlinks and hard links
for fmt in (tarfile.USTAR_FORMAT, tarfile.PAX_FORMAT, tarfile.GNU_FORMAT):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        def add(name, kind=tarfile.REGTYPE, data=b"", link=""):
            info = tarfile.TarInfo(name)
            info.type, info.size, info.linkname, info.mode = kind, len(data), link, 0o644
            t.addfile(info, io.BytesIO(data) if data else None)
        add("etc", tarfile.DIRTYPE)
        add("etc/hostname", data=b"fuzz\n")
        add("bin/busybox", data=b"\x7fELF" + b"\x00" * 600)
        add("bin/sh", tarfile.SYMTYPE, link="busybox")
        add("bin/ls", tarfile.LNKTYPE, link="bin/busybox")
        if fmt != tarfile.USTAR_FORMAT:
            add("d/" + "long-name-" * 20 + "end", data=b"long")
            add("l/" + "x" * 120, tarfile.SYMTYPE, link="t" * 150)
    seed("tar", buf.getvalue())

# ---- probe_wire: a probe's stream (probe_wire.h, version 1)


def rec(kind, body):
    return struct.pack("<IB", len(body) + 1, kind) + body


def s16(s):
    return struct.pack("<H", len(s)) + s


hello = rec(1, b"bfprobe\x00" + struct.pack("<HHqi", 1, 0, 10_000_000, 7) + s16(b"v2") + s16(b"c1"))
declare0 = rec(2, struct.pack("<IB", 0, 1) + s16(b"cgroup.cpu.usage") + s16(b"s") + b"\x00")
declare1 = rec(2, struct.pack("<IB", 1, 0) + s16(b"process.rss") + s16(b"bytes") + b"\x02" +
               s16(b"pid") + s16(b"42") + s16(b"comm") + s16(b"bench"))
tick = rec(3, struct.pack("<qqqI", 1_700_000_000_000_000_000, 5_000_000, 1000, 2) +
           struct.pack("<Id", 0, 0.25) + struct.pack("<Id", 1, 1048576.0))
end = rec(4, struct.pack("<Biiq", 1, 0, 0, 2000))
seed("probe_wire", hello + declare0 + declare1 + tick + tick + end)
seed("probe_wire", hello + declare0 + tick[:20])

# ---- docker: NDJSON streams (byte 0 even) and multiplexed log streams (byte 0 odd); byte 1 is
# the transport's piece size less one
events = (b'{"Type":"container","Action":"die","Actor":{"ID":"abc","Attributes":'
          b'{"exitCode":"3","name":"bf-1"}},"time":1700000000,"timeNano":1700000000123456789}\n'
          b'{"status":"destroy","id":"d","Type":"container","time":1700000001}\n')
stats = (b'{"read":"2026-01-01T00:00:00.5Z","cpu_stats":{"cpu_usage":{"total_usage":123456},'
         b'"system_cpu_usage":99999999,"online_cpus":4},"memory_stats":{"usage":1048576,'
         b'"stats":{"inactive_file":4096}},"pids_stats":{"current":3},"networks":{"eth0":'
         b'{"rx_bytes":10,"tx_bytes":20}},"blkio_stats":{"io_service_bytes_recursive":'
         b'[{"op":"read","value":512}]}}\n')
progress = (b'{"stream":"Step 1/2 : FROM busybox"}\n{"aux":{"ID":"sha256:ab"}}\n'
            b'{"errorDetail":{"message":"no space"},"error":"no space"}\n')
for body, step in ((events, 0), (events, 6), (stats, 255), (progress, 1)):
    seed("docker", bytes([0, step]) + body)


def frame(stream, payload):
    return struct.pack(">BxxxI", stream, len(payload)) + payload


logs = frame(1, b"hello\nwor") + frame(2, b"oops\n") + frame(1, b"") + frame(1, b"ld\n")
seed("docker", bytes([1, 0]) + logs)
seed("docker", bytes([1, 7]) + logs + frame(2, b"e" * 300))
