#!/usr/bin/python3
"""The reference for sink_benchmark's BM_EsSinkVsPythonBulk: Elastic's official Python client
(Debian's python3-elasticsearch), its helpers.bulk sending the same samples that the benchmark
sends through bitfusion's es:// sink -- same series, labels, values and timestamps, the same
document shape and deterministic ids, the same number of documents per bulk request -- to the
same Elasticsearch fake. Prints {"cpu_s": ..., "samples": ...}: the CPU time (user + system,
from getrusage) this process spent from holding the samples to having sent them all.

  es_bulk_reference.py --url http://127.0.0.1:PORT --index NAME --samples N --chunk N
"""
import argparse
import json
import math
import resource
import time

from elasticsearch import Elasticsearch, helpers

SERIES = 16
PER_BATCH = 1024
T0 = 1_700_000_000_000_000_000


def cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def iso_nanos(ns):
    secs, nanos = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{nanos:09d}Z"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--index", required=True)
    parser.add_argument("--samples", type=int, required=True)
    parser.add_argument("--chunk", type=int, default=16384)
    args = parser.parse_args()
    es = Elasticsearch(args.url)
    es.info()  # the client's product check, before the clock starts

    # The samples as a program holds them: the batch of sink_benchmark's MakeBatch(), its
    # timestamps moved on by a second per copy, as the benchmark does.
    labels = {"run": "3f2a9c4e8b7d6a5f4e3d2c1b0a998877", "machine": "host-a",
              "container": "c0ffee123456"}
    samples = []
    copies = math.ceil(args.samples / PER_BATCH)
    for c in range(1, copies + 1):
        for i in range(PER_BATCH):
            if len(samples) == args.samples:
                break
            samples.append((i % SERIES, T0 + i * 61_000 + c * 1_000_000_000,
                            5_000_000_000 + i * 61_000, (i + 1) * 0.37 / 7.0))

    start = cpu_seconds()

    def actions():
        for series, ts, mono, value in samples:
            metadata = dict(labels, cpu=str(series))
            yield {"_index": args.index, "_id": f"{series:016x}{ts:016x}",
                   "_source": {"metric": "cpu.user", "value": value, "unit": "s",
                               "metadata": metadata, "timestamp": iso_nanos(ts),
                               "timestamp_ns": ts, "monotonic_ns": mono}}

    ok, errors = helpers.bulk(es, actions(), chunk_size=args.chunk,
                              max_chunk_bytes=100 * 1024 * 1024)
    spent = cpu_seconds() - start
    if ok != len(samples) or errors:
        raise SystemExit(f"bulk stored {ok} of {len(samples)}: {errors[:3]}")
    print(json.dumps({"cpu_s": spent, "samples": len(samples)}))


if __name__ == "__main__":
    main()
