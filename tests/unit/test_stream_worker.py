"""The plumbing every worker shares: decoding a batch with dead letters, isolating a failing
input, joining batch outcomes."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

import orjson
import pytest
from pydantic import BaseModel

from shared.erasure import CustomerErased
from shared.fold import Delivery
from shared.outcome import BatchOutcomeBase
from shared.stream_worker import DeadLetter, decode_inputs, one_at_a_time


class Ping(BaseModel):
    customer_id: str
    n: int


def message(topic: str, partition: int, offset: int, value: bytes | None) -> SimpleNamespace:
    return SimpleNamespace(
        topic=topic, partition=partition, offset=offset, key=b"k", value=value, timestamp=None
    )


def test_a_batch_decodes_and_what_does_not_decode_goes_to_dead_letters() -> None:
    messages = [
        message("t", 0, 5, b'{"customer_id": "c1", "n": 1}'),
        message("t", 1, 7, b"not json"),
        message("t", 2, 9, None),
        message("t", 2, 10, b'{"customer_id": "c2", "n": 2}'),
    ]
    deliveries, partitions, dead = decode_inputs(messages, lambda topic: Ping.model_validate_json)
    assert [(d.partition, d.offset, d.payload.n) for d in deliveries] == [("t/0", 5, 1), ("t/2", 10, 2)]
    assert deliveries[1].raw == b'{"customer_id": "c2", "n": 2}'  # the bytes read, for the chain
    assert partitions == {"c1": 0, "c2": 2}
    assert [(d.partition, d.offset) for d in dead] == [(1, 7), (2, 9)]
    assert "ValidationError" in dead[0].reason and "empty message" in dead[1].reason
    letter = orjson.loads(dead[0].encode())
    assert (letter["topic"], letter["offset"], letter["value"]) == ("t", 7, "not json")


def test_inputs_read_through_one_partition_share_one_partition_text() -> None:
    # Every row's ledger keeps the text: a copy per input would be a copy per customer.
    first, second = (message("topic.v1", 3, n, b'{"customer_id": "c%d", "n": 1}' % n) for n in (1, 2))
    (one,), _, _ = decode_inputs([first], lambda topic: Ping.model_validate_json)
    (other,), _, _ = decode_inputs([second], lambda topic: Ping.model_validate_json)
    assert one.partition == "topic.v1/3" and one.partition is other.partition


def test_a_tombstone_on_the_chain_topic_erases_its_customer_and_elsewhere_is_dead_lettered() -> None:
    keyless = message("chain", 1, 4, None)
    keyless.key = None
    messages = [message("chain", 0, 3, None), message("other", 0, 3, None), keyless]
    deliveries, partitions, dead = decode_inputs(messages, lambda topic: Ping.model_validate_json, "chain")
    assert [d.payload for d in deliveries] == [CustomerErased("k")] and partitions == {"k": 0}
    assert [(d.topic, d.offset) for d in dead] == [("other", 3), ("chain", 4)]


def test_one_failing_input_is_dead_lettered_and_the_rest_goes_through() -> None:
    deliveries = [Delivery("t/0", n, Ping(customer_id=f"c{n}", n=n)) for n in range(4)]
    done: list[int] = []

    def run(one: list[Delivery]) -> None:
        if one[0].payload.n == 2:
            raise ZeroDivisionError("the domain's bug")
        done.extend(d.payload.n for d in one)

    dead: list[DeadLetter] = []
    one_at_a_time(deliveries, run, dead, "scoring")
    assert done == [0, 1, 3]
    (letter,) = dead
    assert (letter.topic, letter.partition, letter.offset, letter.key) == ("t", 0, 2, b"c2")
    assert letter.reason == "scoring failed: ZeroDivisionError: the domain's bug"
    assert orjson.loads(letter.value) == {"customer_id": "c2", "n": 2}


@dataclass
class Outcome(BatchOutcomeBase):
    rows: dict[str, int] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)


def test_outcomes_join_rows_outputs_and_counts() -> None:
    first, second = Outcome(rows={"a": 1}, outputs=["x"]), Outcome(rows={"a": 2, "b": 1}, outputs=["y"])
    first.count("processed")
    second.count("processed")
    second.count("duplicate")
    first.absorb(second)
    assert first == Outcome(
        counts={"processed": 2, "duplicate": 1}, rows={"a": 2, "b": 1}, outputs=["x", "y"]
    )


@pytest.mark.parametrize("value", [b"{}", b'{"customer_id": "c"}'])
def test_a_payload_missing_fields_is_a_dead_letter_too(value: bytes) -> None:
    _, _, dead = decode_inputs([message("t", 0, 1, value)], lambda topic: Ping.model_validate_json)
    assert len(dead) == 1


def test_lag_follows_the_end_of_the_partition_even_without_new_input() -> None:
    from faust.types import TP
    from prometheus_client import CollectorRegistry

    from shared.stream_worker import InputWatch
    from shared.worker_metrics import WorkerMetrics

    registry = CollectorRegistry()
    ends = {("t", 0): 10}
    tp = TP("t", 0)
    watch = InputWatch(WorkerMetrics("w", registry), lambda tp: ends[(tp.topic, tp.partition)])

    def lag() -> float | None:
        return registry.get_sample_value("pd_consumer_lag", {"service": "w", "topic": "t", "partition": "0"})

    taken = SimpleNamespace(tp=tp, offset=4, topic="t", partition=0)
    watch.observe([taken])
    assert lag() == 5  # offsets 5..9 still to read
    ends[("t", 0)] = 30  # input keeps arriving, the worker takes none of it
    watch.refresh_lag()
    assert lag() == 25
    assert (
        registry.get_sample_value("pd_events_processed_total", {"service": "w", "outcome": "dead_lettered"})
        == 0
    )


def test_outputs_are_keyed_by_customer_and_rows_go_to_their_input_partition() -> None:
    from shared.record_table import RecordCodec
    from shared.stream_worker import changelog_records, dead_letter_records, keyed_records

    pings = [Ping(customer_id="c1", n=1), Ping(customer_id="c2", n=2)]
    [first, _] = keyed_records("out", pings)
    assert (first.topic, first.key, orjson.loads(first.value), first.partition) == (
        "out",
        b"c1",
        {"customer_id": "c1", "n": 1},
        None,  # the default partitioner, by key, as ingest does
    )
    rows = changelog_records("log", RecordCodec(Ping), {"c2": pings[1]}, {"c2": 2})
    assert [(r.topic, r.key, r.partition) for r in rows] == [("log", b"c2", 2)]
    letter = DeadLetter("in", b"k", b"x", "bad", 0, 3)
    [dead] = dead_letter_records({"in": "in.dlq"}, [letter])
    assert (dead.topic, dead.key, orjson.loads(dead.value)["error"]) == ("in.dlq", b"k", "bad")


def test_a_dead_letter_reads_back_as_it_was_written() -> None:
    from shared.stream_worker import DeadLetter

    letter = DeadLetter("touchpoint.events.v1", b"cus_1", b'{"event_id": "e"}', "bad: x", 2, 41)
    assert DeadLetter.decode(b"cus_1", letter.encode()) == letter
