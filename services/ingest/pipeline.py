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
from typing import Any, NamedTuple

import orjson

from .identity_store import Claim, IdentityStore, Resolution

log = logging.getLogger(__name__)

# What the pipeline needs from Kafka: queue (key, value) records in order, one future per record
# that resolves when the broker acknowledged it (records may share one, that of their batch).
SendRecords = Callable[[list[tuple[bytes, bytes]]], Awaitable[list[asyncio.Future[object]]]]


class PendingEvent(NamedTuple):  # NamedTuples here and in identity_store: made per event
    """A validated event with its identities protected, waiting for a customer id."""

    event_id: str
    # What goes on the topic (an IngestedEvent as JSON-ready dict) but for `customer_id`, which
    # the pipeline adds. A plain dict: serialising it with orjson is the cheapest path per event.
    record: dict[str, Any]
    identity_keys: list[str]


class Acknowledged(NamedTuple):
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
        send: SendRecords,
        on_merges: Callable[[], None],
        clock: Callable[[], datetime],
        *,
        produce_timeout_s: float,
        max_queued_events: int,
        max_group_events: int = 2_000,
        max_groups_in_flight: int = 4,
    ) -> None:
        self._store = store
        self._send = send
        self._on_merges = on_merges
        self._clock = clock
        self._produce_timeout_s = produce_timeout_s
        self._max_queued_events = max_queued_events
        self._max_group_events = max_group_events
        self._max_groups_in_flight = max_groups_in_flight
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
        """The single consumer of the queue; runs for the life of the app.

        Groups are resolved and sent strictly one after the other (so identity resolution and
        each partition's order follow arrival), but up to `max_groups_in_flight` groups wait for
        their acks at once, so the broker's round trip does not idle the process.
        """
        slots = asyncio.Semaphore(self._max_groups_in_flight)
        finishing: set[asyncio.Task[None]] = set()
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                await slots.acquire()
                group = self._take_group()
                try:
                    sent = await self._send_group(group)
                except Exception as error:  # Redis down, or a bug: fail the group, keep serving
                    slots.release()
                    _fail(group, error)
                    continue
                task = asyncio.create_task(self._finish_group(sent))
                finishing.add(task)
                task.add_done_callback(finishing.discard)
                task.add_done_callback(lambda _: slots.release())

    def _take_group(self) -> list[_Submission]:
        group = [self._queue.popleft()]
        size = len(group[0].events)
        while self._queue and size + len(self._queue[0].events) <= self._max_group_events:
            group.append(self._queue.popleft())
            size += len(group[-1].events)
        self._queued_events -= size
        return group

    async def _send_group(self, group: list[_Submission]) -> _SentGroup:
        """Dedupe and resolve the group in one Redis round trip, then queue its new events."""
        # The same event id twice in one group is resolved and published once.
        first: dict[str, int] = {}
        unique: list[PendingEvent] = []
        for submission in group:
            for pending in submission.events:
                if pending.event_id not in first:
                    first[pending.event_id] = len(unique)
                    unique.append(pending)

        claims = [Claim(p.event_id, p.identity_keys) for p in unique]
        resolutions, merges = await self._store.resolve(claims, self._clock())
        if merges:
            self._on_merges()

        new = [index for index, resolution in enumerate(resolutions) if not resolution.duplicate]
        records = [
            (
                resolutions[index].customer_id.encode(),
                orjson.dumps({**unique[index].record, "customer_id": resolutions[index].customer_id}),
            )
            for index in new
        ]
        deadline = asyncio.get_running_loop().time() + self._produce_timeout_s
        waiting: dict[int, asyncio.Future[object]] = {}
        try:
            async with asyncio.timeout_at(deadline):  # sending waits while metadata is missing
                waiting = dict(zip(new, await self._send(records), strict=True)) if records else {}
        except (TimeoutError, BrokerUnavailable) as error:
            # Whatever was queued before this may still reach the topic: unacknowledged, its
            # request is answered 503 and retried, and consumers drop the copy by event_id.
            log.warning("stopped sending: %r", error)
        return _SentGroup(group, first, claims, resolutions, waiting, deadline)

    async def _finish_group(self, sent: _SentGroup) -> None:
        """Wait for the acks, mark what was acknowledged as seen, answer every request."""
        try:
            acked = await self._acknowledged(sent)
            await self._store.mark_seen(
                [
                    (claim.event_id, resolution.customer_id)
                    for claim, resolution, ok in zip(sent.claims, sent.resolutions, acked, strict=True)
                    if ok and not resolution.duplicate
                ]
            )
        except Exception as error:
            _fail(sent.group, error)
            return

        answered: set[str] = set()
        for submission in sent.group:
            results: list[Acknowledged] = []
            for pending in submission.events:
                event_id = pending.event_id
                resolution = sent.resolutions[sent.first[event_id]]
                repeat = event_id in answered
                answered.add(event_id)
                results.append(Acknowledged(event_id, resolution.customer_id, resolution.duplicate or repeat))
            if all(acked[sent.first[r.event_id]] for r in results):
                submission.done.set_result(results)
            else:
                submission.done.set_exception(BrokerUnavailable("broker did not acknowledge in time"))

    async def _acknowledged(self, sent: _SentGroup) -> list[bool]:
        """True per unique event once acknowledged (duplicates count as done)."""
        acked = [resolution.duplicate for resolution in sent.resolutions]
        if sent.waiting:
            remaining = max(0.0, sent.deadline - asyncio.get_running_loop().time())
            await asyncio.wait(set(sent.waiting.values()), timeout=remaining)
        for index, future in sent.waiting.items():
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


@dataclass
class _SentGroup:
    """A group whose new events are queued on the producer, waiting for their acks."""

    group: list[_Submission]
    first: dict[str, int]  # event id -> index of its first occurrence among the claims
    claims: list[Claim]
    resolutions: list[Resolution]
    waiting: dict[int, asyncio.Future[object]]  # claim index -> the broker's ack
    deadline: float


def _fail(group: list[_Submission], error: Exception) -> None:
    log.warning("ingest group of %d requests failed: %r", len(group), error)
    for submission in group:
        if not submission.done.done():
            submission.done.set_exception(error)


def _ignore_late_outcome(future: asyncio.Future[object]) -> None:
    # Acknowledged too late for its request (answered 503, retried by the client): the copy on
    # the topic is a duplicate that consumers drop by event_id. Retrieve it so asyncio stays quiet.
    if not future.cancelled():
        future.exception()
