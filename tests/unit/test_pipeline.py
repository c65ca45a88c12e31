"""The ingest pipeline's promises, with a hand-written fake store and broker."""

import asyncio
from datetime import UTC, datetime

import orjson
import pytest

from services.ingest.identity_store import Claim, Resolution, SeenEvent
from services.ingest.pipeline import (
    BrokerUnavailable,
    IngestPipeline,
    Overloaded,
    PendingEvent,
    merge_records,
)
from shared.events import validate_event
from shared.identity import IdentityJoined, IdentityMerged
from tests.factories import event


def now() -> datetime:
    """The time of the check: events from the factory are stamped when a test makes them, and a
    module-level constant would fall behind them in a long test session."""
    return datetime.now(UTC)


class FakeStore:
    """Customers are "cus_" + the first identity key; pending joins are set by the test."""

    def __init__(self) -> None:
        self.seen: dict[str, str] = {}
        self.resolve_calls: list[list[str]] = []
        self.pending: dict[str, list[IdentityMerged]] = {}  # holder -> its pending joins
        self.drop_error: Exception | None = None
        self.marked: list[tuple[list[SeenEvent], datetime]] = []  # each mark_seen call
        self.marking = asyncio.Event()  # set by the first mark_seen call
        self.count_failure: str | None = None

    async def resolve(self, claims: list[Claim], now: datetime) -> list[Resolution]:
        self.resolve_calls.append([c.event_id for c in claims])
        resolutions, carried = [], set()
        for claim in claims:
            if claim.event_id in self.seen:
                resolutions.append(Resolution(self.seen[claim.event_id], True))
                continue
            customer_id = "cus_" + claim.identity_keys[0]
            joins = tuple(m for m in self.pending.get(customer_id, []) if m.merge_id not in carried)
            carried.update(m.merge_id for m in joins)
            resolutions.append(Resolution(customer_id, False, joins))
        return resolutions

    async def mark_seen(self, seen: list[SeenEvent], at: datetime) -> str | None:
        self.seen.update((event.event_id, event.customer_id) for event in seen)
        self.marked.append((seen, at))
        self.marking.set()
        return self.count_failure

    async def drop_joins(self, joins: list[tuple[str, str]]) -> None:
        if self.drop_error is not None:
            raise self.drop_error
        for holder, merge_id in joins:
            self.pending[holder] = [m for m in self.pending[holder] if m.merge_id != merge_id]


class FakeBroker:
    """Records sends; acknowledges them at once unless told to hold or fail."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, bytes]] = []
        self.mode = "ack"
        self.held: list[asyncio.Future[object]] = []  # "hold": acknowledged when the test says

    async def send(self, records: list[tuple[bytes, bytes]]) -> list[asyncio.Future[object]]:
        self.sent += records
        if self.mode == "fail_merges":  # one future per record: the merge records' fail
            return [self._future(value.startswith(b'{"type":"identity.')) for _, value in records]
        # One future for the lot, as records of one record batch share their batch's.
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        if self.mode == "ack":
            future.set_result(None)
        elif self.mode == "fail":
            future.set_exception(ConnectionError("broker gone"))
        else:
            self.held.append(future)  # "hold": not acknowledged until the test says so
        return [future] * len(records)

    @staticmethod
    def _future(fail: bool) -> asyncio.Future[object]:
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        if fail:
            future.set_exception(ConnectionError("partition leader gone"))
        else:
            future.set_result(None)
        return future


def pending(**changes: object) -> PendingEvent:
    raw = event(**changes)
    validate_event(raw, now())
    key = next(iter(raw["identities"].values()))
    return PendingEvent(raw["event_id"], raw, [key])


def merged_into(survivor: str, merged: str) -> IdentityMerged:
    return IdentityMerged(
        merge_id=f"{merged}>{survivor}",
        merged_customer_id=merged,
        survivor_customer_id=survivor,
        identities={"unionid": [merged]},
        merged_at=now(),
    )


@pytest.fixture
async def setup():
    store, broker = FakeStore(), FakeBroker()
    pipeline = IngestPipeline(
        store, broker.send, lambda: None, now, produce_timeout_s=0.2, max_queued_events=10
    )
    runner = asyncio.create_task(pipeline.run())
    yield pipeline, store, broker
    runner.cancel()


async def test_acknowledged_events_are_published_keyed_by_customer_and_marked_seen(setup) -> None:
    pipeline, store, broker = setup
    one = pending()
    [ack] = await pipeline.submit([one])
    assert not ack.duplicate
    assert broker.sent[0][0] == ack.customer_id.encode()
    assert store.seen == {one.event_id: ack.customer_id}
    assert orjson.loads(broker.sent[0][1]) == {**one.record, "customer_id": ack.customer_id}


async def test_a_seen_event_is_acknowledged_as_duplicate_and_not_sent_again(setup) -> None:
    pipeline, _, broker = setup
    one = pending()
    await pipeline.submit([one])
    [again] = await pipeline.submit([one])
    assert again.duplicate
    assert len(broker.sent) == 1


async def test_concurrent_requests_share_one_resolve_call(setup) -> None:
    pipeline, store, broker = setup
    results = await asyncio.gather(*(pipeline.submit([pending()]) for _ in range(5)))
    assert len(results) == 5 and len(broker.sent) == 5
    assert len(store.resolve_calls) < 5  # coalesced into fewer groups than requests


async def test_the_same_event_twice_in_one_group_is_sent_once(setup) -> None:
    pipeline, _, broker = setup
    one = pending()
    first, second = await pipeline.submit([one, one])
    assert (first.duplicate, second.duplicate) == (False, True)
    assert len(broker.sent) == 1


@pytest.mark.parametrize("mode", ["hold", "fail"])
async def test_unacknowledged_events_fail_the_request_and_stay_unseen(setup, mode: str) -> None:
    pipeline, store, broker = setup
    broker.mode = mode
    one = pending()
    with pytest.raises(BrokerUnavailable):
        await pipeline.submit([one])
    assert store.seen == {}
    broker.mode = "ack"  # the broker is back: the retry goes through as new
    [ack] = await pipeline.submit([one])
    assert not ack.duplicate


async def test_an_event_acknowledged_too_late_is_marked_seen_and_its_retry_is_a_duplicate(setup) -> None:
    pipeline, store, broker = setup
    broker.mode = "hold"
    one = pending()
    with pytest.raises(BrokerUnavailable):  # answered 503: the ack did not come in time
        await pipeline.submit([one])
    assert store.seen == {}
    for future in broker.held:  # it comes now: the event is on the topic after all
        future.set_result(None)
    await asyncio.wait_for(store.marking.wait(), timeout=5)  # the late marking runs on its own task
    assert one.event_id in store.seen
    broker.mode = "ack"
    [ack] = await pipeline.submit([one])  # the client's retry
    assert ack.duplicate and len(broker.sent) == 1  # not published again


async def test_only_requests_whose_events_were_all_acknowledged_succeed(setup) -> None:
    pipeline, store, broker = setup
    acked_first = pending()
    await pipeline.submit([acked_first])
    broker.mode = "fail"
    with pytest.raises(BrokerUnavailable):
        await pipeline.submit([acked_first, pending()])  # one duplicate, one that fails
    assert len(store.seen) == 1


async def test_more_events_than_the_queue_holds_are_refused(setup) -> None:
    pipeline, _, broker = setup
    with pytest.raises(Overloaded):
        await pipeline.submit([pending() for _ in range(11)])
    assert broker.sent == []


def test_merge_records_are_keyed_by_their_customer_and_start_with_their_type() -> None:
    # Workers tell a merge's records from events by this prefix, without parsing them.
    merge = merged_into("cus_1", "cus_2")
    (merged_key, merged), (joined_key, joined) = merge_records(merge)
    assert merged_key == b"cus_2" and merged.startswith(b'{"type":"identity.merged"')
    assert joined_key == b"cus_1" and joined.startswith(b'{"type":"identity.joined"')
    assert IdentityMerged.model_validate_json(merged) == merge
    assert IdentityJoined.model_validate_json(joined) == IdentityJoined(
        merge_id=merge.merge_id, customer_id="cus_1", merged_customer_id="cus_2", joined_at=merge.merged_at
    )


async def test_a_merge_goes_right_before_the_first_event_that_carries_it(setup) -> None:
    pipeline, store, broker = setup
    merge = merged_into("cus_a", "cus_b")
    store.pending["cus_a"] = [merge]
    other, first, second = (
        pending(identities={"unionid": "z"}),
        pending(identities={"unionid": "a"}),
        pending(identities={"unionid": "a"}),
    )
    await pipeline.submit([other, first, second])
    assert broker.sent[1:3] == merge_records(merge)
    assert [orjson.loads(value).get("event_id") for _, value in broker.sent] == [
        other.event_id,
        None,
        None,
        first.event_id,
        second.event_id,
    ]
    assert store.pending == {"cus_a": []}  # acknowledged: dropped


async def test_an_event_whose_merge_records_failed_fails_and_its_retry_carries_them_again(setup) -> None:
    pipeline, store, broker = setup
    merge = merged_into("cus_a", "cus_b")
    store.pending["cus_a"] = [merge]
    carrier, bystander = pending(identities={"unionid": "a"}), pending(identities={"unionid": "z"})
    broker.mode = "fail_merges"
    with pytest.raises(BrokerUnavailable):
        await pipeline.submit([carrier])
    [ack] = await pipeline.submit([bystander])  # its own record was acknowledged
    assert not ack.duplicate
    assert store.seen == {bystander.event_id: "cus_z"} and store.pending == {"cus_a": [merge]}

    broker.mode = "ack"
    broker.sent.clear()
    await pipeline.submit([carrier])
    assert broker.sent[:2] == merge_records(merge)
    assert store.pending == {"cus_a": []}


async def test_a_later_event_of_the_customer_in_the_same_group_fails_with_the_merge_records(setup) -> None:
    pipeline, store, broker = setup
    store.pending["cus_a"] = [merged_into("cus_a", "cus_b")]
    carrier, later = pending(identities={"unionid": "a"}), pending(identities={"unionid": "a"})
    broker.mode = "fail_merges"
    outcomes = await asyncio.gather(
        pipeline.submit([carrier]), pipeline.submit([later]), return_exceptions=True
    )
    assert store.resolve_calls == [[carrier.event_id, later.event_id]]  # one group
    assert [type(outcome) for outcome in outcomes] == [BrokerUnavailable, BrokerUnavailable]
    assert store.seen == {}


async def test_failing_to_drop_delivered_joins_does_not_fail_the_request(setup) -> None:
    pipeline, store, _ = setup
    store.pending["cus_a"] = [merged_into("cus_a", "cus_b")]
    store.drop_error = ConnectionError("redis gone")
    carrier = pending(identities={"unionid": "a"})
    [ack] = await pipeline.submit([carrier])
    assert store.seen == {carrier.event_id: ack.customer_id}


COUNTED_AT = datetime(2026, 12, 1, 10, 15, 42, tzinfo=UTC)


@pytest.fixture
async def counting():
    """A pipeline whose clock stands still, and the count failures it reports."""
    store, broker, failures = FakeStore(), FakeBroker(), []
    pipeline = IngestPipeline(
        store,
        broker.send,
        lambda: None,
        lambda: COUNTED_AT,
        produce_timeout_s=0.2,
        max_queued_events=10,
        on_count_failed=lambda: failures.append(1),
    )
    runner = asyncio.create_task(pipeline.run())
    yield pipeline, store, broker, failures
    runner.cancel()


async def test_acknowledged_new_events_are_counted_by_source_in_one_call_with_their_marks(counting) -> None:
    pipeline, store, broker, _ = counting
    seen_before = pending(source="app", type="mini_program.visit", properties={})
    await pipeline.submit([seen_before])
    store.marked.clear()
    fresh = [pending(), pending(source="ad", type="ad.click", properties={})]
    await pipeline.submit([fresh[0], seen_before, fresh[1], fresh[0]])  # a duplicate, a repeat
    [(marked, at)] = store.marked
    assert at == COUNTED_AT
    assert [(e.event_id, e.source) for e in marked] == [
        (fresh[0].event_id, "wecom"),
        (fresh[1].event_id, "ad"),
    ]

    broker.mode = "fail"
    with pytest.raises(BrokerUnavailable):
        await pipeline.submit([pending()])
    assert store.marked[1][0] == []  # nothing acknowledged: nothing marked, nothing counted


async def test_a_failure_to_count_is_reported_and_the_request_answered_all_the_same(counting) -> None:
    pipeline, store, _, failures = counting
    store.count_failure = "WRONGTYPE Operation against a key holding the wrong kind of value"
    one = pending()
    [ack] = await pipeline.submit([one])
    assert not ack.duplicate and store.seen == {one.event_id: ack.customer_id}
    assert failures == [1]
    store.count_failure = None
    await pipeline.submit([pending()])
    assert failures == [1]
