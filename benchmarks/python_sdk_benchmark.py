"""What the Python SDK costs over the C++ library, measured against it in the same run.

    PYTHONPATH=build/python python3 benchmarks/python_sdk_benchmark.py [--rounds 5] [--quick]
        [--reference build/bin/container_lifecycle_reference] [--docker unix:///path/d.sock
         --image busybox-image]

1. Delivery into a Python callback (target >= 1M samples/s, batched): a MetricStream of the
   `null?series=N` load generator (no file read) with overflow="block", so the sampler waits
   for delivery and the rate delivered is the capacity; a Python subscriber taking SampleBatch
   objects (and one reading every value through the buffer protocol), against the C++ null://
   sink on the same stream.
2. A Python ResultSink against the C++ jsonl:// sink on the same stream: process CPU per sample
   delivered, for a Python sink that only takes the batches and for one that writes JSON lines
   itself (the same work as jsonl://).
3. Container create + start + wait + remove from Python against the same calls from C++
   (container_lifecycle_reference, timed inside its process): process:// always, docker:// when
   --docker and --image are given. Target <= 1.05x.

Rounds alternate the variants so drift hits all of them alike; medians are printed. Figures
are read by people, never asserted.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import bitfusion

HERE = os.path.dirname(os.path.abspath(__file__))


def median(values):
    return statistics.median(values) if values else float("nan")


# ---- 1. delivery into Python ------------------------------------------------------------------

def delivery_rate(series, seconds, mode):
    """Samples per second delivered to one subscriber (mode "batch", "values") or to the C++
    null:// sink ("cpp")."""
    delivered = [0]
    sinks = ["null://"] if mode == "cpp" else []
    stream = bitfusion.MetricStream([f"null?series={series}"], interval=0.001, sinks=sinks,
                                    delivery_interval=0.005, overflow="block")
    if mode == "batch":
        def take(batch):
            delivered[0] += len(batch)
        stream.subscribe(take, batches=True)
    elif mode == "values":
        def take(batch):
            values = memoryview(batch.values)
            delivered[0] += len(values)
            sum(values)  # reads every value, in Python
        stream.subscribe(take, batches=True)
    start = time.perf_counter()
    with stream:
        time.sleep(seconds)
    elapsed = time.perf_counter() - start
    overhead = stream.overhead()
    if mode == "cpp":
        delivered[0] = overhead["samples"]
    return delivered[0] / elapsed, overhead["samples_dropped"]


def bench_delivery(args):
    series = 20000
    rates = {"batch": [], "values": [], "cpp": []}
    dropped = 0
    for _ in range(args.rounds):
        for mode in rates:
            rate, drops = delivery_rate(series, args.seconds, mode)
            rates[mode].append(rate)
            dropped += drops
    print(f"1. delivery, null?series={series} every 1 ms (offered up to {series * 1000 / 1e6:.0f}M "
          f"samples/s), overflow=block, {args.rounds} rounds of {args.seconds} s, "
          f"samples dropped: {dropped}")
    cpp = median(rates["cpp"])
    for mode, label in (("batch", "Python callback, SampleBatch"),
                        ("values", "Python callback, sum(memoryview(values))"),
                        ("cpp", "C++ null:// sink (reference)")):
        m = median(rates[mode])
        print(f"   {label:45s} {m / 1e6:8.2f} M samples/s   ({m / cpp:5.2f}x the C++ sink)")


# ---- 2. Python sink against jsonl:// -----------------------------------------------------------

class TakingSink(bitfusion.ResultSink):
    """Takes the batches and counts them: the bindings' cost alone."""

    def __init__(self):
        super().__init__("python://taking?batch_samples=16384&max_delay=50ms")
        self.samples = 0

    def write_samples(self, batches):
        for batch in batches:
            self.samples += len(batch)

    def write_run(self, record):
        pass


class JsonLinesSink(bitfusion.ResultSink):
    """Writes one JSON object per sample, as jsonl:// does, in Python."""

    def __init__(self, path):
        super().__init__("python://jsonlines?batch_samples=16384&max_delay=50ms")
        self.file = open(path, "w")

    def write_samples(self, batches):
        dumps, write = json.dumps, self.file.write
        for batch in batches:
            names = [(s.metric, s.unit, s.labels) for s in batch.series]
            for index, ts, value in zip(batch.series_index.tolist(), batch.timestamps.tolist(),
                                        batch.values.tolist()):
                metric, unit, labels = names[index]
                write(dumps({"metric": metric, "value": value, "unit": unit,
                             "timestamp_ns": ts, "labels": {**batch.labels, **labels}}) + "\n")

    def write_run(self, record):
        pass

    def close(self):
        super().close()
        self.file.close()


def sink_cpu_per_sample(kind, series, seconds, tmp):
    if kind == "jsonl":
        sink = f"jsonl://{tmp}/cpp.jsonl"
    elif kind == "taking":
        sink = TakingSink()
    else:
        sink = JsonLinesSink(f"{tmp}/py.jsonl")
    stream = bitfusion.MetricStream([f"null?series={series}"], interval=0.001, sinks=[sink],
                                    labels={"run": "bench"})
    cpu0 = time.process_time()
    with stream:
        time.sleep(seconds)
    if not isinstance(sink, str):
        sink.close()
    cpu = time.process_time() - cpu0
    samples = stream.overhead()["samples"]
    return cpu / samples * 1e9, samples


def bench_sinks(args):
    series = 500
    cost = {"jsonl": [], "taking": [], "pyjsonl": []}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            for kind in cost:
                ns, _ = sink_cpu_per_sample(kind, series, args.seconds, tmp)
                cost[kind].append(ns)
    ref = median(cost["jsonl"])
    print(f"2. sinks on one stream, null?series={series} every 1 ms ({series * 1000} samples/s), "
          f"process CPU per sample, {args.rounds} rounds of {args.seconds} s")
    for kind, label in (("jsonl", "C++ jsonl:// (reference)"),
                        ("taking", "Python ResultSink taking the batches"),
                        ("pyjsonl", "Python ResultSink writing JSON lines")):
        m = median(cost[kind])
        print(f"   {label:45s} {m:8.0f} ns/sample   ({m / ref:5.2f}x jsonl://)")


# ---- 3. container lifecycle ------------------------------------------------------------------

def python_cycles(runner, spec, count):
    start = time.perf_counter_ns()
    for _ in range(count):
        with runner.create(spec) as c:
            c.start()
            if not c.wait(timeout=60).success:
                raise RuntimeError("the benchmark's command failed")
    return time.perf_counter_ns() - start


def cpp_cycles(reference, uri, count, image):
    command = [reference, uri, str(count)] + ([image] if image else [])
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    cycles, ns = out.stdout.split()
    assert int(cycles) == count
    return int(ns)


def bench_containers(args):
    engines = [("process://", None, 200 if not args.quick else 20)]
    if args.docker and args.image:
        engines.append((args.docker.replace("unix://", "docker://"), args.image,
                        20 if not args.quick else 3))
    for uri, image, count in engines:
        runner = bitfusion.container_runner_from_uri(uri)
        spec = bitfusion.ContainerSpec(image=image or "", command=["true"])
        py, cpp = [], []
        python_cycles(runner, spec, 2)  # warm-up: the first fork, image lookup
        for _ in range(args.rounds):
            py.append(python_cycles(runner, spec, count) / count)
            cpp.append(cpp_cycles(args.reference, uri, count, image) / count)
        ratio = median([p / c for p, c in zip(py, cpp)])
        print(f"3. create+start+wait+remove on {uri.split('?')[0]}, {args.rounds} rounds of "
              f"{count}: Python {median(py) / 1e3:.0f} us, C++ {median(cpp) / 1e3:.0f} us per "
              f"cycle, Python/C++ {ratio:.3f}x (target <= 1.05x)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=1.0, help="length of a stream round")
    parser.add_argument("--quick", action="store_true", help="one short round of each (smoke)")
    parser.add_argument("--reference",
                        default=os.path.join(HERE, "..", "build", "bin",
                                             "container_lifecycle_reference"))
    parser.add_argument("--docker", help="unix:// socket of a dockerd for the docker:// cycle")
    parser.add_argument("--image", help="a local image with `true` (docker:// cycle)")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.seconds = 1, 0.2
    if not os.access(args.reference, os.X_OK):
        sys.exit(f"no {args.reference}: build it (cmake --build build --target "
                 "container_lifecycle_reference) or pass --reference")
    bench_delivery(args)
    bench_sinks(args)
    bench_containers(args)


if __name__ == "__main__":
    main()
