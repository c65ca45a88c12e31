"""A reusable crash test for stream workers.

The same input goes through a worker twice, each time on a fresh broker and Redis: once left
alone, once killed with SIGKILL at random moments while the input is still arriving, and
restarted each time. Both runs must end in the same state. A worker under test says how to
start it, which consumer group and topics to watch, and how to read its final state.
"""

from __future__ import annotations

import contextlib
import random
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
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
    # redis url -> None: what the worker needs in Redis before it starts (e.g. its definitions)
    prepare: Callable[[str], None] = lambda redis_url: None
    # redis url -> None, raising AssertionError while the worker still has work of its own to
    # do after its input is all read (e.g. what it scheduled a few seconds ahead)
    settle: Callable[[str], None] = lambda redis_url: None
    # bootstrap servers -> what the worker published that the run should compare besides its
    # state (e.g. the points.granted events campaign puts on the events topic)
    read_published: Callable[[str], Any] = lambda bootstrap: None


@dataclass
class RunReport:
    state: dict[str, Any]
    kills: int
    # "topic/partition" -> (committed, end) where the group's commits are short of the end
    uncommitted: dict[str, tuple[int | None, int]]
    # the last process's inputs taken and lag, from its /metrics (to tell a stall from a difference)
    progress: str = ""
    published: Any = None  # WorkerUnderTest.read_published's answer
    # the worker's warnings and errors over all its processes (a gap it saw, a retry), newest last
    warnings: list[str] = field(default_factory=list)
    # acks of the input that cannot be right (see _Acks): the broker at fault, not the worker
    broker_anomalies: list[str] = field(default_factory=list)


def assert_same_state(calm: RunReport, crashed: RunReport) -> None:
    """The crashed run ended where the undisturbed one did; if not, the message says where they
    part (field by field, for a few keys), what was not committed, what the worker warned of, and
    whether the broker acknowledged any input impossibly."""
    only_calm = sorted(calm.state.keys() - crashed.state.keys())
    only_crashed = sorted(crashed.state.keys() - calm.state.keys())
    different = [
        key for key in calm.state.keys() & crashed.state.keys() if calm.state[key] != crashed.state[key]
    ]
    if not (only_calm or only_crashed or different):
        return
    shown = "\n".join(
        f"  {key}: {path}: undisturbed {was!r:.300} / crashed {got!r:.300}"
        for key in sorted(different)[:3]
        for path, was, got in list(_differences(calm.state[key], crashed.state[key]))[:6]
    )
    warned = "\n".join(f"  {line:.300}" for line in crashed.warnings) or "  none"
    anomalies = "; ".join(crashed.broker_anomalies[:10]) or "none"
    raise AssertionError(
        f"{len(different)} of {len(calm.state)} differ after the crashes, {len(only_calm)} missing "
        f"(e.g. {only_calm[:3]}), {len(only_crashed)} extra (e.g. {only_crashed[:3]}):\n{shown}\n"
        f"not committed (committed, end): {crashed.uncommitted}\nlast process: {crashed.progress}\n"
        f"the worker warned:\n{warned}\nthe broker's impossible acks: {anomalies}"
    )


def _differences(was: Any, got: Any, path: str = "") -> Iterator[tuple[str, Any, Any]]:
    """Where two JSON-like values differ: (path, one, other) per differing leaf; a list differing
    in length as the entries only one side has."""
    if isinstance(was, dict) and isinstance(got, dict):
        for key in sorted(was.keys() | got.keys(), key=str):
            if was.get(key) != got.get(key):
                yield from _differences(was.get(key), got.get(key), f"{path}.{key}")
    elif isinstance(was, list) and isinstance(got, list) and len(was) != len(got):
        only_was = [item for item in was if item not in got]
        only_got = [item for item in got if item not in was]
        yield f"{path} ({len(was)} / {len(got)} entries, only in each)", only_was, only_got
    elif isinstance(was, list) and isinstance(got, list):
        for index, (one, other) in enumerate(zip(was, got, strict=True)):
            if one != other:
                yield from _differences(one, other, f"{path}[{index}]")
    else:
        yield path or "(the value)", was, got


def run(
    worker: WorkerUnderTest,
    records: Sequence[Record],
    log_dir: Path,
    *,
    kills: int,
    seed: int,
    feed_chunk: int = 100,
    timeout_s: float = 120,
    expect: dict[str, Any] | None = None,
    warmup: int = 0,
) -> RunReport:
    """Feed `records` while the worker runs; SIGKILL and restart it `kills` times; read its state.

    Without `expect`, the run ends when the worker's group has committed everything it read.
    With `expect` (the undisturbed run's state), it ends once the state equals it, or at the
    deadline with whatever state there is: the state is the criterion, and how far the group's
    commits still lag is reported apart (see `RunReport.uncommitted`).

    `warmup`: the first records are fed, and taken by the worker, before the rest and before any
    kill: for state a worker reads from several topics whose relative order no one controls (a
    consent on one topic, a score on another), so that both runs start from the same state.
    """
    rng = random.Random(seed)
    run_dir = log_dir / f"{worker.name}-{'crash' if kills else 'calm'}-{seed}"
    run_dir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        kafka_port, redis_port, metrics_port = free_port(), free_port(), free_port()
        stack.callback(start_tansu(kafka_port, run_dir).stop)
        stack.callback(start_redis(redis_port, run_dir).stop)
        bootstrap, redis_url = f"127.0.0.1:{kafka_port}", f"redis://127.0.0.1:{redis_port}/0"
        ensure_topics(bootstrap, contract_topics(PARTITIONS))
        worker.prepare(redis_url)
        env = worker.env(bootstrap, redis_url, metrics_port)
        ready_url = f"http://127.0.0.1:{metrics_port}/readyz"

        def start() -> Process:
            return start_service(worker.name, worker.module, env, ready_url, run_dir)

        process = start()
        stack.callback(lambda: process.stop())
        metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        acks = _Acks()
        if warmup:
            _feed(bootstrap, records[:warmup], acks)
            eventually(lambda: _assert_taken(metrics_url, warmup), timeout=timeout_s, interval=0.05)
        records = records[warmup:]
        chunks = max(1, len(records) // feed_chunk)
        kill_points = sorted(rng.sample(range(chunks), min(kills, chunks)))
        feeder = _Feeder(bootstrap, records, feed_chunk, kill_points, acks)
        feeder.start()
        # Inputs taken by the processes killed so far, less the warmup (the shares count from it).
        taken_before = -float(warmup)
        for point in kill_points:
            # The kill lands at a random place in the input, once the worker has taken a random
            # share of what was sent so far: with state to lose and input still arriving. (A
            # restarted process takes again what its predecessor had not committed, so the sum
            # over processes always gets there.)
            assert feeder.reached[point].wait(timeout_s), "the feeder stalled"
            share = rng.randint(1, (point + 1) * feed_chunk)
            eventually(
                lambda s=share, b=taken_before: _assert_taken(metrics_url, s - b),
                timeout=timeout_s,
                interval=0.02,
            )
            taken_before += _taken(metrics_url)
            process.signal(signal.SIGKILL)
            assert process.popen is not None
            process.popen.wait(10)
            feeder.resume[point].set()  # input keeps arriving while the worker is down
            process = start()
        feeder.join(timeout_s)
        assert feeder.error is None, feeder.error
        fed = dict(acks.ends)
        ends = _Ends(bootstrap, worker.input_topics, fed)
        try:
            if expect is None:
                eventually(lambda: _assert_committed(ends, worker.group), timeout=timeout_s, interval=0.5)
                eventually(lambda: worker.settle(redis_url), timeout=timeout_s, interval=0.5)
                eventually(lambda: _assert_committed(ends, worker.group), timeout=timeout_s, interval=0.5)
            else:
                with contextlib.suppress(AssertionError):  # the caller compares and shows the difference
                    eventually(
                        lambda: _assert_state(worker, redis_url, expect), timeout=timeout_s, interval=0.5
                    )
            return RunReport(
                worker.read_state(redis_url),
                kills,
                ends.uncommitted(worker.group),
                _progress(metrics_url),
                worker.read_published(bootstrap),
                _warnings(run_dir / f"{worker.name}.log"),
                acks.anomalies,
            )
        finally:
            ends.close()


def _producer(bootstrap: str) -> KafkaProducer:
    """A producer like ingest's (shared/kafka.py): acks from every in-sync replica, not idempotent.
    (kafka-python's default, idempotent, lets Tansu acknowledge a retried batch with offset -1.)"""
    return KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, enable_idempotence=False)


class _Acks:
    """The end of each partition fed, from the broker's acks, and any ack that cannot be right (an
    offset below 0 or given twice): the broker's fault, named as such when a run differs."""

    def __init__(self) -> None:
        self.ends: dict[TopicPartition, int] = {}
        self.anomalies: list[str] = []
        self._seen: set[tuple[TopicPartition, int]] = set()

    def take(self, futures: Sequence[Any]) -> None:
        for future in futures:
            meta = future.get()
            tp = TopicPartition(meta.topic, meta.partition)
            if meta.offset < 0 or (tp, meta.offset) in self._seen:
                self.anomalies.append(f"{tp.topic}/{tp.partition} acknowledged at offset {meta.offset}")
            self._seen.add((tp, meta.offset))
            self.ends[tp] = max(self.ends.get(tp, 0), meta.offset + 1)


def _feed(bootstrap: str, records: Sequence[Record], acks: _Acks) -> None:
    """Produce `records` at once, taking the broker's acks."""
    producer = _producer(bootstrap)
    sent = [producer.send(record.topic, key=record.key, value=record.value) for record in records]
    producer.flush()
    acks.take(sent)
    producer.close()


class _Feeder(threading.Thread):
    """Produces the records in chunks, so that a kill lands while input is still arriving."""

    def __init__(
        self, bootstrap: str, records: Sequence[Record], chunk: int, pauses: list[int], acks: _Acks
    ) -> None:
        super().__init__(daemon=True)
        self._servers = bootstrap
        self._records = records
        self._chunk = chunk
        # At each pause point: say so, and wait until the worker has been killed.
        self.reached = {point: threading.Event() for point in pauses}
        self.resume = {point: threading.Event() for point in pauses}
        self.error: BaseException | None = None
        self.acks = acks

    def run(self) -> None:
        try:
            producer = _producer(self._servers)
            for index, start in enumerate(range(0, len(self._records), self._chunk)):
                sent = [
                    producer.send(record.topic, key=record.key, value=record.value)
                    for record in self._records[start : start + self._chunk]
                ]
                producer.flush()
                self.acks.take(sent)
                if index in self.reached:
                    self.reached[index].set()
                    self.resume[index].wait()
            producer.close()
        except BaseException as error:  # reported by the test thread
            self.error = error


def _taken(metrics_url: str) -> float:
    """The worker process's pd_events_processed_total, every outcome."""
    text = httpx.get(metrics_url, timeout=2).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(PROCESSED))


def _progress(metrics_url: str) -> str:
    try:
        text = httpx.get(metrics_url, timeout=2).text
    except httpx.HTTPError as error:
        return f"metrics unavailable: {error!r}"
    wanted = (PROCESSED, "pd_consumer_lag{", "pd_input_gap_offsets_total{")
    return "; ".join(
        line for line in text.splitlines() if line.startswith(wanted) and not line.endswith(" 0.0")
    )


def _warnings(log: Path, last: int = 20) -> list[str]:
    if not log.exists():
        return []
    lines = log.read_text(errors="replace").splitlines()  # JSON lines (shared/logging.py)
    return [line for line in lines if '"level":"warning"' in line or '"level":"error"' in line][-last:]


def _assert_taken(metrics_url: str, at_least: float) -> None:
    taken = _taken(metrics_url)
    assert taken >= at_least, f"taken {taken:.0f} of {at_least:.0f}"


def _assert_state(worker: WorkerUnderTest, redis_url: str, expect: dict[str, Any]) -> None:
    assert worker.read_state(redis_url) == expect, "not (yet) the expected state"


def _assert_committed(ends: _Ends, group: str) -> None:
    uncommitted = ends.uncommitted(group)
    assert not uncommitted, f"{group} has not committed all it read (committed, end): {uncommitted}"


class _Ends:
    """Where each input partition ends, and how far a group's commits are from there.

    Tansu (0.6) reports a partition's end as the start of its last record batch + 1, short of
    the real end when that batch holds several records. So the ends of fed partitions come from
    the feeder's acks, and those of the worker's own topics from reading them through.
    """

    def __init__(self, bootstrap: str, topics: Sequence[str], fed: dict[TopicPartition, int]) -> None:
        self._admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        self._consumer = KafkaConsumer(bootstrap_servers=bootstrap)
        self._topics = topics
        self._fed = fed

    def uncommitted(self, group: str) -> dict[str, tuple[int | None, int]]:
        consumer = self._consumer
        partitions = [
            TopicPartition(topic, p)
            for topic in self._topics
            for p in consumer.partitions_for_topic(topic) or ()
        ]
        ends = consumer.end_offsets(partitions)
        fed_topics = {tp.topic for tp in self._fed}
        own = [tp for tp in partitions if tp.topic not in fed_topics]
        for tp, end in (self._fed | _read_ends(consumer, own)).items():
            ends[tp] = max(ends.get(tp, 0), end)
        committed = self._admin.list_group_offsets({group: None}).get(group, {})
        return {
            f"{tp.topic}/{tp.partition}": (committed[tp].offset if tp in committed else None, end)
            for tp, end in ends.items()
            if end > 0 and (tp not in committed or committed[tp].offset < end)
        }

    def close(self) -> None:
        self._consumer.close()
        self._admin.close()


def _read_ends(consumer: KafkaConsumer, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
    """Last offset + 1 of each partition, by reading it from the beginning (small topics only)."""
    if not partitions:
        return {}
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    ends: dict[TopicPartition, int] = {}
    while batch := consumer.poll(timeout_ms=300):
        for tp, messages in batch.items():
            ends[tp] = max(ends.get(tp, 0), messages[-1].offset + 1)
    return ends
