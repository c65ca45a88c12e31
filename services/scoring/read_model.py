"""The scoring read model in Redis: what the worker writes and the API reads.

Keys (all under `pd:scoring:`):
- `customer:{id}`   JSON `CustomerScore` of the customer (undecayed, with `score_at`), plus
                    `updated_at`; for a merged-away customer only `{"merged_into": survivor}`.
- `rank`            sorted set, customer -> `ranking.rank_key` (decay-invariant order by intent).
- `last_interaction` sorted set, customer -> epoch seconds of the last own interaction, -inf
                    for none yet: the same customers as `rank`, so every activity is a range of
                    it (lead_matrix.py).
- `events:{id}`     sorted set, the customer's latest events (latest_events.py) -> when each
                    occurred (epoch s), the newest `latest_events.KEPT`; a merged-away customer's
                    move to the survivor when the survivor takes their state in (and expire if
                    nobody does).
- `merged_away:{id}` set, the customers merged away into the survivor `id` (their snapshots
                    name it), so that erasing the survivor finds them without a scan (erasure.py).
- `due`             sorted set, customer -> when time alone next moves their band or activity.
- `cell`            hash, customer -> their matrix cell as of their last write
                    (matrix_cells.py): the same customers as `rank`.
- `cells`           hash, cell -> how many customers `cell` holds there, and `as_of` -> the
                    latest moment any cell was written at (epoch s): the lead matrix's counts.
The API decays and bands at read time with the current plan, so a read is never stale by decay.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

import orjson
from pydantic import BaseModel, ConfigDict, TypeAdapter
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from shared.redis import KEY_PREFIX
from shared.ticks import schedule

from .batch import CustomerRecord
from .intent import CustomerScore, next_change_at
from .latest_events import KEPT
from .matrix_cells import MatrixBounds
from .plan import ScoringPlan
from .ranking import rank_key

PREFIX = f"{KEY_PREFIX}scoring:"
RANK = f"{PREFIX}rank"
DUE = f"{PREFIX}due"  # customer -> when time alone next moves their band or activity
LAST_INTERACTION = f"{PREFIX}last_interaction"
CELL = f"{PREFIX}cell"
CELLS = f"{PREFIX}cells"
AS_OF = "as_of"  # the field of `cells` holding the latest moment a cell was written at
NEVER_INTERACTED = -math.inf  # in `last_interaction`: dormant at any time, as views.activity_at has None
MAX_MERGE_HOPS = 8
MERGED_EVENTS_WAIT_S = 7 * 86_400  # how long a merged-away customer's latest events await the survivor
_SCORE = TypeAdapter(CustomerScore)


def customer_key(customer_id: str) -> str:
    return f"{PREFIX}customer:{customer_id}"


def events_key(customer_id: str) -> str:
    return f"{PREFIX}events:{customer_id}"


def merged_away_key(survivor_id: str) -> str:
    return f"{PREFIX}merged_away:{survivor_id}"


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
    latest_events: Iterable[tuple[str, bytes, float]] = (),
    events_moved: Iterable[tuple[str, str]] = (),
) -> None:
    """Write changed customers and their latest events (batch.BatchOutcome) in one round trip.

    `due`: when time alone next moves each customer's band or activity (the batch computes it;
    computed here for customers it lacks). Idempotent: a replay writes the same rows, cells and
    due times, and the same entries as members already there."""
    # Snapshots are assembled from their parts' JSON: the same bytes ScoreSnapshot would write,
    # at a fraction of the cost of building one model per customer.
    updated_at = b'"updated_at":' + orjson.dumps(now) + b"}"
    written: list[_Written] = []
    gone: dict[str, bytes] = {}  # merged away -> their snapshot naming the survivor
    merged_away: dict[str, list[str]] = {}  # survivor -> customers merged away into them
    bounds = MatrixBounds.at(plan, now)
    due = due or {}
    for record in records:
        score = record.score
        customer_id = score.customer_id
        if record.merged_into:
            gone[customer_id] = b'{"merged_into":' + orjson.dumps(record.merged_into) + b"," + updated_at
            merged_away.setdefault(record.merged_into, []).append(customer_id)
            continue
        snapshot = (b'{"score":' + _SCORE.dump_json(score) + b"," + updated_at).decode()
        next_due = due[customer_id] if customer_id in due else next_change_at(score, now, plan)
        written.append(_written(score, plan, bounds, next_due, snapshot))
    pipe = redis.pipeline(transaction=False)
    _queue_written(pipe, written, now)
    if gone:
        pipe.mset({customer_key(c): snapshot for c, snapshot in gone.items()})
        pipe.zrem(RANK, *gone)
        pipe.zrem(LAST_INTERACTION, *gone)
        schedule(pipe, DUE, dict.fromkeys(gone))
        queue_cell_removal(pipe, gone)
    for survivor, merged in merged_away.items():
        pipe.sadd(merged_away_key(survivor), *merged)
    _queue_latest_events(pipe, latest_events, events_moved, list(gone))
    await pipe.execute()


# What the write script takes of one customer: snapshot key and JSON (None: leave the snapshot
# as it is), customer, rank key, last interaction, due time (None: nothing due), cell. Scores as
# text: repr is exact (and says -inf, which JSON cannot).
_Written = tuple[str | None, str | None, str, str, str, str | None, str]


def _written(
    score: CustomerScore,
    plan: ScoringPlan,
    bounds: MatrixBounds,
    next_due: datetime | None,
    snapshot: str | None,
) -> _Written:
    customer_id = score.customer_id
    key = rank_key(score, plan)
    last = score.last_interaction_at
    last_s = NEVER_INTERACTED if last is None else last.timestamp()
    return (
        None if snapshot is None else customer_key(customer_id),
        snapshot,
        customer_id,
        repr(key),
        repr(last_s),
        None if next_due is None else repr(next_due.timestamp()),
        bounds.cell(key, last_s),
    )


def _queue_written(pipe: Pipeline, written: list[_Written], now: datetime) -> None:
    if written:
        keys = (RANK, LAST_INTERACTION, DUE, CELL, CELLS)
        pipe.eval(_WRITE_CUSTOMERS, len(keys), *keys, repr(now.timestamp()), orjson.dumps(written))


def queue_cell_removal(pipe: Pipeline, customers: Iterable[str]) -> None:
    """Queue taking customers (erased, merged away) out of the matrix's counts."""
    if customers := list(customers):
        pipe.eval(_REMOVE_CELLS, 2, CELL, CELLS, orjson.dumps(customers))


async def cells_hold(redis: Redis, fingerprint: str) -> bool:
    """Whether every customer of `rank` has a cell under the plan with this fingerprint: if so, a
    worker starting under that plan has nothing to rewrite."""
    counts = await redis.hgetall(CELLS)
    prefix = f"{fingerprint}:".encode()
    held = sum(int(n) for field, n in counts.items() if field.startswith(prefix))
    return held == await redis.zcard(RANK)


# Lua moving customers between cells, with `cell` and `cells` as `cell_key` and `counts_key`. A
# move decrements the old cell and increments the new one, and does nothing when the cell is the
# one already there; a cell that falls to zero is removed, so an old plan's cells vanish once
# rewritten.
_MOVES = """
local function take(cell)
  if redis.call('HINCRBY', counts_key, cell, -1) <= 0 then redis.call('HDEL', counts_key, cell) end
end
local function move(customer, cell)
  local old = redis.call('HGET', cell_key, customer)
  if old ~= cell then
    if old then take(old) end
    redis.call('HSET', cell_key, customer, cell)
    redis.call('HINCRBY', counts_key, cell, 1)
  end
end
local function remove(customer)
  local old = redis.call('HGET', cell_key, customer)
  if old then
    redis.call('HDEL', cell_key, customer)
    take(old)
  end
end
"""

# KEYS: rank, last_interaction, due, cell, cells. ARGV: the moment written at (epoch s); JSON, a
# `_Written` per customer. One command and one document for the batch, as for the latest events
# below: five commands per customer cost the worker more to pack (redis-py encodes every
# argument) than Redis spends decoding the document. Everything a customer's row shows, in one
# step. It writes snapshot keys it is handed, not declared: a single Redis or Sentinel
# (deploy/README.md).
_WRITE_CUSTOMERS = (
    "local rank_key, last_key, due_key, cell_key, counts_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]\n"
    + _MOVES
    + """
for _, row in ipairs(cjson.decode(ARGV[2])) do
  local customer = row[3]
  if row[1] ~= cjson.null then redis.call('SET', row[1], row[2]) end
  redis.call('ZADD', rank_key, row[4], customer)
  redis.call('ZADD', last_key, row[5], customer)
  if row[6] == cjson.null then
    redis.call('ZREM', due_key, customer)
  else
    redis.call('ZADD', due_key, row[6], customer)
  end
  move(customer, row[7])
end
if tonumber(ARGV[1]) > tonumber(redis.call('HGET', counts_key, 'as_of') or '-1') then
  redis.call('HSET', counts_key, 'as_of', ARGV[1])
end
return 0
"""
)

# KEYS: cell, cells. ARGV: JSON [customer, ...] to take out of the counts.
_REMOVE_CELLS = (
    "local cell_key, counts_key = KEYS[1], KEYS[2]\n"
    + _MOVES
    + """
for _, customer in ipairs(cjson.decode(ARGV[1])) do remove(customer) end
return 0
"""
)


# KEYS: customers' event keys. ARGV: how many to keep; JSON, per key the list of its
# [occurred_at, entry]. One command and one document for the batch: pipelined commands per
# customer, or an argument per entry, cost the worker more to pack than Redis spends decoding
# the document (docs/scoring.md, "Latest events"). %.17g: Lua's own number-to-text keeps 14
# digits; the score must keep every one.
_ADD_LATEST = """
local kept, added = tonumber(ARGV[1]), cjson.decode(ARGV[2])
for i, key in ipairs(KEYS) do
  for _, pair in ipairs(added[i]) do
    redis.call('ZADD', key, string.format('%.17g', pair[1]), pair[2])
  end
  redis.call('ZREMRANGEBYRANK', key, 0, -(kept + 1))
end
return 0
"""


def _queue_latest_events(
    pipe: Pipeline,
    latest_events: Iterable[tuple[str, bytes, float]],
    events_moved: Iterable[tuple[str, str]],
    gone: list[str],
) -> None:
    added: dict[str, list[tuple[float, str]]] = {}
    for customer_id, entry, occurred_s in latest_events:
        added.setdefault(events_key(customer_id), []).append((occurred_s, entry.decode()))
    if added:
        # Only a batch's newest KEPT can be among the customer's newest KEPT.
        newest = [pairs if len(pairs) <= KEPT else heapq.nlargest(KEPT, pairs) for pairs in added.values()]
        pipe.eval(_ADD_LATEST, len(added), *added, KEPT, orjson.dumps(newest))
    for survivor, merged in events_moved:
        # A set union: taking the same merged customer in twice (a replay) changes nothing.
        survivor_key, merged_key = events_key(survivor), events_key(merged)
        pipe.zunionstore(survivor_key, [survivor_key, merged_key], aggregate="MAX")
        pipe.delete(merged_key)
        pipe.zremrangebyrank(survivor_key, 0, -(KEPT + 1))  # keep the newest KEPT
    for customer_id in gone:
        # Normally the survivor takes these in (and deletes them) within seconds. A merge replayed
        # after the survivor did (the handover was durable, the merged row was not) writes them
        # again, and nobody comes for them a second time: they must not stay forever.
        pipe.expire(events_key(customer_id), MERGED_EVENTS_WAIT_S)


REWRITE_CHUNK = 10_000


async def rewrite_matrix(
    redis: Redis, scores: Sequence[CustomerScore], plan: ScoringPlan, now: datetime
) -> int:
    """After a plan changing bands, decay or activity windows: the customers' rank keys (they
    depend on the half-life), cells and due times under it, their snapshots left as they are,
    in chunks of REWRITE_CHUNK; returns how many."""
    bounds = MatrixBounds.at(plan, now)
    for start in range(0, len(scores), REWRITE_CHUNK):
        chunk = scores[start : start + REWRITE_CHUNK]
        pipe = redis.pipeline(transaction=False)
        _queue_written(
            pipe, [_written(s, plan, bounds, next_change_at(s, now, plan), None) for s in chunk], now
        )
        await pipe.execute()
    return len(scores)


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


async def latest_events(redis: Redis, customer_id: str) -> list[bytes]:
    """The customer's latest event entries (every one kept), newest first."""
    return await redis.zrevrange(events_key(customer_id), 0, KEPT - 1)
