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
from dataclasses import dataclass, field

RECENT_IDS = 32  # kept whatever their age
MAX_RECENT_IDS = 256  # never more: a customer with more inputs in a window keeps the latest
DEDUPE_WINDOW_S = 24 * 3600
MAX_ID_CHARS = 128
MAX_LEDGER_PARTITIONS = 16


@dataclass(frozen=True, slots=True)
class Ledger:
    # Every customer's row keeps a "topic/partition" text per mark: one shared string per
    # partition, not one per row (71 bytes a customer at a million, docs/benchmarks.md). The
    # stream worker interns the text it makes for each input; rows read back from a changelog
    # share pydantic's cached copy of each short string.
    offsets: dict[str, int] = field(default_factory=dict)
    recent_ids: tuple[str, ...] = ()  # oldest first
    # When each of `recent_ids` was published (epoch seconds). Rows written before times were
    # kept have none: their ids count as old (kept among the last RECENT_IDS only).
    recent_at: tuple[int, ...] = ()


class LedgerEntry:
    """A mutable working copy for one batch; `freeze()` returns the Ledger to store."""

    __slots__ = ("offsets", "recent_at", "recent_ids")

    def __init__(self, ledger: Ledger) -> None:
        self.offsets = dict(ledger.offsets)
        self.recent_ids = list(ledger.recent_ids)
        at = list(ledger.recent_at)
        self.recent_at = (
            [0] * (len(self.recent_ids) - len(at)) + at[-len(self.recent_ids) :] if self.recent_ids else []
        )

    def admit(self, partition: str, offset: int, input_id: str, at: float = 0.0) -> bool:
        """Record the input (`at`: when its record was published, epoch seconds; 0 if unknown)
        and say whether it is new."""
        offsets = self.offsets
        last = offsets.pop(partition, -1)  # and back at the end: the most recently used last
        offsets[partition] = max(offset, last)
        if offset <= last:
            return False
        if len(offsets) > MAX_LEDGER_PARTITIONS:
            del offsets[next(iter(offsets))]
        input_id = kept_id(input_id)
        ids, times = self.recent_ids, self.recent_at
        if input_id in ids:
            return False
        stamp = int(at) if at > 0 else (times[-1] if times else 0)
        ids.append(input_id)
        times.append(stamp)
        horizon = stamp - DEDUPE_WINDOW_S
        while len(ids) > RECENT_IDS and (len(ids) > MAX_RECENT_IDS or times[0] < horizon):
            del ids[0]
            del times[0]
        return True

    def freeze(self) -> Ledger:
        return Ledger(
            offsets=self.offsets, recent_ids=tuple(self.recent_ids), recent_at=tuple(self.recent_at)
        )


def kept_id(input_id: str) -> str:
    """An input id as a ledger keeps it: as it is, or its digest when longer than MAX_ID_CHARS."""
    if len(input_id) <= MAX_ID_CHARS:
        return input_id
    return "sha256:" + hashlib.sha256(input_id.encode()).hexdigest()
