"""`make chaos` / `pd-stack chaos`: the fault suite (docs/runbooks/, issue 19).

On a local stack of its own whose Redis keeps its append-only file, a steady load goes through
ingest while faults come one after another: Redis restarted, each worker and ingest killed
(SIGKILL; supervisord restarts them), the broker stalled for 30 s (SIGSTOP). The in-memory broker
cannot be restarted without losing everything, by design: `--durable-broker` runs the broker
restart alone, on Tansu keeping its records in moto's S3 server. Alone, because Tansu's S3
storage (0.6) misreports a partition's end offset (1 after six single-record batches, where the
memory storage says 6), and a Faust worker restarted on it restores its tables only up to that
wrong end and stalls: the worker kills belong to the in-memory run. (s3rver, the durable mode's
file store, answers Tansu's listings with 500s under this load; moto does not.)

Each fault has a cohort of customers of its own, whose
events are posted only during its phase, so that every figure belongs to one fault.

The load is a touchpoint that retries what ingest did not accept (503, or no answer) until it is
accepted, as touchpoints are built to. Each event is `custom.chaos-<run>`, which a campaign of the
run answers with `grant_points` of 1 point: the campaign worker decides once per event (the action
id derives from the event id) and scoring credits the grant once (its event id is the action's).
So, once everything has settled, for every customer:

- **lost**: accepted events without their action in the campaign's records, and without their
  point in the score (the whole chain, ingest -> scoring -> tagging -> campaign -> scoring);
- **duplicated**: points beyond the events accepted (an effect applied twice anywhere).

Printed per fault: events posted, accepted, answered 503 or not at all (then retried), lost,
duplicated, and the seconds from the fault until every process was ready and ingest accepted again.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx

from services.campaign.decide import action_id

from .layout import Layout
from .lifecycle import BrokerStore, say, up
from .probes import probes
from .processes import OPS_TOKEN, SERVICES, TOUCHPOINT_KEY
from .supervisor import Supervisor

RATE = 40  # events a second, over the phase's cohort
CUSTOMERS_PER_PHASE = 40
LOAD_BEFORE_S = 5.0  # load before the fault, and after recovery
STALL_S = 30.0
SETTLE_TIMEOUT_S = 300.0
Fault = Callable[[Supervisor], None]


def restart(program: str) -> Fault:
    def fault(supervisor: Supervisor) -> None:
        supervisor.stop(program)
        supervisor.start(program)

    return fault


def kill(program: str) -> Fault:
    def fault(supervisor: Supervisor) -> None:
        os.kill(supervisor.programs()[program].pid, signal.SIGKILL)  # supervisord restarts it

    return fault


def stall(program: str, seconds: float) -> Fault:
    def fault(supervisor: Supervisor) -> None:
        pid = supervisor.programs()[program].pid
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(seconds)  # the stall itself
        finally:
            os.kill(pid, signal.SIGCONT)

    return fault


# (key, what happened, the fault): `--only` and `--without` name faults by key.
PHASES: tuple[tuple[str, str, Fault | None], ...] = (
    ("none", "no fault", None),
    ("broker-restart", "broker restarted", restart("tansu")),
    ("redis-restart", "Redis restarted", restart("redis")),
    ("kill-scoring", "scoring worker killed", kill("scoring-worker")),
    ("kill-tagging", "tagging worker killed", kill("tagging-worker")),
    ("kill-campaign", "campaign worker killed", kill("campaign-worker")),
    ("kill-ingest", "ingest killed", kill("ingest")),
    ("broker-stall", f"broker stalled {STALL_S:.0f} s", stall("tansu", STALL_S)),
)


def phases_for(durable_broker: bool, without: frozenset[str]) -> list[tuple[str, Fault | None]]:
    """The run's phases (what happened, the fault). An in-memory broker restarted forgets
    everything, by design; on the durable one workers cannot restart (see above), so the broker
    restart runs alone there, after a phase without any fault."""
    if durable_broker:
        keys = {"none", "broker-restart"}
    else:
        keys = {key for key, _, _ in PHASES} - {"broker-restart"}
    return [(name, fault) for key, name, fault in PHASES if key in keys - without]


@dataclass
class Posted:
    """One event of the load and what ingest said to it."""

    event_id: str
    phase: int
    customer_key: str
    refusals: int = 0  # 503s and unanswered attempts before it was accepted
    customer_id: str | None = None  # once accepted


@dataclass
class PhaseResult:
    name: str
    recovery_s: float | None = None
    events: list[Posted] = field(default_factory=list)


@dataclass
class Figures:
    posted: int
    accepted: int
    refused: int
    lost: int
    duplicated: int
    recovery_s: float | None


def figures_of(
    result: PhaseResult, actions: dict[str, set[str]], points: dict[str, int], campaign_id: str
) -> Figures:
    """A phase's figures, from each customer's recorded actions (ids) and points. Pure."""
    accepted = [e for e in result.events if e.customer_id is not None]
    by_customer: dict[str, list[Posted]] = defaultdict(list)
    for event in accepted:
        assert event.customer_id is not None
        by_customer[event.customer_id].append(event)
    lost = duplicated = 0
    for customer_id, events in by_customer.items():
        expected = {action_id(campaign_id, customer_id, e.event_id) for e in events}
        missing = len(expected - actions.get(customer_id, set()))
        credited = points.get(customer_id, 0)
        # Lost: an event whose action is missing, or whose point was never credited (once each).
        lost += max(missing, len(events) - credited)
        duplicated += max(0, credited - len(events))
    return Figures(
        posted=len(result.events),
        accepted=len(accepted),
        refused=sum(e.refusals for e in result.events),
        lost=lost,
        duplicated=duplicated,
        recovery_s=result.recovery_s,
    )


COLUMNS = (("fault", 24), ("posted", 7), ("accepted", 9), ("503/none", 9), ("lost", 5), ("duplicated", 10))
COLUMNS += (("recovery s", 10),)


def table(results: list[tuple[str, Figures]]) -> str:
    """The per-fault figures as a text table (503/none: attempts ingest refused or left unanswered,
    each retried)."""

    def row(cells: tuple[object, ...]) -> str:
        first, *rest = cells
        widths = [width for _, width in COLUMNS]
        return (
            "  "
            + f"{first!s:<{widths[0]}}"
            + "".join(f" {c!s:>{w}}" for c, w in zip(rest, widths[1:], strict=True))
        )

    lines = [row(tuple(name for name, _ in COLUMNS))]
    for name, f in results:
        recovery = f"{f.recovery_s:.1f}" if f.recovery_s is not None else "—"
        lines.append(row((name, f.posted, f.accepted, f.refused, f.lost, f.duplicated, recovery)))
    return "\n".join(lines)


class Load:
    """A touchpoint posting `custom.chaos-<run>` events at RATE a second to the current phase's
    cohort, retrying each until ingest accepts it."""

    def __init__(self, ingest_url: str, event_type: str, run: str) -> None:
        self._url = ingest_url
        self._type = event_type
        self._run = run
        self.phase = 0
        self.results: list[PhaseResult] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._next = 0

    def start(self, workers: int = 8) -> None:
        for _ in range(workers):
            thread = threading.Thread(target=self._work, daemon=True)
            thread.start()
            self._threads.append(thread)

    def next_phase(self, name: str) -> None:
        """From now on, events go to a new phase's cohort."""
        with self._lock:
            self.results.append(PhaseResult(name))
            self.phase = len(self.results) - 1

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def _take(self) -> Posted:
        """The next event, paced at RATE a second across the workers."""
        with self._lock:
            n = self._next
            self._next += 1
            phase = self.phase
            event = Posted(str(uuid.uuid4()), phase, f"chaos-{self._run}-{phase}-{n % CUSTOMERS_PER_PHASE}")
            self.results[phase].events.append(event)
        time.sleep(len(self._threads) / RATE)  # pacing: each worker sends RATE / workers a second
        return event

    def _work(self) -> None:
        with httpx.Client(base_url=self._url, headers={"X-Api-Key": TOUCHPOINT_KEY}, timeout=10) as client:
            while not self._stop.is_set():
                event = self._take()
                while not self._stop.is_set():
                    if self._post(client, event):
                        break
                    event.refusals += 1
                    time.sleep(0.5)  # Retry-After is 1 s; a touchpoint backs off

    def _post(self, client: httpx.Client, event: Posted) -> bool:
        body = {
            "event_id": event.event_id,
            "type": self._type,
            "source": "app",
            "occurred_at": datetime.now(UTC).isoformat(),
            "identities": {"app_user_id": event.customer_key},
            "properties": {},
        }
        try:
            answer = client.post("/v1/events", json=body)
        except httpx.HTTPError:
            return False
        if answer.status_code != 202:
            return False
        event.customer_id = answer.json()["results"][0]["customer_id"]
        return True


def _all_ready(supervisor: Supervisor) -> Callable[[], bool]:
    """Every program of the running stack ready (its probe answers)."""
    running = set(supervisor.programs())
    return lambda: all(probe() is None for name, probe in probes().items() if name in running)


def chaos(layout: Layout, without: frozenset[str] = frozenset(), durable_broker: bool = False) -> int:
    phases = phases_for(durable_broker, without)
    supervisor = Supervisor(layout)
    if supervisor.daemon() is not None:
        say("a stack is running: `make down` first (the fault suite starts its own, Redis with its AOF)")
        return 1
    store = BrokerStore.MOTO if durable_broker else BrokerStore.MEMORY
    if (code := up(layout, store, durable_redis=True)) != 0:
        return code
    urls = {service.name: service.url for service in SERVICES}
    run = uuid.uuid4().hex[:8]
    event_type, campaign_id = f"custom.chaos-{run}", f"chaos-{run}"
    ops = httpx.Client(headers={"Authorization": f"Bearer {OPS_TOKEN}"}, timeout=30)
    definition = {
        "id": campaign_id,
        "name": f"Fault suite {run}: a point for every event",
        "trigger": {"on": "event", "value": event_type},
        "action": {"kind": "grant_points", "channel": "membership", "points": 1},
        "reentry": "always",
        "frequency_cap": {"per_customer_per_day": 100},
    }
    ops.post(f"{urls['campaign-api']}/v1/campaigns", json=definition).raise_for_status()
    _wait_for(lambda: _campaign_in_force(ops, urls), "the campaign worker to take the run's campaign", 60)
    say(f"\nfault suite {run}: {RATE} events/s through ingest, {CUSTOMERS_PER_PHASE} customers per fault")
    load = Load(urls["ingest"], event_type, run)
    load.next_phase(phases[0][0])
    load.start()
    try:
        for index, (name, fault) in enumerate(phases):
            if index:
                load.next_phase(name)
            time.sleep(LOAD_BEFORE_S)  # load before the fault
            began = time.monotonic()
            if fault is not None:
                say(f"  {name} …")
                fault(supervisor)
                _wait_for(_all_ready(supervisor), f"every process ready after: {name}", 180)
                load.results[index].recovery_s = time.monotonic() - began
            time.sleep(LOAD_BEFORE_S)  # load after recovery
    finally:
        load.stop()
    say("  load stopped; waiting for every effect …")
    actions, points = _settle(ops, urls, load.results, campaign_id)
    results = [(r.name, figures_of(r, actions, points, campaign_id)) for r in load.results]
    say("\n" + table(results))
    bad = sum(f.lost + f.duplicated for _, f in results)
    say("\nnothing lost, nothing duplicated" if bad == 0 else f"\n{bad} events lost or duplicated")
    say("the suite's stack stays up for a look (logs: .run/logs/); `make down` stops it")
    return 0 if bad == 0 else 1


def _campaign_in_force(ops: httpx.Client, urls: dict[str, str]) -> bool:
    version = ops.get(f"{urls['campaign-api']}/v1/campaigns").json()["version"]
    metrics = httpx.get(f"{urls['campaign-worker']}/metrics").text
    line = next((x for x in metrics.splitlines() if x.startswith("pd_campaigns_version ")), "x 0")
    return float(line.split()[1]) >= version


def _settle(
    ops: httpx.Client, urls: dict[str, str], results: list[PhaseResult], campaign_id: str
) -> tuple[dict[str, set[str]], dict[str, int]]:
    """Each customer's grant actions and points, once they stop changing and match (or time is up)."""
    expected: dict[str, int] = defaultdict(int)
    for result in results:
        for event in result.events:
            if event.customer_id is not None:
                expected[event.customer_id] += 1
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while True:
        actions: dict[str, set[str]] = {}
        points: dict[str, int] = {}
        for customer_id in expected:
            listed = ops.get(f"{urls['campaign-api']}/v1/customers/{customer_id}/actions").json()
            actions[customer_id] = {
                a["action_id"] for a in listed if a["campaign_id"] == campaign_id and a["outcome"] == "sent"
            }
            score = ops.get(f"{urls['scoring-api']}/v1/customers/{customer_id}/score")
            points[customer_id] = score.json().get("points", 0) if score.status_code == 200 else 0
        done = all(len(actions[c]) >= n and points[c] >= n for c, n in expected.items())
        if done or time.monotonic() > deadline:
            return actions, points
        time.sleep(2)  # the workers catch up; poll again


def _wait_for(ready: Callable[[], bool], what: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not _safely(ready):
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.5)


def _safely(check: Callable[[], bool]) -> bool:
    try:
        return check()
    except (httpx.HTTPError, OSError, ValueError):
        return False
