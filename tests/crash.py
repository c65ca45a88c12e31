"""A reusable crash test for stream workers.

The same input goes through a worker twice, each time on a fresh broker and Redis: once left
alone, once killed with SIGKILL at random moments while the input is still arriving, and
restarted each time. Both runs must end in the same state. A worker under test says how to
start it, which consumer group and topics to watch, and how to read its final state.
"""

from __future__ import annotations

import random
import signal
import threading
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

from shared.kafka import ensure_topics
from shared.topics import contract_topics
from tests.harness import Process, eventually, free_port, start_redis, start_service, start_tansu

PARTITIONS = 3
PROCESSED = "pd_events_processed_total{"  # the count every worker exposes (shared/worker_metrics.py)


@dataclass(frozen=True)
class Record:
    topic: str
    key: bytes
    value: bytes


@dataclass(frozen=True)
class WorkerUnderTest:
    name: str
    module: str  # run as `python -m <module>`
    group: str  # its consumer group: caught up when its committed offsets reach the end
    input_topics: tuple[str, ...]
    # (bootstrap servers, redis url, metrics port) -> environment of the worker process
    env: Callable[[str, str, int], dict[str, str]]
    # redis url -> the final state to compare, by customer
    read_state: Callable[[str], dict[str, Any]]


@dataclass
class RunReport:
    state: dict[str, Any]
    kills: int


def run(
    worker: WorkerUnderTest,
    records: Sequence[Record],
    log_dir: Path,
    *,
    kills: int,
    seed: int,
    feed_chunk: int = 100,
    timeout_s: float = 120,
) -> RunReport:
    """Feed `records` while the worker runs; SIGKILL and restart it `kills` times; read its state."""
    rng = random.Random(seed)
    run_dir = log_dir / f"{worker.name}-{'crash' if kills else 'calm'}-{seed}"
    run_dir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        kafka_port, redis_port, metrics_port = free_port(), free_port(), free_port()
        stack.callback(start_tansu(kafka_port, run_dir).stop)
        stack.callback(start_redis(redis_port, run_dir).stop)
        bootstrap, redis_url = f"127.0.0.1:{kafka_port}", f"redis://127.0.0.1:{redis_port}/0"
        ensure_topics(bootstrap, contract_topics(PARTITIONS))
        env = worker.env(bootstrap, redis_url, metrics_port)
        ready_url = f"http://127.0.0.1:{metrics_port}/readyz"

        def start() -> Process:
            return start_service(worker.name, worker.module, env, ready_url, run_dir)

        process = start()
        stack.callback(lambda: process.stop())
        chunks = max(1, len(records) // feed_chunk)
        kill_points = sorted(rng.sample(range(chunks), min(kills, chunks)))
        feeder = _Feeder(bootstrap, records, feed_chunk, kill_points)
        feeder.start()
        metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        for point in kill_points:
            # The kill lands at a random place in the input, once this worker process has taken a
            # random share of what was sent so far: with state to lose and input still arriving.
            assert feeder.reached[point].wait(timeout_s), "the feeder stalled"
            share = rng.randint(1, (point + 1) * feed_chunk)
            eventually(lambda s=share: _assert_taken(metrics_url, s), timeout=timeout_s, interval=0.02)
            process.signal(signal.SIGKILL)
            assert process.popen is not None
            process.popen.wait(10)
            feeder.resume[point].set()  # input keeps arriving while the worker is down
            process = start()
        feeder.join(timeout_s)
        assert feeder.error is None, feeder.error
        _wait_caught_up(bootstrap, worker.group, worker.input_topics, timeout_s)
        return RunReport(worker.read_state(redis_url), kills)


class _Feeder(threading.Thread):
    """Produces the records in chunks, so that a kill lands while input is still arriving."""

    def __init__(self, bootstrap: str, records: Sequence[Record], chunk: int, pauses: list[int]) -> None:
        super().__init__(daemon=True)
        self._servers = bootstrap
        self._records = records
        self._chunk = chunk
        # At each pause point: say so, and wait until the worker has been killed.
        self.reached = {point: threading.Event() for point in pauses}
        self.resume = {point: threading.Event() for point in pauses}
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            producer = KafkaProducer(bootstrap_servers=self._servers, acks="all", linger_ms=5)
            for index, start in enumerate(range(0, len(self._records), self._chunk)):
                for record in self._records[start : start + self._chunk]:
                    producer.send(record.topic, key=record.key, value=record.value)
                producer.flush()
                if index in self.reached:
                    self.reached[index].set()
                    self.resume[index].wait()
            producer.close()
        except BaseException as error:  # reported by the test thread
            self.error = error


def _assert_taken(metrics_url: str, at_least: int) -> None:
    """The worker's pd_events_processed_total, every outcome, has reached `at_least`."""
    text = httpx.get(metrics_url, timeout=2).text
    taken = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(PROCESSED))
    assert taken >= at_least, f"taken {taken:.0f} of {at_least}"


def _wait_caught_up(bootstrap: str, group: str, topics: Sequence[str], timeout_s: float) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:

        def caught_up() -> None:
            partitions = [
                TopicPartition(topic, p)
                for topic in topics
                for p in consumer.partitions_for_topic(topic) or ()
            ]
            ends = consumer.end_offsets(partitions)
            committed = admin.list_group_offsets({group: None}).get(group, {})
            behind = {
                f"{tp.topic}/{tp.partition}": (committed[tp].offset if tp in committed else None, end)
                for tp, end in ends.items()
                if end > 0 and (tp not in committed or committed[tp].offset < end)
            }
            assert not behind, f"{group} not caught up (committed, end): {behind}"

        eventually(caught_up, timeout=timeout_s, interval=0.5)
    finally:
        consumer.close()
        admin.close()
