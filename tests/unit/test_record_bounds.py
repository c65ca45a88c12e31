"""Records that cannot be written (docs/contract.md, "Bounds"): an input that would make a record
too large is dead-lettered before any effect; a record the broker refuses for what it is goes to
the dead-letter topic instead of being retried forever; dead letters stay small; the merge relay
skips a merge it cannot publish. Fakes for the producer and the identity store."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError

from services.campaign.dead_letters import BadCorrection, DeadLetterView, corrected_value
from services.ingest.merge_relay import MergeRelay
from services.scoring.batch import BatchOutcome, score_batch
from services.scoring.inputs import CHECKED_ABOVE_BYTES, decode_touchpoint
from services.scoring.plan import default_plan
from shared.dead_letters import (
    MAX_DEAD_LETTER_BYTES,
    MAX_DEAD_LETTER_KEY_BYTES,
    MAX_DEAD_LETTER_VALUE_BYTES,
    DeadLetter,
)
from shared.fold import Delivery
from shared.identity import IdentityMerged
from shared.kafka import BulkSender, OutgoingRecord, Refused, over_limit
from shared.stream_worker import DeadLetter as ReExported
from shared.stream_worker import fold_within_record_limit, send_outputs
from shared.topics import IDENTITY_MERGES, SCORED_INPUTS, TOUCHPOINT_EVENTS
from tests.factories import published

PLAN = default_plan()
NOW = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)


# ---------------------------------------------------------------- dead letters stay small


def test_a_dead_letter_cuts_what_it_carries_and_says_how_large_it_was() -> None:
    value = b"x" * (MAX_DEAD_LETTER_VALUE_BYTES * 10)
    key = b"k" * (MAX_DEAD_LETTER_KEY_BYTES * 3)
    letter = DeadLetter("t", key, value, "why " * 10_000, 2, 7)
    encoded = letter.encode()
    assert len(encoded) < MAX_DEAD_LETTER_VALUE_BYTES + 5_000
    assert letter.key is not None and len(letter.key) == MAX_DEAD_LETTER_KEY_BYTES
    back = DeadLetter.decode(letter.key, encoded)
    assert back.value_bytes == len(value) and back.value == value[:MAX_DEAD_LETTER_VALUE_BYTES]
    assert (back.topic, back.partition, back.offset) == ("t", 2, 7) and len(back.reason) == 2000
    assert ReExported is DeadLetter  # workers' imports keep working


def test_a_whole_dead_letter_has_no_size_and_a_cut_utf8_value_still_reads() -> None:
    assert "value_bytes" not in orjson.loads(DeadLetter("t", b"k", b"{}", "r", 0, 1).encode())
    cut = DeadLetter("t", b"k", "车".encode() * MAX_DEAD_LETTER_VALUE_BYTES, "r", 0, 1)
    assert orjson.loads(cut.encode())["value"].startswith("车车")


def view(value: str, value_bytes: int | None) -> DeadLetterView:
    return DeadLetterView(
        id="touchpoint.events.v1.dlq:0:1",
        topic=TOUCHPOINT_EVENTS,
        partition=0,
        offset=1,
        error="too large",
        key="cus_1",
        value=value,
        value_bytes=value_bytes,
        at=NOW,
    )


def test_a_dead_letter_cut_short_is_replayed_only_corrected() -> None:
    with pytest.raises(BadCorrection, match="beginning"):
        corrected_value(view('{"event_id": "e1", "properties": {"topi', 900_000), None)
    corrected = corrected_value(view('{"event_id": "e1"', 900_000), {"event_id": "e1", "type": "x"})
    assert orjson.loads(corrected)["type"] == "x"
    assert corrected_value(view('{"event_id": "e1"}', None), None) == b'{"event_id": "e1"}'


# ---------------------------------------------------------------- before any effect


def event_record(customer: str, n: int, lines: int = 0) -> Delivery[Any]:
    """An event as ingest publishes it; with `lines`, as large as ingest's bounds allow it to be."""
    at = (NOW - timedelta(minutes=1)).isoformat()
    properties = {"content_id": "c", "topics": ["suv"], "lines": ["x" * 4096] * lines}
    body = published(f"e-{customer}-{n}", customer, "content.view", "wecom", at, properties)
    raw = orjson.dumps(body)
    return Delivery(f"{TOUCHPOINT_EVENTS}/1", n, decode_touchpoint(raw), raw)


def chain_records(outcome: BatchOutcome) -> list[OutgoingRecord]:
    return [OutgoingRecord(SCORED_INPUTS, cid.encode(), value) for cid, value in outcome.chain]


LIMIT = 20_000


def bounded_fold(deliveries: list[Delivery[Any]], rows: dict[str, Any], dead: list[DeadLetter]):
    return fold_within_record_limit(
        deliveries,
        rows,
        lambda batch, row_of: score_batch(batch, row_of, PLAN, NOW),
        BatchOutcome,
        dead,
        "scoring",
        chain_records,
        LIMIT,
    )


def test_an_input_that_would_make_a_record_too_large_is_dead_lettered_and_the_rest_goes_on() -> None:
    big = event_record("b", 1, lines=10)  # its chain record carries it: over LIMIT
    assert len(big.raw) > LIMIT
    batch = [event_record("a", 0), big, event_record("b", 2), event_record("c", 3)]
    dead: list[DeadLetter] = []
    outcome, records = bounded_fold(batch, {}, dead)
    assert sorted(outcome.records) == ["a", "b", "c"]
    assert outcome.records["b"].ledger.recent_ids == ("e-b-2",)  # the big one left no trace
    assert outcome.counts == {"processed": 3}
    (letter,) = dead
    assert (letter.topic, letter.partition, letter.offset, letter.key) == (TOUCHPOINT_EVENTS, 1, 1, b"b")
    assert letter.reason.startswith(f"scoring: a {SCORED_INPUTS} record of ")
    assert f"over the {LIMIT}-byte limit" in letter.reason
    assert letter.value_bytes == len(big.raw) or letter.value == big.raw
    assert over_limit(records, LIMIT) is None and len(records) == 3


def test_a_batch_within_the_limit_is_folded_once_and_its_records_returned() -> None:
    calls: list[int] = []
    batch = [event_record("a", 0), event_record("b", 1)]

    def fold(deliveries, row_of):
        calls.append(len(deliveries))
        return score_batch(deliveries, row_of, PLAN, NOW)

    _, records = fold_within_record_limit(batch, {}, fold, BatchOutcome, [], "scoring", chain_records, LIMIT)
    assert calls == [2] and [r.key for r in records] == [b"a", b"b"]


def test_dead_letters_of_the_first_fold_are_not_doubled_when_folding_again() -> None:
    batch = [event_record("a", 0), event_record("b", 1, lines=10)]
    failing = {"e-a-0"}

    def fold(deliveries, row_of):
        if any(d.payload.event_id in failing for d in deliveries):
            raise ZeroDivisionError("the domain's bug")
        return score_batch(deliveries, row_of, PLAN, NOW)

    dead: list[DeadLetter] = []
    outcome, _ = fold_within_record_limit(
        batch, {}, fold, BatchOutcome, dead, "scoring", chain_records, LIMIT
    )
    assert sorted((d.offset, d.reason.split(":")[0]) for d in dead) == [(0, "scoring failed"), (1, "scoring")]
    assert outcome.records == {}


# ---------------------------------------------------------------- at the broker


class FakeBatch:
    def __init__(self) -> None:
        self.records: list[tuple[bytes | None, bytes]] = []

    def append(self, *, key: bytes | None, value: bytes, timestamp: None) -> object | None:
        if self.records and sum(len(v) for _, v in self.records) + len(value) > 1000:
            return None  # full
        self.records.append((key, value))
        return object()


class FakeProducer:
    """Refuses (as MessageSizeTooLarge) any batch holding a value that starts with b"BAD"; fails
    every batch with a connection error while `down`."""

    def __init__(self) -> None:
        self.batches: list[tuple[str, int, list[tuple[bytes | None, bytes]]]] = []
        self.down = False

    async def partitions_for(self, topic: str) -> set[int]:
        return {0, 1}

    def create_batch(self) -> FakeBatch:
        return FakeBatch()

    async def send_batch(self, batch: FakeBatch, topic: str, *, partition: int) -> asyncio.Future[object]:
        self.batches.append((topic, partition, batch.records))
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        if self.down:
            future.set_exception(KafkaConnectionError("broker away"))
        elif any(value.startswith(b"BAD") for _, value in batch.records):
            future.set_exception(MessageSizeTooLargeError())
        else:
            future.set_result(None)
        return future

    def sent(self) -> list[bytes]:
        return [value for _, _, records in self.batches for _, value in records]


def sender_with(producer: FakeProducer, max_record_bytes: int | None = 500) -> BulkSender:
    sender = BulkSender("unused:9092", max_record_bytes=max_record_bytes)
    sender._producer = producer  # type: ignore[assignment]  # the fake, started
    return sender


async def test_records_over_the_limit_are_not_sent_and_come_back_refused() -> None:
    producer = FakeProducer()
    records = [OutgoingRecord("t", b"k", b"fine", 0), OutgoingRecord("t", b"k", b"x" * 600, 0)]
    refused = await sender_with(producer).send_all(records)
    assert [r.record.value[:1] for r in refused] == [b"x"]
    assert "record of 601 bytes is over the 500-byte limit" in refused[0].reason
    assert producer.sent() == [b"fine"]


async def test_a_batch_the_broker_refuses_is_sent_again_one_record_a_batch() -> None:
    producer = FakeProducer()
    records = [OutgoingRecord("t", b"k", v, 0) for v in (b"one", b"BAD", b"two")]
    refused = await sender_with(producer).send_all(records)
    assert [(r.record.value, r.reason.split(":")[0]) for r in refused] == [(b"BAD", "refused by the broker")]
    assert [records for _, _, records in producer.batches][1:] == [
        [(b"k", v)] for v in (b"one", b"BAD", b"two")
    ]


async def test_a_record_alone_in_its_batch_is_refused_without_sending_it_again() -> None:
    producer = FakeProducer()
    refused = await sender_with(producer, None).send_all([OutgoingRecord("t", b"k", b"BAD" * 400, 1)])
    assert len(refused) == 1 and len(producer.batches) == 1


async def test_any_other_error_raises_to_be_retried() -> None:
    producer = FakeProducer()
    producer.down = True
    with pytest.raises(KafkaConnectionError):
        await sender_with(producer).send_all([OutgoingRecord("t", b"k", b"v", 0)])


class CountingMetrics:
    def __init__(self) -> None:
        self.counted: dict[str, int] = {}

    def count(self, outcomes: dict[str, int]) -> None:
        for name, n in outcomes.items():
            self.counted[name] = self.counted.get(name, 0) + n


async def test_what_the_broker_refuses_goes_to_the_dead_letter_topic_with_the_reason() -> None:
    producer = FakeProducer()
    records = [
        OutgoingRecord("pd-x-changelog", b"cus_1", b"BAD" + b"x" * 10, 1),
        OutgoingRecord("scored.inputs.v1", b"cus_2", b"fine"),
        OutgoingRecord("scored.inputs.v1", b"cus_3", b"y" * 150_000),
    ]
    metrics = CountingMetrics()
    sender = sender_with(producer, max_record_bytes=100_000)
    await send_outputs(sender, records, "touchpoint.events.v1.dlq", metrics)  # type: ignore[arg-type]
    letters = [
        (topic, orjson.loads(value))
        for topic, _, batch in producer.batches
        for _, value in batch
        if topic.endswith(".dlq")
    ]
    assert sorted((topic, letter["topic"], letter["offset"]) for topic, letter in letters) == [
        ("touchpoint.events.v1.dlq", "pd-x-changelog", -1),
        ("touchpoint.events.v1.dlq", "scored.inputs.v1", -1),
    ]
    by_topic = {letter["topic"]: letter for _, letter in letters}
    assert "over the 100000-byte limit" in by_topic["scored.inputs.v1"]["error"]
    assert by_topic["scored.inputs.v1"]["value_bytes"] == 150_000
    assert by_topic["pd-x-changelog"]["error"].startswith("refused by the broker: MessageSizeTooLargeError")
    assert by_topic["pd-x-changelog"]["partition"] == 1
    assert b"fine" in producer.sent()
    assert metrics.counted == {"output_refused": 2}


def test_a_dead_letter_of_a_value_that_grows_as_json_is_cut_until_it_fits() -> None:
    letter = DeadLetter("t", b"k", b"\x01" * MAX_DEAD_LETTER_VALUE_BYTES, "r", 0, 1)
    encoded = letter.encode()
    assert len(encoded) <= MAX_DEAD_LETTER_BYTES
    assert orjson.loads(encoded)["value_bytes"] == MAX_DEAD_LETTER_VALUE_BYTES


# ---------------------------------------------------------------- the merge relay


def merge(n: int, identities: int = 1) -> IdentityMerged:
    return IdentityMerged(
        merge_id=f"m{n}",
        merged_customer_id=f"cus_{n}",
        survivor_customer_id="cus_0",
        identities={"device_id": [f"device-{k:06}" for k in range(identities)]},
        merged_at=NOW,
    )


class FakeOutbox:
    def __init__(self, merges: list[IdentityMerged]) -> None:
        self.entries = [(f"{n}-0".encode(), m) for n, m in enumerate(merges)]

    async def pending_merges(self, limit: int) -> list[tuple[bytes, IdentityMerged]]:
        return self.entries[:limit]

    async def drop_merges(self, entry_ids: list[bytes]) -> None:
        self.entries = [(e, m) for e, m in self.entries if e not in entry_ids]


class FakeTopic:
    def __init__(self, refuse: bytes | None = None) -> None:
        self.records: list[tuple[bytes, bytes]] = []
        self.refuse = refuse  # values containing it are refused for their size
        self.down = False

    async def send(self, key: bytes, value: bytes) -> asyncio.Future[object]:
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        if self.down:
            future.set_exception(KafkaConnectionError("broker away"))
        elif self.refuse is not None and self.refuse in value:
            future.set_exception(MessageSizeTooLargeError())
        else:
            self.records.append((key, value))
            future.set_result(None)
        return future


async def test_the_merge_relay_skips_and_dead_letters_a_merge_it_cannot_publish() -> None:
    # The second merge moves 40,000 identifiers: a record of about 700 KB, over the limit here.
    outbox = FakeOutbox([merge(1), merge(2, identities=40_000), merge(3), merge(4)])
    feed, dead_letters = FakeTopic(refuse=b'"m3"'), FakeTopic()
    relay = MergeRelay(outbox, feed.send, dead_letter=dead_letters.send, max_record_bytes=100_000)  # type: ignore[arg-type]
    assert await relay.publish_pending() == 2
    assert [orjson.loads(value)["merge_id"] for _, value in feed.records] == ["m1", "m4"]
    letters = [DeadLetter.decode(key, value) for key, value in dead_letters.records]
    assert [(letter.key, letter.topic, letter.offset) for letter in letters] == [
        (b"cus_2", IDENTITY_MERGES, -1),
        (b"cus_3", IDENTITY_MERGES, -1),
    ]
    assert "over the 100000-byte limit" in letters[0].reason and letters[0].value_bytes is not None
    assert "MessageSizeTooLargeError" in letters[1].reason
    assert outbox.entries == []  # nothing blocks the outbox


async def test_the_merge_relay_keeps_what_a_broker_away_did_not_take() -> None:
    outbox = FakeOutbox([merge(1), merge(2)])
    feed = FakeTopic()
    feed.down = True
    relay = MergeRelay(outbox, feed.send)  # type: ignore[arg-type]
    with pytest.raises(KafkaConnectionError):
        await relay.publish_pending()
    assert len(outbox.entries) == 2
    feed.down = False
    assert await relay.publish_pending() == 2 and outbox.entries == []


def test_refused_is_a_record_and_a_reason() -> None:
    refused = Refused(OutgoingRecord("t", None, b"v"), "why")
    assert refused.record.size == 1 and DeadLetter.of_refused(refused).partition == -1


# ---------------------------------------------------------------- scoring's door


def raw_event(properties: dict[str, Any]) -> bytes:
    at = NOW.isoformat()
    return orjson.dumps(published("e-1", "cus_1", "content.view", "wecom", at, properties))


def test_a_large_event_outside_ingests_bounds_does_not_decode_and_says_which() -> None:
    # The event: 3,800 distinct topics, about 500 KB.
    raw = raw_event({"content_id": "c", "topics": [f"topic-{n:05}-{'x' * 120}" for n in range(3_800)]})
    assert len(raw) > 500_000
    with pytest.raises(ValueError, match=r"outside ingest's bounds: properties\.topics: at most 20 topics"):
        decode_touchpoint(raw)
    nested = raw_event({"content_id": "c", "blob": "x" * CHECKED_ABOVE_BYTES, "form": [[[[[[[[[[1]]]]]]]]]]})
    with pytest.raises(ValueError, match="too_deep"):
        decode_touchpoint(nested)


def test_a_large_event_within_the_bounds_and_any_small_one_decode() -> None:
    within = raw_event({"content_id": "c", "lines": ["x" * 4096] * 10})
    assert len(within) > CHECKED_ABOVE_BYTES and decode_touchpoint(within).event_id == "e-1"
    small = raw_event({"content_id": "c", "topics": [str(n) for n in range(30)]})  # not looked at
    assert decode_touchpoint(small).event_id == "e-1"
