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
# IMDS's role credentials, as the metadata service answers them (the same target reads both)
seed("aws_ini", b'{"Code": "Success", "LastUpdated": "2026-08-01T11:00:00Z", "Type": "AWS-HMAC", '
                b'"AccessKeyId": "ASIAEXAMPLE", "SecretAccessKey": "s", "Token": "t", '
                b'"Expiration": "2026-08-01T17:00:00Z"}')

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

# ---- provider answers (ec2, softlayer, nova, slurm): the first byte picks the answer kind
import importlib.util
import json
import sys


def fake(name):
    """A fake of tests/fakes/ as a module, for its canned data and renderers."""
    sys.path.insert(0, os.path.join(ROOT, "tests", "fakes"))
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "tests", "fakes",
                                                                     name + ".py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def js(v):
    return json.dumps(v).encode()


# ec2: 0 DescribeInstances, 1 DescribeInstanceTypes, 2 DescribeImages, 3 RunInstances; error
# bodies under each. The unit tests' answers, by the element they hold.
for s in raw_strings("ec2_provisioner_test.cc", "Response"):
    kind = (0 if b"reservationSet" in s else 1 if b"instanceTypeSet" in s else
            2 if b"imagesSet" in s else 3)
    seed("ec2", bytes([kind]) + s)
seed("ec2", b"\x00<Response><Errors><Error><Code>InvalidInstanceID.NotFound</Code><Message>"
            b"The instance ID 'i-1' does not exist</Message></Error></Errors>"
            b"<RequestID>r1</RequestID></Response>")
seed("ec2", b"\x01<DescribeInstanceTypesResponse><instanceTypeSet><item><instanceType>p4d.24xlarge"
            b"</instanceType><vCpuInfo><defaultVCpus>96</defaultVCpus></vCpuInfo><memoryInfo>"
            b"<sizeInMiB>1179648</sizeInMiB></memoryInfo><processorInfo><manufacturer>Intel"
            b"</manufacturer><supportedArchitectures><item>x86_64</item></supportedArchitectures>"
            b"</processorInfo><gpuInfo><gpus><item><name>A100</name><manufacturer>NVIDIA"
            b"</manufacturer><count>8</count></item></gpus></gpuInfo></item><item><instanceType>"
            b"inf1.xlarge</instanceType><inferenceAcceleratorInfo><accelerators><item><name>"
            b"Inferentia</name><count>1</count></item></accelerators></inferenceAcceleratorInfo>"
            b"</item></instanceTypeSet><nextToken>t2</nextToken></DescribeInstanceTypesResponse>")

# softlayer: 0 guest list, 1 hardware list (4: private addresses), 2 guests' create options,
# 3 bare metal's create options; the fake's data and records.
sl = fake("softlayer_fake")
seed("softlayer", b"\x02" + js(sl.Handler.create_options(None)))
seed("softlayer", b"\x03" + js(sl.Handler.hardware_options(None)))
guest = {"id": 101, "globalIdentifier": "1b2c3d4e-0000-4000-8000-000000000001",
         "hostname": "bf-x-0", "domain": "example.com",
         "fullyQualifiedDomainName": "bf-x-0.example.com", "startCpus": 2, "maxMemory": 4096,
         "createDate": "2026-01-02T03:04:05-06:00", "provisionDate": "2026-01-02T03:09:05-06:00",
         "primaryIpAddress": "169.48.1.2", "primaryBackendIpAddress": "10.0.1.2",
         "datacenter": {"id": 1854895, "name": "dal13"},
         "powerState": {"keyName": "RUNNING", "name": "Running"},
         "tagReferences": [{"id": 1, "tag": {"id": 1, "name": "bitfusion.creator:bitfusion"}},
                           {"id": 2, "tag": {"id": 2, "name": "bitfusion.expires:1767000000"}},
                           {"id": 3, "tag": {"id": 3, "name": "plain"}}],
         "billingItem": {"id": 303, "orderItem": {"preset": {"keyName": "B1_2X4X100"}}}}
pending = dict(guest, id=102, provisionDate=None, primaryIpAddress=None,
               activeTransaction={"id": 1020}, tagReferences=[])
hardware = dict(guest, processorPhysicalCoreAmount=16, memoryCapacity=128)
del hardware["billingItem"]
seed("softlayer", b"\x00" + js([guest, pending]))
seed("softlayer", b"\x05" + js([hardware, dict(guest, processorPhysicalCoreAmount=4,
                                               memoryCapacity=8)]))
seed("softlayer", b"\x00" + js({"error": "Unable to fulfill the request: there is insufficient "
                                         "capacity in dal13",
                                "code": "SoftLayer_Exception_Virtual_Host_Pool_"
                                        "InsufficientResources"}))

# nova: 0 server list, 1 flavour list, 2 os-extra_specs; bits 2.. pick the error status.
os_fake = fake("openstack_fake")
flavors = [os_fake.Handler.public_flavor(None, f, (2, 61)) for f in os_fake.FLAVORS]
seed("nova", b"\x01" + js({"flavors": flavors}))
seed("nova", b"\x01" + js({"flavors": [os_fake.Handler.public_flavor(None, f, (2, 1))
                                       for f in os_fake.FLAVORS]}))
seed("nova", b"\x02" + js({"extra_specs": {"pci_passthrough:alias": "a100:2,u250",
                                           "resources:CUSTOM_FPGA_XILINX": "1",
                                           "accel:device_profile": "gpu-profile",
                                           "capabilities:cpu_info:arch": "aarch64"}}))
server = {"id": "5f1c2a3b-0000-4000-8000-000000000001", "name": "bf-x-0", "status": "ACTIVE",
          "created": "2026-01-02T03:04:05Z", "metadata": {"bitfusion.creator": "bitfusion"},
          "key_name": "bitfusion", "flavor": {"id": "g1", "original_name": "g1.a100x2"},
          "OS-EXT-STS:task_state": None, "OS-SRV-USG:launched_at": "2026-01-02T03:05:00.000000",
          "OS-EXT-AZ:availability_zone": "nova", "accessIPv4": "",
          "addresses": {"private": [{"addr": "10.0.0.5", "version": 4,
                                     "OS-EXT-IPS:type": "fixed"},
                                    {"addr": "203.0.113.5", "version": 4,
                                     "OS-EXT-IPS:type": "floating"}],
                        "public": [{"addr": "198.51.100.7", "version": 4}]}}
building = dict(server, id="5f1c2a3b-0000-4000-8000-000000000002", status="BUILD",
                addresses={}, **{"OS-EXT-STS:task_state": "spawning"})
seed("nova", b"\x00" + js({"servers": [server, building],
                           "servers_links": [{"rel": "next", "href": "x"}]}))
seed("nova", b"\x00" + js({"server": {"id": server["id"], "links": []}}))
for status, message in ((403, "Quota exceeded for instances"), (404, "Flavor 9 could not be "
                        "found"), (409, "Instance is locked")):
    # nova_fuzzer.cc's kStatuses[(byte >> 2) % 10]
    seed("nova", bytes([4 * [400, 401, 403, 404, 406, 409].index(status)]) +
         js(os_fake.FakeError(status, message).body()))
seed("nova", b"\x00" + js(os_fake.FakeError(401, "The request you have made requires "
                                                 "authentication.", style="keystone").body()))

# slurm: the unit tests' OpenAPI documents and errors, and jobs as slurmrestd 22.05 writes them
for s in raw_strings("slurm_runner_test.cc", "paths") + raw_strings("slurm_runner_test.cc",
                                                                      "errors"):
    seed("slurm", b"\x00" + s)
job = {"job_id": 42, "name": "bf-run-1", "job_state": "COMPLETED", "state_reason": "None",
       "comment": "bitfusion:" + json.dumps({"bitfusion.creator": "bitfusion",
                                             "bitfusion.run_id": "r1"}),
       "exit_code": 768, "start_time": 1700000000, "end_time": 1700000010,
       "submit_time": 1699999990}
seed("slurm", b"\x00" + js({"meta": {"Slurm": {"release": "22.05.8"}}, "errors": [],
                            "jobs": [job, dict(job, job_id=43, job_state="PENDING",
                                               comment="", exit_code=0)]}))
seed("slurm", b"\x00" + js({"errors": [], "job_id": 44, "step_id": "batch"}))
seed("slurm", b"\x07" + js({"errors": [{"error": "Unable to query JobId=9", "error_number": 2017,
                                        "description": "Invalid job id specified",
                                        "source": "slurm_load_job"}], "jobs": []}))
seed("slurm", b"\x04" + js({"errors": [{"error_code": 5005, "error": "Zero Bytes were "
                                        "transmitted or received",
                                        "source": "slurm_load_ctl_conf"}]}))
