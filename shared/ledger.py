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
"""

from __future__ import annotations

from dataclasses import dataclass, field

RECENT_IDS = 32


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
        if offset <= self.offsets.get(partition, -1):
            return False
        self.offsets[partition] = offset
        if input_id in self.recent_ids:
            return False
        self.recent_ids.append(input_id)
        if len(self.recent_ids) > RECENT_IDS:
            del self.recent_ids[0]
        return True

    def freeze(self) -> Ledger:
        return Ledger(offsets=self.offsets, recent_ids=tuple(self.recent_ids))
