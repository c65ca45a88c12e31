"""The ingest pipeline's promises, with a hand-written fake store and broker."""

import asyncio
from datetime import UTC, datetime

import orjson
import pytest

from services.ingest.identity_store import Claim, Resolution
from services.ingest.pipeline import BrokerUnavailable, IngestPipeline, Overloaded, PendingEvent
from shared.events import validate_event
from tests.factories import event


def now() -> datetime:
    """The time of the check: events from the factory are stamped when a test makes them, and a
    module-level constant would fall behind them in a long test session."""
    return datetime.now(UTC)


class FakeStore:
    def __init__(self) -> None:
        self.seen: dict[str, str] = {}
        self.resolve_calls: list[list[str]] = []

    async def resolve(self, claims: list[Claim], now: datetime) -> tuple[list[Resolution], int]:
        self.resolve_calls.append([c.event_id for c in claims])
        return [
            Resolution(self.seen.get(c.event_id, "cus_" + c.identity_keys[0]), c.event_id in self.seen)
            for c in claims
        ], 0

    async def mark_seen(self, seen: list[tuple[str, str]]) -> None:
        self.seen.update(seen)


class FakeBroker:
    """Records sends; acknowledges them at once unless told to hold or fail."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, bytes]] = []
        self.mode = "ack"

    async def send(self, records: list[tuple[bytes, bytes]]) -> list[asyncio.Future[object]]:
        self.sent += records
        # One future for the lot, as records of one record batch share their batch's.
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        if self.mode == "ack":
            future.set_result(None)
        elif self.mode == "fail":
            future.set_exception(ConnectionError("broker gone"))
        return [future] * len(records)  # "hold": never acknowledged


def pending(**changes: object) -> PendingEvent:
    raw = event(**changes)
    validate_event(raw, now())
    key = next(iter(raw["identities"].values()))
    return PendingEvent(raw["event_id"], raw, [key])


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
