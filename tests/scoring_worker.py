"""The scoring worker as tests run it: its environment, its input, and its state in Redis."""

from __future__ import annotations

import random
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import redis
from redis.asyncio import Redis

from services.scoring import read_model
from services.scoring.batch import BatchOutcome, CustomerRecord, Delivery, score_batch
from services.scoring.plan import ScoringPlan
from services.scoring.read_model import AS_OF, CELL, CELLS, PREFIX, RANK, customer_key, events_key
from shared.topics import TOUCHPOINT_EVENTS
from tests.crash import Record, WorkerUnderTest
from tests.factories import published

# Short group timeouts: a killed worker's successor takes over in seconds, not the default minute.
FAST_GROUP = {
    "BROKER_SESSION_TIMEOUT_S": "6",
    "BROKER_HEARTBEAT_INTERVAL_S": "0.5",
    "BROKER_REBALANCE_TIMEOUT_S": "10",
    "BROKER_COMMIT_INTERVAL_S": "0.5",
}


def scoring_env(bootstrap: str, redis_url: str, metrics_port: int, **overrides: str) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "REDIS_URL": redis_url,
        "SCORING_METRICS_PORT": str(metrics_port),
        "TOPIC_PARTITIONS": "3",
        "LOG_LEVEL": "INFO",
        **FAST_GROUP,
        **overrides,
    }


def read_scoring_state(redis_url: str) -> dict[str, Any]:
    """Every customer's snapshot and, unless merged away, their latest events (entry JSON)."""
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=customer_key("*"), count=1000))
        values = client.mget(keys) if keys else []
        state = {
            key.decode().removeprefix(f"{PREFIX}customer:"): _comparable(orjson.loads(value))
            for key, value in zip(keys, values, strict=True)
        }
        pipe = client.pipeline(transaction=False)
        customers = [c for c, snapshot in state.items() if not snapshot.get("merged_into")]
        for customer in customers:
            pipe.zrange(events_key(customer), 0, -1)
        for customer, entries in zip(customers, pipe.execute(), strict=True):
            state[customer]["latest_events"] = sorted(entry.decode() for entry in entries)
        state[MATRIX] = matrix_invariants(client)
        return state
    finally:
        client.close()


MATRIX = "~matrix"  # not a customer: what must hold of the matrix's counts (matrix_invariants)
MATRIX_HOLDS = {"counts_are_the_cells": True, "cells_are_the_ranked": True}


def matrix_invariants(client: redis.Redis) -> dict[str, bool]:
    """The counts hold what `cell` holds, and `cell` the customers `rank` does: whatever the
    worker replayed, a move counted twice or missed would show here (matrix_cells.py)."""
    cells = client.hgetall(CELL)
    counts = {field: int(n) for field, n in client.hgetall(CELLS).items() if field != AS_OF.encode()}
    ranked = {member for member, _ in client.zscan_iter(RANK, count=1000)}
    return {
        "counts_are_the_cells": counts == Counter(cells.values()),
        "cells_are_the_ranked": cells.keys() == ranked,
    }


def _comparable(snapshot: dict[str, Any]) -> dict[str, Any]:
    """Drop the write time; round sums whose float order differs between runs."""
    snapshot.pop("updated_at", None)
    score = snapshot.get("score")
    if score:
        score["intent_score"] = round(score.get("intent_score", 0.0), 6)
        score["model_scores"] = {m: round(v, 6) for m, v in score.get("model_scores", {}).items()}
    return snapshot


SCORING_WORKER = WorkerUnderTest(
    name="scoring-worker",
    module="services.scoring.worker",
    group="pd-scoring",
    input_topics=(TOUCHPOINT_EVENTS, "pd-scoring-handovers", "pd-scoring-ticks"),
    env=scoring_env,
    read_state=read_scoring_state,
)

# Positive weights only: the zero floor of a negative weight (lead.defeated) would make the
# expected score depend on exactly where the domain replay takes each merged-in score in.
FEED_TYPES = [
    ("content.view", {"content_id": "c-1"}),
    ("content.click", {"content_id": "c-2"}),
    ("content.favorite", {"content_id": "c-3"}),
    ("content.share", {"content_id": "c-4"}),
    ("config.build", {"vehicle_model": "id4"}),
    ("test_drive.booked", {"vehicle_model": "id6"}),
    ("community.post", {}),
    ("referral.made", {}),
    ("live.watch", {"duration_s": 300}),
]


def scoring_feed(seed: int, events: int, customers: int, merges: int) -> list[Record]:
    """Touchpoint events as ingest publishes them, some republished, with merges among them."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    ids = [f"cus-{seed}-{n}" for n in range(customers)]
    records: list[Record] = []
    for _ in range(events):
        customer = rng.choice(ids)
        event_type, properties = rng.choice(FEED_TYPES)
        at = (now - timedelta(minutes=rng.randint(1, 60 * 24 * 20))).isoformat()
        event_id = str(uuid.UUID(int=rng.getrandbits(128)))
        source = rng.choice(["wecom", "app", "dealer_store", "ad"])
        body = published(event_id, customer, event_type, source, at, properties)
        record = Record(TOUCHPOINT_EVENTS, customer.encode(), orjson.dumps(body))
        records.append(record)
        if rng.random() < 0.01:  # a producer retry: the same event again
            records.append(record)
    for merged, survivor in zip(ids[:merges], ids[merges : 2 * merges], strict=True):
        # As ingest publishes a merge: after the merged customer's events `identity.merged`, the
        # survivor's `identity.joined`, and the merged customer's later events re-keyed.
        at = rng.randrange(len(records))
        merge_id = str(uuid.UUID(int=rng.getrandbits(128)))
        merge = {
            "type": "identity.merged",
            "merge_id": merge_id,
            "merged_customer_id": merged,
            "survivor_customer_id": survivor,
            "identities": {"phone": ["h"]},
            "merged_at": now.isoformat(),
            "schema_version": 1,
        }
        joined = {
            "type": "identity.joined",
            "merge_id": merge_id,
            "customer_id": survivor,
            "merged_customer_id": merged,
            "joined_at": now.isoformat(),
            "schema_version": 1,
        }
        later = [_rekeyed(r, merged, survivor) for r in records[at:]]
        records[at:] = [
            Record(TOUCHPOINT_EVENTS, merged.encode(), orjson.dumps(merge)),
            Record(TOUCHPOINT_EVENTS, survivor.encode(), orjson.dumps(joined)),
            *later,
        ]
    return records


def _rekeyed(record: Record, merged: str, survivor: str) -> Record:
    if record.key != merged.encode():
        return record
    body = orjson.loads(record.value)
    return Record(record.topic, survivor.encode(), orjson.dumps({**body, "customer_id": survivor}))


def replay_in_domain(feed: list[Record]) -> dict[str, Any]:
    """The state the feed must lead to, computed by the domain alone, one input at a time."""
    from datetime import UTC, datetime

    from services.scoring.batch import Delivery, Handover, score_batch
    from services.scoring.inputs import decode_touchpoint
    from services.scoring.latest_events import KEPT
    from services.scoring.plan import default_plan
    from services.scoring.read_model import ScoreSnapshot

    plan, now, table = default_plan(), datetime.now(UTC), {}
    pending: list[Handover] = []
    inputs: list[Delivery] = []
    events: dict[str, dict[bytes, float]] = {}  # what Redis keeps, before keeping the newest
    for offset, record in enumerate(feed):
        inputs.append(Delivery(f"{record.topic}/0", offset, decode_touchpoint(record.value), record.value))
    outcomes = []
    for delivery in inputs:
        outcome = score_batch([delivery], table.get, plan, now)
        table.update(outcome.records)
        pending += outcome.handovers
        outcomes.append(outcome)
    for offset, handover in enumerate(pending):  # grows while handovers are handed on
        outcome = score_batch([Delivery("handovers/0", offset, handover)], table.get, plan, now)
        table.update(outcome.records)
        pending += outcome.handovers
        outcomes.append(outcome)
    for outcome in outcomes:
        for customer, entry, occurred_s in outcome.latest_events:
            events.setdefault(customer, {})[entry] = occurred_s
        for survivor, merged in outcome.events_moved:
            events.setdefault(survivor, {}).update(events.pop(merged, {}))
    # Every merged customer joined their survivor: nothing waits at a barrier.
    assert all(row.barrier.held == row.barrier.parked == () for row in table.values())
    state = {
        customer: _comparable(
            orjson.loads(
                ScoreSnapshot(
                    score=None if row.merged_into else row.score, merged_into=row.merged_into, updated_at=now
                ).model_dump_json(exclude_none=True)
            )
        )
        for customer, row in table.items()
    }
    for customer, snapshot in state.items():
        if not snapshot.get("merged_into"):
            # The newest KEPT by (occurred_at, entry), as Redis's rank order trims them.
            kept = sorted(events.get(customer, {}).items(), key=lambda pair: (pair[1], pair[0]))[-KEPT:]
            snapshot["latest_events"] = sorted(entry.decode() for entry, _ in kept)
    return state | {MATRIX: MATRIX_HOLDS}


class InProcessScorer:
    """The worker's batch step and its read-model write, as agents.Scorer makes them, without
    Kafka: what it leaves in Redis is exactly what a worker writes."""

    def __init__(self, redis: Redis, plan: ScoringPlan, now: datetime) -> None:
        self.redis = redis
        self.plan = plan
        self.now = now
        self.rows: dict[str, CustomerRecord] = {}

    async def take(self, deliveries: list[Delivery]) -> BatchOutcome:
        outcome = score_batch(deliveries, self.rows.get, self.plan, self.now)
        self.rows.update(outcome.records)
        await read_model.write_records(
            self.redis,
            outcome.records.values(),
            self.plan,
            self.now,
            outcome.due,
            latest_events=outcome.latest_events,
            events_moved=outcome.events_moved,
        )
        return outcome
