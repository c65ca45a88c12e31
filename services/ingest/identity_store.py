"""The identity graph and dedupe keys in Redis (see resolve.lua for the key layout)."""

from __future__ import annotations

from datetime import datetime
from importlib.resources import files
from typing import NamedTuple

import orjson
from redis.asyncio import Redis

from shared.identity import IdentityMerged, group_identities

OUTBOX = "pd:outbox:merges"


class Claim(NamedTuple):
    """An event asking to be resolved: its id and its canonical `type:value` identifiers."""

    event_id: str
    identity_keys: list[str]


class Resolution(NamedTuple):
    customer_id: str
    duplicate: bool


class IdentityStore:
    def __init__(self, redis: Redis, seen_ttl_s: int) -> None:
        self._redis = redis
        self._seen_ttl_s = seen_ttl_s
        self._resolve = redis.register_script(_script("resolve.lua"))
        self._mark_seen = redis.register_script(_script("mark_seen.lua"))

    async def resolve(self, claims: list[Claim], now: datetime) -> tuple[list[Resolution], int]:
        """One round trip: dedupe and resolve every claim. Returns resolutions and merge count."""
        events = [{"id": claim.event_id, "idn": claim.identity_keys} for claim in claims]
        request = {"now": now.isoformat(), "events": events}
        reply = orjson.loads(await self._resolve(args=[orjson.dumps(request)]))
        resolutions = [Resolution(customer_id, bool(dup)) for customer_id, dup in reply["results"]]
        return resolutions, len(reply["merges"])

    async def mark_seen(self, seen: list[tuple[str, str]]) -> None:
        """Remember (event_id, customer_id) pairs the broker acknowledged. One round trip."""
        if seen:
            await self._mark_seen(args=[self._seen_ttl_s, *(value for pair in seen for value in pair)])

    async def lookup(self, identity_key: str) -> tuple[str, dict[str, list[str]]] | None:
        """The customer owning an identifier, and all of that customer's identifiers."""
        customer_id = await self._redis.get(f"pd:idn:{identity_key}")
        if customer_id is None:
            return None
        customer_id = customer_id.decode()
        members = await self._redis.smembers(f"pd:cust:{customer_id}:idn")
        return customer_id, group_identities([m.decode() for m in members])

    async def pending_merges(self, limit: int) -> list[tuple[bytes, IdentityMerged]]:
        """Merges written by resolve() and not yet published, oldest first."""
        entries = await self._redis.xrange(OUTBOX, count=limit)
        return [(entry_id, _merge_record(fields)) for entry_id, fields in entries]

    async def drop_merges(self, entry_ids: list[bytes]) -> None:
        if entry_ids:
            await self._redis.xdel(OUTBOX, *entry_ids)


def _script(name: str) -> str:
    return files(__package__).joinpath(name).read_text()


def _merge_record(fields: dict[bytes, bytes]) -> IdentityMerged:
    return IdentityMerged(
        merge_id=fields[b"merge_id"].decode(),
        merged_customer_id=fields[b"merged"].decode(),
        survivor_customer_id=fields[b"survivor"].decode(),
        identities=group_identities(orjson.loads(fields[b"identities"]) or []),
        merged_at=datetime.fromisoformat(fields[b"at"].decode()),
    )
