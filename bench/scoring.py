"""Scoring worker throughput benchmark (a benchmark, not a test: it prints figures, asserts nothing).

Method. The bench starts its own Tansu broker and redis-server on free ports (a running `make up`
stack is never touched; logs stay in a temp dir it prints), creates the contract topics with 3
partitions and pre-loads touchpoint.events.v1 with N contract-valid ingested events over C
customers, keyed by customer_id. Then it starts ONE scoring worker (`python -m
services.scoring.worker`, a fresh consumer group and changelog per run, the tests' short group
timeouts) and lets it work through the backlog, polling its /metrics every 0.2 s:
- throughput: inputs taken (pd_events_processed_total, summed over outcomes) between the first
  poll that saw any and the poll that saw all of them, divided by the time between those two
  polls; startup (process start to /readyz 200, and to the first input taken) is reported apart;
- worker CPU seconds over the same window (/proc/<pid>/stat), hence events per CPU-second: Tansu
  and Redis share the 2 cores, so on a busy machine that is the figure to compare over time;
- Redis memory per customer: used_memory after the run minus before (an empty Redis), divided
  by the customers in pd:scoring:rank, with a breakdown by key kind.

Events: every contract type with its required properties, weighted like private-domain traffic
(many content views and WeCom messages, few orders), occurred_at within the last 30 days in
+08:00, received_at shortly after in UTC, in received order as ingest publishes them. Every
customer has at least one event; the rest go to customers of lognormal activity, so some are
far busier than others. Every 50th event is checked against shared.events before loading.

Issue target: >= 8,000 events/s for one worker process on a 2-core machine. Measured there for
reference: a naive Faust agent updating one table per event, ~3,100 events/s; Faust consuming
raw bytes in batches with no state, ~9,800 events/s.

Usage (from the repository root):
    .venv/bin/python -m bench.scoring [--events 100000] [--customers 10000] [--batch-max-events N]
        [--profile /tmp/scoring.prof]   # the worker under cProfile: slower, for its hot spots
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import re
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file (python bench/scoring.py): make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson
import redis
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from bench import cpu
from services.scoring.read_model import LAST_INTERACTION, RANK, customer_key
from services.scoring.settings import ScoringSettings
from shared.events import IngestedEvent, event_rule_errors
from shared.kafka import ensure_topics
from shared.topics import INTENT_SCORES, TOUCHPOINT_EVENTS, contract_topics, dead_letter_topic
from tests.harness import Process, free_port, start_redis, start_tansu
from tests.scoring_worker import scoring_env

TARGET = 8_000  # events/s, one worker process, 2 cores (the issue)
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
    "channel": lambda rng: rng.choice(("wecom", "sms", "phone")),
    "action_id": lambda rng: f"act-{rng.randrange(500):03d}",
    "duration_s": lambda rng: rng.randint(20, 3600),
    "amount": lambda rng: round(rng.uniform(30, 5000), 2),
}
REQUIRED: dict[str, tuple[str, ...]] = {  # shared.events.EVENT_TYPES, restated to keep the mix readable
    "content.view": ("content_id",), "content.click": ("content_id",), "content.favorite": ("content_id",),
    "content.share": ("content_id",), "live.watch": ("duration_s",), "config.build": ("vehicle_model",),
    "quote.requested": ("vehicle_model",), "test_drive.booked": ("vehicle_model",),
    "test_drive.completed": ("vehicle_model",), "store.visit": ("dealer_id",),
    "dealer.followup": ("dealer_id",), "order.placed": ("vehicle_model",),
    "vehicle.delivered": ("vehicle_model",), "lead.defeated": ("reason",),
    "service.maintenance": ("amount",), "mall.purchase": ("amount",), "consent.granted": ("channel",),
    "consent.revoked": ("channel",), "campaign.delivered": ("action_id",),
    "campaign.opened": ("action_id",), "campaign.clicked": ("action_id",),
}  # fmt: skip

_SAMPLE = re.compile(rb"^(pd_events_processed_total|pd_worker_batch_seconds_count)\{([^}]*)\} (\S+)$", re.M)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scoring",
        description="Scoring worker throughput on a pre-loaded topic, and Redis memory per customer. "
        "Starts its own broker, Redis and one worker; needs no running stack.",
    )
    add = parser.add_argument
    add("--events", type=int, default=100_000, help="events pre-loaded (default %(default)s)")
    add("--customers", type=int, default=10_000, help="customers they are spread over (default %(default)s)")
    add("--batch-max-events", type=int, help="BATCH_MAX_EVENTS for the worker (default: the worker's own)")
    add("--partitions", type=int, default=3, help="partitions of the topics (default %(default)s)")
    add("--seed", type=int, default=7, help="seed of the generated events (default %(default)s)")
    add("--poll", type=float, default=0.2, help="seconds between /metrics polls (default %(default)s)")
    add("--stall", type=float, default=60, help="give up after this many seconds without progress")
    add("--profile", metavar="PATH", help="run the worker under cProfile, writing its stats to PATH")
    args = parser.parse_args(argv)
    if not 0 < args.customers <= args.events:
        parser.error("need 0 < --customers <= --events (every customer gets at least one event)")
    return args


# -- events ---------------------------------------------------------------------------------------


def generate(events: int, customers: int, seed: int) -> list[tuple[bytes, bytes]]:
    """(key, value) records as ingest publishes them, in received order."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    ids = [f"cus_{n + 1}" for n in range(customers)]
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
            "properties": {name: PROPERTIES[name](rng) for name in REQUIRED.get(event_type, ())},
            "schema_version": 1,
            "customer_id": ids[index],
            "received_at": received.isoformat(),
            "api_key_id": "key_0123456789ab",
        }
        rows.append((received, ids[index].encode(), body))
    rows.sort(key=lambda row: row[0])
    for _, _, body in rows[::50]:
        event = IngestedEvent.model_validate(body)
        if errors := event_rule_errors(event, now):
            raise SystemExit(f"bench bug: generated an invalid event {body}: {errors}")
    return [(key, orjson.dumps(body)) for _, key, body in rows]


def preload(bootstrap: str, records: list[tuple[bytes, bytes]]) -> int:
    """Produce the records onto touchpoint.events.v1; returns how many the broker acknowledged."""
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=20, batch_size=512 * 1024, max_request_size=4 << 20
    )
    try:
        step = max(1, len(records) // 5)
        sent = []
        for n, (key, value) in enumerate(records, 1):
            sent.append(producer.send(TOUCHPOINT_EVENTS, key=key, value=value))
            if n % step == 0:
                print(f"    {n:>9,} / {len(records):,} sent", flush=True)
        producer.flush()
        return sum(1 for future in sent if future.succeeded())
    finally:
        producer.close()


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


# -- the worker -----------------------------------------------------------------------------------


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


def scrape(base_url: str) -> tuple[dict[str, int], int] | None:
    try:
        with urllib.request.urlopen(f"{base_url}/metrics", timeout=5) as answer:
            text = answer.read()
    except (urllib.error.URLError, OSError):
        return None
    outcomes: dict[str, int] = {}
    batches = 0
    for name, labels, value in _SAMPLE.findall(text):
        if b'service="scoring"' not in labels:
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
    worker: Process, base_url: str, expected: int, args: argparse.Namespace, others: list[cpu.CpuProbe]
) -> Run:
    """Start the worker and poll it until it took `expected` inputs; stop on its exit or a stall."""
    started = time.monotonic()
    worker.start()
    worker_cpu = cpu.pid_probe(worker.pid)
    ready_at: float | None = None
    first: Sample | None = None
    machine0 = others0 = 0.0
    progress_at = last_change = started
    seen = -1
    while True:
        if worker.popen is None or worker.popen.poll() is not None:
            raise SystemExit(f"the worker exited:\n{worker.log_tail()}")
        if ready_at is None and is_ready(base_url):
            ready_at = time.monotonic()
        scraped = scrape(base_url)
        now = time.monotonic()
        if scraped is not None:
            outcomes, batches = scraped
            sample = Sample(now, sum(outcomes.values()), batches, worker_cpu(), outcomes)
            if first is None and sample.inputs > 0:
                first, machine0, others0 = sample, cpu.machine_busy_s(), _sum(others)
            if sample.inputs != seen:
                seen, last_change = sample.inputs, now
            if first is not None and sample.inputs >= expected and ready_at is not None:
                others1 = _sum(others)
                return Run(
                    started,
                    ready_at,
                    first,
                    sample,
                    cpu.machine_busy_s() - machine0,
                    None if others1 is None or others0 is None else others1 - others0,
                )
            if first is not None and now - progress_at >= 2:
                rate = (sample.inputs - first.inputs) / max(now - first.at, 1e-9)
                print(f"    {now - started:>5.1f} s  {sample.inputs:>9,} inputs  {rate:>7,.0f}/s", flush=True)
                progress_at = now
        if now - last_change > args.stall:
            raise SystemExit(f"no progress for {args.stall:.0f} s (at {seen} inputs):\n{worker.log_tail()}")
        time.sleep(args.poll)


def _sum(probes: list[cpu.CpuProbe]) -> float | None:
    values = [probe() for probe in probes]
    return None if any(v is None for v in values) else sum(v for v in values if v is not None)


# -- Redis ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Memory:
    used_bytes: int  # used_memory after minus before
    customers: int  # ZCARD rank
    customer_keys: int
    customer_key_bytes: float  # MEMORY USAGE, mean over a sample
    rank_bytes: int
    last_interaction_bytes: int


def redis_used(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def memory(client: redis.Redis, baseline: int) -> Memory:
    keys = list(client.scan_iter(match=customer_key("*"), count=5000))
    sample = random.Random(1).sample(keys, min(500, len(keys)))
    sizes = [int(client.memory_usage(key) or 0) for key in sample]
    return Memory(
        used_bytes=redis_used(client) - baseline,
        customers=int(client.zcard(RANK)),
        customer_keys=len(keys),
        customer_key_bytes=sum(sizes) / max(len(sizes), 1),
        rank_bytes=int(client.memory_usage(RANK, samples=0) or 0),
        last_interaction_bytes=int(client.memory_usage(LAST_INTERACTION, samples=0) or 0),
    )


# -- report ---------------------------------------------------------------------------------------


def report(args: argparse.Namespace, run: Run, mem: Memory, counts: dict[str, int], app_id: str) -> str:
    first, last = run.first, run.last
    seconds = last.at - first.at
    events = last.inputs - first.inputs
    rate = events / seconds if seconds > 0 else float("nan")
    cpu_s = None if first.cpu_s is None or last.cpu_s is None else last.cpu_s - first.cpu_s
    per_cpu = f"{events / cpu_s:,.0f}" if cpu_s else "n/a"
    worker_pct = f"{100 * cpu_s / seconds:.0f} %" if cpu_s is not None and seconds > 0 else "n/a"
    others_pct = f"{100 * run.others_cpu_s / seconds:.0f} %" if run.others_cpu_s is not None else "n/a"
    batches = last.batches - first.batches
    batch_setting = args.batch_max_events or ScoringSettings.model_fields["batch_max_events"].default
    per_customer = mem.used_bytes / mem.customers if mem.customers else float("nan")
    zsets = (mem.rank_bytes + mem.last_interaction_bytes) / max(mem.customers, 1)
    per_batch = f"{batches:,}, {events / batches:,.0f}" if batches else "n/a"
    rows = [
        ("events pre-loaded", f"{args.events:,}"),
        ("customers (scored: ZCARD pd:scoring:rank)", f"{args.customers:,} ({mem.customers:,})"),
        ("throughput, events/s (first to last input taken)", f"{rate:,.0f}"),
        ("target, events/s", f"{TARGET:,}"),
        ("throughput / target", f"{rate / TARGET:.2f}"),
        ("measured window", f"{events:,} inputs in {seconds:.2f} s"),
        ("worker CPU (% of one core)", worker_pct),
        ("events per worker CPU-second", per_cpu),
        ("Tansu + Redis CPU (% of one core)", others_pct),
        ("machine CPU (% of all cores)", f"{100 * run.machine_busy_s / seconds:.0f} %" if seconds else "n/a"),
        ("startup: process start to /readyz 200", f"{run.ready_at - run.started:.1f} s"),
        ("startup: process start to first input taken", f"{first.at - run.started:.1f} s"),
        ("BATCH_MAX_EVENTS (worker setting)", f"{batch_setting:,}"),
        ("batches in window, mean inputs per batch", per_batch),
        ("Redis bytes per customer (used_memory delta)", f"{per_customer:,.0f}"),
        ("  of which customer JSON key (mean MEMORY USAGE)", f"{mem.customer_key_bytes:,.0f}"),
        ("  of which rank + last_interaction zsets", f"{zsets:,.0f}"),
        ("changelog records (per event)", _per(counts.get(f"{app_id}-customers-changelog", 0), args.events)),
        ("intent.scores.v1 records (per event)", _per(counts.get(INTENT_SCORES, 0), args.events)),
        ("dead-lettered events", f"{counts.get(dead_letter_topic(TOUCHPOINT_EVENTS), 0):,}"),
    ]  # fmt: skip
    outcomes = ", ".join(f"{name} {n:,}" for name, n in sorted(last.outcomes.items()))
    table = ["| figure | value |", "| --- | ---: |", *(f"| {name} | {value} |" for name, value in rows)]
    setup = [
        f"Inputs by outcome: {outcomes}.",
        f"Measured with `python -m bench.scoring`: {args.events:,} events over {args.customers:,} customers "
        f"pre-loaded on {args.partitions} partitions, one worker on its own Tansu and Redis, /metrics "
        f"polled every {args.poll} s.",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}. "
        "Issue target for one worker process on 2 cores: >= 8,000 events/s (naive Faust agent with one "
        "table update per event ~3,100; raw-bytes batches without state ~9,800).",
    ]
    if args.profile:
        setup.append(f"!! the worker ran under cProfile (stats in {args.profile}): rates are not comparable.")
    return "\n".join([*table, "", *setup])


def _per(n: int, events: int) -> str:
    return f"{n:,} ({n / events:.2f})"


# -- main -----------------------------------------------------------------------------------------


def worker_command(profile: str | None) -> list[str]:
    profiler = ["-m", "cProfile", "-o", profile] if profile else []
    return [sys.executable, *profiler, "-m", "services.scoring.worker"]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    log_dir = Path(tempfile.mkdtemp(prefix="pd-bench-scoring-"))
    print(f"logs: {log_dir}", flush=True)
    try:
        with ExitStack() as stack:
            kafka_port, redis_port, metrics_port = free_port(), free_port(), free_port()
            tansu = start_tansu(kafka_port, log_dir)
            stack.callback(tansu.stop)
            redis_server = start_redis(redis_port, log_dir)
            stack.callback(redis_server.stop)
            bootstrap, redis_url = f"127.0.0.1:{kafka_port}", f"redis://127.0.0.1:{redis_port}/0"
            ensure_topics(bootstrap, contract_topics(args.partitions))
            print(f"broker {bootstrap}, redis {redis_url}", flush=True)

            print(f"generating {args.events:,} events over {args.customers:,} customers ...", flush=True)
            records = generate(args.events, args.customers, args.seed)
            size = sum(len(value) for _, value in records) / len(records)
            print(f"pre-loading {TOUCHPOINT_EVENTS} (mean value {size:.0f} bytes) ...", flush=True)
            started = time.monotonic()
            loaded = preload(bootstrap, records)
            on_topic = topic_counts(bootstrap, [TOUCHPOINT_EVENTS])[TOUCHPOINT_EVENTS]
            seconds = time.monotonic() - started
            print(f"  {loaded:,} acknowledged, {on_topic:,} on the topic, in {seconds:.1f} s", flush=True)
            del records

            client = redis.Redis.from_url(redis_url)
            stack.callback(client.close)
            baseline = redis_used(client)
            app_id = f"pd-scoring-bench-{uuid.uuid4().hex[:8]}"
            overrides = {"SCORING_APP_ID": app_id, "TABLE_DIR": str(log_dir / "tables")}
            if args.batch_max_events:
                overrides["BATCH_MAX_EVENTS"] = str(args.batch_max_events)
            env = scoring_env(bootstrap, redis_url, metrics_port, **overrides)
            print(f"starting the worker ({app_id}, log {log_dir / 'scoring-worker.log'}) ...", flush=True)
            worker = Process(
                "scoring-worker", worker_command(args.profile), log_dir / "scoring-worker.log", env
            )
            # SIGTERM lets Faust stop cleanly, and cProfile write its stats; give it time for that.
            stack.callback(lambda: worker.stop(timeout=60 if args.profile else 10))
            others = [cpu.pid_probe(tansu.pid), cpu.pid_probe(redis_server.pid)]
            run = watch(worker, f"http://127.0.0.1:{metrics_port}", loaded, args, others)
            mem = memory(client, baseline)
            changelog = f"{app_id}-customers-changelog"
            counts = topic_counts(bootstrap, [changelog, INTENT_SCORES, dead_letter_topic(TOUCHPOINT_EVENTS)])
    except KeyboardInterrupt:
        print("\ninterrupted; every process started here was stopped", file=sys.stderr)
        return 130
    print("\n" + report(args, run, mem, counts, app_id))
    if args.profile:
        print(f"\nprofile: .venv/bin/python -c \"import pstats; pstats.Stats('{args.profile}')"
              ".sort_stats('cumulative').print_stats(40)\"")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
