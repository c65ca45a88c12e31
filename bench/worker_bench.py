"""What the stream-worker benchmarks share (bench.scoring, bench.tagging): events, the stack, the runs.

Each bench starts its own Tansu broker and redis-server on free ports (a running `make up` stack
is never touched; logs stay in a temp dir it prints), creates the contract topics and pre-loads
touchpoint.events.v1 with N contract-valid ingested events over C customers, keyed by customer_id
(`generate`, `preload`). Then, one process at a time, each with a fresh consumer group, it lets a
worker work through that backlog and polls its /metrics (`measure`): throughput = inputs taken
(pd_events_processed_total, summed over outcomes) between the first poll that saw any and the
poll that saw all, divided by the time between those two polls, so neither startup nor the poll
interval counts; worker CPU seconds over the same window (/proc/<pid>/stat), next to the CPU of
Tansu + Redis and of the rest of the machine. After the runs, the read model's Redis memory per
customer and the changelog and output records per event. `report_rows` and `setup_lines` print
it, each figure of the worker next to its references' as a ratio: bare Faust (bench/bare_worker.py),
the getmany floor (bench/getmany_floor.py) and, where the bench has one, the best peer doing the
same job (bench/quix_scoring.py for scoring). A bench module declares its worker as a
`WorkerBench` and calls `main` with it.

Events: every contract type with its required properties, weighted like private-domain traffic
(many content views and WeCom messages, few orders), occurred_at within the last 30 days in
+08:00, received_at shortly after in UTC, in received order as ingest publishes them. Every
customer has at least one event; the rest go to customers of lognormal activity, so some are
far busier than others. Every 50th event is checked against shared.events before loading.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import re
import signal
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import redis
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import BatchBuilder
from kafka import KafkaConsumer, TopicPartition

from bench import cpu
from bench.cpu import CpuProbe
from shared.events import EVENT_TYPES, IngestedEvent, event_rule_errors
from shared.kafka import ensure_topics
from shared.topics import TOUCHPOINT_EVENTS, contract_topics, dead_letter_topic
from tests.harness import Process, free_port, start_redis, start_tansu
from tests.scoring_worker import scoring_env

TARGET = 8_000  # events/s, one worker process, 2 cores (the issue)
REPOSITORY = Path(__file__).resolve().parent.parent
CHINA = timezone(timedelta(hours=8))
MODELS = ("g6", "g9", "x9", "p7", "mona")
DEALERS = tuple(f"d-{city}-{n:03d}" for city in ("sh", "bj", "gz", "cd") for n in range(1, 6))
CONTENT = tuple(f"c-{n:03d}" for n in range(60))

# (type, relative frequency, sources it comes from); every contract type, as a private domain sees them.
MIX: tuple[tuple[str, int, tuple[str, ...]], ...] = (
    ("content.view", 220, ("official_account", "video_channel", "app", "mini_program")),
    ("wecom.message_in", 110, ("wecom",)),
    ("mini_program.visit", 90, ("mini_program",)),
    ("content.click", 80, ("official_account", "app", "mini_program")),
    ("ad.click", 70, ("ad",)),
    ("live.watch", 45, ("live_stream", "video_channel")),
    ("campaign.delivered", 40, ("wecom", "official_account")),
    ("campaign.opened", 25, ("wecom", "official_account")),
    ("content.favorite", 25, ("app", "mini_program")),
    ("content.share", 20, ("wecom", "app")),
    ("live.comment", 20, ("live_stream",)),
    ("community.post", 15, ("app",)),
    ("config.build", 15, ("app", "mini_program")),
    ("campaign.clicked", 12, ("wecom", "official_account")),
    ("wecom.friend_added", 12, ("wecom",)),
    ("wecom.group_joined", 8, ("wecom",)),
    ("coupon.claimed", 8, ("mall", "mini_program")),
    ("dealer.followup", 8, ("dealer_store", "call_center")),
    ("ad.lead_form", 6, ("ad",)),
    ("survey.answered", 6, ("wecom", "app")),
    ("quote.requested", 6, ("app", "dealer_store")),
    ("mall.purchase", 5, ("mall",)),
    ("consent.granted", 5, ("app", "wecom")),
    ("test_drive.booked", 4, ("app", "dealer_store", "call_center")),
    ("store.visit", 4, ("dealer_store",)),
    ("service.maintenance", 4, ("dealer_store",)),
    ("test_drive.completed", 3, ("dealer_store",)),
    ("lead.defeated", 2, ("dealer_store", "call_center")),
    ("referral.made", 2, ("app",)),
    ("consent.revoked", 1, ("app", "wecom")),
    ("order.placed", 1, ("dealer_store",)),
    ("vehicle.delivered", 1, ("dealer_store",)),
)

PROPERTIES: dict[str, Callable[[random.Random], Any]] = {
    "content_id": lambda rng: rng.choice(CONTENT),
    "vehicle_model": lambda rng: rng.choice(MODELS),
    "dealer_id": lambda rng: rng.choice(DEALERS),
    "reason": lambda rng: rng.choice(("bought_competitor", "budget", "postponed", "no_response")),
    "channel": lambda rng: rng.choice(("wecom", "sms", "all")),
    "action_id": lambda rng: f"act-{rng.randrange(500):03d}",
    "duration_s": lambda rng: rng.randint(20, 3600),
    "amount": lambda rng: round(rng.uniform(30, 5000), 2),
}

# Properties beyond the contract's required ones, for one event: (rng, customer index, type) -> them.
Extra = Callable[[random.Random, int, str], dict[str, Any]]
# A worker's test environment: (bootstrap, redis_url, metrics_port, **overrides) -> env.
EnvFor = Callable[..., dict[str, str]]

RATE = "events/s (first to last input taken)"
PER_CPU = "events per worker CPU-second"
_SAMPLE = re.compile(rb"^(pd_events_processed_total|pd_worker_batch_seconds_count)\{([^}]*)\} (\S+)$", re.M)


@dataclass(frozen=True)
class ReadModel:
    """What a worker keeps in Redis per customer, for the memory rows of the report."""

    unit: str  # what it holds one of: "customer", "profile"
    counted_by: str  # how `count` counts them, for the report: "scored: ZCARD pd:scoring:rank"
    count: Callable[[redis.Redis], Any]
    key_pattern: str  # the per-customer keys, sampled for MEMORY USAGE
    key_name: str  # their name in the report
    shared_name: str  # the name of the keys all customers share, in the report
    shared_keys: Callable[[redis.Redis], Iterable[str | bytes]]


@dataclass(frozen=True)
class WorkerBench:
    """One stream worker's benchmark: `main(bench)` runs it."""

    service: str  # runs `python -m services.<service>.worker`, whose metrics carry this service label
    env: EnvFor  # its test environment (tests.<service>_worker)
    default_batch: int  # its BATCH_MAX_EVENTS when --batch-max-events is not given
    table: str  # its Faust table: the changelog is `<app id>-<table>-changelog`
    output: str  # the topic it publishes its changes on
    read_model: ReadModel
    extra: Callable[[int], Extra] | None = None  # seed -> properties beyond the required ones
    # Where the worker reads events (along the chain: scored.inputs.v1 for tagging) and how an
    # event as ingest publishes it becomes a record there.
    input_topic: str = TOUCHPOINT_EVENTS
    as_input: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    notes: Callable[[redis.Redis], list[str]] | None = None  # lines after the table, from Redis
    # The best peer doing the same job, measured beside the references: the command that runs
    # it (bench/quix_scoring.py, in a venv of its own, for scoring), built when the bench starts.
    peer: Callable[[], list[str]] | None = None


def parse_args(bench: WorkerBench, argv: list[str] | None) -> argparse.Namespace:
    service = bench.service
    parser = argparse.ArgumentParser(
        prog=f"python -m bench.{service}",
        description=f"{service.capitalize()} worker throughput on a pre-loaded topic, and Redis memory per "
        f"{bench.read_model.unit}. Starts its own broker, Redis and workers (one at a time); needs no "
        "running stack.",
    )
    add = parser.add_argument
    add("--events", type=int, default=100_000, help="events pre-loaded (default %(default)s)")
    add("--customers", type=int, default=10_000, help="customers they are spread over (default %(default)s)")
    add("--batch-max-events", type=int, help="BATCH_MAX_EVENTS for the worker (default: the worker's own)")
    add("--partitions", type=int, default=3, help="partitions of the topics (default %(default)s)")
    add("--seed", type=int, default=7, help="seed of the generated events (default %(default)s)")
    add("--poll", type=float, default=0.2, help="seconds between /metrics polls (default %(default)s)")
    add("--stall", type=float, default=60, help="give up after this many seconds without progress")
    add(
        "--no-bare",
        action="store_true",
        help=f"measure the {service} worker only, without the references (bare Faust, getmany floor)",
    )
    add(
        "--profile",
        metavar="PATH",
        help=f"run the {service} worker under cProfile, writing its stats to PATH",
    )
    args = parser.parse_args(argv)
    if not 0 < args.customers <= args.events:
        parser.error("need 0 < --customers <= --events (every customer gets at least one event)")
    return args


# -- events ---------------------------------------------------------------------------------------


def generate(
    events: int,
    customers: int,
    seed: int,
    extra: Extra | None = None,
    as_input: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    first_customer: int = 1,
) -> list[tuple[bytes, bytes]]:
    """(key, value) records as ingest publishes them (or as `as_input` makes them), in received
    order, for customers `cus_<first_customer>` onwards."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    ids = [f"cus_{n + first_customer}" for n in range(customers)]
    identities = [
        {
            "wecom_external_userid": f"wmXb{rng.getrandbits(64):016x}",
            "unionid": f"oU{rng.getrandbits(80):020x}",
        }
        for _ in ids
    ]
    activity = [rng.lognormvariate(0, 1) for _ in ids]
    who = list(range(customers)) + rng.choices(range(customers), activity, k=events - customers)
    kinds = rng.choices(MIX, [weight for _, weight, _ in MIX], k=events)
    rows: list[tuple[datetime, bytes, dict[str, Any]]] = []
    for index, (event_type, _, sources) in zip(who, kinds, strict=True):
        received = now - timedelta(seconds=rng.uniform(60, 30 * 86_400))
        occurred = received - timedelta(seconds=rng.uniform(0.05, 5))
        body = {
            "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "type": event_type,
            "source": rng.choice(sources),
            "occurred_at": occurred.astimezone(CHINA).isoformat(timespec="milliseconds"),
            "identities": identities[index],
            "properties": {name: PROPERTIES[name](rng) for name in EVENT_TYPES[event_type]},
            "schema_version": 1,
            "customer_id": ids[index],
            "received_at": received.isoformat(),
            "api_key_id": "key_0123456789ab",
        }
        if extra is not None:
            body["properties"].update(extra(rng, index, event_type))
        rows.append((received, ids[index].encode(), body))
    rows.sort(key=lambda row: row[0])
    for _, _, body in rows[::50]:
        event = IngestedEvent.model_validate(body)
        if errors := event_rule_errors(event, now):
            raise SystemExit(f"bench bug: generated an invalid event {body}: {errors}")
    wrap = as_input or (lambda body: body)
    return [(key, orjson.dumps(wrap(body))) for _, key, body in rows]


def preload(bootstrap: str, records: list[tuple[bytes, bytes]], topic: str) -> int:
    """Produce the records onto `topic`, keyed; returns how many the broker acknowledged.

    aiokafka record batches built by hand, partitioned as every producer here does (murmur2 of
    the key): ten times faster than kafka-python's per-record `send`, which costs ~160 us a record.
    """
    return asyncio.run(_preload(bootstrap, records, topic))


async def _preload(bootstrap: str, records: list[tuple[bytes, bytes]], topic: str) -> int:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", max_batch_size=512 * 1024)
    await producer.start()
    try:
        partitions = sorted(await producer.partitions_for(topic))
        choose = DefaultPartitioner()
        filling: dict[int, BatchBuilder] = {}
        sent: list[tuple[int, asyncio.Future[Any]]] = []  # (records in the batch, its delivery)

        async def send(partition: int) -> None:
            batch = filling.pop(partition)
            future = await producer.send_batch(batch, topic, partition=partition)
            sent.append((batch.record_count(), future))

        step = max(1, len(records) // 5)
        for n, (key, value) in enumerate(records, 1):
            partition = choose(key, partitions, partitions)
            if partition not in filling:
                filling[partition] = producer.create_batch()
            if filling[partition].append(key=key, value=value, timestamp=None) is None:  # full
                await send(partition)
                filling[partition] = producer.create_batch()
                filling[partition].append(key=key, value=value, timestamp=None)
            if n % step == 0:
                print(f"    {n:>9,} / {len(records):,} sent", flush=True)
        for partition in list(filling):
            await send(partition)
        results = await asyncio.gather(*(future for _, future in sent), return_exceptions=True)
        return sum(
            n for (n, _), result in zip(sent, results, strict=True) if not isinstance(result, BaseException)
        )
    finally:
        await producer.stop()


def topic_counts(bootstrap: str, topics: list[str], timeout_s: float = 10) -> dict[str, int]:
    """Records on each topic: the fetch highwaters summed over partitions (nothing is deleted here).

    Not ListOffsets (`end_offsets`) alone: Tansu 0.6 answers it with the base offset of a
    partition's last record batch + 1, short by the rest of that batch. A fetch from there
    returns the true highwater.
    """
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        tps = [TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t) or ()]
        consumer.assign(tps)
        for tp, end in consumer.end_offsets(tps).items():
            consumer.seek(tp, max(end - 1, 0))
        deadline = time.monotonic() + timeout_s
        while any(consumer.highwater(tp) is None for tp in tps) and time.monotonic() < deadline:
            consumer.poll(timeout_ms=200)
        counts = dict.fromkeys(topics, 0)
        for tp in tps:
            counts[tp.topic] += consumer.highwater(tp) or 0
        return counts
    finally:
        consumer.close()


# -- the stack ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stack:
    """The bench's own broker and Redis, with the pre-loaded topic."""

    bootstrap: str
    redis_url: str
    redis: redis.Redis
    baseline: int  # Redis used_memory before any worker ran
    on_topic: int  # records on the pre-loaded topic: what every worker must take
    others: CpuProbe  # CPU seconds of Tansu + Redis
    log_dir: Path


def run(
    service: str,
    args: argparse.Namespace,
    bench: Callable[[Stack], str],
    extra: Extra | None = None,
    input_topic: str = TOUCHPOINT_EVENTS,
    as_input: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> int:
    """Start the stack, pre-load it, hand it to `bench` and print the report it returns once
    every process started here is stopped."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a killed bench still stops what it started
    log_dir = Path(tempfile.mkdtemp(prefix=f"pd-bench-{service}-"))
    print(f"logs: {log_dir}", flush=True)
    try:
        with ExitStack() as stack:
            kafka_port, redis_port = free_port(), free_port()
            tansu = start_tansu(kafka_port, log_dir)
            stack.callback(tansu.stop)
            redis_server = start_redis(redis_port, log_dir)
            stack.callback(redis_server.stop)
            bootstrap, redis_url = f"127.0.0.1:{kafka_port}", f"redis://127.0.0.1:{redis_port}/0"
            ensure_topics(bootstrap, contract_topics(args.partitions))
            print(f"broker {bootstrap}, redis {redis_url}", flush=True)

            print(f"generating {args.events:,} events over {args.customers:,} customers ...", flush=True)
            records = generate(args.events, args.customers, args.seed, extra, as_input)
            size = sum(len(value) for _, value in records) / len(records)
            print(f"pre-loading {input_topic} (mean value {size:.0f} bytes) ...", flush=True)
            started = time.monotonic()
            loaded = preload(bootstrap, records, input_topic)
            on_topic = topic_counts(bootstrap, [input_topic])[input_topic]
            print(
                f"  {loaded:,} acknowledged, {on_topic:,} on the topic, {time.monotonic() - started:.1f} s",
                flush=True,
            )
            del records

            client = redis.Redis.from_url(redis_url)
            stack.callback(client.close)
            others = cpu_sum([cpu.pid_probe(tansu.pid), cpu.pid_probe(redis_server.pid)])
            text = bench(Stack(bootstrap, redis_url, client, redis_used(client), on_topic, others, log_dir))
    except KeyboardInterrupt:
        print("\ninterrupted; every process started here was stopped", file=sys.stderr)
        return 130
    print("\n" + text)
    if args.profile:
        print(f"\nprofile: .venv/bin/python -c \"import pstats; pstats.Stats('{args.profile}')"
              ".sort_stats('cumulative').print_stats(40)\"")  # fmt: skip
    return 0


# -- the workers ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Worker:
    name: str  # "scoring", "tagging" or "bare": also its log file and the `service` label of its metrics
    command: list[str]
    settings: str  # the prefix of its settings: SCORING reads SCORING_APP_ID and SCORING_METRICS_PORT
    env: EnvFor


def workers(bench: WorkerBench, args: argparse.Namespace) -> list[Worker]:
    """The references (unless --no-bare): the bare Faust worker, the getmany floor and the peer
    (if the bench has one); then `python -m services.<service>.worker`."""
    service = bench.service
    profiler = ["-m", "cProfile", "-o", args.profile] if args.profile else []
    command = [sys.executable, *profiler, "-m", f"services.{service}.worker"]
    worker = Worker(service, command, service.upper(), bench.env)
    if args.no_bare:
        return [worker]

    def reference_env(bootstrap: str, redis_url: str, metrics_port: int, **overrides: str) -> dict[str, str]:
        return scoring_env(
            bootstrap,
            redis_url,
            metrics_port,
            BARE_INPUT_TOPIC=bench.input_topic,
            PYTHONPATH=str(REPOSITORY),  # the peer's interpreter is not the venv's with our package
            **overrides,
        )

    references = [
        Worker("bare", [sys.executable, "-m", "bench.bare_worker"], "SCORING", reference_env),
        Worker("floor", [sys.executable, "-m", "bench.getmany_floor"], "SCORING", reference_env),
    ]
    if bench.peer:
        references.append(Worker("peer", bench.peer(), "SCORING", reference_env))
    return [*references, worker]


@dataclass(frozen=True)
class Sample:
    at: float  # monotonic seconds
    inputs: int  # pd_events_processed_total, all outcomes
    batches: int  # pd_worker_batch_seconds_count
    cpu_s: float | None
    outcomes: dict[str, int]


@dataclass(frozen=True)
class Run:
    started: float
    ready_at: float
    first: Sample
    last: Sample
    machine_busy_s: float  # all cores, over first..last
    others_cpu_s: float | None  # Tansu + Redis, over first..last
    app_id: str = ""  # the worker's consumer group and the prefix of its changelog topics

    @property
    def seconds(self) -> float:
        return self.last.at - self.first.at

    @property
    def events(self) -> int:
        return self.last.inputs - self.first.inputs

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else float("nan")

    @property
    def cpu_s(self) -> float | None:
        first, last = self.first.cpu_s, self.last.cpu_s
        return None if first is None or last is None else last - first

    @property
    def per_cpu(self) -> float | None:
        """Events per worker CPU-second."""
        return self.events / self.cpu_s if self.cpu_s else None


def scrape(base_url: str, service: str) -> tuple[dict[str, int], int] | None:
    """Inputs taken by outcome, and batches done, from the worker's /metrics; None if unreachable."""
    try:
        with urllib.request.urlopen(f"{base_url}/metrics", timeout=5) as answer:
            text = answer.read()
    except (urllib.error.URLError, OSError):
        return None
    outcomes: dict[str, int] = {}
    batches = 0
    for name, labels, value in _SAMPLE.findall(text):
        if f'service="{service}"'.encode() not in labels:
            continue
        if name == b"pd_worker_batch_seconds_count":
            batches = int(float(value))
        elif found := re.search(rb'outcome="([^"]*)"', labels):
            outcomes[found.group(1).decode()] = int(float(value))
    return outcomes, batches


def is_ready(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url}/readyz", timeout=2) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def watch(
    worker: Worker, process: Process, base_url: str, expected: int, args: argparse.Namespace, others: CpuProbe
) -> Run:
    """Start the process and poll it until it took `expected` inputs; give up on its exit or a stall."""
    started = time.monotonic()
    process.start()
    worker_cpu = cpu.pid_probe(process.pid)
    ready_at: float | None = None
    first: Sample | None = None
    machine0, others0 = 0.0, None
    progress_at = last_change = started
    seen = -1
    while True:
        if process.popen is None or process.popen.poll() is not None:
            raise SystemExit(f"the {worker.name} worker exited:\n{process.log_tail()}")
        if ready_at is None and is_ready(base_url):
            ready_at = time.monotonic()
        scraped = scrape(base_url, worker.name)
        now = time.monotonic()
        if scraped is not None:
            outcomes, batches = scraped
            sample = Sample(now, sum(outcomes.values()), batches, worker_cpu(), outcomes)
            if first is None and sample.inputs > 0:
                first, machine0, others0 = sample, cpu.machine_busy_s(), others()
            if sample.inputs != seen:
                seen, last_change = sample.inputs, now
            if first is not None and ready_at is not None and sample.inputs >= expected:
                others1 = others()
                spent = None if others0 is None or others1 is None else others1 - others0
                return Run(started, ready_at, first, sample, cpu.machine_busy_s() - machine0, spent)
            if first is not None and now - progress_at >= 2:
                rate = (sample.inputs - first.inputs) / max(now - first.at, 1e-9)
                print(f"    {now - started:>5.1f} s  {sample.inputs:>9,} inputs  {rate:>7,.0f}/s", flush=True)
                progress_at = now
        if now - last_change > args.stall:
            raise SystemExit(f"{worker.name}: no progress for {args.stall:.0f} s at {seen:,} inputs")
        time.sleep(args.poll)


def measure(worker: Worker, stack: Stack, args: argparse.Namespace) -> Run:
    """One worker process, in a fresh consumer group, through the pre-loaded topic; stopped
    (SIGTERM, producer flushed) after."""
    app_id = f"pd-{worker.name}-bench-{uuid.uuid4().hex[:8]}"  # fresh group
    overrides = {
        f"{worker.settings}_APP_ID": app_id,
        "TABLE_DIR": str(stack.log_dir / app_id),
        "TOPIC_PARTITIONS": str(args.partitions),  # as the contract topics were created
    }
    if args.batch_max_events:
        overrides["BATCH_MAX_EVENTS"] = str(args.batch_max_events)
    port = free_port()
    env = worker.env(stack.bootstrap, stack.redis_url, port, **overrides)
    log = stack.log_dir / f"{worker.name}-worker.log"
    print(f"\n== {worker.name} worker ({app_id}), log {log} ==", flush=True)
    process = Process(f"{worker.name}-worker", worker.command, log, env)
    try:
        run = watch(worker, process, f"http://127.0.0.1:{port}", stack.on_topic, args, stack.others)
    finally:
        process.stop(timeout=60 if args.profile else 10)  # cProfile writes its stats on the way out
    per_cpu = f"{run.per_cpu:,.0f}" if run.per_cpu else "n/a"
    print(f"  {worker.name}: {run.rate:,.0f} events/s, {per_cpu} per worker CPU-second", flush=True)
    return replace(run, app_id=app_id)


def cpu_sum(probes: list[CpuProbe]) -> CpuProbe:
    def probe() -> float | None:
        values = [p() for p in probes]
        return None if None in values else sum(v for v in values if v is not None)

    return probe


# -- Redis ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Memory:
    used_bytes: int  # used_memory after minus before
    items: int  # customers (profiles) the read model holds
    key_bytes: float  # MEMORY USAGE of the per-customer keys, mean over a sample
    shared_bytes: int  # MEMORY USAGE of the keys all customers share (sorted sets, segment sets)

    @property
    def per_item(self) -> float:
        return self.used_bytes / self.items if self.items else float("nan")

    @property
    def shared_per_item(self) -> float:
        return self.shared_bytes / max(self.items, 1)


def redis_used(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def memory(client: redis.Redis, baseline: int, model: ReadModel) -> Memory:
    """The per-customer keys (a sample of 500), the shared keys whole, and the customers counted."""
    keys = list(client.scan_iter(match=model.key_pattern, count=5000))
    sample = random.Random(1).sample(keys, min(500, len(keys)))
    sizes = [int(client.memory_usage(key) or 0) for key in sample]
    shared = [int(client.memory_usage(key, samples=0) or 0) for key in model.shared_keys(client)]
    used = redis_used(client) - baseline
    return Memory(used, int(model.count(client)), sum(sizes) / max(len(sizes), 1), sum(shared))


# -- report ---------------------------------------------------------------------------------------


def pct(seconds: float | None, of: float) -> str:
    return "n/a" if seconds is None or of <= 0 else f"{100 * seconds / of:.0f} %"


def per_event(records: int, events: int) -> str:
    return f"{records:,} ({records / events:.2f})"


def run_rows(run: Run) -> list[tuple[str, str]]:
    rest = None
    if run.cpu_s is not None and run.others_cpu_s is not None:
        rest = run.machine_busy_s - run.cpu_s - run.others_cpu_s
    batches = run.last.batches - run.first.batches
    return [
        (RATE, f"{run.rate:,.0f}"),
        ("measured window", f"{run.events:,} inputs in {run.seconds:.2f} s"),
        (PER_CPU, f"{run.per_cpu:,.0f}" if run.per_cpu else "n/a"),
        ("worker CPU (% of one core)", pct(run.cpu_s, run.seconds)),
        ("Tansu + Redis CPU (% of one core)", pct(run.others_cpu_s, run.seconds)),
        ("rest of the machine, this bench too (% of one core)", pct(rest, run.seconds)),
        ("process start to /readyz 200", f"{run.ready_at - run.started:.1f} s"),
        ("process start to first input taken", f"{run.first.at - run.started:.1f} s"),
        ("batches, mean inputs per batch", f"{batches:,}, {run.events / batches:,.0f}" if batches else "n/a"),
    ]


# The references a worker is measured next to, by their worker name, as the table heads them.
REFERENCES = {"bare": "bare Faust", "floor": "getmany floor", "peer": "Quix Streams peer"}


def report_rows(
    service: str,
    runs: dict[str, Run],
    args: argparse.Namespace,
    default_batch: int,
    only_service: list[tuple[str, str]],
) -> list[str]:
    """The markdown table: the run figures of the service's worker next to each reference's, with
    the ratios to them; then the target, the batch size and the service's own rows."""
    mine = runs[service]
    references = [(name, runs[name]) for name in REFERENCES if name in runs]
    heads = [f"{service} worker", *(REFERENCES[n] for n, _ in references)]
    heads += [f"{service}/{n}" for n, _ in references]
    rows = ["| figure | " + " | ".join(heads) + " |", "| --- |" + " ---: |" * len(heads)]
    theirs = [run_rows(run) for _, run in references]
    for index, (name, value) in enumerate(run_rows(mine)):
        cells = [value, *(figures[index][1] for figures in theirs)]
        cells += [_ratio(name, mine, run) for _, run in references]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    own = [
        ("target, events/s (ratio to it)", f"{TARGET:,} ({mine.rate / TARGET:.2f})"),
        ("BATCH_MAX_EVENTS", f"{args.batch_max_events or default_batch:,}"),
        *only_service,
    ]
    empty = " |" * (2 * len(references))
    return rows + [f"| {name} | {value} |{empty}" for name, value in own]


def _ratio(figure: str, mine: Run, reference: Run) -> str:
    if figure == RATE:
        return f"{mine.rate / reference.rate:.2f}"
    if figure == PER_CPU and mine.per_cpu and reference.per_cpu:
        return f"{mine.per_cpu / reference.per_cpu:.2f}"
    return ""


def setup_lines(service: str, run: Run, args: argparse.Namespace) -> list[str]:
    outcomes = ", ".join(f"{name} {n:,}" for name, n in sorted(run.last.outcomes.items()))
    lines = [
        f"{service.capitalize()} inputs by outcome: {outcomes}.",
        f"Measured with `python -m bench.{service}`: {args.events:,} events over "
        f"{args.customers:,} customers pre-loaded on {args.partitions} partitions, one worker process "
        f"at a time on its own Tansu and Redis, /metrics polled every {args.poll} s.",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}. Issue "
        "target for one worker process on 2 cores: >= 8,000 events/s; measured there, a naive Faust agent "
        "with one table update per event ~3,100, Faust taking raw bytes in batches without state (the "
        "bare worker here) ~9,800.",
    ]
    if args.profile:
        lines.append(
            f"!! the {service} worker ran under cProfile ({args.profile}): its rates are not comparable."
        )
    return lines


# -- main -----------------------------------------------------------------------------------------


def main(bench: WorkerBench, argv: list[str] | None = None) -> int:
    args = parse_args(bench, argv)
    extra = bench.extra(args.seed) if bench.extra else None
    report = lambda stack: measure_and_report(bench, stack, args)  # noqa: E731
    return run(bench.service, args, report, extra, bench.input_topic, bench.as_input)


def measure_and_report(bench: WorkerBench, stack: Stack, args: argparse.Namespace) -> str:
    runs: dict[str, Run] = {}
    published_before = 0
    for worker in workers(bench, args):
        if worker.name == bench.service:
            # The peer publishes on the worker's output and writes its read model too: count
            # from here, and measure Redis as the worker alone leaves it.
            published_before = topic_counts(stack.bootstrap, [bench.output]).get(bench.output, 0)
            stack.redis.flushdb()
        runs[worker.name] = measure(worker, stack, args)
    model = bench.read_model  # the references write nothing to Redis
    client = stack.redis
    mem = memory(client, stack.baseline, model)
    changelog = f"{runs[bench.service].app_id}-{bench.table}-changelog"
    dead = dead_letter_topic(bench.input_topic)
    counts = topic_counts(stack.bootstrap, [changelog, bench.output, dead])
    published = counts.get(bench.output, 0) - published_before
    unit = model.unit
    only_service = [
        (f"customers ({model.counted_by})", f"{args.customers:,} ({mem.items:,})"),
        (f"Redis bytes per {unit} (used_memory delta)", f"{mem.per_item:,.0f}"),
        (f"  {model.key_name}, mean MEMORY USAGE", f"{mem.key_bytes:,.0f}"),
        (f"  {model.shared_name}, per {unit}", f"{mem.shared_per_item:,.0f}"),
        ("changelog records (per event)", per_event(counts.get(changelog, 0), args.events)),
        (f"{bench.output} records (per event)", per_event(published, args.events)),
        ("dead-lettered events", f"{counts.get(dead, 0):,}"),
    ]  # fmt: skip
    rows = report_rows(bench.service, runs, args, bench.default_batch, only_service)
    notes = bench.notes(client) if bench.notes else []
    return "\n".join([*rows, "", *notes, *setup_lines(bench.service, runs[bench.service], args)])
