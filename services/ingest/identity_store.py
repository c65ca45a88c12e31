"""The identity graph and dedupe keys in Redis (see resolve.lua for the key layout)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from importlib.resources import files
from typing import Any, NamedTuple

import orjson
from pydantic import BaseModel, Field
from redis.asyncio import Redis

from shared.identity import IdentityMerged, group_identities
from shared.wecom import customer_identities_key

from .event_counts import MINUTE_TTL_S, minute_key

OUTBOX = "pd:outbox:merges"
JOINING = "pd:joining"
CONFLICTS = "pd:identity:conflicts"
MAX_CONFLICTS = 10_000  # kept for review: the latest


@dataclass(frozen=True)
class IdentityLimits:
    """How far one event may grow a customer (resolve.lua): identifiers of one type a customer
    may hold, and customers merged into one in a UTC day. Beyond them the event is accepted
    without the links it would add, and the conflict is kept for review."""

    per_type: Mapping[str, int]
    default: int
    merges_per_day: int

    def as_json(self) -> bytes:
        return orjson.dumps(
            {
                "identifiers": dict(self.per_type),
                "default": self.default,
                "merges_per_day": self.merges_per_day,
                "conflicts": MAX_CONFLICTS,
            }
        )


class UnbindRefused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class IdentityConflict(BaseModel):
    entry_id: str
    at: datetime
    event_id: str
    customer_id: str = Field(description="where the event went")
    others: list[str] = Field(description="customers it would have merged, not merged")
    identities: list[str] = Field(description="`type:value` the event named (phones as hashes)")
    reason: str = Field(description="merge_limit or identifier_limit")


class Claim(NamedTuple):
    """An event asking to be resolved: its id and its canonical `type:value` identifiers."""

    event_id: str
    identity_keys: list[str]


class Resolution(NamedTuple):
    customer_id: str
    duplicate: bool
    # Pending joins whose records go on the topic right before this event's, oldest first.
    joins: tuple[IdentityMerged, ...] = ()
    conflict: str | None = None  # why the event was accepted without (all) its links


class SeenEvent(NamedTuple):
    """An event the broker acknowledged: to be marked seen and counted for its source."""

    event_id: str
    customer_id: str
    source: str


class PendingJoin(NamedTuple):
    """A merge whose records are not yet acknowledged on the events topic."""

    holder: str  # the customer whose next event carries it (the survivor, or whom it merged into)
    merge: IdentityMerged


class IdentityStore:
    def __init__(
        self,
        redis: Redis,
        seen_ttl_s: int,
        limits: IdentityLimits,
        on_conflict: Callable[[str], None] = lambda reason: None,
    ) -> None:
        self._redis = redis
        self._seen_ttl_s = seen_ttl_s
        self._limits = limits.as_json()
        self._on_conflict = on_conflict
        self._resolve = redis.register_script(_script("resolve.lua"))
        self._mark_seen = redis.register_script(_script("mark_seen.lua"))
        self._unbind = redis.register_script(_script("unbind.lua"))

    async def resolve(self, claims: list[Claim], now: datetime) -> list[Resolution]:
        """One round trip: dedupe and resolve every claim, merging customers where they link.

        Each new event's resolution lists the pending joins to publish before it: the merges it
        caused, and earlier ones of its customer whose records were not acknowledged yet.
        """
        events = [{"id": claim.event_id, "idn": claim.identity_keys} for claim in claims]
        request = orjson.dumps({"now": now.isoformat(), "events": events})
        reply = orjson.loads(await self._resolve(args=[request, _epoch_ms(now), self._limits]))
        resolutions = [
            Resolution(
                result[0],
                bool(result[1]),
                tuple(map(_join_record, result[2] or [])),  # Lua's cjson writes an empty list as {}
                result[3] if len(result) > 3 else None,
            )
            if len(result) > 2
            else Resolution(result[0], bool(result[1]))
            for result in reply["results"]
        ]
        for resolution in resolutions:
            if resolution.conflict:
                self._on_conflict(resolution.conflict)
        return resolutions

    async def unbind(self, customer_id: str, identity_keys: list[str], at: datetime, by: str) -> str:
        """Move identifiers of a customer to one new customer; its id. UnbindRefused (404, 409)
        if the customer is unknown or merged away, an identifier is not theirs, or none would stay."""
        request = orjson.dumps(
            {"customer_id": customer_id, "identities": identity_keys, "at": at.isoformat(), "by": by}
        )
        reply = orjson.loads(await self._unbind(args=[request]))
        if "error" in reply:
            raise UnbindRefused(int(reply["status"]), reply["error"])
        return str(reply["customer_id"])

    async def conflicts(self, limit: int) -> list[IdentityConflict]:
        """Events accepted without (all) their links, newest first."""
        entries = await self._redis.xrevrange(CONFLICTS, count=limit)
        return [_conflict(entry_id, fields) for entry_id, fields in entries]

    async def drop_joins(self, joins: list[tuple[str, str]]) -> None:
        """Forget pending joins, as (holder, merge_id), whose records were acknowledged. One
        round trip; a join that moved to another holder since stays (and goes out again)."""
        if not joins:
            return
        async with self._redis.pipeline(transaction=True) as pipe:
            by_holder: dict[str, list[str]] = {}
            for holder, merge_id in joins:
                by_holder.setdefault(holder, []).append(merge_id)
            for holder, merge_ids in by_holder.items():
                pipe.hdel(f"{JOINING}:{holder}", *merge_ids)
            pipe.zrem(JOINING, *(f"{holder}|{merge_id}" for holder, merge_id in joins))
            await pipe.execute()

    async def overdue_joins(self, waiting_since: datetime, limit: int) -> list[PendingJoin]:
        """Pending joins waiting since `waiting_since` or before, in the order they were made."""
        members = await self._redis.zrangebyscore(
            JOINING, "-inf", _epoch_ms(waiting_since), start=0, num=limit
        )
        if not members:
            return []
        owners = [member.decode().split("|", 1) for member in members]
        async with self._redis.pipeline(transaction=False) as pipe:
            for holder, merge_id in owners:
                pipe.hget(f"{JOINING}:{holder}", merge_id)
            values = await pipe.execute()
        found: list[tuple[int, PendingJoin]] = []
        gone: list[bytes] = []
        for member, (holder, _), value in zip(members, owners, values, strict=True):
            if value is None:  # dropped since the range was read
                gone.append(member)
            else:
                join = orjson.loads(value)
                found.append((join["seq"], PendingJoin(holder, _join_record(join))))
        if gone:  # and if it was never there, it must not come back every time
            await self._redis.zrem(JOINING, *gone)
        # Made in one script call, chained merges share a score: `seq` keeps them in order.
        return [join for _, join in sorted(found, key=lambda pair: pair[0])]

    async def mark_seen(self, seen: list[SeenEvent], at: datetime) -> str | None:
        """Remember events the broker acknowledged and count them per source in `at`'s minute
        (event_counts.py). One round trip. Returns why counting failed, if it did: the marks are
        made all the same, and the events were accepted."""
        if not seen:
            return None
        by_source: dict[str, list[str]] = {}
        for event_id, customer_id, source in seen:
            pairs = by_source.get(source)
            if pairs is None:
                pairs = by_source[source] = []
            pairs += (event_id, customer_id)
        args: list[str | int] = [self._seen_ttl_s, minute_key(at), MINUTE_TTL_S]
        for source, pairs in by_source.items():
            args += (source, len(pairs) // 2, *pairs)
        _, failure = await self._mark_seen(args=args)
        return failure.decode() if failure else None

    async def lookup(self, identity_key: str) -> tuple[str, dict[str, list[str]]] | None:
        """The customer owning an identifier, and all of that customer's identifiers."""
        customer_id = await self._redis.get(f"pd:idn:{identity_key}")
        if customer_id is None:
            return None
        customer_id = customer_id.decode()
        members = await self._redis.smembers(customer_identities_key(customer_id))
        return customer_id, group_identities([m.decode() for m in members])

    async def pending_merges(self, limit: int) -> list[tuple[bytes, IdentityMerged]]:
        """Merges written by resolve() and not yet published, oldest first."""
        entries = await self._redis.xrange(OUTBOX, count=limit)
        return [(entry_id, _merge_record(fields)) for entry_id, fields in entries]

    async def drop_merges(self, entry_ids: list[bytes]) -> None:
        if entry_ids:
            await self._redis.xdel(OUTBOX, *entry_ids)


def _conflict(entry_id: bytes, fields: dict[bytes, bytes]) -> IdentityConflict:
    return IdentityConflict(
        entry_id=entry_id.decode(),
        at=datetime.fromisoformat(fields[b"at"].decode()),
        event_id=fields[b"event_id"].decode(),
        customer_id=fields[b"customer_id"].decode(),
        others=orjson.loads(fields[b"others"]) or [],
        identities=orjson.loads(fields[b"identities"]) or [],
        reason=fields[b"reason"].decode(),
    )


def _script(name: str) -> str:
    return files(__package__).joinpath(name).read_text()


def _epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _merge_record(fields: dict[bytes, bytes]) -> IdentityMerged:
    return IdentityMerged(
        merge_id=fields[b"merge_id"].decode(),
        merged_customer_id=fields[b"merged"].decode(),
        survivor_customer_id=fields[b"survivor"].decode(),
        identities=group_identities(orjson.loads(fields[b"identities"]) or []),
        merged_at=datetime.fromisoformat(fields[b"at"].decode()),
    )


def _join_record(join: dict[str, Any]) -> IdentityMerged:
    return IdentityMerged(
        merge_id=join["merge_id"],
        merged_customer_id=join["merged"],
        survivor_customer_id=join["survivor"],
        identities=group_identities(join["identities"] or []),  # cjson writes [] as {}
        merged_at=datetime.fromisoformat(join["at"]),
    )
