"""From validated events to events acknowledged on `touchpoint.events.v1`.

Concurrent requests are coalesced: while one group is being resolved and produced, the next
requests queue up and go together as the next group (group commit). Each group costs one
Redis round trip to dedupe and resolve identities, one wait for the broker's acks, and one
round trip to mark the acknowledged event ids as seen and count them per minute and source
(event_counts.py). Marking only after the ack means a failed produce never leaves an id marked
as seen; a crash between ack and mark can only cause a duplicate on the topic, which consumers
drop by `event_id` (and an event not counted).

A merge goes on the topic as two records (`identity.merged`, `identity.joined`) right before
the event that caused it, in the same send, so every worker reads it in its place among both
customers' events. The event is acknowledged only with them. Until they are acknowledged the
merge stays pending in Redis, and the customer's next event (a retry, say) carries it again.
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

from shared.identity import IdentityJoined, IdentityMerged

from .identity_store import Claim, IdentityStore, Resolution, SeenEvent

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


# How long a produce may still be acknowledged after its request was answered 503: beyond the
# producer's own request timeout, its outcome is settled (acknowledged or failed).
LATE_ACK_WAIT_S = 120.0


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
        on_count_failed: Callable[[], None] = lambda: None,
    ) -> None:
        self._store = store
        self._send = send
        self._on_merges = on_merges
        self._on_count_failed = on_count_failed
        self._clock = clock
        self._produce_timeout_s = produce_timeout_s
        self._max_queued_events = max_queued_events
        self._max_group_events = max_group_events
        self._max_groups_in_flight = max_groups_in_flight
        self._queue: deque[_Submission] = deque()
        self._late: set[asyncio.Task[None]] = set()  # marking events acknowledged too late
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
        resolutions = await self._store.resolve(claims, self._clock())

        # Each new event's record, right after the records of the merges it carries.
        records: list[tuple[bytes, bytes]] = []
        events: list[tuple[int, int]] = []  # (claim index, position of its record)
        joins: list[tuple[int, str, str, int]] = []  # (claim index, holder, merge id, position)
        for index, resolution in enumerate(resolutions):
            if resolution.duplicate:
                continue
            customer_id = resolution.customer_id
            for merge in resolution.joins:
                joins.append((index, customer_id, merge.merge_id, len(records)))
                records += merge_records(merge)
            events.append((index, len(records)))
            records.append(
                (customer_id.encode(), orjson.dumps({**unique[index].record, "customer_id": customer_id}))
            )
        if joins:  # every new merge is among them: its causing event carries it
            self._on_merges()

        deadline = asyncio.get_running_loop().time() + self._produce_timeout_s
        sources = [p.record["source"] for p in unique]
        sent = _SentGroup(group, first, claims, sources, resolutions, {}, [], deadline)
        try:
            async with asyncio.timeout_at(deadline):  # sending waits while metadata is missing
                futures = await self._send(records) if records else []
        except (TimeoutError, BrokerUnavailable) as error:
            # Whatever was queued before this may still reach the topic: unacknowledged, its
            # request is answered 503 and retried, and consumers drop the copy by event_id.
            log.warning("stopped sending: %r", error)
            return sent
        sent.waiting = {index: futures[position] for index, position in events}
        sent.joins = [
            _SentJoin(index, holder, merge_id, (futures[position], futures[position + 1]))
            for index, holder, merge_id, position in joins
        ]
        return sent

    async def _finish_group(self, sent: _SentGroup) -> None:
        """Wait for the acks, mark what was acknowledged as seen, answer every request."""
        try:
            acked, delivered = await self._acknowledged(sent)
            self._mark_when_acknowledged(sent, acked)
            marking = self._store.mark_seen(
                [
                    SeenEvent(claim.event_id, resolution.customer_id, source)
                    for claim, source, resolution, ok in zip(
                        sent.claims, sent.sources, sent.resolutions, acked, strict=True
                    )
                    if ok and not resolution.duplicate
                ],
                self._clock(),
            )
            if delivered:  # merges are rare: only then a second round trip, beside the first
                count_failure, _ = await asyncio.gather(marking, self._drop_joins(delivered))
            else:
                count_failure = await marking
        except Exception as error:
            _fail(sent.group, error)
            return
        if count_failure is not None:  # the events are on the topic and seen: answer them all the same
            log.warning("acknowledged events not counted per minute: %s", count_failure)
            self._on_count_failed()

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

    def _mark_when_acknowledged(self, sent: _SentGroup, acked: list[bool]) -> None:
        """Events whose ack did not come in time (their requests are answered 503) may still be
        acknowledged: those are marked seen when it comes, so that the client's retry is a
        duplicate and is not published again. This bounds how late ingest republishes an event
        to the producer's request timeout, unless ingest stops first (docs/ingest.md)."""
        late = [
            (sent.claims[index], sent.sources[index], sent.resolutions[index], future)
            for index, future in sent.waiting.items()
            if not acked[index] and not future.done()
        ]
        if not late:
            return

        async def mark() -> None:
            await asyncio.wait({future for *_, future in late}, timeout=LATE_ACK_WAIT_S)
            seen = [
                SeenEvent(claim.event_id, resolution.customer_id, source)
                for claim, source, resolution, future in late
                if future.done() and not future.cancelled() and future.exception() is None
            ]
            if seen:
                try:
                    await self._store.mark_seen(seen, self._clock())
                except Exception as error:  # the client's retry publishes a copy: workers drop it
                    log.warning("could not mark %d late-acknowledged events seen: %r", len(seen), error)

        task = asyncio.create_task(mark())
        self._late.add(task)
        task.add_done_callback(self._late.discard)

    async def _drop_joins(self, joins: list[tuple[str, str]]) -> None:
        try:
            await self._store.drop_joins(joins)
        except Exception as error:  # the events are on the topic; the joins go out again later
            log.warning("could not drop %d delivered joins, they stay pending: %r", len(joins), error)

    async def _acknowledged(self, sent: _SentGroup) -> tuple[list[bool], list[tuple[str, str]]]:
        """True per unique event once it and the merge records before it were acknowledged
        (duplicates count as done); and the pending joins, as (holder, merge id), whose
        records were acknowledged. The merge records before an event are those carried by the
        group's first event of its customer, so a later one depends on them too."""
        acked = [resolution.duplicate for resolution in sent.resolutions]
        # Records of one record batch share its future: look at each future once.
        futures = {*sent.waiting.values(), *(future for join in sent.joins for future in join.futures)}
        if futures:
            remaining = max(0.0, sent.deadline - asyncio.get_running_loop().time())
            await asyncio.wait(futures, timeout=remaining)
        ok = {future: _succeeded(future) for future in futures}
        for index, future in sent.waiting.items():
            acked[index] = ok[future]
        delivered: list[tuple[str, str]] = []
        failed: dict[str, int] = {}  # holder -> the first claim index whose joins failed
        for join in sent.joins:
            if ok[join.futures[0]] and ok[join.futures[1]]:
                delivered.append((join.holder, join.merge_id))
            else:
                failed.setdefault(join.holder, join.index)
        for index in sent.waiting if failed else ():
            since = failed.get(sent.resolutions[index].customer_id)
            if since is not None and index >= since:
                acked[index] = False
        if not all(acked):
            log.warning(
                "broker acknowledged %d of %d events within %.1fs",
                sum(acked),
                len(acked),
                self._produce_timeout_s,
            )
        return acked, delivered


def merge_records(merge: IdentityMerged) -> list[tuple[bytes, bytes]]:
    """A merge's two (key, value) records on the events topic, in order: the merged customer
    hands its state over, then the survivor takes it in (shared/identity.py)."""
    joined = IdentityJoined(
        merge_id=merge.merge_id,
        customer_id=merge.survivor_customer_id,
        merged_customer_id=merge.merged_customer_id,
        joined_at=merge.merged_at,
    )
    return [
        (merge.merged_customer_id.encode(), merge.model_dump_json().encode()),
        (merge.survivor_customer_id.encode(), joined.model_dump_json().encode()),
    ]


class _SentJoin(NamedTuple):
    """A pending join sent before the event that carried it."""

    index: int  # the carrying event's claim index
    holder: str
    merge_id: str
    futures: tuple[asyncio.Future[object], asyncio.Future[object]]  # the acks of its two records


@dataclass
class _SentGroup:
    """A group whose new events are queued on the producer, waiting for their acks."""

    group: list[_Submission]
    first: dict[str, int]  # event id -> index of its first occurrence among the claims
    claims: list[Claim]
    sources: list[str]  # per claim: its event's source, to count it by
    resolutions: list[Resolution]
    waiting: dict[int, asyncio.Future[object]]  # claim index -> the broker's ack of its event
    joins: list[_SentJoin]
    deadline: float


def _fail(group: list[_Submission], error: Exception) -> None:
    log.warning("ingest group of %d requests failed: %r", len(group), error)
    for submission in group:
        if not submission.done.done():
            submission.done.set_exception(error)


def _succeeded(future: asyncio.Future[object]) -> bool:
    if not future.done():
        future.add_done_callback(_ignore_late_outcome)
        return False
    if future.cancelled() or future.exception() is not None:
        log.warning("produce failed: %r", None if future.cancelled() else future.exception())
        return False
    return True


def _ignore_late_outcome(future: asyncio.Future[object]) -> None:
    # Acknowledged too late for its request (answered 503, retried by the client): the copy on
    # the topic is a duplicate that consumers drop by event_id. Retrieve it so asyncio stays quiet.
    if not future.cancelled():
        future.exception()
