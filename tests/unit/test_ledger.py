"""The ledger every row keeps: compact in memory, its JSON in the changelogs as it always was."""

from __future__ import annotations

import copy
import pickle
import sys

import orjson
from pydantic import TypeAdapter

from shared.ledger import Ledger, LedgerEntry
from shared.record_json import encode_record

AS_JSON = {
    "offsets": {"touchpoint.events.v1/2": 1041, "pd-x-handovers/2": 7},
    "recent_ids": ["e-1", "e-2"],
    "recent_at": [1764550000, 1764550060],
}


def test_a_ledger_is_written_and_read_as_its_json_always_was() -> None:
    ledger = Ledger(AS_JSON["offsets"], tuple(AS_JSON["recent_ids"]), tuple(AS_JSON["recent_at"]))
    assert orjson.loads(encode_record(ledger)) == AS_JSON
    assert TypeAdapter(Ledger).dump_python(ledger, mode="json") == AS_JSON
    read = TypeAdapter(Ledger).validate_json(orjson.dumps(AS_JSON))
    assert read == ledger and read.offsets == AS_JSON["offsets"]
    assert list(read.offsets) == ["touchpoint.events.v1/2", "pd-x-handovers/2"]  # least recently used first
    assert TypeAdapter(Ledger).validate_python(ledger) is ledger
    assert TypeAdapter(Ledger).validate_python(AS_JSON) == ledger


def test_ids_kept_before_their_times_were_read_back_as_old() -> None:
    read = TypeAdapter(Ledger).validate_json(
        b'{"offsets": {"t/0": 3}, "recent_ids": ["a", "b", "c"], "recent_at": [9]}'
    )
    assert read.recent_ids == ("a", "b", "c") and read.recent_at == (0, 0, 9)
    assert TypeAdapter(Ledger).validate_json(b"{}") == Ledger()
    # more times than ids (a record written by hand): the times of the ids kept, the latest last
    assert Ledger({}, ("a",), (1, 2)).recent_at == (2,) and Ledger({}, (), (1, 2)) == Ledger()


def test_a_ledger_and_its_working_copy_agree() -> None:
    entry = LedgerEntry(Ledger({"t/0": 4}, ("a",), (100,)))
    assert entry.admit("t/1", 0, "b", 200.0) and not entry.admit("t/0", 4, "c", 300.0)
    frozen = entry.freeze()
    assert frozen.offsets == {"t/1": 0, "t/0": 4} and frozen.recent_ids == ("a", "b")
    assert frozen.recent_at == (100, 200) and hash(frozen) == hash(
        Ledger({"t/1": 0, "t/0": 4}, ("a", "b"), (100, 200))
    )


def _deep_size(value: object, seen: set[int]) -> int:
    if id(value) in seen:
        return 0
    seen.add(id(value))
    parts = value if isinstance(value, tuple | list) else ()
    return sys.getsizeof(value) + sum(_deep_size(part, seen) for part in parts)


def test_a_customer_s_ledger_takes_about_two_hundred_and_twenty_bytes() -> None:
    # One input: a partition's mark and one id with its time (a dataclass holding a dict and two
    # tuples took 481 with their contents).
    shared_partition = sys.intern("touchpoint.events.v1/2")
    ledger = Ledger(
        {shared_partition: 123_456_789}, ("7f0e9c1e-49a4-4f3e-9d6a-2a8d2f1c0b11",), (1_764_550_000,)
    )
    shared = {id(shared_partition), id(1)}  # the partition's text, and the count of partitions (a cached int)
    assert _deep_size(ledger, shared) <= 230
    # read back from its JSON, the partition's text is the one string there is
    read = TypeAdapter(Ledger).validate_json(orjson.dumps({"offsets": {"touchpoint.events.v1/2": 1}}))
    assert next(iter(read.offsets)) is shared_partition


def test_a_ledger_survives_copy_and_pickle() -> None:
    ledger = Ledger({"t/0": 4, "u/1": 9}, ("a", "b"), (100, 200))
    assert copy.deepcopy(ledger) == ledger and pickle.loads(pickle.dumps(ledger)) == ledger
    assert type(pickle.loads(pickle.dumps(ledger))) is Ledger


def test_a_ledger_names_the_partition_of_its_latest_input() -> None:
    assert Ledger().latest_partition is None
    entry = LedgerEntry(Ledger())
    entry.admit("touchpoint.events.v1/2", 5, "e-1")
    entry.admit("pd-x-handovers/3", 1, "h-1")
    assert entry.freeze().latest_partition == 3
    entry.admit("touchpoint.events.v1/2", 6, "e-2")  # used again: the latest again
    assert entry.freeze().latest_partition == 2
    assert Ledger({"written-by-hand": 4}).latest_partition is None
