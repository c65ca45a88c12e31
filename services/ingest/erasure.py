"""Erasing a customer at ingest: the identity graph, what names them in Redis, the tombstones.

`DELETE /v1/customers/{id}` (docs/privacy.md, "Erasure") calls `Eraser.erase`:

1. erase.lua, atomically: the customer and everyone merged into them lose their identifiers
   (so no event resolves to them again), pending joins and merge counters; the erasure record
   is written (`pd:erased`, shared/erasure.py) and the erasure is left pending.
2. What else names them in Redis: merges not yet relayed (`pd:outbox:merges`), identity
   conflicts and unbinds kept for review, and the seen marks of their events, which become ''
   (still seen, so a client's retry of an old event is a duplicate, but naming nobody). Seen
   marks are keyed by event, not customer: they are found by a SCAN of `pd:seen:*`, the one
   step whose time grows with traffic (about a second per 100,000 marks kept).
3. A tombstone for each of them on `touchpoint.events.v1`, after everything accepted for them;
   the workers take it from there. Once the broker acknowledged them, the erasure is done.

A failure after step 1 (broker away) leaves the erasure pending: `finish_pending` (run every few
seconds by the app, and by a repeated DELETE) completes it. Every step can be repeated.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from importlib.resources import files
from typing import Any

import orjson
from redis.asyncio import Redis

from shared.erasure import ERASED, PENDING, ErasureRecord

from .identity_store import CONFLICTS, OUTBOX

log = logging.getLogger(__name__)

UNBINDS = "pd:identity:unbinds"  # written by unbind.lua
SEEN_PATTERN = "pd:seen:*"
SCAN_PAGE = 1000

# Queues tombstones (keys) on touchpoint.events.v1; one future per record, resolved on its ack.
SendTombstones = Callable[[list[bytes]], Awaitable[list[asyncio.Future[object]]]]


class CustomerNotFound(Exception):
    pass


class Eraser:
    def __init__(self, redis: Redis, send_tombstones: SendTombstones) -> None:
        self._redis = redis
        self._send_tombstones = send_tombstones
        self._erase = redis.register_script(files(__package__).joinpath("erase.lua").read_text())
        self._finishing: set[str] = set()

    async def erase(self, customer_id: str, at: datetime, by: str) -> ErasureRecord:
        """Erase the customer (and those merged into them); the erasure record. Idempotent: a
        customer erased before gets their record back, and an unfinished erasure is finished.
        CustomerNotFound if no such customer ever was."""
        days = [(at - timedelta(days=back)).date().isoformat() for back in range(3)]
        request = orjson.dumps({"customer_id": customer_id, "at": at.isoformat(), "by": by, "days": days})
        reply: dict[str, Any] = orjson.loads(await self._erase(args=[request]))
        if "error" in reply:
            raise CustomerNotFound(reply["error"])
        record = ErasureRecord.model_validate(reply)
        await self._finish(record)
        return record

    async def finish_pending(self) -> int:
        """Finish erasures left pending (a failure after erase.lua); how many were finished."""
        finished = 0
        for member in await self._redis.smembers(PENDING):
            customer_id = member.decode()
            raw = await self._redis.hget(ERASED, customer_id)
            if customer_id in self._finishing or raw is None:
                continue
            await self._finish(ErasureRecord.model_validate_json(raw))
            finished += 1
        return finished

    async def run_pending(self, interval_s: float = 5.0) -> None:
        """Keep finishing pending erasures (started with the app)."""
        while True:
            try:
                if finished := await self.finish_pending():
                    log.info("finished %d pending erasures", finished)
            except Exception as error:  # Redis or the broker away: the next round tries again
                log.warning("pending erasures not finished yet: %r", error)
            await asyncio.sleep(interval_s)

    async def _finish(self, record: ErasureRecord) -> None:
        self._finishing.add(record.customer_id)
        try:
            ids = set(record.customer_ids)
            await self._forget_in_streams(ids)
            swept = await self._sweep_seen(ids)
            futures = await self._send_tombstones([cid.encode() for cid in record.customer_ids])
            await asyncio.gather(*futures)
            await self._redis.srem(PENDING, record.customer_id)
            log.info("customers erased", extra={"customers": len(ids), "seen_marks_cleared": swept})
        finally:
            self._finishing.discard(record.customer_id)

    async def _forget_in_streams(self, ids: set[str]) -> None:
        """Entries naming them in the merge outbox, the conflicts and the unbinds: deleted."""
        naming = {
            OUTBOX: (b"merged", b"survivor"),
            CONFLICTS: (b"customer_id",),
            UNBINDS: (b"from", b"into"),
        }
        for stream, fields in naming.items():
            doomed = [
                entry_id
                for entry_id, values in await self._redis.xrange(stream)
                if _names(values, fields, ids)
            ]
            if doomed:
                await self._redis.xdel(stream, *doomed)

    async def _sweep_seen(self, ids: set[str]) -> int:
        """Seen marks naming them become '': still duplicates, naming nobody."""
        wanted = {cid.encode() for cid in ids}
        cleared = 0
        async for keys in _pages(self._redis, SEEN_PATTERN):
            values = await self._redis.mget(keys)
            theirs = [key for key, value in zip(keys, values, strict=True) if value in wanted]
            if theirs:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for key in theirs:
                        pipe.set(key, b"", keepttl=True, xx=True)
                    await pipe.execute()
                cleared += len(theirs)
        return cleared


def _names(values: dict[bytes, bytes], fields: Sequence[bytes], ids: set[str]) -> bool:
    if any(values.get(name, b"").decode() in ids for name in fields):
        return True
    others = values.get(b"others")  # conflicts: customers the event would have merged
    return others is not None and bool(ids.intersection(orjson.loads(others) or []))


async def _pages(redis: Redis, pattern: str) -> AsyncIterator[list[bytes]]:
    cursor = 0
    while True:
        cursor, keys = await redis.scan(cursor, match=pattern, count=SCAN_PAGE)
        if keys:
            yield keys
        if cursor == 0:
            return
