"""What every worker's batch step returns has the same bones: rows changed, outputs, counts."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Self


@dataclass
class BatchOutcomeBase:
    """Subclasses add their rows (dicts) and outputs (lists); `absorb` joins two outcomes."""

    counts: dict[str, int] = field(default_factory=dict)  # inputs by outcome

    def count(self, outcome: str, n: int = 1) -> None:
        self.counts[outcome] = self.counts.get(outcome, 0) + n

    def absorb(self, other: Self) -> None:
        """Add `other` (a later part of the same batch) to this outcome."""
        for spec in fields(self):
            mine, theirs = getattr(self, spec.name), getattr(other, spec.name)
            if spec.name == "counts":
                for name, n in theirs.items():
                    mine[name] = mine.get(name, 0) + n
            elif isinstance(mine, dict):
                mine.update(theirs)  # rows: the later state of a customer wins
            else:
                mine.extend(theirs)
