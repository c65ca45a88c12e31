"""The tagging read model in Redis: what the worker writes and the API reads.

Keys (all under `pd:tagging:`):
- `profile:{id}`        JSON `ProfileView` of the customer; for a merged-away customer only
                        `{"merged_into": survivor, "updated_at"}`.
- `seg:all`             set of every (not merged-away) customer;
  `seg:layer:{layer}`, `seg:orientation:{orientation}`, `seg:stage:{stage}`, `seg:band:{band}`,
  `seg:activity:{activity}`, `seg:reached:{funnel step}`, `seg:tag:{tag}`:
                        a set per value, so a segment is set algebra over a few sets inside Redis
                        (segment_queries.py) and never a scan of the customers. A customer is in
                        one set of each dimension but `reached` (every step reached) and none of
                        `band`/`activity` before their first score;
  `seg:unset:band`, `seg:unset:activity`: the customers in no band (activity) set.
- `tags`                set of every tag that was ever given (for "the most common tags"), but for
                        a tag that only erased customers had (erasure.py).
- `merged_away:{id}`    set, the customers merged away into the survivor `id` (their snapshots name
                        it), so that erasing the survivor finds them without a scan (erasure.py).
Writes are set-valued (SET, SADD, SREM) and compared with what Redis holds: a replayed batch
writes the same state again.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import orjson
from pydantic import BaseModel, ConfigDict, Field
from redis.asyncio import Redis

from shared.redis import KEY_PREFIX

from .batch import ProfileRecord
from .funnel import FUNNEL, FunnelStep
from .profile import Profile
from .rules import Layer, Orientation, Stage
from .segments import VALUES

PREFIX = f"{KEY_PREFIX}tagging:"
ALL = f"{PREFIX}seg:all"
TAG_NAMES = f"{PREFIX}tags"
MAX_MERGE_HOPS = 8
DIMENSIONS: dict[str, tuple[str, ...]] = {
    **VALUES,  # layer, orientation, stage, band, activity: one value each (segments.py)
    "reached": FUNNEL,
    # Customers with no band (activity) the contract names, i.e. not scored yet: so that every
    # customer is in one set of band and of activity too, which lets a count take "any of
    # these bands" as "everyone but the other bands and the unscored" (segments.py).
    "unset": ("band", "activity"),
}


def profile_key(customer_id: str) -> str:
    return f"{PREFIX}profile:{customer_id}"


def segment_key(dimension: str, value: str) -> str:
    return f"{PREFIX}seg:{dimension}:{value}"


def merged_away_key(survivor_id: str) -> str:
    return f"{PREFIX}merged_away:{survivor_id}"


# Every value's segment of every dimension: a customer leaves all but their own.
DIMENSION_SEGMENTS = frozenset(segment_key(d, v) for d, values in DIMENSIONS.items() for v in values)


class ProfileView(BaseModel):
    """docs/contract.md's profile, plus where the customer's intent stood at the last change."""

    model_config = ConfigDict(frozen=True)

    customer_id: str
    layer: Layer
    orientation: Orientation
    stage: Stage
    tags: list[str] = Field(description="sorted")
    intent_pct: float | None = None
    band: str | None = Field(default=None, description="from the latest score: low, medium, high, hot")
    activity: str | None = Field(
        default=None, description="from the latest score: active_7d, active_30d, dormant"
    )
    # A default, so snapshots written before funnel steps were kept still read.
    reached: list[FunnelStep] = Field(default_factory=list, description="funnel steps reached, in order")
    updated_at: datetime


class Snapshot(BaseModel):
    model_config = ConfigDict(frozen=True)

    merged_into: str | None = None
    updated_at: datetime


def view_of(profile: Profile, updated_at: datetime) -> ProfileView:
    return ProfileView(
        customer_id=profile.customer_id,
        layer=profile.layer,
        orientation=profile.orientation,
        stage=profile.stage,
        tags=list(profile.tags),
        intent_pct=profile.intent_pct,
        band=profile.band,
        activity=profile.activity,
        reached=list(profile.reached),
        updated_at=updated_at,
    )


class Visible(NamedTuple):
    """What a reader sees of a live customer: what the snapshot and the segment sets hold."""

    layer: str
    orientation: str
    stage: str
    tags: tuple[str, ...]
    intent_pct: float | None
    band: str | None
    activity: str | None
    # None only in a snapshot from before funnel steps (and band and activity sets) were kept:
    # it never equals a record's, so the customer's next write adds them.
    reached: tuple[str, ...] | None


class MergedAway(NamedTuple):
    survivor: str


def _visible(record: ProfileRecord) -> Visible | MergedAway:
    if record.merged_into is not None:
        return MergedAway(record.merged_into)
    p = record.profile
    return Visible(
        p.layer.value,
        p.orientation.value,
        p.stage.value,
        tuple(p.tags),
        p.intent_pct,
        p.band,
        p.activity,
        tuple(step.value for step in p.reached),
    )


def _visible_in(snapshot: dict[str, Any] | None) -> Visible | MergedAway | None:
    """The same, of a snapshot as Redis holds it (None: never written)."""
    if snapshot is None:
        return None
    if snapshot.get("merged_into") is not None:
        return MergedAway(snapshot["merged_into"])
    return Visible(
        snapshot["layer"],
        snapshot["orientation"],
        snapshot["stage"],
        tuple(snapshot["tags"]),
        snapshot.get("intent_pct"),
        snapshot.get("band"),
        snapshot.get("activity"),
        tuple(snapshot["reached"]) if "reached" in snapshot else None,
    )


def _memberships(visible: Visible | MergedAway | None) -> set[str]:
    """The sets the customer is a member of: their segments, or once merged away only their
    survivor's `merged_away`."""
    if isinstance(visible, MergedAway):
        return {merged_away_key(visible.survivor)}
    if visible is None:
        return set()
    sets = {
        ALL,
        segment_key("layer", visible.layer),
        segment_key("orientation", visible.orientation),
        segment_key("stage", visible.stage),
        *(segment_key("tag", tag) for tag in visible.tags),
        *(segment_key("reached", step) for step in visible.reached or ()),
    }
    # No band or activity before the first score: unset. So is a value the contract does not
    # name (one scoring may add later): queries accept only the contract's values, and the sweep
    # of stale values in write_records knows only theirs.
    for dimension, value in (("band", visible.band), ("activity", visible.activity)):
        known = value is not None and value in DIMENSIONS[dimension]
        sets.add(segment_key(dimension, value) if known else segment_key("unset", dimension))
    return sets


async def write_records(redis: Redis, records: Mapping[str, ProfileRecord], now: datetime) -> None:
    """Write the customers whose visible profile changed, in two round trips.

    "Changed" is measured against what Redis holds, not against the worker's table: after a
    crash the table may be older than Redis (a batch wrote Redis, then died before its changelog),
    and a replay that reaches the same end in one batch must still take the customer out of every
    segment the lost batch put them in. Every write sets state (SET, SADD, SREM).
    """
    if not records:
        return
    ids = list(records)
    current = await redis.mget([profile_key(customer_id) for customer_id in ids])
    pipe = redis.pipeline(transaction=False)
    snapshots: dict[str, bytes] = {}
    added: dict[str, list[str]] = {}
    removed: dict[str, list[str]] = {}
    tags: set[str] = set()
    for customer_id, raw in zip(ids, current, strict=True):
        record = records[customer_id]
        new, old = _visible(record), _visible_in(orjson.loads(raw) if raw else None)
        if new == old:
            continue
        if record.merged_into is not None:
            merged = Snapshot(merged_into=record.merged_into, updated_at=now)
            snapshots[profile_key(customer_id)] = merged.model_dump_json().encode()
        else:
            snapshots[profile_key(customer_id)] = view_of(record.profile, now).model_dump_json().encode()
            tags.update(record.profile.tags)
        new_sets, old_sets = _memberships(new), _memberships(old)
        # Also leave every other value of each dimension, and the set of everyone once merged.
        stale = old_sets - new_sets
        stale |= DIMENSION_SEGMENTS - new_sets
        if record.merged_into is not None:
            stale.add(ALL)
        for key in new_sets:
            added.setdefault(key, []).append(customer_id)
        for key in stale:
            removed.setdefault(key, []).append(customer_id)
    if not snapshots:
        return
    pipe.mset(snapshots)
    for key, members in added.items():
        pipe.sadd(key, *members)
    for key, members in removed.items():
        pipe.srem(key, *members)
    if tags:
        pipe.sadd(TAG_NAMES, *tags)
    await pipe.execute()


async def read_profile(redis: Redis, customer_id: str) -> ProfileView | None:
    """The customer's profile, following merges to the survivor; None if unknown."""
    for _ in range(MAX_MERGE_HOPS):
        raw = await redis.get(profile_key(customer_id))
        if raw is None:
            return None
        snapshot = Snapshot.model_validate_json(raw)
        if snapshot.merged_into is None:
            return ProfileView.model_validate_json(raw)
        customer_id = snapshot.merged_into
    return None


async def ladder(redis: Redis) -> dict[str, dict[str, int]]:
    """Customers per value-ladder layer x orientation: the multi-layer matrix's main view."""
    pipe = redis.pipeline(transaction=False)
    cells = [(layer, orientation) for layer in Layer for orientation in Orientation]
    for layer, orientation in cells:
        pipe.sintercard(2, [segment_key("layer", layer), segment_key("orientation", orientation)])
    counts = await pipe.execute()
    matrix: dict[str, dict[str, int]] = {layer: {} for layer in Layer}
    for (layer, orientation), count in zip(cells, counts, strict=True):
        matrix[layer][orientation] = int(count)
    return matrix


async def tag_counts(redis: Redis) -> dict[str, int]:
    """Customers per tag, most common first."""
    names = sorted(member.decode() for member in await redis.smembers(TAG_NAMES))
    if not names:
        return {}
    pipe = redis.pipeline(transaction=False)
    for name in names:
        pipe.scard(segment_key("tag", name))
    counts = await pipe.execute()
    ranked = sorted(zip(names, counts, strict=True), key=lambda pair: (-pair[1], pair[0]))
    return {name: int(count) for name, count in ranked if count}


BACKFILLED = f"{PREFIX}segments:backfilled"  # set once every customer is in the scored sets
_BACKFILL = (Path(__file__).parent / "backfill_segments.lua").read_text()
BACKFILL_CHUNK = 500


async def backfill_scored_segments(redis: Redis) -> int:
    """Once per Redis: put customers written before the band, activity, unset and funnel-step
    sets existed into them (segments.py counts "any of these bands" as everyone but the others,
    which holds only if every customer is in one band set or `unset`). Safe beside a running
    worker: each chunk is one atomic script. Returns how many customers it went through."""
    if await redis.exists(BACKFILLED):
        return 0
    script = redis.register_script(_BACKFILL)
    done, cursor = 0, 0
    while True:
        cursor, members = await redis.sscan(ALL, cursor, count=BACKFILL_CHUNK)
        if members:
            done += int(await script(args=[PREFIX, *members]))
        if cursor == 0:
            break
    await redis.set(BACKFILLED, "1")
    return done
