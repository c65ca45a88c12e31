"""A million customers (issue 20, item 3): how the scoring worker's and Redis's cost per customer,
a restart with that state, and the scoring API's reads grow with the customers held.

Method. One Tansu broker and one redis-server of the bench's own (a running `make up` stack is
never touched), one scoring worker (`python -m services.scoring.worker`) and one scoring API
(`python -m services.scoring.api`). Customers are added in steps (default 10k, 100k, 1M in all):
each step generates one contract-valid ingested event per new customer (bench/worker_bench.py,
`generate`), pre-loads them on `touchpoint.events.v1` and waits until the worker has taken them
(every new customer in the read model's rank). Then, with that many customers held:
- worker memory per customer: the worker's resident set (VmRSS) less what it held before the
  first customer, divided by the customers (the Faust table in memory, mostly);
- Redis bytes per customer: used_memory less the empty Redis's, divided by the customers;
- the scoring API's `/v1/matrix`, `/v1/leads` (50 hot leads) and `/metrics` (which counts the
  matrix for its gauge): p50 and p99 over `--requests` sequential requests each;
- a worker restart: SIGTERM, then a new process in the same consumer group, with one new event
  produced as it starts; restart time = from its start to that event taken (its table restored
  from the changelog first). The new process carries on with the next step.
Figures are printed per step as they come, then the growth table; nothing is asserted.

Usage (from the repository root):
    .venv/bin/python -m bench.scale [--steps 10000,100000,1000000] [--requests 30]
"""

from __future__ import annotations

import argparse
import os
import platform
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
from services.scoring.read_model import RANK
from shared.kafka import ensure_topics
from shared.topics import TOUCHPOINT_EVENTS, contract_topics
from tests.harness import Process, free_port, start_redis, start_tansu
from tests.scoring_worker import scoring_env

PARTITIONS = 3
OPS_TOKEN = "bench-scale-ops-token"
APP_ID = "pd-scoring-scale"
SERVICE = "scoring"  # the `service` label of the worker's metrics


@dataclass(frozen=True)
class Latency:
    p50_ms: float
    p99_ms: float

    def __str__(self) -> str:
        return f"{self.p50_ms:,.1f} / {self.p99_ms:,.1f}"


@dataclass(frozen=True)
class Step:
    customers: int
    load_s: float  # from the step's first record produced to its last taken
    worker_bytes: float  # per customer
    redis_bytes: float  # per customer
    matrix: Latency
    leads: Latency
    metrics: Latency
    restart_s: float


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--steps",
        default="10000,100000,1000000",
        help="customers held after each step, ascending, comma-separated (default 10k, 100k, 1M)",
    )
    parser.add_argument("--requests", type=int, default=30, help="requests per API figure (default 30)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--timeout", type=float, default=600, help="seconds a step may take to be taken")
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


def taken(metrics_url: str) -> int:
    scraped = scrape(metrics_url, SERVICE)
    return sum(scraped[0].values()) if scraped else 0


def wait_until(check: Callable[[], bool], timeout_s: float, what: str, process: Process) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if process.popen is None or process.popen.poll() is not None:
            raise SystemExit(f"{process.name} exited while waiting for {what}:\n{process.log_tail()}")
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.1)


def latency(client: httpx.Client, path: str, requests: int) -> Latency:
    seconds = []
    for _ in range(requests):
        began = time.perf_counter()
        client.get(path).raise_for_status()
        seconds.append(time.perf_counter() - began)
    cuts = statistics.quantiles(seconds, n=100, method="inclusive")
    return Latency(1000 * statistics.median(seconds), 1000 * cuts[98])


class Bench:
    """The bench's broker, Redis, worker and API, and what it loaded so far."""

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
        self.metrics_port = free_port()
        self.metrics_url = f"http://127.0.0.1:{self.metrics_port}"
        self.worker = self._start_worker()
        stack.callback(lambda: self.worker.stop())
        self.worker_empty = resident_bytes(self.worker.pid)
        self.customers = 0
        api_port = free_port()
        env = {
            "REDIS_URL": self.redis_url,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "SCORING_PORT": str(api_port),
            "OPS_TOKENS": OPS_TOKEN,
            "LOG_LEVEL": "WARNING",
        }
        api = Process("scoring-api", [sys.executable, "-m", "services.scoring.api"], log_dir / "api.log", env)
        api.start()
        stack.callback(api.stop)
        self.api_url = f"http://127.0.0.1:{api_port}"
        wait_until(lambda: is_ready(self.api_url), 60, "the scoring API's /readyz", api)
        self.api = httpx.Client(
            base_url=self.api_url, headers={"Authorization": f"Bearer {OPS_TOKEN}"}, timeout=120
        )
        stack.callback(self.api.close)

    def _start_worker(self) -> Process:
        env = scoring_env(
            self.bootstrap, self.redis_url, self.metrics_port, SCORING_APP_ID=APP_ID, LOG_LEVEL="WARNING"
        )
        env["TABLE_DIR"] = str(self.log_dir / "tables")
        command = [sys.executable, "-m", "services.scoring.worker"]
        worker = Process("scoring-worker", command, self.log_dir / "scoring-worker.log", env).start()
        wait_until(lambda: is_ready(self.metrics_url), 600, "the scoring worker's /readyz", worker)
        return worker

    def step(self, customers: int) -> Step:
        new = customers - self.customers
        print(f"\n== {customers:,} customers: generating {new:,} more ...", flush=True)
        records = generate(new, new, self.args.seed + customers, first_customer=self.customers + 1)
        began = time.monotonic()
        loaded = preload(self.bootstrap, records, TOUCHPOINT_EVENTS)
        del records
        print(f"  {loaded:,} on the topic; waiting for the worker to score them ...", flush=True)
        wait_until(
            lambda: self.redis.zcard(RANK) >= customers,
            self.args.timeout,
            f"{customers:,} customers in {RANK}",
            self.worker,
        )
        load_s = time.monotonic() - began
        self.customers = customers
        worker_bytes = (resident_bytes(self.worker.pid) - self.worker_empty) / customers
        redis_bytes = (redis_used(self.redis) - self.redis_empty) / customers
        print(f"  taken in {load_s:.1f} s; measuring the API ...", flush=True)
        requests = self.args.requests
        matrix = latency(self.api, "/v1/matrix", requests)
        leads = latency(self.api, "/v1/leads?band=hot&limit=50", requests)
        metrics = latency(self.api, "/metrics", requests)
        print("  restarting the worker ...", flush=True)
        restart_s = self._restart()
        figures = Step(customers, load_s, worker_bytes, redis_bytes, matrix, leads, metrics, restart_s)
        print(
            f"  worker {worker_bytes:,.0f} B and Redis {redis_bytes:,.0f} B a customer; matrix {matrix}, "
            f"leads {leads}, /metrics {metrics} ms (p50 / p99); restart to first event {restart_s:.1f} s",
            flush=True,
        )
        return figures

    def _restart(self) -> float:
        self.worker.stop(timeout=60)
        began = time.monotonic()
        self.worker = Process(
            "scoring-worker",
            self.worker.args,
            self.log_dir / "scoring-worker.log",
            self.worker.env,
        ).start()
        # One event for a customer already held, on the topic as the new process starts.
        event = generate(1, 1, self.args.seed - self.customers, first_customer=1)
        preload(self.bootstrap, event, TOUCHPOINT_EVENTS)
        wait_until(
            lambda: taken(self.metrics_url) >= 1, self.args.timeout, "the event after a restart", self.worker
        )
        return time.monotonic() - began


def table(steps: list[Step]) -> str:
    rows = [
        ("worker resident bytes per customer", lambda s: f"{s.worker_bytes:,.0f}"),
        ("Redis bytes per customer", lambda s: f"{s.redis_bytes:,.0f}"),
        ("worker restart to first event, s", lambda s: f"{s.restart_s:.1f}"),
        ("/v1/matrix p50 / p99, ms", lambda s: str(s.matrix)),
        ("/v1/leads p50 / p99, ms", lambda s: str(s.leads)),
        ("/metrics p50 / p99, ms", lambda s: str(s.metrics)),
        ("step loaded and taken in, s", lambda s: f"{s.load_s:.1f}"),
    ]
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
            f"one scoring worker and one scoring API on their own Tansu and Redis, one event per "
            f"customer, {args.requests} requests per API figure. Machine: {platform.machine()}, "
            f"{os.cpu_count()} cores, Python {platform.python_version()}."
        )
    return 0 if len(steps) == len(args.steps) else 1


if __name__ == "__main__":
    sys.exit(main())
