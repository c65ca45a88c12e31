"""Whole-pipeline benchmark (a benchmark, not a test: it prints figures, asserts nothing).

Against the local stack on its fixed ports (ingest :8001, scoring/tagging/campaign workers with
/metrics on :9102/:9103/:9104, campaign api :8004, broker :9092) it measures:

(a) throughput: a steady load through ingest's POST /v1/events/batch (default 3,000 events/s
    offered, the issue's target, in batches of 100); over the measuring window, the events/s
    ingest accepted and the touchpoint events/s each worker took (events accepted minus the growth
    of the worker's pd_consumer_lag on the topic it reads events from — touchpoint.events.v1,
    scored.inputs.v1, tagged.inputs.v1 along the chain — a gauge per partition that the worker
    sets at each batch), next to every worker's inputs/s of all its topics
    (pd_events_processed_total) and its lag at both ends. "Sustained" is the slowest of the four:
    the rate every service kept up with. After the window the load stops and the bench times how
    long the workers take to drain, which gives a second figure: every event posted in the phase
    through all three workers, divided by the time from the phase start until drained.
(b) latency at a fixed offered load (default 1,000 events/s): p50/p99 event-to-action from the
    campaign worker's pd_event_to_action_seconds histogram (bucket deltas over the window,
    interpolated inside a bucket as Prometheus' histogram_quantile does), with every worker's
    pd_event_processing_seconds next to it. As a cross-check it consumes campaign.actions.v1 and
    matches each action to the event that triggered it (the action id is a UUID5 of campaign,
    customer and trigger, and the trigger is derived from the event id: see
    services/campaign/decide.py and journey.py), taking action `at` minus the time the bench
    posted that event's batch; `at` is the decision time (the batch start), the histogram's end is
    the emit, and the post precedes ingest's received_at, so this is an approximation.

Traffic: stack/traffic.py's customer journeys (ad click, WeCom friendship, content clicks and
favourites on the person's orientation, configurator, quote, test drive, store visit, order or
defeat), new people with a fresh seed every run, interleaved as a rolling population of journeys
so the mix of funnel steps stays steady over time instead of drifting from arrivals to orders.
A share of journeys (--posts) additionally posts once in the community: the example campaign
`community-post-points` grants points for it, and points (like dealer assignments) are never
deferred by quiet hours (21:00-09:00 China time), when every message action is deferred and the
histogram would otherwise get samples only from dealer assignments, which stop once the demo
roster's daily capacity (12 consultants x 20 leads) is used up (later leads wait in the lead pool).

Load generator: httpx.AsyncClient (installed) and an asyncio token bucket: no rate limiter
library (aiolimiter, pyrate-limiter) is installed, wrk (bench/ingest.py) cannot read the answers
the cross-check needs (which customer each event went to), and at ~10-40 batch requests a second
the Python client costs little. Batches are generated and encoded before each phase so the
client spends its CPU on sending only; its CPU is printed.

The stack: if ingest's /readyz does not answer, the bench starts the stack (`pd-stack up`), says
so, and stops it at the end (`pd-stack down`); a stack it did not start is left running. It loads
the example campaigns (POST /v1/campaigns/examples, a no-op for those already there) and the demo's
dealer roster (stack/demo_roster.json, as `pd-roster load` would).

Usage (from the repository root):
    .venv/bin/python -m bench.pipeline [--window 60] [--warmup 5] [--throughput-rate 3000]
        [--latency-rate 1000] [--phases throughput,latency] [--seed N]
Every event goes into that stack and stays there (new customers every run).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import resource
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file (python bench/pipeline.py): make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from bench import cpu
from services.campaign.decide import action_id
from services.campaign.roster_cli import load_roster
from services.campaign.targeting import CHINA, QuietHours
from shared.topics import CAMPAIGN_ACTIONS, SCORED_INPUTS, TAGGED_INPUTS, TOUCHPOINT_EVENTS
from stack.demo import demo_roster
from stack.layout import Layout
from stack.processes import BOOTSTRAP_SERVERS, OPS_TOKEN, REDIS_PORT, TOUCHPOINT_KEY
from stack.supervisor import Supervisor
from stack.traffic import journey as make_journey

HOST = "http://127.0.0.1"
INGEST = f"{HOST}:8001"
CAMPAIGN_API = f"{HOST}:8004"
WORKERS = {"scoring": f"{HOST}:9102", "tagging": f"{HOST}:9103", "campaign": f"{HOST}:9104"}
# Where each worker reads the touchpoint events, along the enrichment chain (docs/causal-order.md),
# and whose output that is: one record per event on each hop.
EVENTS_TOPIC = {"scoring": TOUCHPOINT_EVENTS, "tagging": SCORED_INPUTS, "campaign": TAGGED_INPUTS}
UPSTREAM = {"tagging": "scoring", "campaign": "tagging"}
# The stack's processes besides ingest and the workers (whose CPU their /metrics give), by
# what their command lines hold (stack/processes.py).
REST_OF_STACK = {
    "Tansu": ("tansu",),
    "Redis": (f"redis-server 127.0.0.1:{REDIS_PORT}",),
    "WeCom sender": ("pd-wecom-sender",),
    "fake WeCom API": ("pd-fake-wecom",),
    "ops APIs and console": ("pd-scoring-api", "pd-tagging-api", "pd-campaign-api", "pd-console"),
}
OTHER_READY = {"scoring-api": f"{HOST}:8002", "tagging-api": f"{HOST}:8003", "campaign-api": CAMPAIGN_API}
TARGET_RATE = 3_000  # events/s through all four services (issue 5)
TARGET_P99_S = 1.0  # event to action at 1,000 events/s (issue 5)
POST_SOURCES = ("mini_program", "official_account", "wecom", "video_channel")
E2A = "pd_event_to_action_seconds"
PROC = "pd_event_processing_seconds"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.pipeline",
        description="Throughput and event-to-action latency through the whole local stack.",
    )
    add = parser.add_argument
    add(
        "--phases",
        default="throughput,latency",
        help="comma-separated: throughput, latency (default %(default)s)",
    )
    add("--window", type=float, default=60, help="measured seconds per phase (default %(default)s)")
    add(
        "--warmup",
        type=float,
        default=5,
        help="loaded, unmeasured seconds before each window (default %(default)s)",
    )
    add(
        "--throughput-rate",
        type=float,
        default=TARGET_RATE,
        help="events/s offered in the throughput phase; 0 = as fast as ingest answers (default %(default)s)",
    )
    add(
        "--latency-rate",
        type=float,
        default=1_000,
        help="events/s offered in the latency phase (default %(default)s)",
    )
    add("--batch-size", type=int, default=100, help="events per batch request (default %(default)s)")
    add("--in-flight", type=int, default=8, help="batch requests in flight at most (default %(default)s)")
    add(
        "--posts",
        type=float,
        default=0.25,
        help="share of journeys that also post in the community (points go out at any hour) "
        "(default %(default)s)",
    )
    add("--journeys", type=int, default=600, help="journeys interleaved at a time (default %(default)s)")
    add("--seed", type=int, help="traffic seed (default: a fresh one, so every run brings new customers)")
    add(
        "--drain-timeout",
        type=float,
        default=180,
        help="seconds to wait for the workers to drain (default %(default)s)",
    )
    add("--poll", type=float, default=1.0, help="seconds between /metrics scrapes (default %(default)s)")
    add("--progress", type=float, default=5.0, help="seconds between progress lines (default %(default)s)")
    add("--api-key", default=TOUCHPOINT_KEY)
    add("--ops-token", default=OPS_TOKEN)
    add("--bootstrap", default=BOOTSTRAP_SERVERS, help="broker, for the campaign.actions.v1 cross-check")
    args = parser.parse_args(argv)
    args.phase_list = [p.strip() for p in args.phases.split(",") if p.strip()]
    if unknown := set(args.phase_list) - {"throughput", "latency"}:
        parser.error(f"unknown phase(s): {', '.join(sorted(unknown))}")
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(10**9)
    return args


def say(message: str = "") -> None:
    print(message, flush=True)


# -- the stack ------------------------------------------------------------------------------------


def ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=3) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def pd_stack(command: str) -> int:
    return subprocess.call([str(Layout.venv_bin() / "pd-stack"), command])


def ensure_stack() -> bool:
    """True when this bench started the stack (and so must stop it)."""
    if ready(INGEST):
        missing = [name for name, url in {**WORKERS, **OTHER_READY}.items() if not ready(url)]
        if missing:
            raise SystemExit(
                f"ingest is up but not ready: {', '.join(missing)}; fix the stack (pd-stack status)"
            )
        say("stack: already running (ingest /readyz answers); it is left running afterwards")
        return False
    if Supervisor(Layout.of_repo()).daemon() is not None:
        raise SystemExit(
            "ingest /readyz does not answer but the stack's supervisord runs: a stack this bench did not "
            "start is half up; see `pd-stack status` (the bench does not start or stop it)"
        )
    say("stack: ingest /readyz does not answer: starting the stack (pd-stack up); stopped again at the end")
    if pd_stack("up") != 0:
        pd_stack("down")  # whatever `up` left behind is ours
        raise SystemExit("pd-stack up failed")
    return True


def load_examples(args: argparse.Namespace) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {args.ops_token}"}
    answer = httpx.post(f"{CAMPAIGN_API}/v1/campaigns/examples", headers=headers, timeout=10)
    answer.raise_for_status()
    with httpx.Client(base_url=CAMPAIGN_API, headers=headers, timeout=10) as api:
        load_roster(api, demo_roster(), progress=False)
    body = answer.json()
    active = [c for c in body["campaigns"] if c.get("status", "active") == "active"]
    say(f"campaigns: version {body['version']}, {len(body['campaigns'])} defined, {len(active)} active")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the worker applies a new version within seconds
        version = gauge(scrape_text(WORKERS["campaign"]), "pd_campaigns_version")
        if version is not None and version >= body["version"]:
            break
        time.sleep(1)
    else:
        say(f"  !! the campaign worker did not apply version {body['version']} within 30 s")
    return list(body["campaigns"])


def quiet_hours_note() -> tuple[bool, str]:
    quiet = QuietHours()  # the campaign worker's defaults (CAMPAIGN_QUIET_HOURS_* may change them)
    now = datetime.now(CHINA)
    span = f"{quiet.start:%H:%M}-{quiet.end:%H:%M} China time"
    if quiet.contains(now):
        return True, (
            f"now {now:%H:%M} China time is inside quiet hours ({span}): message actions (send_content, "
            "invite_group) are deferred to their end and not observed; the latency figures come from dealer "
            "assignments and points only"
        )
    return False, f"now {now:%H:%M} China time is outside quiet hours ({span}): every action kind is sent"


# -- metrics --------------------------------------------------------------------------------------


def scrape_text(url: str) -> str:
    try:
        with urllib.request.urlopen(f"{url}/metrics", timeout=5) as answer:
            return str(answer.read().decode())
    except (urllib.error.URLError, OSError):
        return ""


def gauge(text: str, name: str) -> float | None:
    found = re.search(rf"^{name} ([0-9.eE+-]+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else None


@dataclass
class Snap:
    """One service's /metrics at one moment (what the bench reads of it)."""

    at: float = 0.0  # monotonic
    ok: bool = False
    inputs: float = 0.0  # pd_events_processed_total, all outcomes
    outcomes: dict[str, float] = field(default_factory=dict)
    lag: dict[str, float] = field(default_factory=dict)  # topic -> summed over partitions
    cpu_s: float | None = None
    batches: float = 0.0  # pd_worker_batch_seconds_count
    hist: dict[str, dict[float, float]] = field(default_factory=dict)  # name -> le -> cumulative count
    actions: dict[tuple[str, str, str], float] = field(default_factory=dict)

    def events_lag(self, worker: str) -> float:
        """Lag on the topic the worker reads touchpoint events from (its chain input)."""
        return self.lag.get(EVENTS_TOPIC[worker], 0.0)

    @property
    def all_lag(self) -> float:
        return sum(self.lag.values())


def parse_snap(text: str, at: float) -> Snap:
    snap = Snap(at=at, ok=bool(text))
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "pd_events_processed_total":
                snap.outcomes[s.labels["outcome"]] = s.value
            elif s.name == "pd_consumer_lag":
                snap.lag[s.labels["topic"]] = snap.lag.get(s.labels["topic"], 0.0) + s.value
            elif s.name == "process_cpu_seconds_total":
                snap.cpu_s = s.value
            elif s.name == "pd_worker_batch_seconds_count":
                snap.batches = s.value
            elif s.name in (f"{E2A}_bucket", f"{PROC}_bucket"):
                le = float(s.labels["le"])
                snap.hist.setdefault(s.name.removesuffix("_bucket"), {})[le] = s.value
            elif s.name == "pd_campaign_actions_total":
                snap.actions[(s.labels["campaign"], s.labels["kind"], s.labels["outcome"])] = s.value
    snap.inputs = sum(snap.outcomes.values())
    return snap


async def scrape_all(client: httpx.AsyncClient) -> dict[str, Snap]:
    urls = {"ingest": INGEST, **WORKERS}

    async def one(url: str) -> str:
        try:
            return (await client.get(f"{url}/metrics", timeout=5)).text
        except httpx.HTTPError:
            return ""

    texts = await asyncio.gather(*(one(url) for url in urls.values()))
    now = time.monotonic()
    return {name: parse_snap(text, now) for name, text in zip(urls, texts, strict=True)}


def hist_delta(before: Snap, after: Snap, name: str) -> list[tuple[float, float]]:
    """Cumulative (le, count) of the observations between two snapshots, ascending le."""
    a, b = after.hist.get(name, {}), before.hist.get(name, {})
    return [(le, a[le] - b.get(le, 0.0)) for le in sorted(a)]


Quantile = tuple[float, bool, float, float]  # value, beyond the last bound, its bucket's bounds


def quantile(buckets: list[tuple[float, float]], q: float) -> Quantile | None:
    """histogram_quantile: linear inside the bucket; beyond=True when it lies past the last bound."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if le == float("inf"):
                return lower, True, lower, le
            if count == below:
                return le, False, lower, le
            return lower + (le - lower) * (rank - below) / (count - below), False, lower, le
        lower, below = le, count
    return lower, True, lower, float("inf")


def seconds_text(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms" if seconds < 10 else f"{seconds:,.1f} s"


def fmt_q(value: Quantile | None) -> str:
    """The interpolated value and the bucket it lies in (interpolation inside a wide bucket is coarse)."""
    if value is None:
        return "n/a (no samples)"
    seconds, beyond, lower, upper = value
    if beyond:
        return f"> {seconds_text(seconds)}"
    return f"{seconds_text(seconds)} (in {seconds_text(lower)}-{seconds_text(upper)})"


# -- traffic --------------------------------------------------------------------------------------


@dataclass
class Batch:
    body: bytes
    size: int


class Traffic:
    """Journeys of new people, interleaved: `live` journeys at a time, a finished one replaced by a new
    one, each step taken from a random live journey (every journey keeps its own order)."""

    def __init__(self, seed: int, live: int, posts: float) -> None:
        self._rng = random.Random(seed)
        self._posts = posts
        self._next = 0
        self._live: list[list[dict[str, Any]]] = [self._new() for _ in range(live)]

    def _new(self) -> list[dict[str, Any]]:
        rng = self._rng
        events = make_journey(rng, self._next, datetime.now(CHINA)).events
        self._next += 1
        if rng.random() < self._posts:  # a fan posts in the community, from a WeChat channel of theirs
            places = [i for i, e in enumerate(events) if e["source"] in POST_SOURCES]
            if places:
                i = rng.choice(places[len(places) // 2 :])
                base = events[i]
                post = {
                    "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                    "type": "community.post",
                    "source": base["source"],
                    "occurred_at": base["occurred_at"],
                    "identities": dict(base["identities"]),
                    "properties": {"topic": "roadtrip"},
                    "schema_version": 1,
                }
                events.insert(i + 1, post)
        events.reverse()  # pop() from the end
        return events

    def events(self, count: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        live, rng = self._live, self._rng
        while len(out) < count:
            k = rng.randrange(len(live))
            out.append(live[k].pop())
            if not live[k]:
                live[k] = self._new()
        return out

    def batches(self, events: int, size: int) -> list[Batch]:
        return [
            Batch(orjson.dumps({"events": self.events(size)}), size)
            for _ in range(max(1, -(-events // size)))
        ]


# -- load -----------------------------------------------------------------------------------------


@dataclass
class Tally:
    requests: int = 0
    posted: int = 0
    accepted: int = 0  # new, published
    duplicates: int = 0
    rejected: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    samples: dict[int, str] = field(default_factory=dict)
    request_s: list[float] = field(default_factory=list)
    # for the cross-check: customer -> [(event_id, wall time the batch was posted)]
    posts: dict[str, list[tuple[str, float]]] | None = None


class Load:
    """Posts batches at `rate` events/s (None: as fast as answered), at most `in_flight` at a time."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        batches: list[Batch],
        traffic: Traffic,
        args: argparse.Namespace,
        tally: Tally,
    ) -> None:
        self._client = client
        self._batches = iter(batches)
        self._traffic = traffic
        self._args = args
        self.tally = tally
        self._slots = asyncio.Semaphore(args.in_flight)
        self._tasks: set[asyncio.Task[None]] = set()
        self.topped_up = 0  # batches generated during the load because the prepared ones ran out
        self.stopped = asyncio.Event()

    def _batch(self) -> Batch:
        try:
            return next(self._batches)
        except StopIteration:
            self.topped_up += 1
            return self._traffic.batches(self._args.batch_size, self._args.batch_size)[0]

    async def run(self, rate: float | None) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
        while not self.stopped.is_set():
            now = loop.time()
            if rate:
                if due > now:
                    try:  # sleep until due, but wake on stop
                        await asyncio.wait_for(self.stopped.wait(), due - now)
                        break
                    except TimeoutError:
                        pass
                due = max(due, loop.time() - 1.0)  # bucket depth: catch up at most 1 s of debt
            await self._slots.acquire()
            if self.stopped.is_set():
                self._slots.release()
                break
            batch = self._batch()
            due += batch.size / rate if rate else 0
            task = asyncio.create_task(self._post(batch))
            self._tasks.add(task)
            task.add_done_callback(self._done)
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._slots.release()

    async def _post(self, batch: Batch) -> None:
        t = self.tally
        wall, started = time.time(), time.perf_counter()
        try:
            answer = await self._client.post("/v1/events/batch", content=batch.body)
        except httpx.HTTPError as error:
            t.errors[type(error).__name__] += 1
            return
        t.request_s.append(time.perf_counter() - started)
        t.requests += 1
        t.posted += batch.size
        t.statuses[answer.status_code] += 1
        if answer.status_code != 202:
            t.samples.setdefault(answer.status_code, answer.text[:200])
            return
        body = orjson.loads(answer.content)
        t.rejected += len(body.get("rejected", ()))
        for result in body["results"]:
            if result["duplicate"]:
                t.duplicates += 1
            else:
                t.accepted += 1
                if t.posts is not None:
                    t.posts[result["customer_id"]].append((result["event_id"], wall))


# -- phases ---------------------------------------------------------------------------------------


@dataclass
class Window:
    before: dict[str, Snap]
    after: dict[str, Snap]
    accepted: int  # by ingest within the window (new events)
    posted: int
    seconds: float
    cpu_machine_s: float
    cpu_self_s: float
    cpu_rest_s: dict[str, float]  # the stack's other processes (REST_OF_STACK)
    load: tuple[float, float]  # load average (1 min) at start and end
    wall_start: float  # time.time() at the window's start

    def worker_rate(self, name: str) -> float:
        """Touchpoint events/s the worker took: what reached its chain input (ingest's accepted
        events, or the worker before it along the chain) minus its lag's growth."""
        grown = self.after[name].events_lag(name) - self.before[name].events_lag(name)
        upstream = UPSTREAM.get(name)
        arrived = self.accepted if upstream is None else self.worker_rate(upstream) * self.seconds
        return (arrived - grown) / self.seconds

    def inputs_rate(self, name: str) -> float:
        return (self.after[name].inputs - self.before[name].inputs) / self.seconds

    def cpu_pct(self, name: str) -> str:
        a, b = self.after[name].cpu_s, self.before[name].cpu_s
        return "n/a" if a is None or b is None else f"{100 * (a - b) / self.seconds:.0f} %"

    def cost(self, name: str) -> str:
        """A worker's CPU per input taken and inputs per batch over the window."""
        a, b = self.after[name], self.before[name]
        inputs, batches = a.inputs - b.inputs, a.batches - b.batches
        if a.cpu_s is None or b.cpu_s is None or not inputs or not batches:
            return f"{name} n/a"
        return (
            f"{name} {self.cpu_pct(name)} of a core, {1e6 * (a.cpu_s - b.cpu_s) / inputs:,.0f} µs "
            f"an input, {inputs / batches:,.0f} inputs a batch"
        )


def cost_line(w: Window) -> str:
    return "Workers over the window: " + "; ".join(w.cost(name) for name in WORKERS) + "."


def cpu_line(w: Window) -> str:
    rest = ", ".join(f"{name} {100 * s / w.seconds:.0f} %" for name, s in w.cpu_rest_s.items())
    return (
        f"CPU over the window: machine {100 * w.cpu_machine_s / w.seconds:.0f} % "
        f"(of {100 * (os.cpu_count() or 1)} %), this bench {100 * w.cpu_self_s / w.seconds:.0f} %; "
        f"the rest of the stack: {rest}; "
        f"load average (1 min) {w.load[0]:.2f} -> {w.load[1]:.2f}."
    )


def self_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def idle(snaps: dict[str, Snap], previous: dict[str, Snap] | None) -> bool:
    """Every worker caught up on its inputs (lags 0) and scoring/tagging took nothing since the last poll."""
    if any(not snaps[w].ok for w in WORKERS):
        return False
    if any(snaps[w].all_lag > 0 for w in WORKERS):
        return False
    if previous is None:
        return False
    return all(snaps[w].inputs == previous[w].inputs for w in ("scoring", "tagging"))


async def wait_idle(client: httpx.AsyncClient, args: argparse.Namespace, label: str) -> float | None:
    """Seconds until the workers are drained; None on timeout (says what is left)."""
    started = time.monotonic()
    previous: dict[str, Snap] | None = None
    shown = started
    while True:
        snaps = await scrape_all(client)
        now = time.monotonic()
        if idle(snaps, previous):
            return now - started
        if now - started > args.drain_timeout:
            lags = ", ".join(f"{w} {snaps[w].all_lag:,.0f}" for w in WORKERS)
            say(f"  !! {label}: not drained after {args.drain_timeout:.0f} s; lag left: {lags}")
            return None
        if now - shown >= args.progress:
            lags = ", ".join(f"{w} {snaps[w].events_lag(w):,.0f}/{snaps[w].all_lag:,.0f}" for w in WORKERS)
            say(f"    {label}: {now - started:5.0f} s, lag events/all inputs: {lags}")
            shown = now
        previous = snaps
        await asyncio.sleep(args.poll)


async def loaded_window(
    client: httpx.AsyncClient, load: Load, rate: float | None, args: argparse.Namespace, label: str
) -> Window:
    """Run the load through warm-up and window, printing progress; the load keeps running after."""
    loop = asyncio.get_running_loop()
    runner = asyncio.create_task(load.run(rate))
    t = load.tally
    started = loop.time()
    say(f"  {label}: warm-up {args.warmup:.0f} s, then {args.window:.0f} s measured")
    await asyncio.sleep(args.warmup)
    before = await scrape_all(client)
    accepted0, posted0, machine0, self0 = t.accepted, t.posted, cpu.machine_busy_s(), self_cpu_s()
    rest0 = cpu.processes_cpu_s(REST_OF_STACK)
    load0, wall_start = os.getloadavg()[0], time.time()
    last, last_accepted = before, accepted0
    end = before["ingest"].at + args.window
    while True:
        await asyncio.sleep(min(args.progress, max(end - time.monotonic(), 0.05)))
        snaps = await scrape_all(client)
        dt = snaps["ingest"].at - last["ingest"].at
        if dt > 0:
            parts = [f"ingest {(t.accepted - last_accepted) / dt:6,.0f}/s"]
            for w in WORKERS:
                parts.append(
                    f"{w} {(snaps[w].inputs - last[w].inputs) / dt:6,.0f} in/s "
                    f"lag {snaps[w].events_lag(w):6,.0f}"
                )
            say(f"    {loop.time() - started:5.0f} s  " + " | ".join(parts))
        last, last_accepted = snaps, t.accepted
        if snaps["ingest"].at >= end:
            break
    after = last
    if runner.done():
        runner.result()  # surface a crash of the sender
    load.runner = runner  # type: ignore[attr-defined]
    return Window(
        before,
        after,
        t.accepted - accepted0,
        t.posted - posted0,
        after["ingest"].at - before["ingest"].at,
        cpu.machine_busy_s() - machine0,
        self_cpu_s() - self0,
        {name: s - rest0[name] for name, s in cpu.processes_cpu_s(REST_OF_STACK).items()},
        (load0, os.getloadavg()[0]),
        wall_start,
    )


async def stop(load: Load) -> None:
    load.stopped.set()
    await load.runner  # type: ignore[attr-defined]


def problems(t: Tally, load: Load) -> list[str]:
    found = [
        f"{n} x HTTP {code}: {t.samples.get(code, '')}"
        for code, n in sorted(t.statuses.items())
        if code != 202
    ]
    found += [f"{n} x {name}" for name, n in t.errors.items()]
    if t.duplicates:
        found.append(f"{t.duplicates:,} events answered as duplicates although every id was fresh")
    if t.rejected:
        found.append(f"{t.rejected:,} events rejected inside 202 answers")
    if load.topped_up:
        found.append(f"{load.topped_up} batches generated during the load (prepared ones ran out)")
    return found


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def throughput(client: httpx.AsyncClient, traffic: Traffic, args: argparse.Namespace) -> list[str]:
    rate = args.throughput_rate or None
    say(
        "\n== throughput: "
        + ("as fast as ingest answers" if rate is None else f"{rate:,.0f} events/s offered")
        + " =="
    )
    drained = await wait_idle(client, args, "waiting for idle workers")
    if drained is None:
        say("  !! starting with a backlog: the figures include it")
    prepared = (rate or 12_000) * (args.warmup + args.window + 2)
    started = time.monotonic()
    load = Load(client, traffic.batches(int(prepared), args.batch_size), traffic, args, Tally())
    say(f"  prepared {prepared:,.0f} events in {time.monotonic() - started:.1f} s (seed {args.seed})")
    phase_start = time.monotonic()
    w = await loaded_window(client, load, rate, args, "throughput")
    await stop(load)
    stopped_at = time.monotonic()
    total = load.tally.accepted
    say(f"  load stopped after {total:,} events accepted; waiting for the workers to drain ...")
    drain = await wait_idle(client, args, "drain")
    ingest_rate = w.accepted / w.seconds
    rates = {"ingest": ingest_rate} | {name: w.worker_rate(name) for name in WORKERS}
    slowest = min(rates, key=lambda k: rates[k])
    t = load.tally
    lines = [
        f"## Throughput ({'unthrottled' if rate is None else f'{rate:,.0f} events/s offered'}, "
        f"batches of {args.batch_size}, {args.window:.0f} s window after {args.warmup:.0f} s warm-up)",
        "",
        "| service | touchpoint events/s | all inputs/s (pd_events_processed_total) "
        "| events lag start -> end "
        "| all-input lag end | CPU (% of a core) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        f"| ingest (accepted) | {ingest_rate:,.0f} | | | | {w.cpu_pct('ingest')} |",
    ]
    for name in WORKERS:
        b, a = w.before[name], w.after[name]
        lines.append(
            f"| {name} worker | {rates[name]:,.0f} | {w.inputs_rate(name):,.0f} "
            f"| {b.events_lag(name):,.0f} -> {a.events_lag(name):,.0f} "
            f"| {a.all_lag:,.0f} | {w.cpu_pct(name)} |"
        )
    sustained = rates[slowest]
    lines += [
        "",
        f"Sustained through all four services: {sustained:,.0f} events/s (slowest: {slowest}); "
        f"target >= {TARGET_RATE:,} ({sustained / TARGET_RATE:.2f} of it).",
    ]
    if rate is not None and sustained >= 0.97 * rate:
        lines.append(
            f"Every service kept up with the offered {rate:,.0f} events/s, so capacity may be higher: "
            "rerun with a higher --throughput-rate (or 0) to find the limit."
        )
    if drain is not None:
        through = total / (stopped_at + drain - phase_start)
        lines.append(
            f"Drained {drain:.1f} s after the load stopped: all {total:,} events of the phase "
            "through all three "
            f"workers in {stopped_at + drain - phase_start:.1f} s = {through:,.0f} events/s end to end."
        )
    else:
        lines.append(f"!! the workers had not drained {args.drain_timeout:.0f} s after the load stopped.")
    req = t.request_s
    lines += [
        f"Ingest batch requests: {t.requests:,}, p50 {1000 * percentile(req, 0.5):.0f} ms, "
        f"p99 {1000 * percentile(req, 0.99):.0f} ms; "
        f"offered {w.posted / w.seconds:,.0f} events/s in the window."
        if req
        else "Ingest batch requests: none answered.",
        cost_line(w),
        cpu_line(w),
    ]
    lines += [f"!! {p}" for p in problems(t, load)]
    return lines


async def consume_actions(
    bootstrap: str, into: list[tuple[dict[str, Any], float]], ready_flag: asyncio.Event
) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(CAMPAIGN_ACTIONS) or set()
        if not parts:
            await consumer.force_metadata_update()  # type: ignore[no-untyped-call]
            parts = consumer.partitions_for_topic(CAMPAIGN_ACTIONS) or set()
        consumer.assign([TopicPartition(CAMPAIGN_ACTIONS, p) for p in sorted(parts)])
        await consumer.seek_to_end()
        ready_flag.set()
        while True:
            batches = await consumer.getmany(timeout_ms=500)
            now = time.time()
            for records in batches.values():
                into.extend((orjson.loads(r.value), now) for r in records if r.value)
    finally:
        await consumer.stop()


def trigger_of(campaign: dict[str, Any], event_id: str) -> str | None:
    on, value = campaign["trigger"]["on"], campaign["trigger"]["value"]
    return {
        "band_entered": f"score:{event_id}",
        "layer_entered": f"profile:{event_id}",
        "tag_added": f"profile:{event_id}:{value}",
        "event": event_id,
    }.get(on)


def cross_check(
    actions: list[tuple[dict[str, Any], float]],
    posts: dict[str, list[tuple[str, float]]],
    campaigns: dict[str, dict[str, Any]],
    window: tuple[float, float],
) -> list[str]:
    latencies: list[float] = []
    unmatched = outside = 0
    by_campaign: Counter[str] = Counter()
    for action, _seen in actions:
        campaign = campaigns.get(action["campaign_id"])
        customer = action["customer_id"]
        found = None
        if campaign is not None:
            for event_id, posted in posts.get(customer, ()):
                trigger = trigger_of(campaign, event_id)
                if trigger and action_id(campaign["id"], customer, trigger) == action["action_id"]:
                    found = posted
                    break
        if found is None:
            unmatched += 1
            continue
        if not window[0] <= found < window[1]:
            outside += 1
            continue
        at = datetime.fromisoformat(action["at"]).timestamp()
        latencies.append(at - found)
        by_campaign[action["campaign_id"]] += 1
    line = f"Cross-check from {CAMPAIGN_ACTIONS}: {len(actions):,} actions read"
    if not latencies:
        return [line + f"; none matched to an event posted in the window ({unmatched:,} unmatched)."]
    kinds = ", ".join(f"{c} {n:,}" for c, n in by_campaign.most_common())
    return [
        line + f", {len(latencies):,} matched to an event posted in the window ({kinds}); "
        f"{unmatched:,} unmatched (older triggers, merged customers, ticks), "
        f"{outside:,} from events outside it.",
        f"  action `at` minus batch post time: p50 {1000 * percentile(latencies, 0.5):,.0f} ms, "
        f"p99 {1000 * percentile(latencies, 0.99):,.0f} ms, max {1000 * max(latencies):,.0f} ms.",
    ]


async def latency(
    client: httpx.AsyncClient, traffic: Traffic, args: argparse.Namespace, campaigns: list[dict[str, Any]]
) -> list[str]:
    rate = args.latency_rate
    say(f"\n== latency: {rate:,.0f} events/s offered ==")
    is_quiet, note = quiet_hours_note()
    say(f"  {note}")
    drained = await wait_idle(client, args, "waiting for idle workers")
    if drained is None:
        say("  !! starting with a backlog: latencies include it")
    prepared = rate * (args.warmup + args.window + 2)
    load = Load(
        client, traffic.batches(int(prepared), args.batch_size), traffic, args, Tally(posts=defaultdict(list))
    )
    actions: list[tuple[dict[str, Any], float]] = []
    consumer_ready = asyncio.Event()
    consumer = asyncio.create_task(consume_actions(args.bootstrap, actions, consumer_ready))
    await asyncio.wait_for(consumer_ready.wait(), 30)
    w = await loaded_window(client, load, rate, args, "latency")
    wall_start, wall_end = w.wall_start, time.time()
    await stop(load)
    await asyncio.sleep(5)  # actions for the window's last events
    consumer.cancel()
    await asyncio.gather(consumer, return_exceptions=True)

    e2a = hist_delta(w.before["campaign"], w.after["campaign"], E2A)
    samples = e2a[-1][1] if e2a else 0
    p50, p99 = quantile(e2a, 0.5), quantile(e2a, 0.99)
    lines = [
        f"## Latency at {rate:,.0f} events/s offered "
        f"({args.window:.0f} s window after {args.warmup:.0f} s warm-up)",
        "",
        f"Offered {w.posted / w.seconds:,.0f} events/s, accepted {w.accepted / w.seconds:,.0f}/s; "
        f"workers' touchpoint events/s: "
        + ", ".join(f"{n} {w.worker_rate(n):,.0f}" for n in WORKERS)
        + "; lag at the end: "
        + ", ".join(f"{n} {w.after[n].all_lag:,.0f}" for n in WORKERS)
        + ".",
        "",
        "| figure | p50 | p99 | samples |",
        "| --- | ---: | ---: | ---: |",
        f"| event to action (campaign, {E2A}) | {fmt_q(p50)} | {fmt_q(p99)} | {samples:,.0f} |",
    ]
    for name in WORKERS:
        proc = hist_delta(w.before[name], w.after[name], PROC)
        n = proc[-1][1] if proc else 0
        if not n and name == "campaign":
            continue  # the campaign worker does not observe it (its figure is the one above)
        lines.append(
            f"| received_at to effect written, {name} ({PROC}) | {fmt_q(quantile(proc, 0.5))} | "
            f"{fmt_q(quantile(proc, 0.99))} | {n:,.0f} |"
        )
    if p99 is not None:
        verdict = "met" if p99[3] <= TARGET_P99_S else "NOT met" if p99[2] >= TARGET_P99_S else "unclear"
        lines += ["", f"Target p99 event to action <= {TARGET_P99_S:.0f} s at 1,000 events/s: {verdict}."]
    else:
        lines += ["", "!! no event-to-action samples in the window: no latency figure."]
    decided: Counter[str] = Counter()
    for key, value in w.after["campaign"].actions.items():
        delta = value - w.before["campaign"].actions.get(key, 0.0)
        if delta:
            decided[f"{key[0]}/{key[2]}"] += int(delta)
    lines += [
        "",
        f"Quiet hours: {note}.",
        f"The histogram {'got' if samples else 'got NO'} samples in the window ({samples:,.0f}). "
        "Campaign decisions in the window (campaign/outcome): "
        + (", ".join(f"{k} {n:,}" for k, n in sorted(decided.items())) or "none")
        + ".",
    ]
    if is_quiet and not any(k.endswith("/sent") for k in decided):
        lines.append("!! nothing was sent: in quiet hours only assignments and points are; see --posts.")
    pool = re.search(
        r'^pd_campaign_leads\{state="pool"\} (\S+)$', scrape_text(WORKERS["campaign"]), re.MULTILINE
    )
    if pool and float(pool.group(1)) > 0:
        lines.append(
            f"{float(pool.group(1)):,.0f} dealer leads wait in the lead pool: the demo roster's daily "
            "capacity is used up (it resets at midnight China time), so assignments no longer give samples."
        )
    campaigns_by_id = {c["id"]: c for c in campaigns}
    lines += cross_check(actions, load.tally.posts or {}, campaigns_by_id, (wall_start, wall_end))
    lines += [cost_line(w), cpu_line(w)]
    lines += [f"!! {p}" for p in problems(load.tally, load)]
    return lines


# -- logs -----------------------------------------------------------------------------------------


def log_sizes(logs: Path) -> dict[Path, int]:
    return {p: p.stat().st_size for p in sorted(logs.glob("*.log")) if not p.name.endswith(".previous.log")}


_LEVEL = re.compile(r'"level":\s*"(warning|error|critical)"', re.IGNORECASE)
_MSG = re.compile(r'"msg":\s*"((?:[^"\\]|\\.){0,160})')


def log_problems(before: dict[Path, int], logs: Path) -> list[str]:
    """Warnings and errors the stack's logs got during the run, per file, with the commonest messages."""
    lines = []
    for path, size in log_sizes(logs).items():
        start = before.get(path, 0)
        if size <= start:
            continue
        with path.open("rb") as f:
            f.seek(start)
            new = f.read().decode(errors="replace").splitlines()
        hits = Counter()
        for line in new:
            level = _LEVEL.search(line)
            if level or "Traceback" in line:
                msg = _MSG.search(line)
                hits[
                    (level.group(1).lower() if level else "traceback", msg.group(1) if msg else line[:160])
                ] += 1
        if hits:
            total = sum(hits.values())
            top = "; ".join(f"{n} x {lvl}: {msg}" for (lvl, msg), n in hits.most_common(3))
            lines.append(f"  {path.name}: {total} warning/error lines ({top})")
    return lines


# -- main -----------------------------------------------------------------------------------------


async def run_phases(args: argparse.Namespace, campaigns: list[dict[str, Any]]) -> list[str]:
    headers = {"X-Api-Key": args.api_key, "Content-Type": "application/json"}
    limits = httpx.Limits(max_connections=args.in_flight + 4, max_keepalive_connections=args.in_flight + 4)
    traffic = Traffic(args.seed, args.journeys, args.posts)
    report: list[str] = []
    async with httpx.AsyncClient(base_url=INGEST, headers=headers, limits=limits, timeout=30) as client:
        if "throughput" in args.phase_list:
            report += [*await throughput(client, traffic, args), ""]
        if "latency" in args.phase_list:
            report += await latency(client, traffic, args, campaigns)
    return report


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a killed bench still stops a stack it started
    say(f"load average {os.getloadavg()[0]:.2f} (1 min), {os.cpu_count()} cores; seed {args.seed}")
    started_stack = False
    try:
        started_stack = ensure_stack()
        logs = Layout.of_repo().logs_dir
        sizes = log_sizes(logs)
        campaigns = load_examples(args)
        began = datetime.now(UTC)
        report = asyncio.run(run_phases(args, campaigns))
        say("\n" + "\n".join(report))
        found = log_problems(sizes, logs)
        say(
            f"\nStack logs ({logs}) since {began:%H:%M:%S} UTC: "
            + ("no warnings or errors" if not found else "")
        )
        for line in found:
            say(line)
        say(
            f"Machine: {os.cpu_count()} cores, the whole stack (Tansu, Redis, ingest, three workers, "
            "three APIs) "
            f"and this bench on it; load average now {os.getloadavg()[0]:.2f}. Traffic seed {args.seed}, "
            f"{args.posts:.0%} of journeys with a community post."
        )
    except KeyboardInterrupt:
        say("\ninterrupted")
        return 130
    finally:
        if started_stack:
            say("stopping the stack this bench started (pd-stack down)")
            pd_stack("down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
