"""The durable local broker (`make up DURABLE=1`, issue 19 item 5): Tansu keeping its records in
s3rver's files keeps every acknowledged record across a broker restart, and Redis with its
append-only file keeps its keys across a Redis restart — what a fault suite needs to restart them."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from shared.kafka import ensure_topics
from shared.topics import TopicSpec
from stack.processes import redis_program
from tests.factories import unique
from tests.harness import Process, eventually, free_port, port_open, start_s3rver, start_tansu

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

        consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        partitions = [TopicPartition(topic, p) for p in (0, 1)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        values: set[bytes] = set()

        def read_back() -> None:
            for messages in consumer.poll(timeout_ms=500).values():
                values.update(m.value for m in messages)
            assert len(values) == RECORDS, f"{len(values)} of {RECORDS} read back"

        eventually(read_back, timeout=60, interval=0)
        consumer.close()
    finally:
        broker.stop()
        s3.stop()


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
