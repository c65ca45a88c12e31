"""Publishes merges that no event carried: the outbox and the pending joins in Redis.

resolve.lua writes a merge, its outbox entry and its pending join in one atomic step.

- `MergeRelay` sends outbox entries to `identity.merges.v1`, the public change feed of merges,
  and deletes them only after the broker acknowledged. So a merge reaches that topic even if
  the broker was down when it happened (at-least-once; consumers dedupe by merge_id).
  A merge record the broker can never take — over `max_record_bytes` (a customer who gathered
  thousands of identifiers; not sent at all), or refused for what it is (shared/kafka.py,
  REFUSED_RECORD_ERRORS) — would block the outbox for good, the merges after it included. It
  is skipped: dead-lettered (to `identity.merges.v1.dlq`, cut small, with the reason) and
  deleted from the outbox once the dead letter is acknowledged, and the relay goes on with the
  next. Any other error leaves the entries not yet acknowledged in the outbox, to retry.
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

from shared.dead_letters import DeadLetter
from shared.identity import IdentityMerged
from shared.kafka import REFUSED_RECORD_ERRORS
from shared.topics import IDENTITY_MERGES

from .identity_store import IdentityStore
from .pipeline import SendRecords, merge_records

log = logging.getLogger(__name__)

SendMerge = Callable[[bytes, bytes], Awaitable[asyncio.Future[object]]]
# As the workers' (shared/stream_worker.py): below Apache Kafka's 1,048,588 bytes a batch.
MAX_RECORD_BYTES = 1_000_000


class MergeRelay:
    """`send` queues a record on `identity.merges.v1`; `dead_letter` one on its `.dlq` (None: a
    merge the broker can never take is only logged, and skipped all the same)."""

    def __init__(
        self,
        store: IdentityStore,
        send: SendMerge,
        interval_s: float = 1.0,
        *,
        dead_letter: SendMerge | None = None,
        max_record_bytes: int = MAX_RECORD_BYTES,
    ) -> None:
        self._store = store
        self._send = send
        self._dead_letter = dead_letter
        self._max_record_bytes = max_record_bytes
        self._interval_s = interval_s
        self._nudge = asyncio.Event()

    def nudge(self) -> None:
        """New merges are waiting: publish now rather than at the next interval."""
        self._nudge.set()

    async def publish_pending(self, batch: int = 500) -> int:
        """Publish the outbox, oldest first; how many merges were published (skipped ones not
        counted). Raises on an error that is not about a record, after deleting what is done."""
        published = 0
        while entries := await self._store.pending_merges(batch):
            records = [(entry_id, *_record(merge)) for entry_id, merge in entries]
            skipped: list[tuple[bytes, bytes, bytes, str]] = []  # (entry id, key, value, reason)
            sending: list[tuple[bytes, bytes, bytes]] = []
            for entry_id, key, value in records:
                if len(key) + len(value) > self._max_record_bytes:
                    reason = f"a merge record of {len(key) + len(value)} bytes is over the "
                    skipped.append((entry_id, key, value, reason + f"{self._max_record_bytes}-byte limit"))
                else:
                    sending.append((entry_id, key, value))
            queued = [await self._queued(key, value) for _, key, value in sending]  # in the outbox's order
            outcomes = await asyncio.gather(*[_acked(one) for one in queued])
            done = [entry_id for (entry_id, _, _), o in zip(sending, outcomes, strict=True) if o is None]
            failure: BaseException | None = None
            for (entry_id, key, value), outcome in zip(sending, outcomes, strict=True):
                if isinstance(outcome, REFUSED_RECORD_ERRORS):
                    skipped.append((entry_id, key, value, f"refused by the broker: {outcome!r}"))
                elif outcome is not None:
                    failure = failure or outcome
            await self._store.drop_merges(done)
            published += len(done)
            await self._store.drop_merges(await self._skip(skipped))
            if failure is not None:  # the rest stays in the outbox: retried at the next round
                raise failure
        return published

    async def _queued(self, key: bytes, value: bytes) -> asyncio.Future[object] | BaseException:
        """One record queued on the producer (its ack to come), or why it could not be."""
        try:
            return await self._send(key, value)
        except Exception as error:  # sorted out by the caller: refused, or to be retried
            return error

    async def _skip(self, skipped: list[tuple[bytes, bytes, bytes, str]]) -> list[bytes]:
        """Dead-letter merges the broker can never take; their entry ids, once acknowledged."""
        for _, _, _, reason in skipped:
            log.error("skipping a merge the broker can never take: %s", reason)
        if not skipped or self._dead_letter is None:
            return [entry_id for entry_id, *_ in skipped]
        letters = [
            DeadLetter(IDENTITY_MERGES, key, value, reason, -1, -1) for _, key, value, reason in skipped
        ]
        futures = [await self._dead_letter(letter.key or b"", letter.encode()) for letter in letters]
        await asyncio.gather(*futures)  # an error here: the entries stay, retried next round
        return [entry_id for entry_id, *_ in skipped]

    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._nudge.wait(), self._interval_s)
            self._nudge.clear()
            try:
                await asyncio.wait_for(self.publish_pending(), 30)
            except Exception as error:  # broker or Redis away: entries stay in the outbox
                log.warning("merge relay will retry: %r", error)


async def _acked(queued: asyncio.Future[object] | BaseException) -> BaseException | None:
    """None once the broker acknowledged the record; else the error."""
    if isinstance(queued, BaseException):
        return queued
    try:
        await queued
    except Exception as error:  # sorted out by the caller: refused, or to be retried
        return error
    return None


def _record(merge: IdentityMerged) -> tuple[bytes, bytes]:
    return merge.merged_customer_id.encode(), merge.model_dump_json().encode()


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
