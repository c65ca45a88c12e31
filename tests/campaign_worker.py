"""The campaign worker as tests run it: its environment, its input, and its state in Redis."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import redis

from services.campaign.examples import example_campaigns
from services.campaign.read_model import DUE, PREFIX
from services.campaign.roster_store import CONSULTANTS, STORES
from services.campaign.store import CAMPAIGNS
from shared.topics import TAGGED_INPUTS, TOUCHPOINT_EVENTS
from stack.demo import demo_roster
from tests.crash import Record, WorkerUnderTest
from tests.factories import published
from tests.scoring_worker import FAST_GROUP

BANDS = ("low", "medium", "high", "hot")


def campaign_env(bootstrap: str, redis_url: str, metrics_port: int, **overrides: str) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "REDIS_URL": redis_url,
        "CAMPAIGN_METRICS_PORT": str(metrics_port),
        "TOPIC_PARTITIONS": "3",
        "LOG_LEVEL": "INFO",
        "QUIET_HOURS_START": "00:00",  # no quiet hours: a run must not depend on the time of day
        "QUIET_HOURS_END": "00:00",
        "TICK_INTERVAL_S": "0.2",
        "TABLE_DIR": f".run/test-campaign-tables-{metrics_port}",
        **FAST_GROUP,
        **overrides,
    }


def campaigns_in_force(metrics_url: str, version: int) -> None:
    """The campaign worker whose /metrics is at `metrics_url` applies campaigns of at least this
    version (raises AssertionError until then: for `eventually`)."""
    text = httpx.get(f"{metrics_url}/metrics").text
    line = next(line for line in text.splitlines() if line.startswith("pd_campaigns_version "))
    assert float(line.split()[1]) >= version, line


def add_example_campaigns(redis_url: str) -> None:
    """The example campaigns and the demo's dealer roster, as the demo loads them."""
    client = redis.Redis.from_url(redis_url)
    roster = demo_roster()
    try:
        for documents, items in (
            (CAMPAIGNS, example_campaigns()),
            (STORES, roster.stores),
            (CONSULTANTS, roster.consultants),
        ):
            for item in items:
                client.hset(documents.key, item.id, item.model_dump_json())
            client.set(documents.version_key, len(items))
    finally:
        client.close()


def read_campaign_state(redis_url: str) -> dict[str, Any]:
    """Every customer's actions and suppressions (without processing times and consultants),
    and every campaign figure with its members."""
    client = redis.Redis.from_url(redis_url)
    try:
        state: dict[str, Any] = {}
        for key in client.scan_iter(match=f"{PREFIX}customer:*:actions", count=1000):
            records = [orjson.loads(v) for v in client.hvals(key)]
            for record in records:
                for varying in ("at", "deliver_at", "consultant_id"):
                    record.pop(varying, None)
            state[key.decode()] = sorted(records, key=lambda r: r["action_id"])
        for key in client.scan_iter(match=f"{PREFIX}stats:*", count=1000):
            state[key.decode()] = sorted(m.decode() for m in client.smembers(key))
        return state
    finally:
        client.close()


def nothing_due_soon(redis_url: str) -> None:
    """Nothing is due within a minute (cooldowns and SLAs, hours away, stay scheduled)."""
    client = redis.Redis.from_url(redis_url)
    try:
        soon = datetime.now(UTC).timestamp() + 60
        assert not client.zrangebyscore(DUE, "-inf", soon), "something is due within a minute"
    finally:
        client.close()


def points_granted(bootstrap: str) -> dict[str, tuple[str, int]]:
    """The points.granted events the worker put on touchpoint.events.v1, by event id (copies
    from a replay fold into one: scoring's ledger credits an event id once)."""
    from tests.sweeps import records_since

    granted: dict[str, tuple[str, int]] = {}
    for record in records_since(bootstrap, {}):
        if record.topic != TOUCHPOINT_EVENTS or not record.value or b"points.granted" not in record.value:
            continue
        event = orjson.loads(record.value)
        previous = granted.setdefault(
            event["event_id"], (event["customer_id"], event["properties"]["points"])
        )
        assert previous == (event["customer_id"], event["properties"]["points"]), event  # a copy is the same
    return granted


CAMPAIGN_WORKER = WorkerUnderTest(
    name="campaign-worker",
    module="services.campaign.worker",
    group="pd-campaign",
    input_topics=(TAGGED_INPUTS, "pd-campaign-handovers", "pd-campaign-ticks"),
    env=campaign_env,
    read_state=read_campaign_state,
    prepare=add_example_campaigns,
    settle=nothing_due_soon,
    read_published=points_granted,
)


def campaign_feed(seed: int, customers: int, steps: int) -> tuple[list[Record], int]:
    """Tagging's chain, as it publishes it, and the warmup. Per customer: a WeCom friendship
    (most of them) and a first profile, then scores climbing the bands, tags added, community
    posts, store visits and orders, interleaved across customers."""
    rng = random.Random(seed)
    base = datetime.now(UTC) - timedelta(hours=1)
    clock = iter(base + timedelta(milliseconds=10 * n) for n in range(10**7))
    ids = [f"cus-{seed}-{n}" for n in range(customers)]

    def chained(customer: str, at: str, **parts: Any) -> Record:
        input_id = (
            parts["event"]["event_id"] if "event" in parts else str(uuid.UUID(int=rng.getrandbits(128)))
        )
        body = {"input_id": input_id, "customer_id": customer, "received_at": at, **parts}
        return Record(TAGGED_INPUTS, customer.encode(), orjson.dumps(body))

    def event(customer: str, kind: str, **properties: Any) -> Record:
        at = next(clock).isoformat()
        body = published(str(uuid.UUID(int=rng.getrandbits(128))), customer, kind, "wecom", at, properties)
        return chained(customer, at, event=body)

    records = [event(c, "wecom.friend_added") for c in ids if rng.random() < 0.8]
    band = dict.fromkeys(ids, "low")
    layer = {c: rng.choice(["prospect", "prospect", "intent", "owner"]) for c in ids}
    orientation = {c: rng.choice(["rational", "emotional"]) for c in ids}
    tags: dict[str, list[str]] = {c: [] for c in ids}

    def profile(customer: str, added: list[str], previous: str | None) -> Record:
        at = next(clock).isoformat()
        snapshot = {
            "layer": layer[customer],
            "orientation": orientation[customer],
            "stage": "newcomer",
            "tags": tags[customer],
        }
        return chained(customer, at, profile=snapshot)

    records += [profile(c, [], None) for c in ids]
    warmup = len(records)  # friendships and first profiles: to be taken before the rest
    for _ in range(steps):
        customer = rng.choice(ids)
        roll = rng.random()
        at = next(clock).isoformat()
        if roll < 0.35 and band[customer] != "hot":
            new = BANDS[BANDS.index(band[customer]) + 1]
            score = {
                "intent_score": 1.0,
                "intent_pct": {"medium": 40.0, "high": 70.0, "hot": 90.0}[new],
                "band": new,
                "activity": "active_7d",
                "points": 0,
                "growth": 0,
                "level": "member",
            }
            band[customer] = new
            records.append(chained(customer, at, score=score))
        elif roll < 0.55:
            added = rng.choice(["ripple", "price_sensitive", "interest:tech"])
            fresh = [] if added in tags[customer] else [added]
            tags[customer] = sorted({*tags[customer], added})
            records.append(profile(customer, fresh, layer[customer]))
        elif roll < 0.75:
            records.append(event(customer, "community.post"))
        elif roll < 0.9:
            records.append(event(customer, "store.visit", dealer_id="d-sh-001", city="shanghai"))
        else:
            records.append(event(customer, "order.placed", vehicle_model="g6"))
    return records, warmup
