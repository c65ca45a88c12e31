"""The ledger: what has already been applied to a customer, so that nothing applies twice.

Shared by the stream workers (scoring, tagging): each keeps one per customer in its table.

Two ways the same input comes back (at-least-once delivery, docs/contract.md):
- **Redelivery.** A worker restarted after a crash re-reads from its last committed offset, but
  the state it restores from the changelog may already include what came after. Every input of
  one customer arrives through a few partitions in offset order, so the last offset applied per
  partition ("topic/partition") is an exact mark: anything at or below it is done.
- **Republication.** The same event published twice (ingest publishing an event again whose
  first acknowledgement it did not see; a relay resending a merge) arrives at a new offset. The
  ids of the customer's inputs published within the last DEDUPE_WINDOW_S (by their records'
  timestamps) catch it — at least the last RECENT_IDS inputs whatever their age, at most
  MAX_RECENT_IDS. Ingest republishes an event only within that window (docs/ingest.md,
  "Delivery guarantees and their edges").

Bounded (docs/contract.md, "Bounds"): a ledger is in every row, on every changelog record, so
whatever an input can put in it is capped. The ids of the last RECENT_IDS inputs; an id longer
than MAX_ID_CHARS (ingest's are UUIDs; a record put on a topic by hand may carry anything) is
kept as its SHA-256, which catches its copies all the same; and the marks of the
MAX_LEDGER_PARTITIONS partitions an input came through most recently (a customer's inputs come
through a few: one per input topic, more only after partitions were added), the least recently
used one forgotten first.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Mapping, Sequence
from functools import lru_cache
from types import MappingProxyType
from typing import Any

from pydantic import GetCoreSchemaHandler
from pydantic_core import CoreSchema, core_schema

RECENT_IDS = 32  # kept whatever their age
MAX_RECENT_IDS = 256  # never more: a customer with more inputs in a window keeps the latest
DEDUPE_WINDOW_S = 24 * 3600
MAX_ID_CHARS = 128
MAX_LEDGER_PARTITIONS = 16
NO_OFFSETS: Mapping[str, int] = MappingProxyType({})


class Ledger(tuple):
    """What a customer's row keeps: the last offset applied per partition ("topic/partition"),
    least recently used first, and the recent input ids, oldest first, each with when it was
    published (epoch seconds; 0 for ids kept before times were).

    Every row holds one, so it is one flat tuple: the number of partitions, then partition,
    offset, … then id, time, … (one object of 80 bytes with one partition and one id, where a
    dataclass holding a dict and two tuples took 336; docs/benchmarks.md). Its JSON, in every
    changelog record, is the same as ever:
    `{"offsets": {...}, "recent_ids": [...], "recent_at": [...]}`. Every "topic/partition" text
    is one string per partition, not one per row: the stream worker interns the text it makes
    for each input, and a ledger read back from a changelog interns its own (pydantic makes a
    new string per row)."""

    __slots__ = ()

    def __new__(
        cls,
        offsets: Mapping[str, int] = NO_OFFSETS,
        recent_ids: Sequence[str] = (),
        recent_at: Sequence[int] = (),
    ) -> Ledger:
        marks = [part for partition, offset in offsets.items() for part in (sys.intern(partition), offset)]
        # Rows written before times were kept have fewer times (or none): their ids count as old.
        if len(recent_at) != len(recent_ids):
            kept = list(recent_at)[-len(recent_ids) :] if recent_ids else []
            recent_at = [0] * (len(recent_ids) - len(kept)) + kept
        recent = [part for kept_id in zip(recent_ids, recent_at, strict=True) for part in kept_id]
        return cls._flat(marks, recent)

    def __getnewargs__(self) -> tuple[dict[str, int], tuple[str, ...], tuple[int, ...]]:
        # What copy and pickle pass back to __new__ (a tuple's own items would not fit it).
        return self.offsets, self.recent_ids, self.recent_at

    @classmethod
    def _flat(cls, marks: list[str | int], recent: list[str | int]) -> Ledger:
        return tuple.__new__(cls, [len(marks) // 2, *marks, *recent])

    @property
    def _marks(self) -> tuple[str | int, ...]:
        return self[1 : 1 + 2 * self[0]]

    @property
    def _recent(self) -> tuple[str | int, ...]:
        return self[1 + 2 * self[0] :]

    @property
    def offsets(self) -> dict[str, int]:
        marks = self._marks
        return dict(zip(marks[::2], marks[1::2], strict=True))

    @property
    def latest_partition(self) -> int | None:
        """The number of the partition the latest input came through (the one its customer's
        rows and changelog records belong to: every topic of ours is partitioned by customer
        alike), or None before any input or for a mark that names none."""
        return _partition_number(self[2 * self[0] - 1]) if self[0] else None

    @property
    def recent_ids(self) -> tuple[str, ...]:
        return self._recent[::2]

    @property
    def recent_at(self) -> tuple[int, ...]:
        return self._recent[1::2]

    def __repr__(self) -> str:
        return f"Ledger({self.__jsonable__()!r})"

    def __jsonable__(self) -> dict[str, Any]:
        """The ledger as its JSON has it (shared/record_json.py)."""
        return {"offsets": self.offsets, "recent_ids": self.recent_ids, "recent_at": self.recent_at}

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        """Read from its JSON (or taken as it is); written as its JSON."""
        fields = core_schema.typed_dict_schema(
            {
                "offsets": core_schema.typed_dict_field(
                    core_schema.dict_schema(core_schema.str_schema(), core_schema.int_schema()),
                    required=False,
                ),
                "recent_ids": core_schema.typed_dict_field(
                    core_schema.tuple_variable_schema(core_schema.str_schema()), required=False
                ),
                "recent_at": core_schema.typed_dict_field(
                    core_schema.tuple_variable_schema(core_schema.int_schema()), required=False
                ),
            }
        )
        from_json = core_schema.no_info_after_validator_function(lambda read: cls(**read), fields)
        return core_schema.json_or_python_schema(
            json_schema=from_json,
            python_schema=core_schema.union_schema([core_schema.is_instance_schema(cls), from_json]),
            serialization=core_schema.plain_serializer_function_ser_schema(cls.__jsonable__),
        )


class LedgerEntry:
    """A mutable working copy for one batch; `freeze()` returns the Ledger to store."""

    # Kept flat, as the ledger is: partition, offset, ... and id, time, ... (an id and a
    # partition are texts, offsets and times ints, so looking one up never matches the other).
    __slots__ = ("marks", "recent")

    def __init__(self, ledger: Ledger) -> None:
        self.marks: list[str | int] = list(ledger._marks)
        self.recent: list[str | int] = list(ledger._recent)

    def admit(self, partition: str, offset: int, input_id: str, at: float = 0.0) -> bool:
        """Record the input (`at`: when its record was published, epoch seconds; 0 if unknown)
        and say whether it is new."""
        marks = self.marks
        last = -1
        if partition in marks:  # taken out and put back last: the most recently used last
            where = marks.index(partition)
            last = marks[where + 1]
            del marks[where : where + 2]
        marks += (partition, max(offset, last))
        if offset <= last:
            return False
        if len(marks) > 2 * MAX_LEDGER_PARTITIONS:
            del marks[:2]
        input_id = kept_id(input_id)
        recent = self.recent
        if input_id in recent:
            return False
        stamp = int(at) if at > 0 else (recent[-1] if recent else 0)
        recent += (input_id, stamp)
        horizon = stamp - DEDUPE_WINDOW_S
        while len(recent) > 2 * RECENT_IDS and (len(recent) > 2 * MAX_RECENT_IDS or recent[1] < horizon):
            del recent[:2]
        return True

    def freeze(self) -> Ledger:
        return Ledger._flat(self.marks, self.recent)


@lru_cache(maxsize=4096)  # a few "topic/partition" texts, asked about for every row
def _partition_number(mark: str) -> int | None:
    number = mark.rpartition("/")[2]
    return int(number) if number.isdecimal() else None


def kept_id(input_id: str) -> str:
    """An input id as a ledger keeps it: as it is, or its digest when longer than MAX_ID_CHARS."""
    if len(input_id) <= MAX_ID_CHARS:
        return input_id
    return "sha256:" + hashlib.sha256(input_id.encode()).hexdigest()
