"""From validated events to events acknowledged on `touchpoint.events.v1`.

Concurrent requests are coalesced: while one group is being resolved and produced, the next
requests queue up and go together as the next group (group commit). Each group costs one
Redis round trip to dedupe and resolve identities, one wait for the broker's acks, and one
round trip to mark the acknowledged event ids as seen. Marking only after the ack means a
failed produce never leaves an id marked as seen; a crash between ack and mark can only
cause a duplicate on the topic, which consumers drop by `event_id`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from shared.events import IngestedEvent

from .identity_store import Claim, IdentityStore, Resolution

log = logging.getLogger(__name__)

# What the pipeline needs from Kafka: send one keyed record, resolve when acknowledged.
SendRecord = Callable[[bytes, bytes], Awaitable[asyncio.Future[object]]]


@dataclass(frozen=True)
class PendingEvent:
    """A validated event with its identities protected, waiting for a customer id."""

    event: IngestedEvent  # customer_id is filled in by the pipeline
    identity_keys: list[str]


@dataclass(frozen=True)
class Acknowledged:
    event_id: str
    customer_id: str
    duplicate: bool


class BrokerUnavailable(Exception):
    """The broker did not acknowledge in time: nothing of the request may be acknowledged."""


class Overloaded(Exception):
    """More events are queued than the pipeline may hold; the caller should retry later."""


@dataclass
class _Submission:
    events: list[PendingEvent]
    done: asyncio.Future[list[Acknowledged]]


class IngestPipeline:
    def __init__(
        self,
        store: IdentityStore,
        send: SendRecord,
        on_merges: Callable[[], None],
        clock: Callable[[], datetime],
        *,
        produce_timeout_s: float,
        max_queued_events: int,
        max_group_events: int = 2_000,
    ) -> None:
        self._store = store
        self._send = send
        self._on_merges = on_merges
        self._clock = clock
        self._produce_timeout_s = produce_timeout_s
        self._max_queued_events = max_queued_events
        self._max_group_events = max_group_events
        self._queue: deque[_Submission] = deque()
        self._queued_events = 0
        self._wakeup = asyncio.Event()

    async def submit(self, events: list[PendingEvent]) -> list[Acknowledged]:
        """Resolve and publish; returns once every event is acknowledged by the broker."""
        if self._queued_events + len(events) > self._max_queued_events:
            raise Overloaded(f"{self._queued_events} events already queued")
        submission = _Submission(events, asyncio.get_running_loop().create_future())
        self._queue.append(submission)
        self._queued_events += len(events)
        self._wakeup.set()
        return await submission.done

    async def run(self) -> None:
        """The single consumer of the queue; runs for the life of the app."""
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                group = self._take_group()
                try:
                    await self._publish_group(group)
                except Exception as error:  # Redis down, or a bug: fail the group, keep serving
                    log.warning("ingest group of %d requests failed: %r", len(group), error)
                    for submission in group:
                        if not submission.done.done():
                            submission.done.set_exception(error)

    def _take_group(self) -> list[_Submission]:
        group = [self._queue.popleft()]
        size = len(group[0].events)
        while self._queue and size + len(self._queue[0].events) <= self._max_group_events:
            group.append(self._queue.popleft())
            size += len(group[-1].events)
        self._queued_events -= size
        return group

    async def _publish_group(self, group: list[_Submission]) -> None:
        # The same event id twice in one group is resolved and published once.
        first: dict[str, int] = {}
        unique: list[PendingEvent] = []
        for submission in group:
            for pending in submission.events:
                event_id = str(pending.event.event_id)
                if event_id not in first:
                    first[event_id] = len(unique)
                    unique.append(pending)

        claims = [Claim(str(p.event.event_id), p.identity_keys) for p in unique]
        resolutions, merges = await self._store.resolve(claims, self._clock())
        if merges:
            self._on_merges()
        acked = await self._produce(unique, resolutions)
        await self._store.mark_seen(
            [
                (claim.event_id, resolution.customer_id)
                for claim, resolution, ok in zip(claims, resolutions, acked, strict=True)
                if ok and not resolution.duplicate
            ]
        )

        answered: set[str] = set()
        for submission in group:
            results: list[Acknowledged] = []
            for pending in submission.events:
                event_id = str(pending.event.event_id)
                resolution = resolutions[first[event_id]]
                repeat = event_id in answered
                answered.add(event_id)
                results.append(Acknowledged(event_id, resolution.customer_id, resolution.duplicate or repeat))
            if all(acked[first[r.event_id]] for r in results):
                submission.done.set_result(results)
            else:
                submission.done.set_exception(BrokerUnavailable("broker did not acknowledge in time"))

    async def _produce(self, events: list[PendingEvent], resolutions: list[Resolution]) -> list[bool]:
        """Send every new event; True per event once acknowledged (duplicates count as done)."""
        acked = [resolution.duplicate for resolution in resolutions]
        deadline = asyncio.get_running_loop().time() + self._produce_timeout_s
        waiting: dict[int, asyncio.Future[object]] = {}
        try:
            async with asyncio.timeout_at(deadline):  # send() itself waits while metadata is missing
                for index, (pending, resolution) in enumerate(zip(events, resolutions, strict=True)):
                    if not resolution.duplicate:
                        record = pending.event.model_copy(update={"customer_id": resolution.customer_id})
                        waiting[index] = await self._send(
                            resolution.customer_id.encode(), record.model_dump_json().encode()
                        )
        except (TimeoutError, BrokerUnavailable) as error:
            log.warning("stopped sending: %r", error)
        if waiting:
            remaining = max(0.0, deadline - asyncio.get_running_loop().time())
            await asyncio.wait(waiting.values(), timeout=remaining)
        for index, future in waiting.items():
            if not future.done():
                future.add_done_callback(_ignore_late_outcome)
            elif future.cancelled() or future.exception() is not None:
                log.warning("produce failed: %r", None if future.cancelled() else future.exception())
            else:
                acked[index] = True
        if not all(acked):
            log.warning(
                "broker acknowledged %d of %d events within %.1fs",
                sum(acked),
                len(acked),
                self._produce_timeout_s,
            )
        return acked


def _ignore_late_outcome(future: asyncio.Future[object]) -> None:
    # Acknowledged too late for its request (answered 503, retried by the client): the copy on
    # the topic is a duplicate that consumers drop by event_id. Retrieve it so asyncio stays quiet.
    if not future.cancelled():
        future.exception()
