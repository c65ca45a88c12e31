"""Time in motion, on a stack of its own whose workers and APIs read an injected clock: it runs
in real time until an epoch a little ahead (customers warm up then) and three days a second
after it (shared/clock.py).

- Decay (issue 13, item 4): a hot customer left alone cools down and goes dormant on every
  service's API, and the campaigns waiting for that fire once — with nothing arriving but time,
  scheduled per customer (no scan of every customer).
- Journeys (issue 17, item 2): a three-step journey takes each branch of its branch step, and a
  conversion ends a customer's way through it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis import Redis

from services.scoring.read_model import DUE
from tests.campaign_worker import campaign_env, campaigns_in_force
from tests.conftest import OPS_TOKEN, TOUCHPOINT_KEY, Backends, ingest_env
from tests.factories import event, unique
from tests.harness import Process, eventually, free_port, start_redis, start_service, start_tansu
from tests.scoring_worker import scoring_env
from tests.tagging_worker import tagging_env

pytestmark = pytest.mark.timeout(600)

OPS = {"Authorization": f"Bearer {OPS_TOKEN}"}
SPEED = 3 * 86_400  # three days of the stack's time per real second, once past the epoch
WARM_UP_S = 75  # real seconds from the start of the stack to the epoch: time to start and warm up


@dataclass(frozen=True)
class FastStack:
    epoch: datetime
    redis_url: str
    ingest: str
    scoring: str
    tagging: str
    campaign: str
    campaign_metrics: str


@pytest.fixture(scope="module")
def fast(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastStack]:
    log_dir: Path = tmp_path_factory.mktemp("decay")
    epoch = datetime.now(UTC) + timedelta(seconds=WARM_UP_S)
    processes: list[Process] = []
    try:
        kafka_port, redis_port = free_port(), free_port()
        processes += [start_tansu(kafka_port, log_dir), start_redis(redis_port, log_dir)]
        backends = Backends(f"127.0.0.1:{kafka_port}", f"redis://127.0.0.1:{redis_port}/0")
        clock = {"CLOCK_SPEED": str(SPEED), "CLOCK_EPOCH": epoch.isoformat(), "OPS_TOKENS": OPS_TOKEN}
        ingest_port = free_port()
        ingest = f"http://127.0.0.1:{ingest_port}"
        env = ingest_env(backends, ingest_port) | clock
        processes.append(start_service("fast-ingest", "services.ingest", env, f"{ingest}/readyz", log_dir))
        urls: dict[str, str] = {}
        metrics_urls: dict[str, str] = {}
        for service, env_of in (
            ("scoring", scoring_env),
            ("tagging", tagging_env),
            ("campaign", campaign_env),
        ):
            metrics, api = free_port(), free_port()
            env = env_of(backends.kafka_bootstrap_servers, backends.redis_url, metrics) | clock
            env |= {f"{service.upper()}_PORT": str(api), "TICK_INTERVAL_S": "0.2"}
            metrics_url, urls[service] = f"http://127.0.0.1:{metrics}", f"http://127.0.0.1:{api}"
            metrics_urls[service] = metrics_url
            worker = f"services.{service}.worker"
            processes.append(
                start_service(f"fast-{service}-worker", worker, env, f"{metrics_url}/readyz", log_dir)
            )
            module = f"services.{service}.api"
            processes.append(
                start_service(f"fast-{service}-api", module, env, f"{urls[service]}/readyz", log_dir)
            )
        yield FastStack(
            epoch,
            backends.redis_url,
            ingest,
            urls["scoring"],
            urls["tagging"],
            urls["campaign"],
            metrics_urls["campaign"],
        )
    finally:
        for process in reversed(processes):
            process.stop()


def campaign(campaign_id: str, on: str, value: str) -> dict[str, Any]:
    return {
        "id": campaign_id,
        "name": campaign_id,
        "trigger": {"on": on, "value": value},
        "action": {
            "kind": "send_content",
            "channel": "wecom_1v1",
            "content": {"default": f"c-{campaign_id}"},
        },
    }


def test_a_hot_customer_left_alone_cools_down_and_goes_dormant_and_the_campaigns_fire_once(fast) -> None:
    ops = httpx.Client(headers=OPS, timeout=10)
    campaigns = {"cooling": ("band_left", "hot"), "waking": ("activity_entered", "dormant")}
    for campaign_id, (on, value) in campaigns.items():
        created = ops.post(f"{fast.campaign}/v1/campaigns", json=campaign(campaign_id, on, value))
        assert created.status_code == 201, created.text
    who = {"wecom_external_userid": unique("wm")}
    touchpoint = httpx.Client(base_url=fast.ingest, headers={"X-Api-Key": TOUCHPOINT_KEY}, timeout=10)
    customer = ""
    for kind, properties in (("wecom.friend_added", {}), ("test_drive.booked", {"vehicle_model": "g6"})):
        response = touchpoint.post("/v1/events", json=event(type=kind, identities=who, properties=properties))
        assert response.status_code == 202, response.text
        customer = response.json()["results"][0]["customer_id"]

    def scored() -> dict[str, Any]:
        response = ops.get(f"{fast.scoring}/v1/customers/{customer}/score")
        assert response.status_code == 200, response.text
        return response.json()

    def profiled() -> dict[str, Any]:
        response = ops.get(f"{fast.tagging}/v1/customers/{customer}/profile")
        assert response.status_code == 200, response.text
        return response.json()

    def sent() -> list[str]:
        history = ops.get(f"{fast.campaign}/v1/customers/{customer}/actions").json()
        return sorted(h["campaign_id"] for h in history if h["outcome"] == "sent")

    assert datetime.now(UTC) < fast.epoch, "the stack took longer to start than WARM_UP_S: raise it"
    hot = eventually(lambda: _having(profiled(), band="hot", activity="active_7d"), timeout=30, interval=0.2)
    assert hot["layer"] == "intent" and sent() == []

    def cooled() -> None:
        _having(scored(), band="low", activity="dormant")
        _having(profiled(), band="low", activity="dormant")
        assert sent() == ["cooling", "waking"]

    eventually(cooled, timeout=WARM_UP_S + 90, interval=0.5)
    # Low and dormant, nothing more can change by time alone: the customer is no longer
    # scheduled, so no tick will come and nothing fires twice.
    redis = Redis.from_url(fast.redis_url)
    try:
        eventually(lambda: _not_scheduled(redis, customer), timeout=10, interval=0.2)
    finally:
        redis.close()
    assert sent() == ["cooling", "waking"]


def _having(view: dict[str, Any], **expected: str) -> dict[str, Any]:
    assert {k: view.get(k) for k in expected} == expected, view
    return view


def _not_scheduled(redis: Redis, customer: str) -> None:
    assert redis.zscore(DUE, customer) is None


def test_a_journey_takes_each_branch_and_a_conversion_ends_it(fast) -> None:
    """Send, then wait up to 60 days (20 s here) for a click: who clicks is thanked, who does not
    is nudged when the time is up, who converts meanwhile leaves the journey."""
    eventually(lambda: _past(fast.epoch), timeout=WARM_UP_S + 30, interval=0.5)
    journey_id = f"journey-{uuid.uuid4().hex[:8]}"
    trigger = f"custom.{journey_id}"

    def send(content: str) -> dict[str, Any]:
        return {"kind": "send_content", "channel": "wecom_1v1", "content": {"default": content}}

    definition = {
        "id": journey_id,
        "name": journey_id,
        "trigger": {"on": "event", "value": trigger},
        "steps": [
            {"kind": "action", "name": "hello", "action": send("c-hello")},
            {"kind": "branch", "name": "clicked", "when": {"event": "content.click"}, "within_hours": 24 * 60,
             "then": "thanks", "otherwise": "nudge"},
            {"kind": "action", "name": "nudge", "next": "done", "action": send("c-nudge")},
            {"kind": "action", "name": "thanks", "action": send("c-thanks")},
            {"kind": "exit", "name": "done"},
        ],
        "frequency_cap": {"per_customer_per_day": 10},
        "respect_quiet_hours": False,
    }  # fmt: skip
    ops = httpx.Client(base_url=fast.campaign, headers=OPS, timeout=10)
    created = ops.post("/v1/campaigns", json=definition)
    assert created.status_code == 201, created.text
    version = ops.get("/v1/campaigns").json()["version"]
    eventually(lambda: campaigns_in_force(fast.campaign_metrics, version), timeout=30, interval=0.2)

    touchpoint = httpx.Client(base_url=fast.ingest, headers={"X-Api-Key": TOUCHPOINT_KEY}, timeout=10)

    def post(kind: str, who: dict[str, str], **properties: Any) -> str:
        response = touchpoint.post("/v1/events", json=event(type=kind, identities=who, properties=properties))
        assert response.status_code == 202, response.text
        return response.json()["results"][0]["customer_id"]

    people = {role: {"wecom_external_userid": unique("wm")} for role in ("clicker", "idler", "converter")}
    customers = {}
    for role, who in people.items():
        post("wecom.friend_added", who)  # consent to WeCom 1v1
        customers[role] = post(trigger, who)

    def steps_sent(role: str) -> list[str]:
        history = ops.get(f"/v1/customers/{customers[role]}/actions").json()
        return [h["step"] for h in history if h["campaign_id"] == journey_id and h["outcome"] == "sent"]

    def greeted() -> None:
        assert all(steps_sent(role) == ["hello"] for role in customers), customers

    eventually(greeted, timeout=30, interval=0.2)
    post("content.click", people["clicker"], content_id="c-hello")
    post("store.visit", people["converter"], dealer_id="d-1")

    def steps() -> dict[str, dict[str, Any]]:
        return {s["step"]: s for s in ops.get(f"/v1/campaigns/{journey_id}/stats").json()["steps"]}

    def clicked_or_converted() -> None:
        assert steps_sent("clicker") == ["hello", "thanks"]
        assert steps()["clicked"]["exited"] == {"converted": 1}

    eventually(clicked_or_converted, timeout=15, interval=0.2)  # well within the 20 s the branch waits

    def timed_out() -> None:
        assert steps_sent("idler") == ["hello", "nudge"]

    eventually(timed_out, timeout=60, interval=0.5)
    figures = steps()
    assert [name for name in figures] == ["hello", "clicked", "nudge", "thanks", "done"]
    assert (figures["hello"]["reached"], figures["hello"]["sent"]) == (3, 3)
    assert (figures["clicked"]["then"], figures["clicked"]["otherwise"]) == (1, 1)
    assert (figures["nudge"]["sent"], figures["thanks"]["sent"]) == (1, 1)
    assert figures["done"]["exited"] == {"completed": 2}
    # The converter left at the branch: the time running out sent them nothing.
    assert steps_sent("converter") == ["hello"] and steps_sent("clicker") == ["hello", "thanks"]


def _past(epoch: datetime) -> None:
    assert datetime.now(UTC) > epoch, "the stack's clock is not running fast yet"
