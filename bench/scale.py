"""A million customers (issue 20, item 3): how each worker's and Redis's cost per customer, a
worker's restart with that state, and the APIs' reads grow with the customers held.

Method. One Tansu broker and one redis-server of the bench's own (a running `make up` stack is
never touched); the scoring and tagging workers and their APIs (`python -m services.<name>.worker`
and `.api`), tagging reading what scoring passes on, as in production. Customers are added in
steps (default 10k, 100k, 1M in all): each step generates one contract-valid ingested event per
new customer (bench/worker_bench.py, `generate`), pre-loads them on `touchpoint.events.v1` and
waits until both workers hold every customer (scoring's rank, tagging's `seg:all`). Then, with
that many customers held:
- each worker's memory per customer: its resident set (VmRSS) less what it held before the
  first customer, divided by the customers (its Faust table in memory, mostly);
- Redis bytes per customer: used_memory less the empty Redis's, divided by the customers (both
  read models), and of which: each customer's own keys (MEMORY USAGE over 200 of them) and the
  keys all share (sorted sets, segment sets) whole;
- scoring's `/v1/matrix`, `/v1/leads` (50 hot leads) and `/metrics` (which counts the matrix
  for its gauge); tagging's `/v1/segments/count` (intent-layer rational customers) and
  `/metrics`: p50 and p99 over `--requests` sequential requests each;
- each worker's restart, one after the other: SIGTERM, then a new process in the same consumer
  group, with one new event on the touchpoint topic as it starts; restart time = from its start
  to that event taken (its table restored from the changelog first), and the new process's
  resident bytes per customer then (rows restored from the changelog, not built by the fold).
  The new process carries on with the next step.
Figures are printed per step as they come, then the growth table; nothing is asserted.

Usage (from the repository root):
    .venv/bin/python -m bench.scale [--steps 10000,100000,1000000] [--requests 30]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import date
from pathlib import Path

if __package__ in (None, ""):  # run as a file (python bench/scale.py): make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import redis

from bench.worker_bench import generate, is_ready, preload, redis_used, scrape
from services.scoring.read_model import CELL, CELLS, DUE, LAST_INTERACTION, RANK, customer_key, events_key
from services.tagging.read_model import ALL, profile_key
from services.tagging.read_model import PREFIX as TAGGING_PREFIX
from shared.kafka import ensure_topics
from shared.topics import TOUCHPOINT_EVENTS, contract_topics
from tests.harness import Process, eventually, free_port, start_redis, start_tansu
from tests.scoring_worker import scoring_env
from tests.tagging_worker import tagging_env

PARTITIONS = 3
OPS_TOKEN = "bench-scale-ops-token"
SAMPLE = 200  # customers whose own keys are measured for the Redis breakdown
# What Redis keeps of one customer, by key (bench/worker_bench.py names customers cus_<n>).
OWN_KEYS: dict[str, Callable[[str], str]] = {
    "scoring snapshot": customer_key,
    "scoring latest events": events_key,
    "tagging profile": profile_key,
}


@dataclass(frozen=True)
class Service:
    """A worker and its API under the bench."""

    name: str  # services.<name>; the `service` label of the worker's metrics
    env: Callable[..., dict[str, str]]  # the tests' worker environment (bootstrap, redis, port, **overrides)
    held: Callable[[redis.Redis], int]  # customers its read model holds
    reads: tuple[tuple[str, str], ...]  # (figure, API path) to time


SERVICES = (
    Service(
        "scoring",
        scoring_env,
        lambda client: client.zcard(RANK),
        (
            ("/v1/matrix", "/v1/matrix"),
            ("/v1/leads", "/v1/leads?band=hot&limit=50"),
            ("/metrics", "/metrics"),
        ),
    ),
    Service(
        "tagging",
        tagging_env,
        lambda client: client.scard(ALL),
        (
            ("/v1/segments/count", "/v1/segments/count?layer=intent&orientation=rational"),
            ("/metrics", "/metrics"),
        ),
    ),
)


@dataclass(frozen=True)
class Latency:
    p50_ms: float
    p99_ms: float

    def __str__(self) -> str:
        return f"{self.p50_ms:,.1f} / {self.p99_ms:,.1f}"


@dataclass(frozen=True)
class Held:
    """One service's figures with a step's customers held."""

    worker_bytes: float  # per customer
    restart_s: float
    reads: dict[str, Latency]  # by figure
    restarted_bytes: float  # per customer, in the process restarted with them (restored rows)


@dataclass(frozen=True)
class Step:
    customers: int
    load_s: float  # from the step's first record produced to every customer held by every worker
    redis_bytes: float  # per customer
    services: dict[str, Held]
    redis_parts: dict[str, float]  # bytes per customer, by what holds them (redis_breakdown)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--steps",
        default="10000,100000,1000000",
        help="customers held after each step, ascending, comma-separated (default 10k, 100k, 1M)",
    )
    parser.add_argument("--requests", type=int, default=30, help="requests per API figure (default 30)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--timeout", type=float, default=900, help="seconds a step may take to be taken")
    args = parser.parse_args(argv)
    args.steps = [int(step) for step in args.steps.split(",")]
    if args.steps != sorted(set(args.steps)) or args.steps[0] <= 0:
        parser.error("--steps: ascending, positive, without repeats")
    return args


def resident_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def wait_until(check: Callable[[], bool], timeout_s: float, what: str, processes: list[Process]) -> None:
    """Poll `check` (tests/harness.py's `eventually`); give up at once if a process exited."""

    def held() -> None:
        for process in processes:
            if process.popen is None or process.popen.poll() is not None:
                raise SystemExit(f"{process.name} exited while waiting for {what}:\n{process.log_tail()}")
        assert check(), f"still waiting for {what}"

    try:
        eventually(held, timeout=timeout_s, interval=0.1)
    except AssertionError:
        raise SystemExit(f"timed out after {timeout_s:.0f} s waiting for {what}") from None


def redis_breakdown(client: redis.Redis, customers: int) -> dict[str, float]:
    """Bytes per customer by what holds them: each customer's own keys (MEMORY USAGE over a
    sample of customers), and the keys all customers share (sorted sets, segment sets) whole."""
    rng = random.Random(customers)
    sample = [f"cus_{rng.randint(1, customers)}" for _ in range(SAMPLE)]
    parts = {
        name: sum(client.memory_usage(key_of(c)) or 0 for c in sample) / SAMPLE
        for name, key_of in OWN_KEYS.items()
    }
    segments = client.scan_iter(match=f"{TAGGING_PREFIX}seg:*", count=5000)
    shared = [RANK, LAST_INTERACTION, DUE, CELL, CELLS, *segments]
    parts["shared sorted sets, hashes and segment sets"] = (
        sum(client.memory_usage(k, samples=0) or 0 for k in shared) / customers
    )
    return parts


def latency(client: httpx.Client, path: str, requests: int) -> Latency:
    seconds = []
    for _ in range(requests):
        began = time.perf_counter()
        client.get(path).raise_for_status()
        seconds.append(time.perf_counter() - began)
    cuts = statistics.quantiles(seconds, n=100, method="inclusive")
    return Latency(1000 * statistics.median(seconds), 1000 * cuts[98])


class Running:
    """One service's worker and API processes, started on the bench's broker and Redis."""

    def __init__(self, service: Service, stack: ExitStack, bench: Bench) -> None:
        self.service = service
        self.bench = bench
        self.metrics_url = f"http://127.0.0.1:{free_port()}"
        self.worker = self._start_worker()
        stack.callback(lambda: self.worker.stop())
        self.worker_empty = resident_bytes(self.worker.pid)
        api_port = free_port()
        env = {
            "REDIS_URL": bench.redis_url,
            "KAFKA_BOOTSTRAP_SERVERS": bench.bootstrap,
            f"{service.name.upper()}_PORT": str(api_port),
            "OPS_TOKENS": OPS_TOKEN,
            "LOG_LEVEL": "WARNING",
        }
        command = [sys.executable, "-m", f"services.{service.name}.api"]
        api = Process(f"{service.name}-api", command, bench.log_dir / f"{service.name}-api.log", env).start()
        stack.callback(api.stop)
        api_url = f"http://127.0.0.1:{api_port}"
        wait_until(lambda: is_ready(api_url), 60, f"the {service.name} API's /readyz", [api])
        self.api = httpx.Client(
            base_url=api_url, headers={"Authorization": f"Bearer {OPS_TOKEN}"}, timeout=120
        )
        stack.callback(self.api.close)

    def _start_worker(self) -> Process:
        name, bench = self.service.name, self.bench
        port = int(self.metrics_url.rsplit(":", 1)[1])
        env = self.service.env(bench.bootstrap, bench.redis_url, port, LOG_LEVEL="WARNING")
        env |= {
            f"{name.upper()}_APP_ID": f"pd-{name}-scale",
            "TABLE_DIR": str(bench.log_dir / f"{name}-tables"),
        }
        command = [sys.executable, "-m", f"services.{name}.worker"]
        worker = Process(f"{name}-worker", command, bench.log_dir / f"{name}-worker.log", env).start()
        wait_until(lambda: is_ready(self.metrics_url), 600, f"the {name} worker's /readyz", [worker])
        return worker

    def taken(self) -> int:
        scraped = scrape(self.metrics_url, self.service.name)
        return sum(scraped[0].values()) if scraped else 0

    def restart(self) -> float:
        """Stop the worker, start another in its group; seconds until it took a new event."""
        self.worker.stop(timeout=60)
        began = time.monotonic()
        self.worker = self._start_worker()
        # One event for a customer already held, on the topic as the new process starts.
        self.bench.preload(self.bench.one_more_event())
        wait_until(
            lambda: self.taken() >= 1, self.bench.args.timeout, "the event after a restart", [self.worker]
        )
        return time.monotonic() - began


class Bench:
    """The bench's broker and Redis, the services running on them, and the customers so far."""

    def __init__(self, stack: ExitStack, log_dir: Path, args: argparse.Namespace) -> None:
        self.args = args
        self.log_dir = log_dir
        kafka_port, redis_port = free_port(), free_port()
        stack.callback(start_tansu(kafka_port, log_dir).stop)
        stack.callback(start_redis(redis_port, log_dir).stop)
        self.bootstrap, self.redis_url = f"127.0.0.1:{kafka_port}", f"redis://127.0.0.1:{redis_port}/0"
        ensure_topics(self.bootstrap, contract_topics(PARTITIONS))
        self.redis = redis.Redis.from_url(self.redis_url)
        stack.callback(self.redis.close)
        self.redis_empty = redis_used(self.redis)
        self.running = [Running(service, stack, self) for service in SERVICES]
        self.customers = 0
        self.extra_events = 0

    def one_more_event(self) -> list[tuple[bytes, bytes]]:
        """A new event (its own id) for the first customer."""
        self.extra_events += 1
        return generate(1, 1, seed=-self.extra_events, first_customer=1)

    def preload(self, records: list[tuple[bytes, bytes]]) -> int:
        return preload(self.bootstrap, records, TOUCHPOINT_EVENTS)

    def step(self, customers: int) -> Step:
        new = customers - self.customers
        print(f"\n== {customers:,} customers: generating {new:,} more ...", flush=True)
        records = generate(new, new, self.args.seed + customers, first_customer=self.customers + 1)
        began = time.monotonic()
        loaded = self.preload(records)
        del records
        print(f"  {loaded:,} on the topic; waiting for every worker to hold them ...", flush=True)
        wait_until(
            lambda: all(run.service.held(self.redis) >= customers for run in self.running),
            self.args.timeout,
            f"{customers:,} customers held by every worker",
            [run.worker for run in self.running],
        )
        load_s = time.monotonic() - began
        self.customers = customers
        redis_bytes = (redis_used(self.redis) - self.redis_empty) / customers
        parts = redis_breakdown(self.redis, customers)
        shown = ", ".join(f"{name} {size:,.0f}" for name, size in parts.items())
        print(f"  held in {load_s:.1f} s, Redis {redis_bytes:,.0f} B a customer ({shown})", flush=True)
        held = {}
        for run in self.running:
            worker_bytes = (resident_bytes(run.worker.pid) - run.worker_empty) / customers
            reads = {figure: latency(run.api, path, self.args.requests) for figure, path in run.service.reads}
            restart_s = run.restart()
            restarted_bytes = (resident_bytes(run.worker.pid) - run.worker_empty) / customers
            held[run.service.name] = Held(worker_bytes, restart_s, reads, restarted_bytes)
            shown = ", ".join(f"{figure} {value}" for figure, value in reads.items())
            print(
                f"  {run.service.name}: worker {worker_bytes:,.0f} B a customer; {shown} ms (p50 / p99); "
                f"restart to first event {restart_s:.1f} s, then {restarted_bytes:,.0f} B a customer",
                flush=True,
            )
        return Step(customers, load_s, redis_bytes, held, parts)


def table(steps: list[Step]) -> str:
    rows: list[tuple[str, Callable[[Step], str]]] = []
    for service in SERVICES:
        name = service.name
        rows.append(
            (
                f"{name} worker resident bytes per customer",
                lambda s, n=name: f"{s.services[n].worker_bytes:,.0f}",
            )
        )
        rows.append(
            (f"{name} worker restart to first event, s", lambda s, n=name: f"{s.services[n].restart_s:.1f}")
        )
        rows.append(
            (
                f"{name} worker resident bytes per customer, restarted",
                lambda s, n=name: f"{s.services[n].restarted_bytes:,.0f}",
            )
        )
        for figure, _ in service.reads:
            rows.append(
                (f"{name} `{figure}` p50 / p99, ms", lambda s, n=name, f=figure: str(s.services[n].reads[f]))
            )
    rows.append(("Redis bytes per customer (both read models)", lambda s: f"{s.redis_bytes:,.0f}"))
    for part in steps[0].redis_parts if steps else ():
        rows.append((f"  of which {part}", lambda s, p=part: f"{s.redis_parts[p]:,.0f}"))
    rows.append(("step loaded and held in, s", lambda s: f"{s.load_s:.1f}"))
    lines = ["| figure | " + " | ".join(f"{s.customers:,} customers" for s in steps) + " |"]
    lines.append("| --- |" + " ---: |" * len(steps))
    lines += [f"| {name} | " + " | ".join(cell(s) for s in steps) + " |" for name, cell in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a killed bench still stops what it started
    log_dir = Path(tempfile.mkdtemp(prefix="pd-bench-scale-"))
    print(f"logs: {log_dir}", flush=True)
    began = time.monotonic()
    steps: list[Step] = []
    try:
        with ExitStack() as stack:
            bench = Bench(stack, log_dir, args)
            for customers in args.steps:
                steps.append(bench.step(customers))
    except KeyboardInterrupt:
        print("\ninterrupted; every process started here was stopped", file=sys.stderr)
    if steps:
        print("\n" + table(steps))
        print(
            f"\nMeasured {date.today()} with `python -m bench.scale` in {time.monotonic() - began:,.0f} s: "
            f"the scoring and tagging workers and APIs on their own Tansu and Redis, one event per "
            f"customer, {args.requests} requests per API figure. Machine: {platform.machine()}, "
            f"{os.cpu_count()} cores, Python {platform.python_version()}."
        )
    return 0 if len(steps) == len(args.steps) else 1


if __name__ == "__main__":
    sys.exit(main())
