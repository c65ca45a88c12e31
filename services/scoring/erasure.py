"""PIPL erasure (the right to deletion): customers leave the scoring read model in Redis.

Ingest erases a customer and sends a tombstone down the chain for them and for every customer
merged into them, one person (shared/erasure.py); the scoring worker drops their rows and calls
`erase_customers`, which removes everything the worker and the API wrote about them
(read_model.py):
- their snapshot `customer:{id}` and their latest events `events:{id}`;
- their place in `rank` and `last_interaction`, and their matrix cell (`cell`, `cells`): the lead
  matrix loses exactly one customer, from their cell, and nothing else;
- their place in `due`: no decay tick is sent for them any more (shared/ticks.py);
- the merges that name them: their set `merged_away:{id}` and, for a merged-away customer, their
  place in their survivor's.
Customers merged away into an erased customer go with them, to any depth: their snapshots name
the erased id, and they are the same person. Entries a merged-away customer brought to a survivor
who stays are the survivor's now and name nobody (latest_events.py keeps no identity).

Cheap: the customers' own records say what to remove (their snapshot its survivor, their
`merged_away` set who was merged into them), no scan; a few round trips for a whole batch.
Atomic: those records are WATCHed and everything goes in one MULTI/EXEC, so the matrix never sees
a customer in one sorted set and not the other, and a merge into an erased customer landing
between the reads and the removal makes it read again. Writes of other customers touch no
watched key and go on meanwhile. Idempotent: an unknown or already erased customer removes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError

from shared.ticks import schedule

from .read_model import (
    DUE,
    LAST_INTERACTION,
    RANK,
    ScoreSnapshot,
    customer_key,
    events_key,
    merged_away_key,
    queue_cell_removal,
)

# Each attempt is undone only by a write to an erased customer's own records (a merge into them,
# a score of theirs) between its reads and its removal; that this many come in a row means the
# customers are still being written: the caller's retry (stream_worker.retrying) tries later.
MAX_ATTEMPTS = 16


async def erase_customers(redis: Redis, customer_ids: Sequence[str]) -> None:
    """Remove every trace of the customers (and of those merged away into them) that scoring
    keeps in Redis, in one transaction; WatchError if their records kept changing meanwhile."""
    named = list(dict.fromkeys(customer_ids))
    if not named:
        return
    for _ in range(MAX_ATTEMPTS):
        try:
            async with redis.pipeline(transaction=True) as pipe:
                erased, survivors = await _read_erased(pipe, named)
                pipe.multi()
                _queue_removal(pipe, erased, survivors)
                await pipe.execute()
                return
        except WatchError:
            continue
    raise WatchError(f"{len(named)} customers' records changed during each of {MAX_ATTEMPTS} erasures")


async def _read_erased(pipe: Pipeline, named: list[str]) -> tuple[list[str], dict[str, str]]:
    """The customers to erase (`named` and, to any depth, those merged away into them) and, for
    each merged-away one, their survivor; every record read stays watched until the removal."""
    erased: dict[str, None] = {}
    survivors: dict[str, str] = {}
    frontier = named
    while frontier:
        erased.update(dict.fromkeys(frontier))
        snapshot_keys = [customer_key(c) for c in frontier]
        merged_keys = [merged_away_key(c) for c in frontier]
        await pipe.watch(*snapshot_keys, *merged_keys)
        snapshots = await pipe.mget(snapshot_keys)
        merged_in = await pipe.sunion(merged_keys)
        for customer_id, raw in zip(frontier, snapshots, strict=True):
            if raw is not None and (survivor := ScoreSnapshot.model_validate_json(raw).merged_into):
                survivors[customer_id] = survivor
        frontier = sorted({m.decode() for m in merged_in} - erased.keys())
    return list(erased), survivors


def _queue_removal(pipe: Pipeline, erased: list[str], survivors: dict[str, str]) -> None:
    # A survivor who stays keeps their set, less the erased; an erased survivor's set goes whole.
    gone = set(erased)
    merged_away: dict[str, list[str]] = {}
    for customer_id, survivor in survivors.items():
        if survivor not in gone:
            merged_away.setdefault(survivor, []).append(customer_id)
    for survivor, merged in merged_away.items():
        pipe.srem(merged_away_key(survivor), *merged)
    pipe.zrem(RANK, *erased)
    pipe.zrem(LAST_INTERACTION, *erased)
    queue_cell_removal(pipe, erased)
    schedule(pipe, DUE, dict.fromkeys(erased))  # nothing due for them any more
    pipe.delete(*(key for c in erased for key in (customer_key(c), events_key(c), merged_away_key(c))))
