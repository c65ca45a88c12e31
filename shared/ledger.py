"""The ledger: what has already been applied to a customer, so that nothing applies twice.

Shared by the stream workers (scoring, tagging): each keeps one per customer in its table.

Two ways the same input comes back (at-least-once delivery, docs/contract.md):
- **Redelivery.** A worker restarted after a crash re-reads from its last committed offset, but
  the state it restores from the changelog may already include what came after. Every input of
  one customer arrives through a few partitions in offset order, so the last offset applied per
  partition ("topic/partition") is an exact mark: anything at or below it is done.
- **Republication.** The same event published twice (a producer retry, a relay resending a
  merge) arrives at a new offset. The ids of the last few inputs catch it; such copies follow
  the original closely.

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
from dataclasses import dataclass, field

RECENT_IDS = 32
MAX_ID_CHARS = 128
MAX_LEDGER_PARTITIONS = 16


@dataclass(frozen=True, slots=True)
class Ledger:
    offsets: dict[str, int] = field(default_factory=dict)
    recent_ids: tuple[str, ...] = ()


class LedgerEntry:
    """A mutable working copy for one batch; `freeze()` returns the Ledger to store."""

    __slots__ = ("offsets", "recent_ids")

    def __init__(self, ledger: Ledger) -> None:
        self.offsets = dict(ledger.offsets)
        self.recent_ids = list(ledger.recent_ids)

    def admit(self, partition: str, offset: int, input_id: str) -> bool:
        """Record the input and say whether it is new."""
        offsets = self.offsets
        last = offsets.pop(partition, -1)  # and back at the end: the most recently used last
        offsets[partition] = max(offset, last)
        if offset <= last:
            return False
        if len(offsets) > MAX_LEDGER_PARTITIONS:
            del offsets[next(iter(offsets))]
        input_id = kept_id(input_id)
        if input_id in self.recent_ids:
            return False
        self.recent_ids.append(input_id)
        if len(self.recent_ids) > RECENT_IDS:
            del self.recent_ids[0]
        return True

    def freeze(self) -> Ledger:
        return Ledger(offsets=self.offsets, recent_ids=tuple(self.recent_ids))


def kept_id(input_id: str) -> str:
    """An input id as a ledger keeps it: as it is, or its digest when longer than MAX_ID_CHARS."""
    if len(input_id) <= MAX_ID_CHARS:
        return input_id
    return "sha256:" + hashlib.sha256(input_id.encode()).hexdigest()
