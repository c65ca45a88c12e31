"""Ingest throughput benchmark (a benchmark, not a test: it prints figures, asserts nothing).

Against a running stack it measures, for one ingest process:
- single: POST /v1/events, one event per request, many concurrent connections;
- batch:  POST /v1/events/batch, 100 events per request;
each as accepted events/s (only 202 answers count, and only the events they say were accepted)
and p50/p99 request latency, after a short warm-up. Next to each it measures a bare reference
endpoint (bench/bare_endpoint.py: FastAPI + aiokafka, acks=all, no validation, dedupe or identity
resolution), started here as one uvicorn process against the same broker, and prints
ingest/bare ratios: on a shared or noisy machine the ratio is the figure to compare over time.
Issue targets for one ingest process on a 2-core machine: >= 2,500 events/s single, >= 25,000
events/s batched; the bare endpoint measured ~2,900 and ~35,000 there.

Events are realistic and contract-valid (docs/contract.md): a fresh UUID v4-shaped event_id each, types
with their required properties, occurred_at in +08:00 and never in the future, identities of a
pool of customers, about one event in eight linking two identifiers, a few carrying a phone to
hash. Before measuring, the pool is seeded through ingest (one event per customer linking its
identifiers but the phone), so measured events mostly resolve to existing customers, while phones
first seen at a dealer still create customers that a later lead form merges.

Load generator: wrk (Debian package `wrk`, a C event-loop client) driving bench/events.lua, which
builds each request's events in LuaJIT. Chosen because on 2 cores the client must stay cheap so
the server keeps its own core: wrk with one thread costs a fraction of one core at these rates and
can never take more than one (threads = cores it may use), while a Python client (aiohttp or
httpx) spends tens of microseconds of interpreter time per request, as much as a bare FastAPI
endpoint does, and would bottleneck or skew the single-event phase. wrk's Lua hooks give what the
bench needs: a fresh body per request, the response status and body (to count 202s and accepted
events), and latency percentiles; locust and friends are heavier Python clients. Client CPU is
printed per phase so the claim can be checked.

Usage (from the repository root; the stack must be up, e.g. `pd-stack up`):
    .venv/bin/python -m bench.ingest [--url http://127.0.0.1:8001] [--bootstrap 127.0.0.1:9092]
        [--duration 10] [--warmup 3] [--modes single,batch] [--no-bare] [--no-seed] [--client-cpus 1]
        [--pause-workers]
Every event goes onto touchpoint.events.v1 of that stack, for its workers to process. With
--pause-workers (as `make bench` runs it, and as the README's figures were taken) the stack's
workers are stopped while measuring and started again after, so that ingest has a core to itself.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

if __package__ in (None, ""):  # run as a file (python bench/ingest.py): make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import cpu, wrk
from bench.bare_server import bare_server
from bench.pipeline import WORKERS as PIPELINE_WORKERS
from bench.pipeline import ready
from bench.report import MODES, Measurement, markdown, phase_line, problems
from bench.wrk import Load, Mode, Pool
from stack.layout import Layout
from stack.supervisor import Supervisor
from tests.harness import eventually

PATHS: dict[Mode, str] = {"single": "/v1/events", "batch": "/v1/events/batch", "seed": "/v1/events/batch"}
SEED_LIMIT_S = 600  # seeding stops by itself once every customer was sent; this only bounds it


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ingest",
        description="Ingest throughput and latency, single and batched, next to a bare FastAPI + aiokafka "
        "endpoint.",
    )
    add = parser.add_argument
    add("--url", default="http://127.0.0.1:8001", help="ingest base URL (default %(default)s)")
    add("--api-key", default="local-touchpoint-key", help="touchpoint key sent as X-Api-Key")
    add("--bootstrap", default="127.0.0.1:9092", help="broker for the bare endpoint (default %(default)s)")
    add("--duration", type=int, default=10, help="measured seconds per phase (default %(default)s)")
    add("--warmup", type=int, default=3, help="unmeasured seconds before each phase (default %(default)s)")
    add("--modes", default="single,batch", help="comma-separated: single, batch (default %(default)s)")
    add("--connections", type=int, default=64, help="connections, single mode (default %(default)s)")
    add("--batch-connections", type=int, default=8, help="connections, batch mode (default %(default)s)")
    add("--batch-size", type=int, default=100, help="events per batch request (default %(default)s)")
    add("--threads", type=int, default=1, help="wrk threads = client cores at most (default %(default)s)")
    add("--client-cpus", help="pin wrk to these CPUs (taskset list, e.g. 1)")
    add("--customers", type=int, default=20_000, help="customers in the identity pool (default %(default)s)")
    add("--timeout", type=int, default=10, help="request timeout, seconds (default %(default)s)")
    add("--no-seed", action="store_true", help="skip seeding the pool's customers before measuring")
    add("--no-bare", action="store_true", help="measure ingest only, without the bare reference")
    add("--bare-topic", default="bench.bare.v1", help="topic the bare endpoint writes (default %(default)s)")
    add("--bare-partitions", type=int, default=3, help="its partitions, as ingest's (default %(default)s)")
    add(
        "--pause-workers",
        action="store_true",
        help="stop the local stack's workers while measuring and start them again after, so that "
        "ingest has a core to itself (the issue's target is for one ingest process on 2 cores)",
    )
    args = parser.parse_args(argv)
    args.url = args.url.rstrip("/")
    args.mode_list = [m.strip() for m in args.modes.split(",") if m.strip()]
    if unknown := set(args.mode_list) - set(MODES):
        parser.error(f"unknown mode(s): {', '.join(sorted(unknown))}")
    return args


def fail(message: str) -> NoReturn:
    print(message, file=sys.stderr)
    raise SystemExit(2)


def preflight(args: argparse.Namespace) -> str:
    """The wrk binary; stops with a hint when wrk or a ready ingest is missing."""
    binary = wrk.find_wrk()
    if binary is None:
        fail(wrk.INSTALL_HINT)
    if args.client_cpus and shutil.which("taskset") is None:
        fail("--client-cpus needs taskset: install it with `sudo apt-get install util-linux`.")
    try:
        with urllib.request.urlopen(f"{args.url}/readyz", timeout=5) as answer:
            ready = answer.status == 200
    except (urllib.error.URLError, OSError) as error:
        fail(f"ingest at {args.url} is not reachable ({error}); start the stack first (pd-stack up).")
    if not ready:
        fail(f"ingest at {args.url} is not ready (GET /readyz); is its broker and Redis up?")
    return binary


def make_load(args: argparse.Namespace, mode: Mode, base_url: str, pool: Pool, duration_s: int) -> Load:
    single = mode == "single"
    return Load(
        url=base_url + PATHS[mode],
        mode=mode,
        batch_size=1 if single else args.batch_size,
        connections=args.connections if single else args.batch_connections,
        threads=args.threads,
        duration_s=duration_s,
        timeout_s=args.timeout,
        api_key=args.api_key,
        pool=pool,
        cpus=args.client_cpus,
    )


def seed(args: argparse.Namespace, binary: str, pool: Pool) -> None:
    """One event per pool customer linking its identifiers, so measured events mostly find them."""
    print(f"seeding {pool.customers:,} customers through ingest ...", flush=True)
    load = make_load(args, "seed", args.url, pool, SEED_LIMIT_S)
    result = wrk.run(load, binary, progress_printer("seed  "))
    print(f"  seeded: {result.accepted:,} events accepted in {result.duration_s:.1f} s", flush=True)
    for problem in problems(result):
        print(f"    !! {problem}", flush=True)


def progress_printer(label: str) -> Callable[[float, int, int], None]:
    def show(elapsed_s: float, events_per_s: int, non_202: int) -> None:
        print(f"    {label} {elapsed_s:>3.0f} s  {events_per_s:>7,} events/s  non-202: {non_202}", flush=True)

    return show


@dataclass(frozen=True)
class Target:
    name: str  # "ingest" or "bare"
    url: str
    cpu: cpu.CpuProbe


def measure(args: argparse.Namespace, binary: str, mode: Mode, target: Target, pool: Pool) -> Measurement:
    label = f"{target.name:<6} {mode:<6}"
    if args.warmup > 0:
        print(f"  {label} warm-up {args.warmup} s", flush=True)
        warm = wrk.run(make_load(args, mode, target.url, pool, args.warmup), binary, lambda *_: None)
        for problem in problems(warm):
            print(f"    !! warm-up: {problem}", flush=True)
    load = make_load(args, mode, target.url, pool, args.duration)
    print(f"  {label} measuring {args.duration} s, {load.connections} connections", flush=True)
    server_before, machine_before = target.cpu(), cpu.machine_busy_s()
    result = wrk.run(load, binary, progress_printer(label))
    server_after, machine_after = target.cpu(), cpu.machine_busy_s()
    seconds = result.duration_s or 1.0  # wrk always runs; this only avoids dividing by zero
    server_pct = None
    if server_before is not None and server_after is not None:
        server_pct = 100 * (server_after - server_before) / seconds
    return Measurement(
        mode=mode,
        target=target.name,
        batch_size=load.batch_size,
        connections=load.connections,
        result=result,
        server_cpu_pct=server_pct,
        client_cpu_pct=100 * result.client_cpu_s / seconds,
        machine_cpu_pct=100 * (machine_after - machine_before) / seconds,
    )


def report_phase(m: Measurement, bare: Measurement | None) -> None:
    print(f"  {m.target:<6} {m.mode:<6} {phase_line(m, bare)}", flush=True)
    for problem in problems(m.result):
        print(f"    !! {problem}", flush=True)


def setup_lines(args: argparse.Namespace, measured: list[Measurement]) -> list[str]:
    connections = ", ".join(f"{m.mode} {m.connections}" for m in measured if m.target == "ingest")
    return [
        f"Measured with `python -m bench.ingest`: {args.duration} s per phase after {args.warmup} s "
        f"warm-up, wrk with {args.threads} thread(s), connections: {connections}; "
        f"pool of {args.customers:,} customers.",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        + (
            "one ingest process."
            if args.no_bare
            else "one ingest process and one bare uvicorn process (uvloop, httptools), same broker, acks=all."
        ),
        "Issue targets for one ingest process on 2 cores: >= 2,500 events/s single, >= 25,000 batched.",
    ]


WORKERS_READY_S = 180


@contextmanager
def workers_paused() -> Iterator[None]:
    """Stop the local stack's running workers (they would consume what the bench posts, on the
    same two cores), and start them again afterwards; they catch up from their committed offsets."""
    supervisor = Supervisor(Layout.of_repo())
    if supervisor.daemon() is None:
        fail("--pause-workers needs the local stack (`make up`); its supervisor is not running.")
    workers = [n for n, p in supervisor.programs().items() if n.endswith("-worker") and p.state == "RUNNING"]
    print(f"pausing {', '.join(workers) or 'no running workers'} while measuring", flush=True)
    for name in workers:
        supervisor.stop(name)
    try:
        yield
    finally:
        for name in workers:
            supervisor.start(name)
        print(f"started {', '.join(workers)} again; waiting for them to be ready ...", flush=True)

        # The next bench (make bench's console bench) needs them answering.
        def all_ready() -> None:
            waiting = [name for name, url in PIPELINE_WORKERS.items() if not ready(url)]
            assert not waiting, f"not ready after {WORKERS_READY_S} s: {', '.join(waiting)}"

        try:
            eventually(all_ready, timeout=WORKERS_READY_S, interval=0.5)
            print("workers ready", flush=True)
        except AssertionError as not_ready:
            print(not_ready, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    binary = preflight(args)
    pool = Pool(args.customers)
    ingest = Target("ingest", args.url, cpu.metrics_probe(args.url))
    measured: list[Measurement] = []
    with ExitStack() as stack:
        if args.pause_workers:
            stack.enter_context(workers_paused())
        if not args.no_seed:
            seed(args, binary, pool)
        bare: Target | None = None
        if not args.no_bare:
            print(f"starting the bare endpoint against {args.bootstrap} ...", flush=True)
            server = stack.enter_context(bare_server(args.bootstrap, args.bare_topic, args.bare_partitions))
            bare = Target("bare", server.url, cpu.pid_probe(server.pid))
        for mode in args.mode_list:
            print(f"\n== {mode}: POST {PATHS[mode]} ==", flush=True)
            reference: Measurement | None = None
            if bare is not None:  # measured right before ingest, so both see the same machine load
                reference = measure(args, binary, mode, bare, pool)
                report_phase(reference, None)
                measured.append(reference)
            mine = measure(args, binary, mode, ingest, pool)
            report_phase(mine, reference)
            measured.append(mine)
    print("\n" + markdown(measured, setup_lines(args, measured)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
