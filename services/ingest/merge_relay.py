"""Publishes identity merges from the Redis outbox to `identity.merges.v1`.

resolve.lua writes a merge and its outbox entry in one atomic step; this relay sends the
entries and deletes them only after the broker acknowledged. So a merge reaches the topic
even if the broker was down when it happened (at-least-once; consumers dedupe by merge_id).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from .identity_store import IdentityStore

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
