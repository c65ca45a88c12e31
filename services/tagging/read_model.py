"""The tagging read model in Redis: what the worker writes and the API reads.

Keys (all under `pd:tagging:`):
- `profile:{id}`        JSON `ProfileView` of the customer; for a merged-away customer only
                        `{"merged_into": survivor, "updated_at"}`.
- `seg:all`             set of every (not merged-away) customer;
  `seg:layer:{layer}`, `seg:orientation:{orientation}`, `seg:stage:{stage}`, `seg:tag:{tag}`:
                        a set per value, so a segment count is a SCARD or SINTERCARD of a few sets
                        and never scans the customers.
- `tags`                set of every tag that was ever given (for "the most common tags").
Writes are set-valued (SET, SADD, SREM) and compared with what Redis holds: a replayed batch
writes the same state again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field
from redis.asyncio import Redis

from shared.redis import KEY_PREFIX

from .batch import ProfileRecord
from .profile import Profile
from .rules import Layer, Orientation, Stage

PREFIX = f"{KEY_PREFIX}tagging:"
ALL = f"{PREFIX}seg:all"
TAG_NAMES = f"{PREFIX}tags"
MAX_MERGE_HOPS = 8
DIMENSIONS: dict[str, tuple[str, ...]] = {
    "layer": tuple(Layer),
    "orientation": tuple(Orientation),
    "stage": tuple(Stage),
}


def profile_key(customer_id: str) -> str:
    return f"{PREFIX}profile:{customer_id}"


def segment_key(dimension: str, value: str) -> str:
    return f"{PREFIX}seg:{dimension}:{value}"


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
        updated_at=updated_at,
    )


def _visible(record: ProfileRecord) -> tuple[object, ...]:
    """What a reader sees of a record: what the snapshot and the segment sets hold."""
    if record.merged_into is not None:
        return ("merged", record.merged_into)
    p = record.profile
    return (
        p.layer.value,
        p.orientation.value,
        p.stage.value,
        tuple(p.tags),
        p.intent_pct,
        p.band,
        p.activity,
    )


def _visible_in(snapshot: dict[str, Any] | None) -> tuple[object, ...] | None:
    """The same, of a snapshot as Redis holds it (None: never written)."""
    if snapshot is None:
        return None
    if snapshot.get("merged_into") is not None:
        return ("merged", snapshot["merged_into"])
    keys = ("layer", "orientation", "stage")
    scored = (snapshot.get("intent_pct"), snapshot.get("band"), snapshot.get("activity"))
    return (*(snapshot[k] for k in keys), tuple(snapshot["tags"]), *scored)


def _memberships(visible: tuple[object, ...] | None) -> set[str]:
    if visible is None or visible[0] == "merged":
        return set()
    layer, orientation, stage, tags, *_ = visible
    assert isinstance(tags, tuple)
    return {
        ALL,
        segment_key("layer", str(layer)),
        segment_key("orientation", str(orientation)),
        segment_key("stage", str(stage)),
        *(segment_key("tag", str(tag)) for tag in tags),
    }


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


async def count_segment(redis: Redis, filters: Iterable[tuple[str, str]]) -> int:
    """Customers in every one of the segments (dimension, value); all customers without filters."""
    keys = sorted({segment_key(dimension, value) for dimension, value in filters})
    if not keys:
        return int(await redis.scard(ALL))
    if len(keys) == 1:
        return int(await redis.scard(keys[0]))
    return int(await redis.sintercard(len(keys), keys))


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
