"""The tagging worker as tests run it: its environment, its input, and its state in Redis."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import redis

from services.tagging.read_model import PREFIX, profile_key
from shared.topics import SCORED_INPUTS
from tests.crash import Record, WorkerUnderTest
from tests.factories import published
from tests.scoring_worker import FAST_GROUP


def tagging_env(bootstrap: str, redis_url: str, metrics_port: int, **overrides: str) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "REDIS_URL": redis_url,
        "TAGGING_METRICS_PORT": str(metrics_port),
        "TOPIC_PARTITIONS": "3",
        "LOG_LEVEL": "INFO",
        "TABLE_DIR": f".run/test-tagging-tables-{metrics_port}",
        **FAST_GROUP,
        **overrides,
    }


def read_tagging_state(redis_url: str) -> dict[str, Any]:
    """Every profile (without its write time) and the segment sets it is in."""
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=profile_key("*"), count=1000))
        values = client.mget(keys) if keys else []
        state: dict[str, Any] = {}
        for key, value in zip(keys, values, strict=True):
            snapshot = orjson.loads(value)
            snapshot.pop("updated_at", None)
            state[key.decode().removeprefix(f"{PREFIX}profile:")] = snapshot
        for key in client.scan_iter(match=f"{PREFIX}seg:*", count=1000):
            state[f"segment {key.decode()}"] = sorted(m.decode() for m in client.smembers(key))
        return state
    finally:
        client.close()


TAGGING_WORKER = WorkerUnderTest(
    name="tagging-worker",
    module="services.tagging.worker",
    group="pd-tagging",
    input_topics=(SCORED_INPUTS, "pd-tagging-handovers"),
    env=tagging_env,
    read_state=read_tagging_state,
)

# Order-insensitive inputs only: the layer moves along the ladder (prospect -> intent -> owner)
# and never back, so a survivor's profile does not depend on when a handover meets its events.
FEED_TYPES = [
    ("content.view", {"content_id": "c-1", "value_point": "rational", "topics": ["tech"]}),
    ("content.click", {"content_id": "c-2", "value_point": "emotional", "topics": ["design"]}),
    ("content.favorite", {"content_id": "c-3", "value_point": "rational", "price_related": True}),
    ("content.share", {"content_id": "c-4", "value_point": "emotional", "topics": ["anime"]}),
    ("live.watch", {"duration_s": 900, "topics": ["anime"]}),
    ("coupon.claimed", {}),
    ("community.post", {}),
    ("store.visit", {"dealer_id": "d-1"}),
    ("mall.purchase", {"amount": 800}),
    ("mini_program.visit", {}),
]


def tagging_feed(seed: int, events: int, customers: int, merges: int, owners: int) -> list[Record]:
    """Scoring's chain as it publishes it: touchpoint events (some republished), scores of
    scoring's own (as a merged-in score is) and merges among them."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    ids = [f"cus-{seed}-{n}" for n in range(customers)]
    records: list[Record] = []

    def envelope(customer: str, kind: str, properties: dict[str, Any], at: str) -> dict[str, Any]:
        event_id = str(uuid.UUID(int=rng.getrandbits(128)))
        source = rng.choice(["wecom", "app", "dealer_store", "mini_program"])
        return published(event_id, customer, kind, source, at, properties)

    for _ in range(events):
        customer = rng.choice(ids)
        at = (now - timedelta(minutes=rng.randint(1, 60 * 24 * 20))).isoformat()
        # Scoring's view of the customer; not for merged customers and their survivors, whose
        # intent_pct this feed could not keep consistent with the merged-in profiles.
        if rng.random() < 0.1 and customer not in ids[: 2 * merges]:
            score = {
                "intent_score": 1.0,
                "intent_pct": float(rng.choice([20, 45, 65, 90])),
                "band": "low",
                "activity": "active_7d",
                "points": 0,
                "growth": 0,
                "level": "member",  # constant: the last one would depend on arrival order
            }
            input_id = str(uuid.UUID(int=rng.getrandbits(128)))
            body = {"input_id": input_id, "customer_id": customer, "received_at": at, "score": score}
            records.append(Record(SCORED_INPUTS, customer.encode(), orjson.dumps(body)))
            continue
        kind, properties = rng.choice(FEED_TYPES)
        published_event = envelope(customer, kind, properties, at)
        body = {
            "input_id": published_event["event_id"],
            "customer_id": customer,
            "received_at": at,
            "event": published_event,
        }
        record = Record(SCORED_INPUTS, customer.encode(), orjson.dumps(body))
        records.append(record)
        if rng.random() < 0.01:  # a producer retry: the same event again
            records.append(record)
    for customer in rng.sample(ids[2 * merges :], owners):
        at = (now - timedelta(days=1)).isoformat()
        delivered = envelope(customer, "vehicle.delivered", {"vehicle_model": "id4"}, at)
        body = {
            "input_id": delivered["event_id"],
            "customer_id": customer,
            "received_at": at,
            "event": delivered,
        }
        records.insert(
            rng.randrange(len(records)), Record(SCORED_INPUTS, customer.encode(), orjson.dumps(body))
        )
    for merged, survivor in zip(ids[:merges], ids[merges : 2 * merges], strict=True):
        # As scoring passes a merge on: the merge after the merged customer's inputs, the input
        # where the merged customer joins the survivor, and the merged customer's later inputs
        # re-keyed (ingest resolves them to the survivor).
        at = rng.randrange(len(records))
        merge = {
            "type": "identity.merged",
            "merge_id": str(uuid.UUID(int=rng.getrandbits(128))),
            "merged_customer_id": merged,
            "survivor_customer_id": survivor,
            "identities": {"phone": ["h"]},
            "merged_at": now.isoformat(),
            "schema_version": 1,
        }
        merge_id = merge["merge_id"]
        body = {"input_id": merge_id, "customer_id": merged, "merge": merge}
        joins = {"input_id": f"merged:{merge_id}", "customer_id": survivor, "joins": merge_id}
        later = [_rekeyed(r, merged, survivor) for r in records[at:]]
        records[at:] = [
            Record(SCORED_INPUTS, merged.encode(), orjson.dumps(body)),
            Record(SCORED_INPUTS, survivor.encode(), orjson.dumps(joins)),
            *later,
        ]
    return records


def _rekeyed(record: Record, merged: str, survivor: str) -> Record:
    if record.key != merged.encode():
        return record
    body = orjson.loads(record.value)
    if "event" in body:
        body["event"] = {**body["event"], "customer_id": survivor}
    return Record(record.topic, survivor.encode(), orjson.dumps({**body, "customer_id": survivor}))


def replay_in_domain(feed: list[Record]) -> dict[str, Any]:
    """The profiles the feed must lead to, by the domain alone, one input at a time."""
    from services.tagging.batch import Delivery, Rules, ScoredInput, TaggingHandover, tag_batch
    from services.tagging.read_model import view_of
    from services.tagging.rules import RuleSet
    from services.tagging.thresholds import TaggingThresholds

    rules, now, table = Rules(TaggingThresholds(), RuleSet(version=0)), datetime.now(UTC), {}
    pending: list[TaggingHandover] = []
    for offset, record in enumerate(feed):
        payload = ScoredInput.model_validate_json(record.value)
        delivery = Delivery(f"{record.topic}/0", offset, payload, record.value)
        outcome = tag_batch([delivery], table.get, rules, now)
        table.update(outcome.records)
        pending += outcome.handovers
    for offset, handover in enumerate(pending):  # grows while handovers are handed on
        outcome = tag_batch([Delivery("handovers/0", offset, handover)], table.get, rules, now)
        table.update(outcome.records)
        pending += outcome.handovers
    # Every merged customer joined their survivor: nothing waits at a barrier.
    assert all(row.barrier.held == row.barrier.parked == () for row in table.values())
    profiles: dict[str, Any] = {}
    for customer, row in table.items():
        if row.merged_into:
            profiles[customer] = {"merged_into": row.merged_into}
        else:
            view = orjson.loads(view_of(row.profile, now).model_dump_json())
            view.pop("updated_at")
            profiles[customer] = view
    return profiles
