"""The durable local broker (issue 19 item 5): Tansu keeping its records in s3rver's files
(`make up DURABLE=1`) keeps every acknowledged record across a broker restart; on moto's S3 store
(the fault suite's, `make chaos DURABLE=1`) it does so while records keep arriving; Redis with its
append-only file keeps its keys across a Redis restart — what a fault suite needs to restart them."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import redis
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.producer.future import FutureRecordMetadata

from shared.kafka import ensure_topics
from shared.topics import TopicSpec
from stack.processes import redis_program
from tests.factories import unique
from tests.harness import (
    Process,
    eventually,
    free_port,
    port_open,
    start_moto,
    start_s3rver,
    start_tansu,
)

pytestmark = pytest.mark.integration
RECORDS = 2000


def test_acknowledged_records_survive_a_broker_restart(tmp_path: Path, log_dir: Path) -> None:
    s3_port, broker_port = free_port(), free_port()
    s3 = start_s3rver(s3_port, tmp_path / "s3", log_dir)
    broker = start_tansu(broker_port, log_dir, s3_port=s3_port)
    bootstrap = f"127.0.0.1:{broker_port}"
    topic = unique("durable")
    try:
        ensure_topics(bootstrap, [TopicSpec(topic, 2)])
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
        futures = [producer.send(topic, key=b"k%d" % (n % 50), value=b"v%d" % n) for n in range(RECORDS)]
        producer.flush()
        assert all(f.get(timeout=10) for f in futures)  # every record acknowledged
        producer.close()

        broker.stop()
        broker = start_tansu(broker_port, log_dir, s3_port=s3_port)  # a new process, the same files

        _read_back(bootstrap, topic, {b"v%d" % n for n in range(RECORDS)})
    finally:
        broker.stop()
        s3.stop()


def test_on_moto_every_acknowledged_record_survives_a_broker_restart_under_load(log_dir: Path) -> None:
    """A producer keeps sending (acks=all) while the broker is stopped and started again; every
    record the broker acknowledged, before or after, is read back. (On s3rver this fails: its
    listings answer 500 under such load, and an object cut off by the stop cannot be read back.)"""
    s3_port, broker_port = free_port(), free_port()
    s3 = start_moto(s3_port, log_dir)
    broker = start_tansu(broker_port, log_dir, s3_port=s3_port)
    bootstrap = f"127.0.0.1:{broker_port}"
    topic = unique("durable-load")
    acknowledged: set[bytes] = set()
    stop = threading.Event()

    def produce() -> None:
        # Not idempotent, as our producers (shared/kafka.py): on Tansu's S3 engine an idempotent
        # producer's batch retried across the restart can be acknowledged with offset -1 and not
        # be kept (docs/runbooks/broker-loss.md).
        producer = KafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            linger_ms=5,
            retries=5,
            request_timeout_ms=5000,
            enable_idempotence=False,
        )
        n = 0
        while not stop.is_set():
            chunk: list[tuple[bytes, FutureRecordMetadata]] = []
            for _ in range(100):
                value = b"v%d" % n
                chunk.append((value, producer.send(topic, key=b"k%d" % (n % 50), value=value)))
                n += 1
            producer.flush()
            for value, future in chunk:
                if future.succeeded():
                    acknowledged.add(value)
        producer.close()

    try:
        ensure_topics(bootstrap, [TopicSpec(topic, 2)])
        sender = threading.Thread(target=produce, daemon=True)
        sender.start()
        eventually(lambda: _at_least(acknowledged, RECORDS), timeout=60)
        broker.stop()  # SIGTERM while records are being written
        broker = start_tansu(broker_port, log_dir, s3_port=s3_port)
        before = len(acknowledged)
        eventually(lambda: _at_least(acknowledged, before + RECORDS), timeout=60)
        stop.set()
        sender.join(timeout=30)

        _read_back(bootstrap, topic, acknowledged)
    finally:
        stop.set()
        broker.stop()
        s3.stop()


def _read_back(bootstrap: str, topic: str, acknowledged: set[bytes]) -> None:
    """Read the topic's two partitions from the start until every acknowledged value was seen."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    partitions = [TopicPartition(topic, p) for p in (0, 1)]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    values: set[bytes] = set()

    def all_read() -> None:
        for messages in consumer.poll(timeout_ms=500).values():
            values.update(m.value for m in messages)
        missing = acknowledged - values
        assert not missing, f"{len(missing)} of {len(acknowledged)} acknowledged not read back"

    try:
        eventually(all_read, timeout=60, interval=0)
    finally:
        consumer.close()


def _at_least(acknowledged: set[bytes], count: int) -> None:
    assert len(acknowledged) >= count, f"{len(acknowledged)} acknowledged, waiting for {count}"


def test_redis_with_its_append_only_file_keeps_its_keys_across_a_restart(
    tmp_path: Path, log_dir: Path
) -> None:
    port = free_port()
    program = redis_program("redis-server", tmp_path)
    args = [str(port) if arg == "6380" else arg for arg in program.command]

    def start() -> Process:
        process = Process("redis-durable", args, log_dir / f"redis-durable-{port}.log").start()
        eventually(lambda: port_open(port), timeout=20)
        return process

    process = start()
    try:
        client = redis.Redis(port=port)
        client.set("pd:durable:key", "kept")  # in the AOF before the reply; flushed at shutdown
        client.close()
        process.stop()
        process = start()
        client = redis.Redis(port=port)
        assert eventually(lambda: _value(client), timeout=10) == b"kept"
        client.close()
    finally:
        process.stop()


def _value(client: redis.Redis) -> bytes:
    value = client.get("pd:durable:key")
    assert value is not None
    return value
