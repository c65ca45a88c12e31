"""The scoring read model in Redis: what the worker writes and the API reads.

Keys (all under `pd:scoring:`):
- `customer:{id}`   JSON `CustomerScore` of the customer (undecayed, with `score_at`), plus
                    `updated_at`; for a merged-away customer only `{"merged_into": survivor}`.
- `rank`            sorted set, customer -> `ranking.rank_key` (decay-invariant order by intent).
- `last_interaction` sorted set, customer -> epoch seconds of the last own interaction.
The API decays and bands at read time with the current plan, so a read is never stale by decay.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

import orjson
from pydantic import BaseModel, ConfigDict, TypeAdapter
from redis.asyncio import Redis

from shared.redis import KEY_PREFIX
from shared.ticks import schedule

from .batch import CustomerRecord
from .intent import CustomerScore
from .plan import ScoringPlan
from .ranking import rank_key

PREFIX = f"{KEY_PREFIX}scoring:"
RANK = f"{PREFIX}rank"
DUE = f"{PREFIX}due"  # customer -> when time alone next moves their band or activity
LAST_INTERACTION = f"{PREFIX}last_interaction"
MAX_MERGE_HOPS = 8
_SCORE = TypeAdapter(CustomerScore)


def customer_key(customer_id: str) -> str:
    return f"{PREFIX}customer:{customer_id}"


class ScoreSnapshot(BaseModel):
    model_config = ConfigDict(frozen=True)

    score: CustomerScore | None = None
    merged_into: str | None = None
    updated_at: datetime


async def write_records(
    redis: Redis,
    records: Iterable[CustomerRecord],
    plan: ScoringPlan,
    now: datetime,
    due: Mapping[str, datetime | None] | None = None,
) -> None:
    """Write changed customers in one round trip. Idempotent: a replay writes the same rows."""
    # Snapshots are assembled from their parts' JSON: the same bytes ScoreSnapshot would write,
    # at a fraction of the cost of building one model per customer.
    updated_at = b'"updated_at":' + orjson.dumps(now) + b"}"
    snapshots: dict[str, bytes] = {}
    ranks: dict[str, float] = {}
    interactions: dict[str, float] = {}
    gone: list[str] = []
    for record in records:
        score = record.score
        customer_id = score.customer_id
        if record.merged_into:
            snapshots[customer_key(customer_id)] = (
                b'{"merged_into":' + orjson.dumps(record.merged_into) + b"," + updated_at
            )
            gone.append(customer_id)
            continue
        snapshots[customer_key(customer_id)] = b'{"score":' + _SCORE.dump_json(score) + b"," + updated_at
        ranks[customer_id] = rank_key(score, plan)
        if score.last_interaction_at is not None:
            interactions[customer_id] = score.last_interaction_at.timestamp()
    pipe = redis.pipeline(transaction=False)
    if snapshots:
        pipe.mset(snapshots)
    if ranks:
        pipe.zadd(RANK, ranks)
    if interactions:
        pipe.zadd(LAST_INTERACTION, interactions)
    if gone:
        pipe.zrem(RANK, *gone)
        pipe.zrem(LAST_INTERACTION, *gone)
    schedule(pipe, DUE, due or {})
    await pipe.execute()


async def rewrite_ranks(redis: Redis, scores: Iterable[CustomerScore], plan: ScoringPlan) -> int:
    """Re-key customers after a plan with a new half-life; returns how many."""
    ranks = {score.customer_id: rank_key(score, plan) for score in scores}
    if ranks:
        await redis.zadd(RANK, ranks)
    return len(ranks)


async def read_score(redis: Redis, customer_id: str) -> ScoreSnapshot | None:
    """The customer's snapshot, following merges to the survivor; None if unknown."""
    for _ in range(MAX_MERGE_HOPS):
        raw = await redis.get(customer_key(customer_id))
        if raw is None:
            return None
        snapshot = ScoreSnapshot.model_validate_json(raw)
        if snapshot.merged_into is None:
            return snapshot
        customer_id = snapshot.merged_into
    return None


async def read_scores(redis: Redis, customer_ids: Sequence[str]) -> list[ScoreSnapshot]:
    if not customer_ids:
        return []
    raws = await redis.mget([customer_key(c) for c in customer_ids])
    return [ScoreSnapshot.model_validate_json(raw) for raw in raws if raw is not None]


async def ranked(redis: Redis, low: float, high: float, offset: int, count: int) -> list[tuple[str, float]]:
    """Customers with rank key in [low, high), highest first."""
    # Only the open ends are unbounded: a +inf floor (a band no score can reach) must match nothing.
    top = "+inf" if high == math.inf else f"({high!r}"
    bottom = "-inf" if low == -math.inf else repr(low)
    rows = await redis.zrevrangebyscore(RANK, top, bottom, start=offset, num=count, withscores=True)
    return [(member.decode(), score) for member, score in rows]


async def last_interactions(redis: Redis, customer_ids: Sequence[str]) -> list[float | None]:
    if not customer_ids:
        return []
    return await redis.zmscore(LAST_INTERACTION, list(customer_ids))


async def all_ranks(redis: Redis) -> dict[str, tuple[float, float | None]]:
    """Every customer's (rank key, last interaction epoch s): the matrix's input."""
    ranks = await redis.zrange(RANK, 0, -1, withscores=True)
    interactions = dict(await redis.zrange(LAST_INTERACTION, 0, -1, withscores=True))
    return {member.decode(): (rank, interactions.get(member)) for member, rank in ranks}
