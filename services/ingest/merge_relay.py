"""Publishes merges that no event carried: the outbox and the pending joins in Redis.

resolve.lua writes a merge, its outbox entry and its pending join in one atomic step.

- `MergeRelay` sends outbox entries to `identity.merges.v1`, the public change feed of merges,
  and deletes them only after the broker acknowledged. So a merge reaches that topic even if
  the broker was down when it happened (at-least-once; consumers dedupe by merge_id).
- `JoinRelay` is the fallback for the merge's records on `touchpoint.events.v1`. Normally the
  event that caused a merge carries them (pipeline.py); if that send failed and no later event
  of the survivor came to carry them within the grace period, the relay sends them alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from .identity_store import IdentityStore
from .pipeline import SendRecords, merge_records

log = logging.getLogger(__name__)

SendMerge = Callable[[bytes, bytes], Awaitable[asyncio.Future[object]]]


class MergeRelay:
    def __init__(self, store: IdentityStore, send: SendMerge, interval_s: float = 1.0) -> None:
        self._store = store
        self._send = send
        self._interval_s = interval_s
        self._nudge = asyncio.Event()

    def nudge(self) -> None:
        """New merges are waiting: publish now rather than at the next interval."""
        self._nudge.set()

    async def publish_pending(self, batch: int = 500) -> int:
        published = 0
        while entries := await self._store.pending_merges(batch):
            futures = [
                await self._send(merge.merged_customer_id.encode(), merge.model_dump_json().encode())
                for _, merge in entries
            ]
            await asyncio.gather(*futures)
            await self._store.drop_merges([entry_id for entry_id, _ in entries])
            published += len(entries)
        return published

    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._nudge.wait(), self._interval_s)
            self._nudge.clear()
            try:
                await asyncio.wait_for(self.publish_pending(), 30)
            except Exception as error:  # broker or Redis away: entries stay in the outbox
                log.warning("merge relay will retry: %r", error)


class JoinRelay:
    def __init__(
        self,
        store: IdentityStore,
        send: SendRecords,
        clock: Callable[[], datetime],
        grace_s: float,
        interval_s: float = 1.0,
    ) -> None:
        self._store = store
        self._send = send
        self._clock = clock
        self._grace = timedelta(seconds=grace_s)
        self._interval_s = interval_s

    async def publish_overdue(self, batch: int = 500) -> int:
        """Send each join pending longer than the grace period (`identity.merged`, then
        `identity.joined`), and drop it once both were acknowledged."""
        published = 0
        while joins := await self._store.overdue_joins(self._clock() - self._grace, batch):
            records = [record for join in joins for record in merge_records(join.merge)]
            await asyncio.gather(*set(await self._send(records)))
            await self._store.drop_joins([(join.holder, join.merge.merge_id) for join in joins])
            published += len(joins)
        return published

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)  # a poll interval, not a wait for anything
            try:
                await asyncio.wait_for(self.publish_overdue(), 30)
            except Exception as error:  # broker or Redis away: the joins stay pending
                log.warning("join relay will retry: %r", error)
